# The CMake package of an installed attnc (`cmake --install build --prefix P`):
#
#   P/include/attnc/{dsl,compiler,runtime}/...  the headers, at their repository paths: consumers
#                                               put P/include/attnc on the include path (the
#                                               targets do) and write #include "runtime/Attention.h"
#   P/include/attnc/runtime/kernels/*.cuh       the shared device headers (struct layouts)
#   P/lib/libattnc_{dsl,compiler,runtime}.a     static libraries (P/lib/<multiarch> for prefix /usr)
#   P/bin/attnc                                 the command-line tool
#   P/share/attnc/kernels/*.cuh                 every embedded kernel template, for readers
#   P/lib/cmake/attnc/                          attncConfig.cmake, attncConfigVersion.cmake and the
#                                               exported targets attnc::dsl, attnc::compiler,
#                                               attnc::runtime and attnc::attnc
#
# Each layer's CMakeLists.txt installs its own library and headers into the export set attncTargets;
# this file writes the package around it. tests/install/ builds a consumer against it.
include(CMakePackageConfigHelpers)

set(ATTNC_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/attnc)

# A sanitized build installs instrumented libraries, which need the sanitizer runtime at link time.
if(ATTNC_SANITIZE)
  target_link_options(attnc_dsl INTERFACE $<INSTALL_INTERFACE:-fsanitize=address,undefined>)
endif()

# What attncConfig.cmake needs to find the same dependencies the libraries were built with.
if(ATTNC_HAVE_LLVM)
  set(ATTNC_CONFIG_LLVM_VERSION ${LLVM_VERSION_MAJOR}.${LLVM_VERSION_MINOR})
endif()
if(NOT ATTNC_FMT_HEADER_ONLY)
  math(EXPR ATTNC_CONFIG_FMT_NEXT_MAJOR "${fmt_VERSION_MAJOR} + 1")
endif()

install(EXPORT attncTargets NAMESPACE attnc:: DESTINATION ${ATTNC_INSTALL_CMAKEDIR})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/attncConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/attncConfig.cmake
                              INSTALL_DESTINATION ${ATTNC_INSTALL_CMAKEDIR})
# 0.x: a new minor version may change the API.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/attncConfigVersion.cmake COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/attncConfig.cmake ${PROJECT_BINARY_DIR}/attncConfigVersion.cmake
        DESTINATION ${ATTNC_INSTALL_CMAKEDIR})
