#pragma once
// Linear attention on the CPU in its chunkwise-parallel form (attnax's linear_attention; Katharopoulos
// et al. 2020): the contract of linear_attention_reference (runtime/reference/LinearReference.h)
// computed in fp32 without the quadratic sum.
//
// With phi(x) = elu(x) + 1, V' = [V | 1] (the ones column carries the normaliser) and, for a
// dropped key, its phi(k) and V' row zeroed, the sequence is cut into chunks of C = chunk_size
// positions and each (b, h) is computed in three passes:
//   A  per key chunk c:    dS_c = phi(K_c)^T V'_c                    (D x (Dv + 1))
//   B  per (b, h):         S_c = sum over key chunks c' < c of dS_c'  (causal: an exclusive prefix)
//                          S = sum of all dS_c                        (non-causal)
//   C  per query chunk c:  Y'_c = phi(Q_c) S_c + tril(phi(Q_c) phi(K_c)^T) V'_c   (causal)
//                          Y'_c = phi(Q_c) S                                       (non-causal)
//                          out_c = Y'_c[:, :Dv] / (Y'_c[:, Dv] + 1e-6)
// Passes A and C are spread over all cores by (b, h, chunk), pass B by (b, h); (b, h) pairs are
// processed in groups whose states fit a bounded scratch. Every product is the CPU backend's fp32
// gemm micro-kernel (runtime/cpu/CpuMicroKernels.h), and phi's exponential its vector exp2. Queries
// and keys may differ in length: causal masking is top-left aligned (key j visible to query i when
// j <= i), as causal_mod.

#include "runtime/core/AttentionOptions.h"
#include "runtime/core/Tensor.h"

namespace attnc {

// q (B, H, Sq, D), k (B, Hkv, Skv, D), v (B, Hkv, Skv, Dv): fp32, fp16 or bf16 (converted to fp32 on
// load), any strides, CPU -> out (B, H, Sq, Dv) in any float dtype and strides. `num_threads` <= 0
// uses every hardware thread. RuntimeError as linear_attention_reference, prefixed
// "linear_attention:", and for chunk_size < 1.
void linear_attention_cpu(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out,
                          const LinearAttentionOptions& options = {}, int num_threads = 0);

}  // namespace attnc
