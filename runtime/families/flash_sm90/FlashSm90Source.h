#pragma once
// The Hopper forward family's compile side: what a kernel is specialised for (FlashSm90Spec), the
// plan derived from it once (tiles and cache key) and its translation unit, for sm_90a only. Needs
// no GPU: `attnc compile --arch sm_90a` can emit the PTX and cubin of flash_sm90_program() on any
// machine with NVRTC. The launch side is runtime/families/flash_sm90/FlashSm90Cuda.h; the template
// runtime/families/flash_sm90/flash_attention_sm90.cuh.
//
// The key's fields, in order: score_mod, mask_mod (signatures or "none"), dtype, head_dim,
// head_dim_v, block_m, block_n, stages, check_bounds, then the CUDA fields every family ends with
// (runtime/cuda/CompileThroughCache.h). The template field hashes flash_attention_sm90.cuh,
// generated_mods.cuh and what they include, nothing else.

#include <cstddef>
#include <string>

#include "compiler/CudaCodegen.h"
#include "compiler/DType.h"
#include "runtime/cache/KernelKey.h"
#include "runtime/core/ModSpec.h"
#include "runtime/cuda/Nvrtc.h"

namespace attnc::flash_sm90 {

inline constexpr const char* kFamily = "flash_sm90";
inline constexpr const char* kEntry = "attnc_flash_sm90_forward";
inline constexpr const char* kArch = "sm_90a";  // wgmma and setmaxnreg need the architecture-specific target
inline constexpr int kThreads = 384;            // a producer and two consumer warpgroups
inline constexpr int kBlockM = 128;             // query rows per CTA (64 per consumer)

// What a Hopper kernel is specialised for. The mods fix signatures, not argument values.
struct FlashSm90Spec {
  ModSpec score, mask;        // either may be empty
  DType dtype = DType::BF16;  // q, k, v and out: bf16 or fp16
  int head_dim = 128;         // of q and k
  int head_dim_v = 128;       // of v and out
  bool check_bounds = false;  // device-side bounds checking of the mods' tensor loads
};

// Key tiles of block_n keys through rings of `stages` shared-memory buffers (query tiles are always
// kBlockM rows).
struct Sm90Tiles {
  int block_n = 0;
  int stages = 0;
  friend bool operator==(const Sm90Tiles&, const Sm90Tiles&) = default;
};

struct FlashSm90Plan {
  FlashSm90Spec spec;
  Sm90Tiles tiles;
  KernelKey key;
};

// Whether the template takes these inputs: bf16 or fp16, head dims 64, 128, 192 or 256.
bool supports_flash_sm90(DType dtype, int head_dim, int head_dim_v);

// The tiles per head dims (RuntimeError when unsupported): 128-key tiles up to head dim 128 (three
// stages at 64, two at 128), 80-key tiles in two stages above (what fits 227 KiB of shared memory
// and 240 registers per consumer thread).
Sm90Tiles choose_sm90_tiles(int head_dim, int head_dim_v);

// Dynamic shared memory of a configuration: FlashForwardSm90<...>::kSharedBytes.
size_t flash_sm90_shared_bytes(const Sm90Tiles& tiles, int head_dim, int head_dim_v);

// RuntimeError for a mod of the wrong kind, a dtype other than bf16/fp16 or an unsupported head dim.
FlashSm90Plan plan_flash_sm90_kernel(FlashSm90Spec spec);

// The generated mod code for the spec (annotate_names: name the mods in comments, for readers).
ir::CudaModSource flash_sm90_mods(const FlashSm90Spec& spec, bool annotate_names = false);

// The NVRTC options a plan compiles with (they are in its key): sm_90a.
cuda::NvrtcOptions flash_sm90_nvrtc_options(const FlashSm90Spec& spec);

// The translation unit: the family's templates, the generated mods, and a main file instantiating
// the entry point kEntry for the plan's dtype, head dims and tiles.
cuda::KernelProgram flash_sm90_program(const FlashSm90Plan& plan, const ir::CudaModSource& mods);

// "n128_s2", for messages and reports.
std::string to_string(const Sm90Tiles& tiles);

}  // namespace attnc::flash_sm90
