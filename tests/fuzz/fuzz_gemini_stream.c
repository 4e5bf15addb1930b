/* libFuzzer target: the gemini adapter's stream translation (see fuzz_stream.h). */
#define FUZZ_ADAPTER mr_adapter_gemini
#define FUZZ_KIND MR_KIND_GEMINI
#include "fuzz_stream.h"
