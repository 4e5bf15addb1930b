/* libFuzzer target: the anthropic adapter's response translation (see fuzz_response.h). */
#define FUZZ_ADAPTER mr_adapter_anthropic
#define FUZZ_KIND MR_KIND_ANTHROPIC
#include "fuzz_response.h"
