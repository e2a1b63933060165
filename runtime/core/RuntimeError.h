#pragma once
// Failures of the environment or of the caller's data at run time: files, tensors that do not fit
// the mod, NVRTC, the CUDA driver, LLVM. The message says what was expected and what was found.

#include <stdexcept>
#include <string>

namespace attnc {

class RuntimeError : public std::runtime_error {
 public:
  explicit RuntimeError(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace attnc
