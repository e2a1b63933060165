#pragma once
// The CUDA backward family's compile side (runtime/families/flash_backward/flash_backward.cuh): what
// a kernel is specialised for (FlashBackwardSpec), the plan derived from it (tiles and cache key),
// the generated mod code with the score mod's derivative, and the translation unit. The launch side
// is runtime/families/flash_backward/FlashBackwardCuda.h; the CPU counterpart FlashBackwardCpu.h.
//
// The key's fields, in order: score_mod, mask_mod (signatures or "none"), dtype, head_dim,
// head_dim_v, block_m, block_n, num_warps, check_bounds, then the CUDA fields every family ends
// with (runtime/cuda/CompileThroughCache.h). The derivative is a function of the score mod's
// optimised definition, so the score mod's signature keys it too. The template field hashes
// flash_backward.cuh, generated_backward_mods.cuh and what they include.

#include <span>
#include <string>

#include "compiler/CudaCodegen.h"
#include "compiler/DType.h"
#include "compiler/Module.h"
#include "runtime/cache/KernelKey.h"
#include "runtime/core/ModSpec.h"
#include "runtime/cuda/Nvrtc.h"

namespace attnc::flash_backward {

inline constexpr const char* kFamily = "flash_backward";
// The three kernels: kEntry_preprocess, kEntry, kEntry_convert_dq (flash_backward.cuh).
inline constexpr const char* kEntry = "attnc_flash_backward";
inline constexpr const char* kPreprocessEntry = "attnc_flash_backward_preprocess";
inline constexpr const char* kConvertEntry = "attnc_flash_backward_convert_dq";

struct FlashBackwardSpec {
  ModSpec score, mask;         // either may be empty
  DType dtype = DType::BF16;   // q, k, v, out, dout and the gradients: bf16 or fp16
  int head_dim = 128;          // of q and k
  int head_dim_v = 128;        // of v, out and dout
  std::string arch = "sm_80";  // one of kCudaArchitectures
  bool check_bounds = false;
};

// The main kernel's tiles (the family's own: families do not include each other's headers).
struct BackwardTile {
  int block_m = 0;    // query rows per step
  int block_n = 0;    // keys per CTA (16 per warp)
  int num_warps = 0;

  friend bool operator==(const BackwardTile&, const BackwardTile&) = default;
};

// "m16_n64_w4", for kernel comments and reports.
std::string to_string(const BackwardTile& tile);

struct FlashBackwardPlan {
  FlashBackwardSpec spec;
  BackwardTile tile;  // block_m query rows per step, block_n keys per CTA (16 per warp)
  KernelKey key;
};

// Whether the backward template supports a head dim: a multiple of 16 up to 128 (dK and dV of
// larger head dims would not fit the registers of one warp's 16 keys).
bool is_supported_backward_head_dim(int head_dim);

// The tiles for (head_dim, head_dim_v): 4 warps and 64 keys per CTA; 32 query rows per step up to
// head dim 64, 16 above (the fp32 dK and dV rows then take 128 registers per thread, and larger
// steps spill). RuntimeError for an unsupported head dim.
BackwardTile choose_backward_tile_config(int head_dim, int head_dim_v);

// The dynamic shared memory of the main kernel for a configuration, exactly
// FlashBackward<...>::kSharedBytes.
size_t flash_backward_shared_bytes(const BackwardTile& config, int head_dim, int head_dim_v);

// RuntimeError for a mod of the wrong kind, a dtype other than bf16/fp16, an unsupported head dim
// or an unknown architecture.
FlashBackwardPlan plan_flash_backward_kernel(FlashBackwardSpec spec);

// The score mod's derivative as CUDA for namespace attnc_gen, after a ModParams generated with the
// score mod first: `constexpr bool kHasScoreGrad` and `d_score(score, p, tile, params, report)`
// (ds'/ds: compiler/Differentiate.h; the constant 1 without a score mod, with kHasScoreGrad false).
std::string score_derivative_cuda(const ir::ModDef* score, std::span<const DType> storage, bool check_bounds);

// The generated mod code for the spec: the forward's mods (compiler/CudaCodegen.h) and the
// derivative above, in one header.
ir::CudaModSource flash_backward_mods(const FlashBackwardSpec& spec, bool annotate_names = false);

cuda::NvrtcOptions flash_backward_nvrtc_options(const FlashBackwardSpec& spec);

// The translation unit: the family's templates, the generated mods, and a main file instantiating
// the three entry points for the plan's dtype, head dims and tiles.
cuda::KernelProgram flash_backward_program(const FlashBackwardPlan& plan, const ir::CudaModSource& mods);

}  // namespace attnc::flash_backward
