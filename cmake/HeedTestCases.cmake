# HeedTestCases.cmake: one ctest entry per doctest TEST_CASE of a test executable.
#
#   heed_add_test_cases(heed_tests)
#
# After each link, the executable lists its test cases and each becomes the ctest entry
# `heed_tests --test-case=<name>`. We prefer that to one add_test for the whole binary: `ctest -R softmax`
# selects single cases, a failure is reported under its case's name, and ctest -j2 spreads the cases over
# both cores. The price is one process per case; heed_tests starts in a few milliseconds.
#
# We do the listing ourselves instead of with doctest_discover_tests: that module reads the names as a
# CMake list, which splits a name at ';' and merges names after an unbalanced '[' ("in [0,1)"), and heed's
# test names have both. HeedListTestCases.cmake walks the listing as plain text and quotes each name whole.
# tests/main.cpp fails any run whose --test-case filter matched nothing, so no entry can pass empty.
function(heed_add_test_cases target)
  set(cases ${CMAKE_CURRENT_BINARY_DIR}/${target}_cases.cmake)
  add_custom_command(TARGET ${target} POST_BUILD
    COMMAND ${CMAKE_COMMAND} -D EXE=$<TARGET_FILE:${target}> -D CASES=${cases}
      -P ${PROJECT_SOURCE_DIR}/cmake/HeedListTestCases.cmake
    BYPRODUCTS ${cases} VERBATIM)
  # ctest reads the cases from here; before the first build, one entry says that the target is not built.
  file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/${target}_include.cmake
    "if(EXISTS \"${cases}\")\n  include(\"${cases}\")\n"
    "else()\n  add_test(${target}_NOT_BUILT ${target}_NOT_BUILT)\nendif()\n")
  set_property(DIRECTORY APPEND PROPERTY TEST_INCLUDE_FILES ${CMAKE_CURRENT_BINARY_DIR}/${target}_include.cmake)
endfunction()
