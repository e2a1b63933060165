#include "tests/support/HostBuild.h"

#include <dlfcn.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <iterator>

#include <fmt/format.h>

#include "runtime/cuda/EmbeddedKernels.h"

namespace attnc::test {

namespace fs = std::filesystem;

bool has_host_compiler() {
  return std::system("g++ --version > /dev/null 2>&1") == 0 || std::getenv("CXX") != nullptr;
}

std::string source_root_include(const std::string& source_dir) { return "-I" + source_dir; }

bool HostBuild::build(const std::vector<std::pair<std::string, std::string>>& files, const std::string& wrapper,
                      const std::string& flags) {
  static std::atomic<int> counter{0};
  dir_ = fs::temp_directory_path() / fmt::format("attnc-cudagen-{}-{}", getpid(), counter++);
  fs::create_directories(dir_);
  // The kernel headers as the library embeds them (mod_abi.cuh and what it includes).
  for (const EmbeddedKernelSource& source : embedded_kernel_sources()) {
    std::ofstream(dir_ / std::string(source.name)) << source.text;
  }
  // Without `#pragma once`: GCC treats headers with identical contents as one file under it, and
  // two generated texts may well be the same.
  for (const auto& [name, text] : files) {
    std::string body = text;
    if (size_t at = body.find("#pragma once\n"); at != std::string::npos) body.erase(at, 13);
    std::ofstream(dir_ / name) << body;
  }
  std::ofstream(dir_ / "wrapper.cpp") << wrapper;
  const char* cxx = std::getenv("CXX");
  std::string compiler = cxx != nullptr && *cxx != '\0' ? cxx : "g++";
  std::string command = fmt::format(
      "{} -std=c++20 -fPIC -shared -ffp-contract=off -Wall -Werror -Wno-tautological-compare {} -I{} {} -o {} > {} "
      "2>&1",
      compiler, flags, dir_.string(), (dir_ / "wrapper.cpp").string(), (dir_ / "generated.so").string(),
      (dir_ / "log.txt").string());
  if (std::system(command.c_str()) != 0) {
    std::ifstream log(dir_ / "log.txt");
    error_ = command + "\n" + std::string(std::istreambuf_iterator<char>(log), {});
    return false;
  }
  handle_ = dlopen((dir_ / "generated.so").c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle_ == nullptr) error_ = dlerror();
  return handle_ != nullptr;
}

void* HostBuild::raw_symbol(const std::string& name) const { return dlsym(handle_, name.c_str()); }

HostBuild::~HostBuild() {
  if (handle_ != nullptr) dlclose(handle_);
  std::error_code ignored;
  if (!dir_.empty()) fs::remove_all(dir_, ignored);
}

}  // namespace attnc::test
