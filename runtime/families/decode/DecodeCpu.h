#pragma once
// Split-KV decode on the CPU: the CUDA template's algorithm (runtime/families/decode/
// decode_attention.cuh) over the CPU thread pool, for few query rows (q_len <= 16) and many keys,
// contiguous or paged (runtime/core/KvSource.h).
//
//   for each (b, KV head g): the first and last non-EMPTY key tile over the group's heads  (parallel)
//   for each work item (b, g, split): all G q_len rows of the group   (parallel, K/V read once)
//     Q rows -> fp32, times scale (and log2 e without a score mod); bf16 Q and K on a CPU with
//     AVX512-BF16: Q kept as is, the scores multiplied exactly by VDPBF16PS and scaled after
//     for each 64-key tile of the split's share of the live tiles
//       classify per query head: all EMPTY -> skip (no loads)
//       S = Q K^T (dot products), K rows read in place (through the block table when paged)
//       per head: score mod; PARTIAL -> mask; EMPTY for this head -> -inf
//       online softmax step; O = alpha O + P V (V rows read in place, converted in registers)
//     one split: O / l -> out, LSE; several: the normalised partial row and its LSE
//   merge the splits of each (b, h, q_row) by their LSE                               (parallel)
//
// The splits follow runtime/families/decode/DecodeConfig.h's heuristic with the workers as slots;
// each item divides its batch row's live tiles, so a sliding window spreads over the window. The
// inner loops are runtime/families/decode/DecodeCpuKernels.h (AVX-512 or scalar); mods run through
// the CPU mod programs (runtime/cpu/CpuModProgram.h: LLVM JIT or interpreter). fp32 throughout, inputs
// fp32, fp16 or bf16 with any strides, out of any float dtype. Results agree with the fp64 reference
// to fp32 rounding, are bit-identical for any thread count, and do not depend on the split count
// beyond rounding.

#include <cstdint>
#include <span>

#include "runtime/core/AttentionOptions.h"
#include "runtime/core/KvSource.h"
#include "runtime/core/Tensor.h"
#include "runtime/cpu/CpuModProgram.h"

namespace attnc::decode {

// What one call did.
struct DecodeCpuStats {
  int num_splits = 0;
  int64_t tiles_computed = 0;  // (item, key tile) pairs computed
  int64_t tiles_skipped = 0;   // EMPTY for every head: not loaded
  const char* kernels = "";    // "avx512+bf16", "avx512" or "scalar"
};

struct DecodeCpuOptions {
  int num_threads = 0;                    // workers; <= 0: one per hardware thread
  CpuBackend backend = CpuBackend::Auto;  // how the mods run
  bool force_scalar = false;              // the portable kernels even where AVX-512 exists
  int num_splits = 0;                     // 0: the heuristic; otherwise forced (>= 1)
  DecodeCpuStats* stats = nullptr;        // filled when given
};

// Attention of q (B, H, q_len, D) over the keys and values of `kv` as `rows` (one per batch row)
// say, into out (B, H, q_len, Dv) and, when given, lse (B, H, q_len) (allocated as fp32 when
// undefined). The contract is standard_attention's for each batch row alone with its kv_len keys and
// q_offset (docs/semantics.md); RuntimeErrors as check_kv_source_args (runtime/core/AttentionChecks.h)
// with CPU tensors, and for out-of-range mod indices with bounds checking (the first in (b, h, q_idx,
// kv_idx) order among the tiles that ran), prefixed "decode_attention:".
void decode_attention(const Tensor& q, const KvSource& kv, std::span<const KvBatchRow> rows, const Tensor& out,
                      const AttentionOptions& options, Tensor* lse = nullptr, const DecodeCpuOptions& decode = {});

// attention()'s contract on contiguous k (B, Hkv, Skv, D), v (B, Hkv, Skv, Dv): batch row b reads
// k[b], v[b] with its queries at options.q_offset. The same results and errors as flash_attention.
void decode_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                      const AttentionOptions& options, Tensor* lse = nullptr, const DecodeCpuOptions& decode = {});

}  // namespace attnc::decode
