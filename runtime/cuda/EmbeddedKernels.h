#pragma once
// The CUDA kernel templates (runtime/kernels/*.cuh), embedded into the library at build time by
// cmake/EmbedKernels.cmake, so NVRTC never needs an include directory on the user's machine.

#include <string_view>
#include <vector>

namespace attnc {

struct EmbeddedKernelSource {
  std::string_view name;  // file name, e.g. "flash_attention.cuh" (what #include "..." names)
  std::string_view text;
};

const std::vector<EmbeddedKernelSource>& embedded_kernel_sources();

}  // namespace attnc
