# HeedMpiTests.cmake: the tests that need an MPI job (included when HEED_MPI is on).
#
#   dist_np2            every "dist: ..." test case of heed_tests, on two ranks at once. The same cases also
#                       run alone, as ordinary ctest entries: a world of one must give the same answers.
#   dist_rank_throws    a job whose rank 1 throws must end on every rank, with an error, within TIMEOUT;
#   dist_rank_killed    the same when rank 1 is killed (SIGKILL) while rank 0 waits in an all-reduce.
#                       HeedExpectJobFailure.cmake runs them with a timeout of its own, so that a hang is
#                       reported as a hang and not as the expected failure.
#
# --oversubscribe: two ranks may run on fewer cores than that (ctest -j2 on a 2-core CI machine).
# OMPI_ALLOW_RUN_AS_ROOT*: OpenMPI refuses to start as root without them, and CI runs as root.
# btl_vader_single_copy_mechanism=none: containers forbid the cross-process memory calls (CMA) that
# OpenMPI's shared-memory transport uses by default; without them it copies through a shared buffer.
# OMP_NUM_THREADS=1: one thread per rank, so two ranks fill two cores and no more.
set(HEED_MPI_ENV OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  OMPI_MCA_btl_vader_single_copy_mechanism=none OMP_NUM_THREADS=1)
# OpenMPI keeps allocations until the process ends (its own and PMIx's): with HEED_SANITIZE, LeakSanitizer
# would report them as heed's leaks, so the MPI jobs run with leak detection off (the rest of ASan stays on).
if(HEED_SANITIZE)
  list(APPEND HEED_MPI_ENV ASAN_OPTIONS=detect_leaks=0:abort_on_error=1)
endif()
set(HEED_MPIRUN ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} 2 --oversubscribe)

add_test(NAME dist_np2 COMMAND ${HEED_MPIRUN} $<TARGET_FILE:heed_tests> --test-case=dist:*)
set_tests_properties(dist_np2 PROPERTIES LABELS "unit;mpi" TIMEOUT 300 ENVIRONMENT "${HEED_MPI_ENV}")

add_executable(heed_dist_failure ${PROJECT_SOURCE_DIR}/tests/dist/failure.cpp)
target_link_libraries(heed_dist_failure PRIVATE heed_zoo)
heed_private_flags(heed_dist_failure)
foreach(mode throws killed)
  add_test(NAME dist_rank_${mode} COMMAND ${CMAKE_COMMAND}
    -D "COMMAND=${HEED_MPIRUN};$<TARGET_FILE:heed_dist_failure>;${mode}"
    -D SECONDS=60 -P ${PROJECT_SOURCE_DIR}/cmake/HeedExpectJobFailure.cmake)
  set_tests_properties(dist_rank_${mode} PROPERTIES LABELS "unit;mpi" TIMEOUT 120 ENVIRONMENT "${HEED_MPI_ENV}")
endforeach()
