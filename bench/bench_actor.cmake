add_executable(bench_actor ${CMAKE_CURRENT_LIST_DIR}/bench_actor.c)
target_link_libraries(bench_actor PRIVATE mx_core)
