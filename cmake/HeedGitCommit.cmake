# HeedGitCommit.cmake: HEED_GIT_COMMIT, the short commit that the zoo's metrics.json records.
# git appends to .git/logs/HEAD on every commit and checkout, so making that file a configure dependency
# re-reads the commit whenever it changes (only models/zoo/zoo.cpp recompiles). Without a .git folder (a
# source tarball) the commit is "unknown".
if(EXISTS ${PROJECT_SOURCE_DIR}/.git/logs/HEAD)
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/.git/logs/HEAD)
endif()
execute_process(COMMAND git -C ${PROJECT_SOURCE_DIR} rev-parse --short HEAD
  OUTPUT_VARIABLE HEED_GIT_COMMIT OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
if(NOT HEED_GIT_COMMIT)
  set(HEED_GIT_COMMIT unknown)
endif()
