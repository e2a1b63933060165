#include "runtime/cuda/Architectures.h"

#include <algorithm>

#include <fmt/format.h>

#include "runtime/core/RuntimeError.h"

namespace attnc::cuda {

bool is_cuda_arch(std::string_view arch) {
  return std::find(kCudaArchitectures.begin(), kCudaArchitectures.end(), arch) != kCudaArchitectures.end();
}

std::string cuda_architecture_list() {
  std::string out;
  for (size_t i = 0; i < kCudaArchitectures.size(); ++i) {
    if (i > 0) out += i + 1 == kCudaArchitectures.size() ? " or " : ", ";
    out += kCudaArchitectures[i];
  }
  return out;
}

void check_cuda_arch(std::string_view arch) {
  if (!is_cuda_arch(arch)) {
    throw RuntimeError(fmt::format("unknown GPU architecture '{}'; expected {}", arch, cuda_architecture_list()));
  }
}

int sm_number(std::string_view arch) {
  check_cuda_arch(arch);
  return (arch[3] - '0') * 10 + (arch[4] - '0');
}

}  // namespace attnc::cuda
