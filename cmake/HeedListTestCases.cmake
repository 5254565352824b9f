# HeedListTestCases.cmake, run as `cmake -D EXE=... -D CASES=... -P` after each link of a test executable:
# writes CASES, one add_test per doctest test case (see HeedTestCases.cmake). doctest splits a --test-case
# filter at ',' and reads '\' as an escape, hence the two REPLACEs; [====[ ]====] quotes a name verbatim.
execute_process(COMMAND ${EXE} --list-test-cases OUTPUT_VARIABLE listing RESULT_VARIABLE status)
if(NOT status EQUAL 0)
  message(FATAL_ERROR "${EXE} --list-test-cases failed (${status}):\n${listing}")
endif()
set(script "")
string(APPEND listing "\n")  # so that every line, the last one too, ends with a newline
while(NOT listing STREQUAL "")
  string(FIND "${listing}" "\n" eol)
  string(SUBSTRING "${listing}" 0 ${eol} name)
  math(EXPR eol "${eol} + 1")
  string(SUBSTRING "${listing}" ${eol} -1 listing)
  if(name STREQUAL "" OR name MATCHES "^\\[doctest\\] " OR name MATCHES "^=+$")
    continue()  # doctest's header and footer lines
  endif()
  string(REPLACE "\\" "\\\\" filter "${name}")
  string(REPLACE "," "\\," filter "${filter}")
  string(APPEND script
    "add_test([====[${name}]====] [====[${EXE}]====] [====[--test-case=${filter}]====])\n"
    "set_tests_properties([====[${name}]====] PROPERTIES LABELS unit TIMEOUT 300)\n")
endwhile()
file(WRITE ${CASES} "${script}")
