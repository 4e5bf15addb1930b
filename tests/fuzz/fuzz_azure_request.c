/* libFuzzer target: the azure adapter's request translation (see fuzz_request.h). */
#define FUZZ_ADAPTER mr_adapter_azure
#define FUZZ_KIND MR_KIND_AZURE
#include "fuzz_request.h"
