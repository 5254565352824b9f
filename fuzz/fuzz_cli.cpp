// fuzz_cli: the libFuzzer entry point for heed::fuzz::cli (fuzz/targets.h says what it exercises).
#include "fuzz/targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) { return heed::fuzz::cli(data, size); }
