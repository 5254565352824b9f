// fuzz_idx: the libFuzzer entry point for heed::fuzz::idx (fuzz/targets.h says what it exercises).
#include "fuzz/targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) { return heed::fuzz::idx(data, size); }
