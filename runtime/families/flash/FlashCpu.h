#pragma once
// FlashAttention on the CPU: the same contract as standard_attention (runtime/reference/ReferenceAttention.h,
// docs/semantics.md) computed tile by tile, without materialising the score matrix.
//
// Queries are cut into tiles of BLOCK_M rows and keys into tiles of BLOCK_N columns. For each
// query tile the key tiles are visited in order with an online softmax in fp32: a running row max
// and row sum, the accumulator rescaled whenever the max grows. With a mask mod each tile is first
// classified by the mod's program (runtime/cpu/CpuModProgram.h): EMPTY tiles are skipped (no loads, no
// math), FULL tiles skip the mask, PARTIAL tiles evaluate it per element. The score mod runs on every
// computed tile. Q·K^T and P·V are register-blocked micro-kernels (runtime/cpu/CpuMicroKernels.h),
// and the (batch, head, query tile) work items are spread over all cores, longest first.
//
// Numerics: dot products, softmax and the accumulator are fp32 (inputs in fp16 / bf16 are converted
// on load), so results agree with the fp64 reference to fp32 rounding, not bit for bit.

#include <cstdint>

#include "runtime/core/Tensor.h"
#include "runtime/cpu/CpuModProgram.h"
#include "runtime/reference/ReferenceAttention.h"

namespace attnc {

// What one call did, counted in (query tile, key tile) pairs over all batches and heads.
struct FlashStats {
  int64_t tiles_computed = 0;  // scores computed: tiles_full + tiles_partial
  int64_t tiles_skipped = 0;   // classified EMPTY: no work at all
  int64_t tiles_full = 0;      // computed without evaluating a mask (FULL, or no mask mod)
  int64_t tiles_partial = 0;   // computed and masked element by element
};

struct FlashOptions {
  int num_threads = 0;                    // workers; <= 0: one per hardware thread
  CpuBackend backend = CpuBackend::Auto;  // how the mods run (LLVM JIT or interpreter)
  bool force_scalar = false;              // the portable micro-kernels even where AVX-512 exists
  FlashStats* stats = nullptr;            // filled when given
};

// The tile sizes (rows of queries, columns of keys).
inline constexpr int32_t kFlashBlockM = 64;
inline constexpr int32_t kFlashBlockN = 64;

// Computes attention into `out` exactly as standard_attention specifies (same shapes, dtypes,
// strides, scale, GQA / MQA, LSE, fully masked rows 0 with LSE -inf) and refuses the same inputs
// with the same RuntimeErrors, prefixed "flash_attention:". With check_bounds, an out-of-range
// index is reported for the first position (in (b, h, q_idx, kv_idx) order) among the tiles that
// ran; indices read only inside EMPTY tiles are never evaluated, so never reported.
void flash_attention(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out, const AttentionOptions& options,
                     Tensor* lse = nullptr);
void flash_attention(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out, const AttentionOptions& options,
                     const FlashOptions& flash, Tensor* lse = nullptr);

// The same, returning a newly allocated fp32 output (B, H, S, Dv).
Tensor flash_attention(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionOptions& options = {},
                       Tensor* lse = nullptr);

}  // namespace attnc
