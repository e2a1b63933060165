#pragma once
// What a backward pass returns, and the checks every backward entry point shares. Given the
// gradient dO of a loss with respect to attention's output O, the backward pass computes dQ, dK, dV
// and the gradient of every float tensor parameter of the score mod (a learned bias table, ALiBi
// slopes, per-head temperatures); docs/gradients.md gives the formulas and conventions.

#include <map>
#include <string>

#include "runtime/core/AttentionChecks.h"
#include "runtime/core/Dropout.h"
#include "runtime/core/Tensor.h"

namespace attnc {

struct AttentionGradients {
  // Shaped like q, k and v: float (fp32, fp16, bf16) CPU tensors with any strides; an undefined one
  // is allocated as fp32.
  Tensor dq, dk, dv;
  // Filled by the backward pass: one fp32 tensor per float tensor parameter of the score mod, by
  // parameter name, shaped like the bound tensor (zeros where no element was read).
  std::map<std::string, Tensor> dparams;
};

// The checks of a backward call (`function` prefixes every message): q, k, v and out as
// check_attention_args has them; dout shaped like out; lse (when `lse` is given) fp32-or-float
// (B, H, S); grads' dq, dk, dv shaped like q, k, v (undefined ones allocated as fp32); the dropout
// rate. Returns the call's shape.
AttentionShape check_backward_args(const char* function, const Tensor& q, const Tensor& k, const Tensor& v,
                                   const Tensor& out, const Tensor* lse, const Tensor& dout, AttentionGradients& grads,
                                   const AttentionOptions& options, const Dropout& dropout);

}  // namespace attnc
