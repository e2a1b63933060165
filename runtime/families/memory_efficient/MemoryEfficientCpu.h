#pragma once
// Memory-efficient attention on the CPU (attnax's memory_efficient_attention; Rabe and Staats,
// Milakov and Gimelshein): the same contract as standard_attention (runtime/reference/
// ReferenceAttention.h, docs/semantics.md), computed block by block with an online softmax so that
// no (Sq, Skv) score matrix exists, only one (block_size, block_size) block per worker.
//
//   for each (b, h, query block of block_size rows)           -- spread over all cores
//     for each key block of block_size columns
//       mask mod?  classify the block: EMPTY -> skip it; FULL -> no mask evaluation
//       S = scale Q K^T;  S = score_mod(S);  PARTIAL? S = -inf where the mask drops
//       online softmax step (running max m, sum l; O rescaled by exp(m_old - m_new))
//       O += P V
//     out = O / l, lse = m + log l
//
// It is the flash family's algorithm with one tile size, block_size, chosen by the caller, instead
// of the flash kernel's fixed 64 x 64 tiles with band refinement and packed operands: it shares the
// CPU backend's pieces (the micro-kernels' gemm and softmax step, the compiled mod programs, the
// thread pool) but not the flash kernel's code. block_size is what it says: the rows and columns of
// every block, hence the working memory per worker (block_size^2 scores, 4 block_size x D operand
// and accumulator rows) and the granularity of tile skipping (a causal mask's diagonal blocks are
// masked per element, so smaller blocks skip more; larger blocks amortise the per-block overheads).
// Numerics are those of the flash kernel's fp32 path: fp32 products, softmax and accumulator.

#include <cstdint>

#include "runtime/core/AttentionOptions.h"
#include "runtime/core/Tensor.h"
#include "runtime/cpu/CpuModProgram.h"

namespace attnc {

// What one call did, counted in (query block, key block) pairs over all batches and heads.
struct BlockwiseStats {
  int64_t blocks_computed = 0;  // blocks_full + blocks_partial
  int64_t blocks_skipped = 0;   // classified EMPTY: nothing loaded or computed
  int64_t blocks_full = 0;      // computed without evaluating the mask (FULL, or no mask mod)
  int64_t blocks_partial = 0;   // masked element by element
};

struct BlockwiseOptions {
  int block_size = 512;                   // rows of a query block and columns of a key block (> 0)
  int num_threads = 0;                    // workers; <= 0: one per hardware thread
  CpuBackend backend = CpuBackend::Auto;  // how the mods run (LLVM JIT or interpreter)
  BlockwiseStats* stats = nullptr;        // filled when given
};

// Computes attention into `out` as standard_attention specifies (same shapes, dtypes, strides,
// scale, GQA / MQA, q_offset, LSE, fully masked rows 0 with LSE -inf, NaN rows) and refuses the same
// inputs with the same RuntimeErrors, prefixed "memory_efficient_attention:"; also a block_size
// below 1. With check_bounds, the first out-of-range index in (b, h, q_idx, kv_idx) order among
// the blocks that ran is reported.
void memory_efficient_attention(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out,
                                const AttentionOptions& options = {}, const BlockwiseOptions& blockwise = {},
                                Tensor* lse = nullptr);

// attnax's signature: `mask` (bool, uint8, int32 or int64, broadcastable to (B, H, Sq, Skv); True
// keeps; undefined for none) is anded into options' mask mod (with_mask, runtime/core/Mods.h);
// returns a new fp32 output (B, H, Sq, Dv).
Tensor memory_efficient_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                                  const AttentionOptions& options = {}, int block_size = 512);

}  // namespace attnc
