add_executable(mxnode ${CMAKE_CURRENT_LIST_DIR}/mxnode.c ${CMAKE_CURRENT_LIST_DIR}/mxnode_settings.c)
target_link_libraries(mxnode PRIVATE mx_runtime)
