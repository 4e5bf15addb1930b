/* libFuzzer target: the anthropic adapter's stream translation (see fuzz_stream.h). */
#define FUZZ_ADAPTER mr_adapter_anthropic
#define FUZZ_KIND MR_KIND_ANTHROPIC
#include "fuzz_stream.h"
