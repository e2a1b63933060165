#pragma once
// The flash forward family's compile side: what a kernel is specialised for (FlashSpec), the plan
// derived from it once (tiles and cache key), and its translation unit. The launch side is
// runtime/families/flash/FlashCuda.h; the CPU counterpart runtime/families/flash/FlashCpu.h.
//
// The key's fields, in order: score_mod, mask_mod (signatures or "none"), dtype, head_dim,
// head_dim_v, block_m, block_n, num_warps, check_bounds, dropout ("1", only in the keys of kernels
// that drop), then the CUDA fields every family ends with (arch, nvrtc, template, option...;
// runtime/cuda/CompileThroughCache.h). The template field
// hashes flash_attention.cuh, generated_mods.cuh and what they include, nothing else.

#include <string>

#include "compiler/CudaCodegen.h"
#include "compiler/DType.h"
#include "runtime/cache/KernelKey.h"
#include "runtime/core/ModSpec.h"
#include "runtime/cuda/Nvrtc.h"
#include "runtime/families/flash/TileConfig.h"

namespace attnc::flash {

inline constexpr const char* kFamily = "flash";
inline constexpr const char* kEntry = "attnc_flash_forward";

// What a flash kernel is specialised for. The mods fix signatures, not argument values.
struct FlashSpec {
  ModSpec score, mask;         // either may be empty
  DType dtype = DType::BF16;   // q, k, v and out: bf16 or fp16
  int head_dim = 128;          // of q and k
  int head_dim_v = 128;        // of v and out
  std::string arch = "sm_80";  // one of kCudaArchitectures
  bool check_bounds = false;   // device-side bounds checking of the mods' tensor loads
  bool dropout = false;        // attention dropout on P (the rate and seed are launch arguments)
};

// A spec checked and resolved: the template's tiles and the cache key (with the NVRTC version
// left open, runtime/cuda/CompileThroughCache.h).
struct FlashPlan {
  FlashSpec spec;
  TileConfig tile;
  KernelKey key;
};

// RuntimeError for a mod of the wrong kind, a dtype other than bf16/fp16, a head dim the template
// does not support or an unknown architecture.
FlashPlan plan_flash_kernel(FlashSpec spec);

// The generated mod code for the spec (annotate_names: name the mods in comments, for readers).
ir::CudaModSource flash_mods(const FlashSpec& spec, bool annotate_names = false);

// The NVRTC options a plan compiles with (they are in its key).
cuda::NvrtcOptions flash_nvrtc_options(const FlashSpec& spec);

// The translation unit: the family's templates, the generated mods, and a main file instantiating
// the entry point kEntry for the plan's dtype, head dims and tiles.
cuda::KernelProgram flash_program(const FlashPlan& plan, const ir::CudaModSource& mods);

}  // namespace attnc::flash
