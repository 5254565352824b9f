# HeedInstall.cmake: `cmake --install build --prefix P` puts the headers under P/include/heed, libheed under
# P/lib, and heedConfig.cmake where find_package(heed) looks, so that a user's project links heed::heed.
include(CMakePackageConfigHelpers)
set(HEED_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/heed)
install(TARGETS heed EXPORT heedTargets)
install(FILES heed.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/heed)
install(DIRECTORY tensor autograd nn data metrics viz io dist DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/heed
  FILES_MATCHING PATTERN "*.h")
install(EXPORT heedTargets NAMESPACE heed:: DESTINATION ${HEED_CMAKE_DIR})
configure_file(cmake/heedConfig.cmake.in ${CMAKE_CURRENT_BINARY_DIR}/heedConfig.cmake @ONLY)
# 0.x: a minor version may break the API, so only the same minor version is compatible.
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/heedConfigVersion.cmake COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/heedConfig.cmake ${CMAKE_CURRENT_BINARY_DIR}/heedConfigVersion.cmake
  DESTINATION ${HEED_CMAKE_DIR})
