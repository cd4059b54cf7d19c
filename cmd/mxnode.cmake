add_executable(mxnode ${CMAKE_CURRENT_LIST_DIR}/mxnode.c ${CMAKE_CURRENT_LIST_DIR}/mxnode_settings.c
  ${CMAKE_CURRENT_LIST_DIR}/mxnode_svc.c ${CMAKE_CURRENT_LIST_DIR}/mxnode_cluster.c
  ${CMAKE_CURRENT_LIST_DIR}/mxnode_likes.c)
target_link_libraries(mxnode PRIVATE mx_health mx_likes mx_outbox mx_shutdown mx_api mx_store mx_cache mx_fetch mx_http mx_expect mx_runtime)
set_target_properties(mxnode PROPERTIES LINKER_LANGUAGE CXX)
