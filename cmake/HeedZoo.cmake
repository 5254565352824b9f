# HeedZoo.cmake: the zoo's programs.
#
#   heed_add_zoo_models()
#
# Every models/X.cpp is the program X, linked with heed_zoo. With the tests on, `X --quick` is the ctest
# entry zoo_X_quick (label "zoo"), writing into build/zoo_test/X; --force lets it rerun into that folder.
# The FD judge (models/zoo/judge.cpp) runs the classifier program when its weights are not cached yet, so
# every other model depends on classifier. models/tools/plot_runs.cpp is the program plot_runs.
function(heed_add_zoo_models)
  file(GLOB models CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/models/*.cpp)
  foreach(src ${models})
    get_filename_component(name ${src} NAME_WE)
    add_executable(${name} ${src})
    target_link_libraries(${name} PRIVATE heed_zoo)
    heed_private_flags(${name})
    if(HEED_BUILD_TESTS)
      set(out ${PROJECT_BINARY_DIR}/zoo_test/${name})
      file(MAKE_DIRECTORY ${out})
      add_test(NAME zoo_${name}_quick COMMAND ${name} --quick --force --out ${out})
      set_tests_properties(zoo_${name}_quick PROPERTIES LABELS zoo TIMEOUT 900)
    endif()
  endforeach()
  # The zoo's tools, which are not models: plot_runs draws several runs' curves in one picture.
  add_executable(plot_runs ${PROJECT_SOURCE_DIR}/models/tools/plot_runs.cpp)
  target_link_libraries(plot_runs PRIVATE heed_zoo)
  heed_private_flags(plot_runs)
  foreach(src ${models})
    get_filename_component(name ${src} NAME_WE)
    if(NOT name STREQUAL classifier)
      add_dependencies(${name} classifier)
    endif()
  endforeach()
endfunction()
