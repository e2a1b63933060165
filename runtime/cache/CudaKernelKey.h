#pragma once
// The kernel-cache key and the compile step of one flash-attention kernel built with NVRTC, in
// one place, so that `attnc warmup` and the runtime's compile-through-the-cache path name every
// kernel identically (a warmed entry is only useful if the runtime computes the same key).

#include <string>
#include <string_view>
#include <vector>

#include "compiler/DType.h"
#include "compiler/Module.h"
#include "runtime/cache/CacheEntry.h"
#include "runtime/cache/KernelKey.h"
#include "runtime/cuda/KernelSource.h"

namespace attnc {

struct CudaKernelRequest {
  const ir::ModDef* score = nullptr;  // optimised (compiler/Pipeline.h); null: no score mod
  std::vector<DType> score_storage;   // storage of its tensor parameters, as for compute_signature
  const ir::ModDef* mask = nullptr;   // optimised; null: no mask mod
  std::vector<DType> mask_storage;
  cuda::KernelSpec spec;  // dtype, head dims (head_dim_v 0: equal to head_dim), architecture
  bool check_bounds = false;
};

// The stable hash of the embedded kernel templates (runtime/kernels/*.cuh), for template_hash.
const std::string& kernel_template_hash();

// The key of the cubin for `request` built by an NVRTC of version `nvrtc_version` ("13.0"; from
// cuda::Nvrtc::get().version()). RuntimeError for an unsupported architecture or head dim.
KernelKey make_cuda_kernel_key(const CudaKernelRequest& request, std::string_view nvrtc_version);

// Generates the mods' CUDA, builds the translation unit and compiles it with NVRTC to a cubin:
// the payload is the cubin, the metadata `entry=NAME\nflash_attention=0|1\n` (the extern "C"
// function to launch, and whether it is the flash template or the mod probe). NvrtcError
// (with log, options and source) when the program does not compile.
CachedKernel compile_cuda_kernel(const CudaKernelRequest& request);

}  // namespace attnc
