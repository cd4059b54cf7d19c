# mxctl: the admin CLI (docs/cluster.md). nng, msgpack and hiredis come with mx_runtime;
# simdjson reads the JSON stats sections for the --cluster stats merge.
add_executable(mxctl ${CMAKE_CURRENT_LIST_DIR}/mxctl.c ${CMAKE_CURRENT_LIST_DIR}/mxctl_merge.c
  ${CMAKE_CURRENT_LIST_DIR}/mxctl_json.cpp)
target_include_directories(mxctl PRIVATE ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(mxctl PRIVATE mx_cluster mx_alloc simdjson::simdjson)
