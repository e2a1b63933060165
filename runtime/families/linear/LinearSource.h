#pragma once
// The linear attention family's compile side: what a CUDA kernel is specialised for (LinearSpec),
// the plan derived from it once (its tiles, shared memory and cache key), and its translation unit
// around runtime/families/linear/linear_attention.cuh. The launch side is LinearCuda.h; the CPU
// counterpart LinearCpu.h. Linear attention has no mods, so no generated code enters the program.
//
// The key's fields, in order: dtype, head_dim, head_dim_v, causal, dv_tile, chunk, threads, then the
// CUDA fields every family ends with (arch, nvrtc, template, option...); the template field hashes
// linear_attention.cuh and what it includes.

#include <cstddef>
#include <string>

#include "compiler/DType.h"
#include "runtime/cache/KernelKey.h"
#include "runtime/cuda/Nvrtc.h"

namespace attnc::linear {

inline constexpr const char* kFamily = "linear";
inline constexpr const char* kEntry = "attnc_linear_forward";

// The most dynamic shared memory a plan uses: under the 99 KiB a block may opt into on sm_86 and
// sm_89, the smallest of the supported architectures (sm_80: 163 KiB, sm_90: 227 KiB).
inline constexpr size_t kMaxSharedBytes = 96 * 1024;
inline constexpr int kMaxHeadDim = 256;

struct LinearSpec {
  DType dtype = DType::BF16;  // q, k, v and out: fp32, bf16 or fp16
  int head_dim = 64;          // of q and k, 1 to kMaxHeadDim
  int head_dim_v = 64;        // of v and out, 1 to kMaxHeadDim
  bool causal = true;
  int chunk_size = 64;  // the caller's chunk size (LinearAttentionOptions::chunk_size), > 0
  std::string arch = "sm_80";
};

// The template's tiles: the columns of the value dim per CTA, the positions per chunk, the threads.
struct LinearTile {
  int dv_tile = 64, chunk = 64, threads = 128;
};

struct LinearPlan {
  LinearSpec spec;
  LinearTile tile;
  size_t shared_bytes = 0;
  KernelKey key;  // with the NVRTC version left open
};

// The kernel's chunk is the largest of 64, 32, 16 not above chunk_size (16 below that: the chunk
// only orders the sums) and its value slice min(64, Dv); both are halved (chunk first, down to 16)
// until the shared memory is at most kMaxSharedBytes. RuntimeError for another dtype, head dims
// outside 1..kMaxHeadDim, chunk_size < 1, or an unknown architecture.
LinearPlan plan_linear_kernel(LinearSpec spec);

cuda::NvrtcOptions linear_nvrtc_options(const LinearSpec& spec);

// The translation unit: the family's template and a main file instantiating kEntry for the plan.
cuda::KernelProgram linear_program(const LinearPlan& plan);

}  // namespace attnc::linear
