#pragma once
// Generated CUDA headers compiled as host C++: the texts are written, with every embedded kernel
// header (mod_abi.cuh, fast_math.cuh, ...), into a fresh temporary directory, compiled with the
// system C++ compiler (g++ or $CXX, -ffp-contract=off) into a shared object and loaded with dlopen.
// Tests of code generation use it to evaluate generated device functions on the CPU.

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace attnc::test {

// Whether a host C++ compiler is available (g++ or $CXX).
bool has_host_compiler();

// The flag that lets mod_abi.cuh's host build find runtime/emulation/ApproxInstructions.h.
std::string source_root_include(const std::string& source_dir);

class HostBuild {
 public:
  HostBuild() = default;
  HostBuild(const HostBuild&) = delete;
  HostBuild& operator=(const HostBuild&) = delete;
  ~HostBuild();  // closes the object and deletes the directory

  // Writes each (file name, text) and `wrapper` (the translation unit, as wrapper.cpp) and compiles
  // with `flags`. Returns false (with the reason in error()) when no compiler is found or it fails.
  bool build(const std::vector<std::pair<std::string, std::string>>& files, const std::string& wrapper,
             const std::string& flags);
  template <typename F>
  F symbol(const std::string& name) const {
    return reinterpret_cast<F>(raw_symbol(name));
  }
  const std::string& error() const { return error_; }

 private:
  void* raw_symbol(const std::string& name) const;
  std::filesystem::path dir_;
  void* handle_ = nullptr;
  std::string error_;
};

}  // namespace attnc::test
