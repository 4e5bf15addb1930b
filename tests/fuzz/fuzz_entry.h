/*
 * The entry points libFuzzer calls (its interface, declared by no system
 * header). CMakeLists.txt force-includes this in every fuzzer so that their
 * definitions have a prototype (-Wmissing-prototypes).
 */
#ifndef MERIDIAN_FUZZ_ENTRY_H
#define MERIDIAN_FUZZ_ENTRY_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif /* MERIDIAN_FUZZ_ENTRY_H */
