/* libFuzzer target: the azure adapter's stream translation (see fuzz_stream.h). */
#define FUZZ_ADAPTER mr_adapter_azure
#define FUZZ_KIND MR_KIND_AZURE
#include "fuzz_stream.h"
