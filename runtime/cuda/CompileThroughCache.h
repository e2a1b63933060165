#pragma once
// The compile step every CUDA family shares: a kernel key and a program in, a cubin out, through the
// kernel cache (memory, then disk, then NVRTC), so that each family supplies only its key and its
// source (runtime/families/<family>/).
//
// A process whose kernels are all cached runs with the CUDA driver alone. A key names the NVRTC
// version that built the kernel (field "nvrtc"), and reading that version means loading NVRTC, so
// families build their keys with the version left open (kAnyNvrtcVersion), and the cache is asked
// first for an entry that differs from the key in that field only (KernelCache::find_ignoring,
// newest NVRTC first). Only when no NVRTC built the kernel yet is NVRTC loaded, the field set to
// its version and the program compiled. A kernel cached by an older NVRTC is therefore reused
// after an NVRTC upgrade; `attnc cache clear` or `attnc warmup` into an empty directory rebuilds.

#include <functional>
#include <memory>
#include <string>

#include "runtime/cache/KernelCache.h"
#include "runtime/cache/KernelKey.h"
#include "runtime/cuda/Nvrtc.h"

namespace attnc::cuda {

// The value of the "nvrtc" field before the version is known.
inline constexpr const char* kAnyNvrtcVersion = "any";

// Appends the fields every CUDA kernel key ends with: arch, nvrtc (kAnyNvrtcVersion), template
// (the hash of the family's templates) and one `option` per NVRTC command option.
void add_cuda_key_fields(KernelKey& key, const NvrtcOptions& options, const std::string& template_hash);

struct CudaBinary {
  KernelKey key;  // with the NVRTC version that built it
  std::shared_ptr<const CachedKernel> kernel;
  CacheSource source = CacheSource::Memory;
};

// The cubin of `key` (its nvrtc field kAnyNvrtcVersion): cached by any NVRTC, or compiled now from
// make_program() with `options` and stored under the key with this NVRTC's version. The entry's
// metadata is `entry=NAME\n`. NvrtcUnavailable when nothing is cached and NVRTC cannot be loaded;
// NvrtcError when the program does not compile.
CudaBinary compile_through_cache(KernelCache& cache, const KernelKey& key, const std::string& entry,
                                 const std::function<KernelProgram()>& make_program, const NvrtcOptions& options);

// The cubin for `key` compiled by this NVRTC without looking anything up: for `attnc warmup`, whose
// keys carry the NVRTC version already and which goes through KernelCache::get_or_compile itself.
CachedKernel compile_cuda_binary(const KernelProgram& program, const std::string& entry, const NvrtcOptions& options);

// The process-wide cache attention() uses: default options (ATTNC_CACHE_DIR or the user's cache
// directory; in memory only when that cannot be used).
KernelCache& default_kernel_cache();

}  // namespace attnc::cuda
