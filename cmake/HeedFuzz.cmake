# HeedFuzz.cmake: the libFuzzer harnesses of fuzz/, under AddressSanitizer and UBSan.
#
#   cmake -S . -B build-fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DHEED_FUZZ=ON \
#         -DHEED_BUILD_TESTS=OFF -DHEED_BUILD_BENCH=OFF -DHEED_BUILD_MODELS=OFF
#   build-fuzz/fuzz_safetensors -max_total_time=60 CORPUS_COPY tests/fuzz/corpus/safetensors
#
# Included before the targets are declared, it compiles everything (heed, heed_zoo) with coverage counters
# (-fsanitize=fuzzer-no-link) and the sanitizers; heed_add_fuzzers(), called after, adds one program per
# fuzz/fuzz_<target>.cpp. libFuzzer comes with Debian's clang (clang and libclang-rt-dev, plus libomp-dev
# for OpenMP); GCC has no libFuzzer, so HEED_FUZZ needs clang.
option(HEED_FUZZ "Build the libFuzzer harnesses in fuzz/ with ASan and UBSan (needs clang)" OFF)

if(HEED_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "HEED_FUZZ needs clang (libFuzzer): configure with -DCMAKE_CXX_COMPILER=clang++")
  endif()
  add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -g)
  add_link_options(-fsanitize=address,undefined)
endif()

function(heed_add_fuzzers)
  if(NOT HEED_FUZZ)
    return()
  endif()
  file(GLOB sources CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/fuzz/fuzz_*.cpp)
  foreach(src ${sources})
    get_filename_component(name ${src} NAME_WE)
    add_executable(${name} ${src})
    target_link_libraries(${name} PRIVATE heed_zoo ZLIB::ZLIB)
    target_link_options(${name} PRIVATE -fsanitize=fuzzer)
    heed_private_flags(${name})
  endforeach()
endfunction()
