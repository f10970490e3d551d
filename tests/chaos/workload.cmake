# The partition-failure suite's workload and checkers (tests/chaos/README.md),
# included from tests/CMakeLists.txt:
#   sx_chaos_workload      the program (run, check, faults), built into tests/chaos/
#   unit.test_chaos_judge  its history lines and checkers, without a cluster
#   integration.test_chaos_workload  run with a worker killed, check; the
#                          checker fails on edited histories
set(SX_WL_DIR ${CMAKE_CURRENT_LIST_DIR})
set(SX_WL_BIN ${CMAKE_BINARY_DIR}/tests/chaos)

add_library(shardex_chaos_wl STATIC ${SX_WL_DIR}/wl_history.c ${SX_WL_DIR}/wl_judge.c
            ${SX_WL_DIR}/wl_run.c ${SX_WL_DIR}/wl_check.c ${SX_WL_DIR}/wl_faults.c)
target_include_directories(shardex_chaos_wl PUBLIC ${SX_WL_DIR})
target_compile_options(shardex_chaos_wl PRIVATE ${SX_WARNINGS})
target_link_libraries(shardex_chaos_wl PUBLIC shardex_client shardex_common)

add_executable(sx_chaos_workload ${SX_WL_DIR}/sx_chaos_workload.c)
target_compile_options(sx_chaos_workload PRIVATE ${SX_WARNINGS})
target_link_libraries(sx_chaos_workload PRIVATE shardex_chaos_wl)
set_target_properties(sx_chaos_workload PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${SX_WL_BIN})

add_executable(test_chaos_judge ${SX_WL_DIR}/test_chaos_judge.c)
target_compile_options(test_chaos_judge PRIVATE ${SX_WARNINGS})
target_link_libraries(test_chaos_judge PRIVATE shardex_chaos_wl PkgConfig::CMOCKA)
set_target_properties(test_chaos_judge PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${SX_WL_BIN})
add_test(NAME unit.test_chaos_judge COMMAND test_chaos_judge)
set_tests_properties(unit.test_chaos_judge PROPERTIES LABELS unit TIMEOUT 60
                     ENVIRONMENT "${SX_TEST_ENV}")

add_executable(test_chaos_workload ${SX_WL_DIR}/test_chaos_workload.c)
target_compile_options(test_chaos_workload PRIVATE ${SX_WARNINGS})
target_link_libraries(test_chaos_workload PRIVATE shardex_testfixture PkgConfig::CMOCKA)
target_compile_definitions(test_chaos_workload PRIVATE SX_BUILD_DIR="${CMAKE_BINARY_DIR}")
set_target_properties(test_chaos_workload PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${SX_WL_BIN})
foreach(dep sx_chaos_workload shardex-coordinator shardex-worker shardex)
  if(TARGET ${dep})
    add_dependencies(test_chaos_workload ${dep})
  endif()
endforeach()
add_test(NAME integration.test_chaos_workload COMMAND test_chaos_workload)
set_tests_properties(integration.test_chaos_workload PROPERTIES LABELS integration TIMEOUT 120
                     ENVIRONMENT "${SX_TEST_ENV}")
