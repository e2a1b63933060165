#pragma once
// The flash forward family on a GPU, staged as in jitify:
//
//   FlashSpec --plan_flash_kernel--> FlashPlan --load_flash_kernel(plan, cache)--> FlashKernel --launch--> results
//
// Loading goes through the kernel cache (runtime/cuda/CompileThroughCache.h: memory, then disk,
// then NVRTC) and needs no GPU when the spec names an architecture; the cubin is loaded into the
// driver on the first launch, so a kernel can be compiled (or found) on a machine without one.
//
// Launch checks what the template requires (runtime/families/flash/flash_attention.cuh): the shared
// attention checks (runtime/core/AttentionChecks.h) with CUDA tensors of the kernel's dtype and head
// dims, then 16-byte aligned data, head dim contiguous, every other stride a multiple of 8 elements,
// and mods whose signatures are the kernel's (other argument values are fine: a different window
// reuses the kernel). Violations are RuntimeErrors saying which.

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "compiler/CudaCodegen.h"
#include "runtime/cache/KernelCache.h"
#include "runtime/core/AttentionOptions.h"
#include "runtime/core/Dropout.h"
#include "runtime/core/Tensor.h"
#include "runtime/cuda/CudaDriver.h"
#include "runtime/families/flash/FlashSource.h"

namespace attnc::flash {

// A compiled flash-attention kernel. Thread-safe; the module is loaded on the first launch.
class FlashKernel {
 public:
  // Built by load_flash_kernel: `key` is the entry's full key (with its NVRTC version).
  FlashKernel(FlashPlan plan, KernelKey key, CacheSource source, std::shared_ptr<const CachedKernel> binary,
              ir::CudaModSource mods, int device);
  ~FlashKernel();

  const FlashSpec& spec() const { return plan_.spec; }
  const KernelKey& key() const { return key_; }
  CacheSource source() const { return source_; }  // where load_flash_kernel found it
  const std::string& cubin() const { return binary_->payload; }
  TileConfig tile() const { return plan_.tile; }
  size_t shared_bytes() const { return shared_bytes_; }
  int threads() const { return plan_.tile.num_warps * 32; }

  // Launches attention on `stream`: q (B, H, S, D), k (B, Hkv, Skv, D), v (B, Hkv, Skv, Dv),
  // out (B, H, S, Dv) of the kernel's dtype, lse (B, H, S) fp32 or null, all on the device. The
  // options' mods must have the signatures of the spec's (either both absent or both present) and be
  // fully bound, their tensor arguments device tensors; their check_bounds must be the kernel's.
  // scale defaults to 1 / sqrt(D). With check_bounds, the launch synchronizes the stream and throws
  // RuntimeError naming mod, parameter, index, extent and (b, h, q_idx, kv_idx) for an out-of-range
  // index; otherwise it returns without waiting.
  void launch(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out, const Tensor* lse,
              const AttentionOptions& options, cuda::CuStream stream = nullptr) const;
  // The same with attention dropout (runtime/core/Dropout.h): the kernel must be compiled with
  // FlashSpec::dropout exactly when `dropout` is enabled. lse stays the undropped softmax's.
  void launch(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out, const Tensor* lse,
              const AttentionOptions& options, const Dropout& dropout, cuda::CuStream stream = nullptr) const;

  // The bytes of the kernel's FlashParams argument for these tensors and options (checked as by
  // launch), for tests: the layout of flash_attention.cuh's FlashParams.
  std::vector<unsigned char> pack_arguments(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                                            const Tensor* lse, const AttentionOptions& options, void* bounds,
                                            const Dropout& dropout = {}) const;

 private:
  cuda::CuFunction function() const;  // loads the module on first use

  FlashPlan plan_;
  KernelKey key_;
  CacheSource source_;
  std::shared_ptr<const CachedKernel> binary_;
  ir::CudaModSource mods_;  // field layout of ModParams, for packing arguments
  size_t shared_bytes_ = 0;
  int device_ = 0;

  mutable std::mutex load_mutex_;
  mutable std::unique_ptr<cuda::CudaModule> module_;
  mutable cuda::CuFunction function_ = nullptr;
};

// The kernel for `plan`, from `cache` (memory, disk) or compiled with NVRTC into it; launches go
// to `device`. NvrtcError when the program does not compile; NvrtcUnavailable (with the reason)
// when the kernel is not cached and NVRTC cannot be loaded.
std::shared_ptr<const FlashKernel> load_flash_kernel(const FlashPlan& plan, KernelCache& cache, int device = 0);

// attention() on CUDA tensors (device 0, whose architecture picks the kernel): kernels come from
// cuda::default_kernel_cache() and stay loaded for the life of the process; launches on the
// default stream and waits. An undefined *lse is allocated on the device.
void flash_attention_cuda(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                          const AttentionOptions& options, Tensor* lse, const Dropout& dropout = {});

}  // namespace attnc::flash
