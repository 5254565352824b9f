# HeedDependencies.cmake: what heed builds against, found once for every target, and the sanitizer switch.
#
#   OpenMP, zlib (gzip IDX files), nlohmann_json (safetensors headers, metrics.json), xsimd (SIMD loops),
#   OpenBLAS's cblas.h (the library itself is dlopen'd by tensor/kernels/blas.cpp), and MPI for heed::dist.
find_package(OpenMP REQUIRED COMPONENTS CXX)
find_package(ZLIB REQUIRED)
find_package(nlohmann_json 3 REQUIRED)
find_package(xsimd REQUIRED)
# Debian's xsimd 8.1 names "xtl" as a link library, which heed does not need and Debian does not install.
if(NOT TARGET xtl)
  set_property(TARGET xsimd PROPERTY INTERFACE_LINK_LIBRARIES "")
endif()
find_path(OPENBLAS_INCLUDE_DIR cblas.h
  PATH_SUFFIXES openblas openblas-pthread x86_64-linux-gnu/openblas-pthread REQUIRED)

# MPI (Debian's OpenMPI: libopenmpi-dev, openmpi-bin) for heed::dist. Only its C API is used.
set(MPI_CXX_SKIP_MPICXX ON)
find_package(MPI QUIET COMPONENTS CXX)
option(HEED_MPI "Build heed::dist over MPI (default: on when MPI is found); off, dist/ is a world of one"
  ${MPI_CXX_FOUND})
if(HEED_MPI AND NOT MPI_CXX_FOUND)
  message(FATAL_ERROR
    "HEED_MPI is ON but MPI was not found: apt-get install libopenmpi-dev openmpi-bin, or -DHEED_MPI=OFF")
endif()

option(HEED_SANITIZE "Build with -fsanitize=address,undefined" OFF)
if(HEED_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all)
  add_link_options(-fsanitize=address,undefined)
endif()
