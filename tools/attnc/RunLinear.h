#pragma once
// `attnc run --kernel linear` with --q-offset. The runtime's linear attention has no query offset:
// causal query i sees keys j <= i. attnc run places its queries at q_offset + i the way every
// other kernel does, by running the runtime on queries preceded by rows of zeros (whose outputs are
// dropped): query i then sits at row q_offset + i and sees keys j <= q_offset + i. At most S_kv - 2
// rows are added: once q_offset >= S_kv - 1 every query sees every key, which is the non-causal
// form. Non-causal attention has no positions, so the offset changes nothing.
// (This belongs in LinearAttentionOptions eventually; until then the CLI keeps its promise here.)

#include <cstdint>

#include "runtime/core/AttentionOptions.h"
#include "runtime/core/Tensor.h"

namespace attnc::cli {

// How to call the runtime for queries at `q_offset` over `kv_len` keys.
struct LinearPlacement {
  int64_t pad_rows = 0;  // zero query rows before the real ones
  bool causal = false;   // the causal flag to pass the runtime
};
LinearPlacement place_linear_queries(bool causal, int32_t q_offset, int64_t kv_len);

// q (B, H, S, D) on the CPU with `rows` zero rows before it: (B, H, rows + S, D), q's dtype. q itself
// when rows is 0.
Tensor pad_query_rows(const Tensor& q, int64_t rows);

// Copies rows [rows, rows + S) of `padded` (B, H, rows + S, Dv) on the CPU into out (B, H, S, Dv).
void drop_query_rows(const Tensor& padded, int64_t rows, const Tensor& out);

// Linear attention of CPU tensors into `out`, queries at q_offset (as above).
void run_linear_cpu(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out, const Tensor& mask, bool causal,
                    int32_t q_offset);

}  // namespace attnc::cli
