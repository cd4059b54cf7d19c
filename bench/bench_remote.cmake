# bench_remote: the nng transport against raw nng (docs/cluster.md).
add_executable(bench_remote ${CMAKE_CURRENT_LIST_DIR}/bench_remote.c)
target_link_libraries(bench_remote PRIVATE mx_runtime)
