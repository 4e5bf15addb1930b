/* libFuzzer target: the anthropic adapter's request translation (see fuzz_request.h). */
#define FUZZ_ADAPTER mr_adapter_anthropic
#define FUZZ_KIND MR_KIND_ANTHROPIC
#include "fuzz_request.h"
