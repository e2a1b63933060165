#pragma once
// What a family's attention() entry point keeps for the life of the process: device 0's
// architecture (asked once), and its compiled kernel objects by cache key, each of which loads its
// module into the driver once. Kernels come from the kernel cache on the first call per key.

#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "runtime/cuda/CudaDriver.h"

namespace attnc::cuda {

// Device 0's architecture ("sm_90a", ...), asked of the driver on the first call only.
inline const std::string& device0_arch() {
  static std::once_flag once;
  static std::string arch;
  std::call_once(once, [] { arch = CudaDriver::get().device_info(0).arch(); });
  return arch;
}

// The kernel object for `key` (a serialized KernelKey), made by load() on the first call per key;
// one table per kernel type.
template <class Kernel, class Load>
std::shared_ptr<const Kernel> loaded_kernel(const std::string& key, Load&& load) {
  static std::mutex mutex;
  static std::unordered_map<std::string, std::shared_ptr<const Kernel>> loaded;
  {
    std::lock_guard guard(mutex);
    if (auto it = loaded.find(key); it != loaded.end()) return it->second;
  }
  std::shared_ptr<const Kernel> kernel = load();  // outside the lock: compiling may take a second
  std::lock_guard guard(mutex);
  return loaded.emplace(key, std::move(kernel)).first->second;
}

}  // namespace attnc::cuda
