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
// Numerics: softmax and the accumulator are always fp32. With fp32 inputs (or allow_bf16 off, or a
// CPU without AVX512-BF16) the dot products are fp32 too (fp16 / bf16 converted on load), so results
// agree with the fp64 reference to fp32 rounding. With bf16 or fp16 inputs on AVX512-BF16 the
// products use the bf16 dot product: fp16 is rounded to bf16 on load, and P is rounded to bf16
// before P·V as GPU kernels do (runtime/families/flash/FlashCpuOperands.h); the tests state the
// tolerance this gives against the fp64 reference.

#include <cstdint>

#include <optional>

#include "runtime/core/AttentionOptions.h"
#include "runtime/core/Dropout.h"
#include "runtime/core/Tensor.h"
#include "runtime/cpu/CpuMicroKernels.h"
#include "runtime/cpu/CpuModProgram.h"

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
  // The micro-kernels' instruction set (runtime/cpu/CpuMicroKernels.h); none: the best this CPU
  // has (or ATTNC_CPU_ISA's). A set the CPU lacks is a RuntimeError.
  std::optional<cpu::CpuIsa> isa;
  // bf16 (and fp16) inputs are multiplied in bf16 where the micro-kernels can (P rounded to bf16);
  // false keeps every product fp32.
  bool allow_bf16 = true;
  // Attention dropout (runtime/core/Dropout.h) on the normalised probabilities: out from the dropped
  // and rescaled P, the LSE of the undropped scores, the same elements dropped as
  // standard_attention_dropout and the backward pass drop (one Philox draw per element kept by the
  // mask, computed here, not stored).
  Dropout dropout;
  FlashStats* stats = nullptr;            // filled when given
};

// The precision of the products a call with these inputs and options runs in: "bf16" (bf16 dot
// products, P rounded to bf16) or "fp32". The micro-kernels are those FlashOptions::isa names, else
// the best this CPU has.
const char* flash_cpu_precision(const Tensor& q, const Tensor& k, const Tensor& v, const FlashOptions& flash = {});

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
