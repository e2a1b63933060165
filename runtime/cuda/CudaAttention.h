#pragma once
// The CUDA attention API a C++ user calls from their own engine, staged as in jitify:
//
//   CudaKernelSpec  --compile_cuda_kernel(spec, cache)-->  CudaKernel  --launch(...)-->  results
//
// Compiling goes through the kernel cache (runtime/cache/KernelCache.h): memory, then disk, then
// NVRTC. It needs no GPU when the spec names an architecture. Loading the cubin into the driver
// happens on the first launch, so a kernel can be compiled (or found) on a machine without one.
//
// A process whose kernels are all cached runs with the CUDA driver alone. The full cache key
// names the NVRTC version that built a kernel, and reading that version means loading NVRTC, so a
// lookup first asks without it: it forms the key with the version left open ("any") and looks for
// an entry that differs from it in the version only, first in a per-process index, then by reading
// the key texts of the disk entries (a few hundred bytes each). Only when no NVRTC built this kernel
// yet is NVRTC loaded, the full key formed and the kernel compiled. A kernel already cached by an
// older NVRTC is therefore reused after an NVRTC upgrade; `attnc cache clear` or `attnc warmup`
// into an empty directory rebuilds them.
//
// Launch checks what the template requires (runtime/kernels/flash_attention.cuh): CUDA tensors of
// the kernel's dtype and head dims, 16-byte aligned, head dim contiguous, every other stride a
// multiple of 8 elements, and mods whose signatures are the kernel's (other argument values are
// fine: a different window reuses the kernel). Violations are RuntimeErrors saying which.

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "compiler/CudaCodegen.h"
#include "compiler/DType.h"
#include "runtime/Mod.h"
#include "runtime/ReferenceAttention.h"
#include "runtime/Tensor.h"
#include "runtime/cache/KernelCache.h"
#include "runtime/cache/KernelKey.h"
#include "runtime/cuda/CudaDriver.h"
#include "runtime/cuda/TileConfig.h"

namespace attnc::cuda {

// What a kernel is specialised for. The mods fix the signatures, not the argument values: any mod
// with the same signature (compiler/Signature.h) may be launched with the kernel.
struct CudaKernelSpec {
  const Mod* score_mod = nullptr;  // none: scores pass through
  const Mod* mask_mod = nullptr;   // none: every key is kept
  DType dtype = DType::BF16;       // q, k, v and output: BF16 or F16
  int head_dim = 128;
  int head_dim_v = 0;  // 0: equal to head_dim
  std::string arch;    // "sm_80", "sm_90a", ...; empty: that of device `device` (needs the driver)
  bool check_bounds = false;
  int device = 0;  // the device whose architecture an empty `arch` means, and that launches use
};

// A compiled flash-attention kernel. Thread-safe; the module is loaded on the first launch.
class CudaKernel {
 public:
  // Built by compile_cuda_kernel.
  CudaKernel(KernelKey key, CacheSource source, std::shared_ptr<const CachedKernel> binary, ir::CudaModSource mods,
             int device);
  ~CudaKernel();

  const KernelKey& key() const { return key_; }
  CacheSource source() const { return source_; }  // where compile_cuda_kernel found it
  const std::string& entry() const { return entry_; }
  const std::vector<char>& cubin() const { return cubin_; }
  TileConfig tile() const { return tile_; }
  size_t shared_bytes() const { return shared_bytes_; }
  int threads() const { return tile_.num_warps * 32; }

  // Launches attention on `stream`: q (B, H, S, D), k (B, Hkv, Skv, D), v (B, Hkv, Skv, Dv),
  // out (B, H, S, Dv) of the kernel's dtype, lse (B, H, S) fp32 or null, all on the device. The
  // mods must have the signatures of the spec's (either both absent or both present) and be fully
  // bound; their tensor arguments must be device tensors. scale defaults to 1 / sqrt(D). With
  // check_bounds compiled in, the launch synchronizes the stream and throws RuntimeError naming
  // mod, parameter, index, extent and (b, h, q_idx, kv_idx) for an out-of-range index; otherwise
  // it returns without waiting.
  void launch(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out, const Tensor* lse,
              const Mod* score_mod, const Mod* mask_mod, std::optional<float> scale = std::nullopt,
              CuStream stream = nullptr) const;

  // The bytes of the kernel's FlashParams argument for these tensors and mods (checked as by
  // launch), for tests: the layout of runtime/kernels/flash_attention.cuh's FlashParams.
  std::vector<unsigned char> pack_arguments(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                                            const Tensor* lse, const Mod* score_mod, const Mod* mask_mod,
                                            std::optional<float> scale, void* bounds) const;

 private:
  CuFunction function() const;  // loads the module on first use

  KernelKey key_;
  CacheSource source_;
  std::vector<char> cubin_;
  std::string entry_;
  ir::CudaModSource mods_;  // field layout of ModParams, for packing arguments
  TileConfig tile_;
  size_t shared_bytes_ = 0;
  int device_ = 0;

  mutable std::mutex load_mutex_;
  mutable std::unique_ptr<CudaModule> module_;
  mutable CuFunction function_ = nullptr;
};

// The kernel for `spec`, from `cache` (memory, disk) or compiled with NVRTC into it. RuntimeError
// for an unsupported dtype, head dim or architecture, or a mod of the wrong kind; NvrtcError when
// the program does not compile; NvrtcUnavailable (with the reason) when the kernel is not cached
// and NVRTC cannot be loaded. Needs the driver only when spec.arch is empty.
std::shared_ptr<const CudaKernel> compile_cuda_kernel(const CudaKernelSpec& spec, KernelCache& cache);

// The key the runtime looks kernels up by before NVRTC is loaded: the full key with nvrtc_version
// "any" (exposed for tests and `attnc cache`).
inline constexpr const char* kAnyNvrtcVersion = "any";

// The process-wide cache attention() uses: default options (ATTNC_CACHE_DIR or the user's cache
// directory; in memory only when that cannot be used).
KernelCache& default_kernel_cache();

// attention() on CUDA tensors: compiles through default_kernel_cache() (kernels are kept per key
// for the life of the process, so a module loads once), launches on the default stream and waits.
void cuda_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                    const AttentionOptions& options, Tensor* lse);

}  // namespace attnc::cuda
