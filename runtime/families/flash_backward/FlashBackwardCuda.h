#pragma once
// The CUDA backward family on a GPU, staged as the forward (runtime/families/flash/FlashCuda.h):
//
//   FlashBackwardSpec --plan_flash_backward_kernel--> FlashBackwardPlan --load_flash_backward_kernel-->
//   FlashBackwardKernel --launch--> dq, dk, dv
//
// Loading goes through the kernel cache (memory, disk, NVRTC) and needs no GPU when the spec names
// an architecture; the cubin is loaded into the driver on the first launch. One cubin holds the
// three kernels of runtime/families/flash_backward/flash_backward.cuh (preprocess, main, convert).
//
// Launch checks what the template requires: the forward's attention checks for q, k, v, out and lse
// (CUDA tensors of the kernel's dtype and head dims, lse fp32), dout shaped like out and dq, dk, dv
// like q, k, v, all of the kernel's dtype; 16-byte aligned data, head dim contiguous, other strides
// multiples of 8 elements; mods with the kernel's signatures. Violations are RuntimeErrors.
//
// Gradients of the score mod's float tensor parameters (at most 4) are scatter-added into zeroed
// fp32 device tensors shaped like the bound ones, which launch takes in parameter order. Dropout draws the CPU's
// decisions (runtime/core/Dropout.h's Philox, counted at (kv_idx, q_idx, h, b)), so the out and LSE of a CPU
// attention_dropout (uploaded) are a valid forward for it.

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "compiler/CudaCodegen.h"
#include "runtime/cache/KernelCache.h"
#include "runtime/core/AttentionGradients.h"
#include "runtime/core/AttentionOptions.h"
#include "runtime/core/Dropout.h"
#include "runtime/core/Tensor.h"
#include "runtime/cuda/CudaDriver.h"
#include "runtime/families/flash_backward/FlashBackwardSource.h"

namespace attnc::flash_backward {

// A compiled backward kernel set. Thread-safe; the module is loaded on the first launch.
class FlashBackwardKernel {
 public:
  FlashBackwardKernel(FlashBackwardPlan plan, KernelKey key, CacheSource source,
                      std::shared_ptr<const CachedKernel> binary, ir::CudaModSource mods, int device);
  ~FlashBackwardKernel();

  const FlashBackwardSpec& spec() const { return plan_.spec; }
  const KernelKey& key() const { return key_; }
  CacheSource source() const { return source_; }
  const std::string& cubin() const { return binary_->payload; }
  BackwardTile tile() const { return plan_.tile; }
  size_t shared_bytes() const { return shared_bytes_; }  // of the main kernel
  int threads() const { return plan_.tile.num_warps * 32; }

  // Computes dq, dk, dv (device tensors of the kernel's dtype, shaped like q, k, v) on `stream`
  // from the forward's out and lse (fp32, natural log) and dout, all on the device, for the options
  // the forward ran with. Allocates its fp32 scratch (delta, the dQ accumulator: 4 (D + 1) bytes per
  // query row) on the device, and synchronizes the stream before freeing it.
  void launch(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse,
              const Tensor& dout, const Tensor& dq, const Tensor& dk, const Tensor& dv, const AttentionOptions& options,
              const Dropout& dropout = {}, const std::vector<Tensor>& dparams = {},
              cuda::CuStream stream = nullptr) const;

  // The bytes of the kernels' FlashBackwardParams argument (checked as by launch), with `delta` and
  // `dq_accum` as the scratch pointers; for tests.
  std::vector<unsigned char> pack_arguments(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                                            const Tensor& lse, const Tensor& dout, const Tensor& dq, const Tensor& dk,
                                            const Tensor& dv, const AttentionOptions& options, const Dropout& dropout,
                                            const std::vector<Tensor>& dparams, void* delta, void* dq_accum,
                                            void* bounds) const;

 private:
  struct Functions {
    cuda::CuFunction preprocess = nullptr, main = nullptr, convert = nullptr;
  };
  Functions functions() const;  // loads the module on first use

  FlashBackwardPlan plan_;
  KernelKey key_;
  CacheSource source_;
  std::shared_ptr<const CachedKernel> binary_;
  ir::CudaModSource mods_;
  size_t shared_bytes_ = 0;
  int device_ = 0;

  mutable std::mutex load_mutex_;
  mutable std::unique_ptr<cuda::CudaModule> module_;
  mutable Functions functions_;
};

// The kernels for `plan`, from `cache` or compiled with NVRTC into it; launches go to `device`.
std::shared_ptr<const FlashBackwardKernel> load_flash_backward_kernel(const FlashBackwardPlan& plan, KernelCache& cache,
                                                                      int device = 0);

// attention_backward() on CUDA tensors (device 0, whose architecture picks the kernel): kernels
// from cuda::default_kernel_cache(), kept loaded for the life of the process; launches on the
// default stream and waits. Undefined grads.dq, dk, dv are allocated on the device in q's dtype;
// grads.dparams gets one fp32 device tensor per float tensor parameter of the score mod (by name).
// RuntimeError for more than 4 such parameters, a dropout rate outside [0, 1), and as launch says.
void flash_attention_backward_cuda(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                                   const Tensor& lse, const Tensor& dout, AttentionGradients& grads,
                                   const AttentionOptions& options, const Dropout& dropout = {});

}  // namespace attnc::flash_backward
