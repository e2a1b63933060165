#pragma once
// The reference of linear attention (attnax's linear_attention; docs/semantics.md, "Linear
// attention"): the formulas evaluated directly, in fp64, one query row at a time, with none of the
// kernels' chunking or state. It is the oracle the CPU and CUDA linear kernels are tested against.
//
//   phi(x) = elu(x) + 1 = (x > 0 ? x + 1 : exp(x)), elementwise
//   keys j visible to query i: every j (non-causal), or j <= i (causal); masked keys dropped
//   out[b, h, i] = sum_j (phi(q_i) . phi(k_j)) v_j / (sum_j phi(q_i) . phi(k_j) + 1e-6)
//   with k, v read at KV head h / (H / Hkv).
// Summed this way (the quadratic form) it equals both of attnax's forms: non-causal
// phi(Q) (phi(K)^T V) / (phi(Q) sum phi(K) + 1e-6), and the causal chunkwise recurrence.

#include "runtime/core/AttentionOptions.h"
#include "runtime/core/Tensor.h"

namespace attnc {

// q (B, H, Sq, D), k (B, Hkv, Skv, D), v (B, Hkv, Skv, Dv) of fp32, fp16 or bf16, any strides, CPU
// -> out (B, H, Sq, Dv) (a float dtype, any strides). The options' chunk_size is not used.
// RuntimeError for mismatched shapes, H not a multiple of Hkv, and a mask that does not broadcast
// (runtime/core/AttentionChecks.h), prefixed "linear_attention_reference:".
void linear_attention_reference(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out,
                                const LinearAttentionOptions& options = {});

// The same, returning a new fp32 output.
Tensor linear_attention_reference(const Tensor& q, const Tensor& k, const Tensor& v,
                                  const LinearAttentionOptions& options = {});

}  // namespace attnc
