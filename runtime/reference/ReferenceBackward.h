#pragma once
// The reference backward pass: the gradients of standard_attention (runtime/reference/
// ReferenceAttention.h), with optional attention dropout (runtime/core/Dropout.h), computed row by
// row in fp64 from the forward's formulas. It is the oracle of every backward kernel and is itself
// checked against finite differences of the reference forward (tests/runtime/reference/).
//
// For one (b, h) with P the softmax of the kept scores (0 elsewhere), M the dropout decisions and
// k = 1 / (1 - rate):
//   O    = (P * M * k) V                       dV  = (P * M * k)^T dO       (summed over a GQA group)
//   dP   = (dO V^T) * M * k                    D_i = rowsum(dO * O)
//   dS'  = P * (dP - D)                        (the gradient at the modded score s')
//   dS   = dS' * ds'/ds                        (the compiler's derivative of the score mod)
//   dQ   = scale * dS K                        dK  = scale * dS^T Q
//   dparam[e] = sum over (b, h, i, j) and the sites reading element e of dS' * ds'/d(element)
// Elements the mask drops, or with s' = -inf, or with P = 0, contribute nothing (not 0 * inf). Rows
// with no kept key get zero gradients. The score mod's derivatives are evaluated by the interpreter
// in fp32 (as every backend evaluates them); everything else is fp64.

#include "runtime/core/AttentionGradients.h"
#include "runtime/core/AttentionOptions.h"
#include "runtime/core/Dropout.h"
#include "runtime/core/Tensor.h"

namespace attnc {

// Fills grads.dq, dk, dv (allocated as fp32 when undefined) and grads.dparams for the loss whose
// gradient with respect to the output is `dout` (B, H, S, Dv). The forward is recomputed; no out or
// LSE is needed. RuntimeError as standard_attention, for a dout of the wrong shape, a gradient tensor
// of the wrong shape or type, or a dropout rate outside [0, 1).
void standard_attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& dout,
                                 AttentionGradients& grads, const AttentionOptions& options = {},
                                 const Dropout& dropout = {});

// The forward pass with dropout, in fp64 as standard_attention (which it equals at rate 0): out
// (B, H, S, Dv, any float dtype) and, when given, the LSE before dropout (allocated as fp32 when
// undefined).
void standard_attention_dropout(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out,
                                const AttentionOptions& options, const Dropout& dropout, Tensor* lse = nullptr);

}  // namespace attnc
