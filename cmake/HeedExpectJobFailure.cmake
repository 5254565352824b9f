# HeedExpectJobFailure.cmake, run as `cmake -D COMMAND="mpirun;...;prog;args" -D SECONDS=60 -P`: passes when
# COMMAND exits with an error within SECONDS; fails when it succeeds, or is still running after SECONDS
# (a job that hangs when one of its ranks fails is the bug these tests look for).
string(TIMESTAMP start "%s")
execute_process(COMMAND ${COMMAND} TIMEOUT ${SECONDS} RESULT_VARIABLE status OUTPUT_VARIABLE out ERROR_VARIABLE err)
string(TIMESTAMP stop "%s")
math(EXPR took "${stop} - ${start}")
message("${out}${err}")
if(status MATCHES "timeout")
  message(FATAL_ERROR "the job was still running after ${SECONDS} s: a failed rank left the others hanging")
elseif(status EQUAL 0)
  message(FATAL_ERROR "the job exited 0, but one of its ranks failed")
endif()
message("the job ended with '${status}' after ${took} s, as it should")
