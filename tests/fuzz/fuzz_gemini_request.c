/* libFuzzer target: the gemini adapter's request translation (see fuzz_request.h). */
#define FUZZ_ADAPTER mr_adapter_gemini
#define FUZZ_KIND MR_KIND_GEMINI
#include "fuzz_request.h"
