# HeedFlags.cmake: the compile flags of heed's own objects (the library, its tests, bench and zoo).
#
#   heed_private_flags(target)
#
# -march=native is private: it tunes heed's kernels for the machine that builds them, and never reaches a
# user's target through heed::heed, so a user's program is compiled for the compiler's default CPU.
function(heed_private_flags target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wno-unused-parameter)
  if(HEED_NATIVE)
    target_compile_options(${target} PRIVATE -march=native)
    # g++ 12 with -march=cascadelake miscompiles some by-value struct arguments ({1,1,0,0} arrives as
    # {1,1,1,1}) through SLP vectorization; turning that pass off fixes it (reproduced on this project's CI).
    if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
      target_compile_options(${target} PRIVATE -fno-tree-slp-vectorize)
    endif()
  endif()
  # Without optimisation GCC defines the AVX-512 intrinsics as macros, through which xsimd 8.1's AVX-512BW
  # select does not compile. So a Debug build, or one with no build type, compiles heed's own sources at
  # -Og: still debuggable, and the intrinsics are functions again.
  target_compile_options(${target} PRIVATE $<$<NOT:$<CONFIG:Release,RelWithDebInfo,MinSizeRel>>:-Og>)
endfunction()
