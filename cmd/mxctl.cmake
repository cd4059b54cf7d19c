# mxctl: the admin CLI (docs/cluster.md). nng, msgpack and hiredis come with mx_runtime.
add_executable(mxctl ${CMAKE_CURRENT_LIST_DIR}/mxctl.c)
target_link_libraries(mxctl PRIVATE mx_cluster)
