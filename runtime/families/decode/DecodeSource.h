#pragma once
// The decode family's compile side: what a kernel is specialised for (DecodeSpec), the plan derived
// from it once (the CTA layout and the cache key), and its translation unit, which defines two entry
// points: the split kernel and the LSE merge (runtime/families/decode/decode_attention.cuh). The
// launch side is runtime/families/decode/DecodeCuda.h; the CPU counterpart DecodeCpu.h.
//
// The key's fields, in order: score_mod, mask_mod (signatures or "none"), dtype, head_dim,
// head_dim_v, warps_m, warps_n, stages, check_bounds, then the CUDA fields every family ends with
// (arch, nvrtc, template, option...; runtime/cuda/CompileThroughCache.h). The template field hashes
// decode_attention.cuh, generated_mods.cuh and what they include. Calls with 1 to 16 rows per KV
// head share one kernel (the same layout), as do 17-32 and 33 and more.

#include <string>

#include "compiler/CudaCodegen.h"
#include "compiler/DType.h"
#include "runtime/cache/KernelKey.h"
#include "runtime/core/ModSpec.h"
#include "runtime/cuda/Nvrtc.h"
#include "runtime/families/decode/DecodeConfig.h"

namespace attnc::decode {

inline constexpr const char* kFamily = "decode";
inline constexpr const char* kSplitEntry = "attnc_decode_split";
inline constexpr const char* kMergeEntry = "attnc_decode_merge";

struct DecodeSpec {
  ModSpec score, mask;         // either may be empty
  DType dtype = DType::BF16;   // q, K, V and out: bf16 or fp16
  int head_dim = 128;          // of q and k
  int head_dim_v = 128;        // of v and out
  int rows = 1;                // query rows per KV head (G q_len): picks the CTA layout
  std::string arch = "sm_80";  // one of kCudaArchitectures
  bool check_bounds = false;   // device-side bounds checking of the mods' tensor loads
  int stages = 0;              // pipeline depth; 0: DecodeConfig's choice for the architecture
};

struct DecodePlan {
  DecodeSpec spec;
  DecodeTile tile;
  KernelKey key;  // NVRTC version left open
};

// RuntimeError for a mod of the wrong kind, a dtype other than bf16/fp16, head dims the template does
// not support on the architecture, or an unknown architecture.
DecodePlan plan_decode_kernel(DecodeSpec spec);

// The generated mod code for the spec.
ir::CudaModSource decode_mods(const DecodeSpec& spec, bool annotate_names = false);

// The NVRTC options a plan compiles with (they are in its key).
cuda::NvrtcOptions decode_nvrtc_options(const DecodeSpec& spec);

// The translation unit: the template, the generated mods and the instantiation of both entry points.
cuda::KernelProgram decode_program(const DecodePlan& plan, const ir::CudaModSource& mods);

}  // namespace attnc::decode
