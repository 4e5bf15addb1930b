/* libFuzzer target: the azure adapter's response translation (see fuzz_response.h). */
#define FUZZ_ADAPTER mr_adapter_azure
#define FUZZ_KIND MR_KIND_AZURE
#include "fuzz_response.h"
