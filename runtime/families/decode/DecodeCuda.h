#pragma once
// The decode family on a GPU, staged as the flash family is:
//
//   DecodeSpec --plan_decode_kernel--> DecodePlan --load_decode_kernel(plan, cache)--> DecodeKernel --launch
//
// A launch runs the split kernel over grid (splits, Hkv x row chunks, B) and, with more than one
// split, the merge kernel over the workspace the caller provides (workspace_bytes). Loading needs no
// GPU when the spec names an architecture; the cubin is loaded into the driver on the first launch.
//
// Launch checks (RuntimeErrors saying which): check_kv_source_args (runtime/core/AttentionChecks.h)
// with CUDA tensors of the kernel's dtype, the kernel's head dims and bounds checking, then 16-byte
// aligned q, K, V and out with the head dim contiguous and every other stride a multiple of 8
// elements, mods of the compiled signatures fully bound to device tensors, a workspace large enough
// for the splits, and rows in device memory unless they are uniform.

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "compiler/CudaCodegen.h"
#include "runtime/cache/KernelCache.h"
#include "runtime/core/AttentionOptions.h"
#include "runtime/core/KvSource.h"
#include "runtime/core/Tensor.h"
#include "runtime/cuda/CudaDriver.h"
#include "runtime/families/decode/DecodeSource.h"

namespace attnc::decode {

// How one launch runs, besides its tensors.
struct DecodeLaunch {
  // The rows (KvBatchRow layout) in device memory. Null: the rows must be uniform (batch row b reads
  // KV row b with the same kv_len and q_offset), and their values travel in the kernel argument.
  const void* device_rows = nullptr;
  int num_splits = 0;       // 0: DecodeKernel::splits_for on the launch's device
  void* workspace = nullptr;  // device memory of workspace_size >= workspace_bytes(...) when splits > 1
  size_t workspace_size = 0;
};

class DecodeKernel {
 public:
  DecodeKernel(DecodePlan plan, KernelKey key, CacheSource source, std::shared_ptr<const CachedKernel> binary,
               ir::CudaModSource mods, int device);
  ~DecodeKernel();

  const DecodeSpec& spec() const { return plan_.spec; }
  const KernelKey& key() const { return key_; }
  CacheSource source() const { return source_; }
  const std::string& cubin() const { return binary_->payload; }
  DecodeTile tile() const { return plan_.tile; }
  size_t shared_bytes() const { return shared_bytes_; }

  // The fp32 workspace of a launch: partial rows (B, H, q_len, splits, Dv) then their LSEs; 0 for one
  // split.
  static size_t workspace_bytes(int64_t batch, int64_t heads, int64_t q_len, int num_splits, int head_dim_v);

  // The split count for a call of `batch` rows over `kv_heads` KV heads with `rows` query rows per KV
  // head and at most `max_kv_len` keys, on a GPU with `sm_count` SMs (DecodeConfig.h's heuristic
  // with this kernel's CTAs per SM).
  int splits_for(int64_t batch, int64_t kv_heads, int64_t rows, int64_t max_kv_len, int sm_count) const;

  // Launches decode attention on `stream` (see the header comment); returns without waiting unless
  // the kernel checks bounds, in which case it synchronizes and throws for an out-of-range index.
  // `rows` are the host values of the rows (the device copy, when given, must hold the same).
  void launch(const Tensor& q, const KvSource& kv, std::span<const KvBatchRow> rows, const Tensor& out,
              const Tensor* lse, const AttentionOptions& options, const DecodeLaunch& how,
              cuda::CuStream stream = nullptr) const;

  // The kernel argument bytes (DecodeParams<ModParams> of decode_attention.cuh) for these inputs and
  // `num_splits` (>= 1), checked as by launch, for tests.
  std::vector<unsigned char> pack_arguments(const Tensor& q, const KvSource& kv, std::span<const KvBatchRow> rows,
                                            const Tensor& out, const Tensor* lse, const AttentionOptions& options,
                                            const DecodeLaunch& how, int num_splits, void* bounds) const;

 private:
  struct Functions {
    cuda::CuFunction split = nullptr, merge = nullptr;
  };
  Functions functions() const;  // loads the module on first use

  DecodePlan plan_;
  KernelKey key_;
  CacheSource source_;
  std::shared_ptr<const CachedKernel> binary_;
  ir::CudaModSource mods_;
  size_t shared_bytes_ = 0;
  int device_ = 0;

  mutable std::mutex load_mutex_;
  mutable std::unique_ptr<cuda::CudaModule> module_;
  mutable Functions functions_;
  mutable int sm_count_ = 0;
};

// The kernel for `plan` from `cache` (memory, disk) or compiled with NVRTC into it.
std::shared_ptr<const DecodeKernel> load_decode_kernel(const DecodePlan& plan, KernelCache& cache, int device = 0);

// Whether the CUDA decode kernel takes this call on device 0: 16-bit inputs whose head dims the
// template supports on the device's architecture. attention() falls back to the flash kernel otherwise.
bool decode_cuda_supports(DType dtype, int64_t head_dim, int64_t head_dim_v);

// Decode attention on CUDA tensors (device 0): the kernel from cuda::default_kernel_cache(), a
// process-wide workspace and rows buffer (grown as needed, one call at a time), the default stream;
// waits for the result. An undefined *lse is allocated on the device.
void decode_attention_cuda(const Tensor& q, const KvSource& kv, std::span<const KvBatchRow> rows, const Tensor& out,
                           const AttentionOptions& options, Tensor* lse);
// attention()'s contract for contiguous CUDA tensors q (B, H, S, D), k (B, Hkv, Skv, D), v.
void decode_attention_cuda(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                           const AttentionOptions& options, Tensor* lse);

}  // namespace attnc::decode
