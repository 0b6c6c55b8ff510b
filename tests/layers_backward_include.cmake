# The layer check (cmake/check_layers.cmake) passes on src/ and fails, naming the file and the
cmake_minimum_required(VERSION 3.25)
# include, on a copy of the floors where stats/ includes prune/ (a floor above it).
#   cmake -DSRC=<src> -DWORK=<scratch dir> -P layers_backward_include.cmake
set(check ${CMAKE_CURRENT_LIST_DIR}/../cmake/check_layers.cmake)
execute_process(COMMAND ${CMAKE_COMMAND} -DSRC=${SRC} -P ${check} RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "the check fails on src/ itself:\n${err}")
endif()

file(REMOVE_RECURSE ${WORK})
file(COPY ${SRC}/layers.cmake DESTINATION ${WORK}/src)
file(WRITE ${WORK}/src/moe/ok.h "#include \"core/error.h\"\n")
file(WRITE ${WORK}/src/prune/planner.h "#include \"stats/expert_stats.h\"\n")
execute_process(COMMAND ${CMAKE_COMMAND} -DSRC=${WORK}/src -P ${check} RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "the check fails on forward includes:\n${err}")
endif()
file(WRITE ${WORK}/src/stats/bad.cpp "#include \"moe/ok.h\"\n  #  include \"prune/planner.h\"\n")
execute_process(COMMAND ${CMAKE_COMMAND} -DSRC=${WORK}/src -P ${check} RESULT_VARIABLE rc ERROR_VARIABLE err)
if(rc EQUAL 0)
  message(FATAL_ERROR "a backward include (stats/ -> prune/) passed the check")
endif()
string(REGEX REPLACE "[ \n]+" " " err "${err}")  # CMake wraps its messages
if(NOT err MATCHES "src/stats/bad.cpp includes \"prune/planner.h\": stats/ may include only stats, moe, core")
  message(FATAL_ERROR "the check failed without naming the file and the include:\n${err}")
endif()
file(REMOVE_RECURSE ${WORK})
