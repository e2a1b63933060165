#pragma once
// The backward pass of attention on the CPU, in the FlashAttention-2 manner: the score matrix is
// never stored; each tile of probabilities is recomputed from Q, K and the forward's LSE, and the
// gradients follow from it (runtime/reference/ReferenceBackward.h gives the formulas, the oracle
// these kernels are tested against):
//
//   S  = scale * Q K^T, s' = score_mod(S), masked      P  = exp(s' - LSE)      (0 where masked)
//   dV += (P * M * k)^T dO                             dP = (dO V^T) * M * k   (M, k: dropout)
//   dS' = P * (dP - rowsum(dO * O))                    dS = dS' * ds'/ds       (the compiler's derivative)
//   dQ += scale * dS K                                 dK += scale * dS^T Q
//   dparam[element] += dS' * ds'/d(element)            (scatter-add, per site of the score mod)
//
// Work items are (batch, KV head, key tile): each owns its rows of dK and dV and loops over the
// query heads of its GQA group and the query tiles, so dK and dV are summed over the group with no
// sharing between threads. Query tiles are classified by the mask's compiled tile classifier, as in
// the forward: EMPTY tiles are skipped entirely, FULL tiles skip the mask. The score mod, the mask
// and the score mod's derivatives run through the CPU backend's compiled programs (LLVM JIT, or the
// interpreter without LLVM: runtime/cpu/CpuModProgram.h). Products are fp32 micro-kernels
// (runtime/cpu/CpuMicroKernels.h); fp16 and bf16 inputs are converted to fp32 on load.
//
// Determinism: dK and dV are bit-for-bit reproducible (each item sums in a fixed order). dQ and the
// parameter gradients are not: dQ tiles are added under a per-tile lock in whatever order the items
// finish, and parameter gradients are summed per worker (in fp64) and then across workers, so their
// last bits can change from run to run and with the number of threads.

#include <cstdint>

#include "runtime/core/AttentionGradients.h"
#include "runtime/core/AttentionOptions.h"
#include "runtime/core/Dropout.h"
#include "runtime/core/Tensor.h"
#include "runtime/cpu/CpuModProgram.h"

namespace attnc {

// What one call did, counted in (query tile, key tile) pairs over all batches and query heads.
struct FlashBackwardStats {
  int64_t tiles_computed = 0;  // tiles_full + tiles_partial
  int64_t tiles_skipped = 0;   // classified EMPTY
  int64_t tiles_full = 0;      // no mask evaluated
  int64_t tiles_partial = 0;   // masked element by element
};

struct FlashBackwardOptions {
  int num_threads = 0;                    // workers; <= 0: one per hardware thread
  CpuBackend backend = CpuBackend::Auto;  // how the mods and their derivatives run
  FlashBackwardStats* stats = nullptr;    // filled when given
};

inline constexpr int32_t kFlashBackwardBlockM = 64;  // query rows per tile
inline constexpr int32_t kFlashBackwardBlockN = 64;  // key columns per tile

// Fills grads (dq, dk, dv allocated as fp32 when undefined; dparams for every float tensor parameter
// of the score mod) for the call attention(q, k, v, out, options, &lse) made (with `dropout`:
// standard_attention_dropout's out and LSE), given dout = dLoss/dout. RuntimeError as
// check_backward_args and the forward say, prefixed "flash_attention_backward:".
void flash_attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse,
                              const Tensor& dout, AttentionGradients& grads, const AttentionOptions& options = {},
                              const Dropout& dropout = {}, const FlashBackwardOptions& flash = {});

}  // namespace attnc
