/* libFuzzer target: the gemini adapter's response translation (see fuzz_response.h). */
#define FUZZ_ADAPTER mr_adapter_gemini
#define FUZZ_KIND MR_KIND_GEMINI
#include "fuzz_response.h"
