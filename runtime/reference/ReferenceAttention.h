#pragma once
// The reference attention: a direct, slow, obviously-correct implementation of the contract's
// "What a mod means" on the CPU. Mods are evaluated per element by the interpreter. It is the
// oracle every kernel (LLVM JIT, CUDA) is tested against, so it favours clarity and exactness
// (fp64 softmax by default) over speed.
//
//   q (B, H, S, D), k (B, Hkv, Skv, D), v (B, Hkv, Skv, Dv) -> out (B, H, S, Dv), lse (B, H, S)
//   s = scale * dot(q[b, h, i], k[b, h / (H / Hkv), j])   (rounded to fp32, as kernels see it)
//   s' = score_mod(s, ...), keep = mask_mod(...); softmax over kept keys, max-subtracted.
//   A row with no kept key, or whose kept scores are all -inf, gives output 0 and LSE -inf.

#include "runtime/core/AttentionOptions.h"
#include "runtime/core/Tensor.h"

namespace attnc {

// Computes attention into `out` (fp32, fp16 or bf16, any strides, CPU) and, when `lse` is given,
// the log-sum-exp (natural log) into it: a defined lse must be a float (B, H, S) CPU tensor; an
// undefined one is allocated as fp32. Inputs may be fp32, fp16 or bf16 with any strides.
// RuntimeError for mismatched shapes, H not a multiple of Hkv, non-float or non-CPU tensors, a mod
// of the wrong kind, unbound or mistyped parameters, and (with check_bounds) an out-of-range index,
// naming the mod, parameter, index, extent and (b, h, q_idx, kv_idx).
void standard_attention(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out, const AttentionOptions& options,
                        Tensor* lse = nullptr);

// The same, returning a newly allocated fp32 output (B, H, S, Dv).
Tensor standard_attention(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionOptions& options = {},
                          Tensor* lse = nullptr);

}  // namespace attnc
