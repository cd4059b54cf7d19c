# mxstub: the Nexon Open API stand-in (see docs/mxstub.md).
add_executable(mxstub ${CMAKE_CURRENT_LIST_DIR}/mxstub.c ${CMAKE_CURRENT_LIST_DIR}/mxstub_data.c
  ${CMAKE_CURRENT_LIST_DIR}/mxstub_sink.c)
target_link_libraries(mxstub PRIVATE mx_base mx_blob mx_url mx_llhttp PkgConfig::UV)
