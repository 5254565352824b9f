// fuzz_state_dict: the libFuzzer entry point for heed::fuzz::state_dict (fuzz/targets.h says what it exercises).
#include "fuzz/targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) { return heed::fuzz::state_dict(data, size); }
