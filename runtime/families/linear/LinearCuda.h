#pragma once
// The linear attention family on a GPU, staged like every CUDA family:
//
//   LinearSpec --plan_linear_kernel--> LinearPlan --load_linear_kernel(plan, cache)--> LinearKernel --launch
//
// Loading goes through the kernel cache (runtime/cuda/CompileThroughCache.h) and needs no GPU; the
// cubin is loaded into the driver on the first launch. Launch checks the shared attention checks
// (runtime/core/AttentionChecks.h) with CUDA tensors of the kernel's dtype and head dims, the head
// dim contiguous, and a key mask of bool or uint8 on the device.

#include <memory>
#include <mutex>

#include "runtime/cache/KernelCache.h"
#include "runtime/core/AttentionChecks.h"
#include "runtime/core/AttentionOptions.h"
#include "runtime/core/Tensor.h"
#include "runtime/cuda/CudaDriver.h"
#include "runtime/families/linear/LinearSource.h"
#include "runtime/families/linear/linear_attention.cuh"

namespace attnc::linear {

// The kernel's argument for these tensors, without checks (launch checks first): strides and
// sizes as the template reads them. Also what the host-emulation tests pass to the template.
attnc_linear::LinearParams linear_params(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                                         const KeyMask& mask);

// A compiled linear attention kernel. Thread-safe; the module is loaded on the first launch.
class LinearKernel {
 public:
  LinearKernel(LinearPlan plan, KernelKey key, CacheSource source, std::shared_ptr<const CachedKernel> binary,
               int device);
  ~LinearKernel();

  const LinearPlan& plan() const { return plan_; }
  const KernelKey& key() const { return key_; }
  CacheSource source() const { return source_; }
  const std::string& cubin() const { return binary_->payload; }

  // Launches on `stream` without waiting: q (B, H, Sq, D), k (B, Hkv, Skv, D), v (B, Hkv, Skv, Dv),
  // out (B, H, Sq, Dv) of the kernel's dtype on the device; options.causal must be the kernel's (its
  // chunk_size is the plan's business). RuntimeError for anything the template cannot take.
  void launch(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
              const LinearAttentionOptions& options, cuda::CuStream stream = nullptr) const;

 private:
  cuda::CuFunction function() const;

  LinearPlan plan_;
  KernelKey key_;
  CacheSource source_;
  std::shared_ptr<const CachedKernel> binary_;
  int device_ = 0;
  mutable std::mutex load_mutex_;
  mutable std::unique_ptr<cuda::CudaModule> module_;
  mutable cuda::CuFunction function_ = nullptr;
};

// The kernel for `plan` from `cache`, or compiled with NVRTC into it; launches go to `device`.
std::shared_ptr<const LinearKernel> load_linear_kernel(const LinearPlan& plan, KernelCache& cache, int device = 0);

// linear attention on CUDA tensors (device 0): kernels from cuda::default_kernel_cache(), loaded once
// per process; launches on the default stream and waits.
void linear_attention_cuda(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                           const LinearAttentionOptions& options);

}  // namespace attnc::linear
