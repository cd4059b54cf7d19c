# mxctl: the admin CLI (docs/cluster.md). nng, msgpack and hiredis come with mx_runtime.
# mxctl_merge: the --cluster stats merge (simdjson reads the JSON stats
# sections), a library of its own so that its unit test links it.
add_library(mxctl_merge STATIC ${CMAKE_CURRENT_LIST_DIR}/mxctl_merge.c
  ${CMAKE_CURRENT_LIST_DIR}/mxctl_json.cpp)
target_include_directories(mxctl_merge PUBLIC ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(mxctl_merge PUBLIC mx_cluster mx_alloc PRIVATE simdjson::simdjson)
add_executable(mxctl ${CMAKE_CURRENT_LIST_DIR}/mxctl.c)
target_link_libraries(mxctl PRIVATE mxctl_merge mx_cluster)
set_target_properties(mxctl PROPERTIES LINKER_LANGUAGE CXX)
