# Third-party packages, all from Debian (scripts/setup.sh installs them).
# ATTNC_FMT_HEADER_ONLY: use fmt's headers from ATTNC_DEPS_INCLUDE_DIR with FMT_HEADER_ONLY instead of
# an installed libfmt (the GPU machine has none; tools/gpu/prepare.sh copies the headers there).
option(ATTNC_FMT_HEADER_ONLY "Use header-only fmt from ATTNC_DEPS_INCLUDE_DIR" OFF)
set(ATTNC_DEPS_INCLUDE_DIR "" CACHE PATH "Folder holding fmt/ and catch2/ headers (tools/gpu/deps/include)")
if(ATTNC_FMT_HEADER_ONLY)
  if(NOT EXISTS "${ATTNC_DEPS_INCLUDE_DIR}/fmt/format.h")
    message(FATAL_ERROR "ATTNC_FMT_HEADER_ONLY needs ATTNC_DEPS_INCLUDE_DIR/fmt/format.h")
  endif()
  add_library(fmt::fmt INTERFACE IMPORTED)
  target_include_directories(fmt::fmt SYSTEM INTERFACE ${ATTNC_DEPS_INCLUDE_DIR})
  target_compile_definitions(fmt::fmt INTERFACE FMT_HEADER_ONLY=1)
  # No installed header includes fmt, so header-only fmt is compiled into attnc and an installed
  # attnc needs none: the dependency stays in the build tree.
  set(ATTNC_FMT_LINK $<BUILD_INTERFACE:fmt::fmt>)
else()
  find_package(fmt REQUIRED)
  set(ATTNC_FMT_LINK fmt::fmt)
endif()
find_package(Threads REQUIRED)

set(ATTNC_HAVE_LLVM OFF)
if(ATTNC_WITH_LLVM)
  find_package(LLVM CONFIG QUIET HINTS /usr/lib/llvm-14/lib/cmake/llvm /usr/lib/llvm-16/lib/cmake/llvm)
  if(LLVM_FOUND)
    set(ATTNC_HAVE_LLVM ON)
    message(STATUS "attnc: LLVM ${LLVM_PACKAGE_VERSION} found; the CPU JIT backend is enabled")
  else()
    message(STATUS "attnc: LLVM not found; the CPU kernel uses the interpreter path")
  endif()
endif()

set(ATTNC_HAVE_NVRTC OFF)
if(ATTNC_WITH_CUDA)
  find_package(CUDAToolkit QUIET)
  if(CUDAToolkit_FOUND AND TARGET CUDA::nvrtc)
    set(ATTNC_HAVE_NVRTC ON)
    message(STATUS "attnc: NVRTC ${CUDAToolkit_VERSION} found")
  else()
    message(STATUS "attnc: CUDA toolkit not found; CUDA code generation only")
  endif()
endif()

# DLPack's one header (Debian: libdlpack-dev), for Tensor::from_dlpack / to_dlpack. Only
# runtime/core/DLPack.cpp includes it (installed headers just declare DLManagedTensor), so without it
# the runtime still builds and those two functions say so; ATTNC_DEPS_INCLUDE_DIR may carry a copy.
find_path(ATTNC_DLPACK_INCLUDE_DIR dlpack/dlpack.h HINTS ${ATTNC_DEPS_INCLUDE_DIR})
set(ATTNC_HAVE_DLPACK OFF)
if(ATTNC_DLPACK_INCLUDE_DIR)
  set(ATTNC_HAVE_DLPACK ON)
  message(STATUS "attnc: DLPack found in ${ATTNC_DLPACK_INCLUDE_DIR}")
else()
  message(STATUS "attnc: DLPack not found (dlpack/dlpack.h); Tensor::from_dlpack and to_dlpack will throw")
endif()

# MPI (Debian: openmpi-bin, libopenmpi-dev) for ring attention across processes (distributed/).
# Without it the distributed layer keeps its MPI-free part (sharding, the per-rank algorithm and the
# in-process ring) and the MPI tests are not built.
option(ATTNC_WITH_MPI "Build ring attention over MPI (distributed/)" ON)
set(ATTNC_HAVE_MPI OFF)
if(ATTNC_WITH_MPI)
  find_package(MPI QUIET COMPONENTS CXX)
  if(MPI_CXX_FOUND)
    set(ATTNC_HAVE_MPI ON)
    message(STATUS "attnc: MPI ${MPI_CXX_VERSION} found (${MPIEXEC_EXECUTABLE}); ring attention over MPI is enabled")
  else()
    message(STATUS "attnc: MPI not found; ring attention runs in one process only")
  endif()
endif()
