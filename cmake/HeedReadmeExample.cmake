# HeedReadmeExample.cmake: a ```cpp block of the README, compiled and run as a test.
#
#   heed_add_readme_example(${PROJECT_SOURCE_DIR}/README.md readme_example "")
#   heed_add_readme_example(${PROJECT_SOURCE_DIR}/README.md readme_writing_a_model "## Writing a model")
#
# The first ```cpp block after the line `heading` (the file's first block when heading is "") becomes the
# program and the ctest entry `name`. The block is cut out of README.md at configure time; editing
# README.md re-runs the configure. Any comment `// prints: TEXT` in the block is checked: the output must
# contain each TEXT, in order.
function(heed_add_readme_example readme_path name heading)
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${readme_path})
  file(READ ${readme_path} readme)
  string(PREPEND readme "\n")  # so that a fence on the very first line also follows a newline
  set(skip 0)  # where the search for the fence starts
  if(NOT heading STREQUAL "")
    string(FIND "${readme}" "\n${heading}\n" skip)
    if(skip EQUAL -1)
      message(FATAL_ERROR "README.md has no line `${heading}`, whose first ```cpp block is the test ${name}")
    endif()
  endif()
  string(SUBSTRING "${readme}" ${skip} -1 tail)
  string(REGEX MATCH "\n```(cpp|c\\+\\+)[^\n]*\n" fence "${tail}")
  if(NOT fence)
    message(FATAL_ERROR
            "README.md has no ```cpp code block after `${heading}`; it is built and run as the test ${name}")
  endif()
  string(FIND "${tail}" "${fence}" start)
  math(EXPR start "${start} + ${skip}")
  string(LENGTH "${fence}" fence_length)
  math(EXPR start "${start} + ${fence_length}")
  # The block's first line number in README.md is the count of newlines before it (one was prepended).
  string(SUBSTRING "${readme}" 0 ${start} before)
  string(REGEX MATCHALL "\n" newlines "${before}")
  list(LENGTH newlines first_line)
  string(SUBSTRING "${readme}" ${start} -1 readme)
  string(FIND "${readme}" "\n```" end)
  if(end EQUAL -1)
    message(FATAL_ERROR "README.md: the ```cpp code block of the test ${name} is never closed with ```")
  endif()
  math(EXPR end "${end} + 1")  # keep the last line's newline
  string(SUBSTRING "${readme}" 0 ${end} example)

  # #line makes the compiler's errors point into README.md, where the code is edited. The .cpp is only
  # rewritten when it changed, so an edit elsewhere in README.md rebuilds nothing.
  file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/${name}.cpp.new
    "#line ${first_line} \"${readme_path}\"\n${example}")
  file(COPY_FILE ${CMAKE_CURRENT_BINARY_DIR}/${name}.cpp.new ${CMAKE_CURRENT_BINARY_DIR}/${name}.cpp
    ONLY_IF_DIFFERENT)
  add_executable(${name} ${CMAKE_CURRENT_BINARY_DIR}/${name}.cpp)
  target_link_libraries(${name} PRIVATE heed)
  add_test(NAME ${name} COMMAND ${name})

  # The expected output: each `// prints: TEXT`, escaped to match literally (a ';' matches any character,
  # since a ';' would split the property into a list), joined with ".*" so they must appear in order.
  string(REGEX REPLACE "([][\\^$.|()*+?\\\\])" "\\\\\\1" escaped "${example}")
  string(REPLACE ";" "." escaped "${escaped}")
  # Walk the text with FIND rather than a CMake list: printed tensors have unbalanced '[' in a line,
  # and CMake does not split a list at ';' inside brackets.
  set(expected "")
  set(rest "${escaped}\n")
  while(TRUE)
    string(FIND "${rest}" "// prints:" at)
    if(at EQUAL -1)
      break()
    endif()
    math(EXPR at "${at} + 10")
    string(SUBSTRING "${rest}" ${at} -1 rest)
    string(FIND "${rest}" "\n" eol)
    string(SUBSTRING "${rest}" 0 ${eol} line)
    string(SUBSTRING "${rest}" ${eol} -1 rest)
    string(STRIP "${line}" line)
    if(NOT line STREQUAL "")
      if(expected STREQUAL "")
        set(expected "${line}")
      else()
        string(APPEND expected ".*${line}")
      endif()
    endif()
  endwhile()
  if(NOT "${expected}" STREQUAL "")
    # With PASS_REGULAR_EXPRESSION ctest ignores the exit code (a crash by signal still fails), so
    # FAIL_REGULAR_EXPRESSION also catches the sanitizers' reports, which exit non-zero without a signal.
    set_tests_properties(${name} PROPERTIES
      PASS_REGULAR_EXPRESSION "${expected}"
      FAIL_REGULAR_EXPRESSION "runtime error:;ERROR: [A-Za-z]+Sanitizer")
  else()
    message(WARNING "README.md's ```cpp block of the test ${name} has no `// prints: TEXT` comment, "
      "so it only checks that the block builds and exits 0")
  endif()
endfunction()
