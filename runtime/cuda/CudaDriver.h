#pragma once
// The CUDA driver API, opened at run time with dlopen("libcuda.so.1") on first use, so every attnc
// binary starts on a machine without a GPU and says clearly when one is needed. Nothing links
// libcuda. Loading and launching are the stages after compilation (runtime/cuda/Nvrtc.h): a cubin
// becomes a CudaModule, a function of it a CudaFunction, launched with cuLaunchKernel.
//
// Every failing call throws RuntimeError naming the call and the driver's error name and text.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "runtime/core/RuntimeError.h"

namespace attnc::cuda {

// Opaque driver handles (CUcontext, CUmodule, CUfunction, CUstream, CUdeviceptr).
using CuContext = struct CuContextOpaque*;
using CuModule = struct CuModuleOpaque*;
using CuFunction = struct CuFunctionOpaque*;
using CuStream = struct CuStreamOpaque*;
using CuDevicePtr = unsigned long long;

// libcuda.so.1 is not installed (no GPU driver on this machine).
class CudaDriverUnavailable : public RuntimeError {
 public:
  using RuntimeError::RuntimeError;
};

struct CudaDeviceInfo {
  int ordinal = 0;
  std::string name;
  int major = 0, minor = 0;  // compute capability
  int multiprocessors = 0;
  size_t max_shared_per_block_optin = 0;
  std::string arch() const;  // "sm_80", "sm_90a" for 9.0 (the template's wgmma needs the suffix)
};

class CudaDriver {
 public:
  // The process-wide driver, initialised (cuInit) on first use. CudaDriverUnavailable with the
  // message "no CUDA driver (libcuda.so.1) on this machine" when the library is missing.
  static CudaDriver& get();
  // Whether get() would succeed (never throws).
  static bool available();

  int version() const;  // cuDriverGetVersion: 12040 for 12.4
  int device_count() const;
  CudaDeviceInfo device_info(int ordinal) const;

  // Makes device `ordinal`'s primary context current on the calling thread (retained once).
  void use_device(int ordinal);

  CuModule load_module(const void* image) const;  // cubin or NUL-terminated PTX
  void unload_module(CuModule module) const;
  CuFunction get_function(CuModule module, const std::string& name) const;
  // Raises the function's dynamic shared memory limit (cuFuncSetAttribute) for > 48 KiB.
  void set_max_dynamic_shared(CuFunction function, int bytes) const;
  void launch(CuFunction function, unsigned grid_x, unsigned grid_y, unsigned grid_z, unsigned block_x,
              unsigned block_y, unsigned block_z, unsigned shared_bytes, CuStream stream, void** params) const;

  CuDevicePtr allocate(size_t bytes) const;
  void free(CuDevicePtr pointer) const;
  void copy_to_device(CuDevicePtr to, const void* from, size_t bytes) const;
  void copy_to_host(void* to, CuDevicePtr from, size_t bytes) const;
  void memset(CuDevicePtr to, uint8_t value, size_t bytes) const;
  void synchronize(CuStream stream = nullptr) const;

  // cuTensorMapEncodeTiled (CUDA 12+ drivers; RuntimeError naming the driver as too old without
  // it): fills the 128-byte, 64-byte aligned `map` with a tiled tensor map of `global` for TMA
  // copies (sm_90): `rank` (1..5) dimensions `dims` innermost first, byte strides of dimensions 1..
  // rank-1, a box of `box` elements, element strides 1, no interleave, zero fill outside the tensor,
  // L2 promotion of 128 bytes, and the swizzle.
  enum class TensorMapElement { F16, BF16 };
  enum class TensorMapSwizzle { None, B32, B64, B128 };
  void encode_tensor_map_tiled(void* map, TensorMapElement element, uint32_t rank, const void* global,
                               const uint64_t* dims, const uint64_t* strides, const uint32_t* box,
                               TensorMapSwizzle swizzle) const;

  struct Api;  // the resolved entry points (CudaDriver.cpp)

 private:
  CudaDriver() = default;
  void check(int status, const char* call) const;
  const Api* api_ = nullptr;
};

// A loaded module, unloaded when the last reference goes.
class CudaModule {
 public:
  // Loads a cubin (or PTX) image; the driver must be available and a device selected.
  explicit CudaModule(const std::vector<char>& image);
  ~CudaModule();
  CudaModule(const CudaModule&) = delete;
  CudaModule& operator=(const CudaModule&) = delete;
  CuFunction function(const std::string& name) const;
  CuModule handle() const { return module_; }

 private:
  CuModule module_ = nullptr;
};

}  // namespace attnc::cuda
