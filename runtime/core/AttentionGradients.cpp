#include "runtime/core/AttentionGradients.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "runtime/core/RuntimeError.h"

namespace attnc {

namespace {

std::string shape_text(const std::vector<int64_t>& shape) { return fmt::format("({})", fmt::join(shape, ", ")); }

// A gradient output: allocated as fp32 when undefined, else a float CPU tensor of `like`'s shape.
void prepare_gradient(const char* function, Tensor& gradient, const Tensor& like, const char* role) {
  if (!gradient.defined()) {
    gradient = Tensor::zeros(DType::F32, like.shape());
    return;
  }
  if (gradient.device() != Device::Cpu || !dtype_is_float(gradient.dtype())) {
    throw RuntimeError(fmt::format("{}: {} must be a float CPU tensor", function, role));
  }
  if (gradient.shape() != like.shape()) {
    throw RuntimeError(fmt::format("{}: {} must have shape {}, got {}", function, role, shape_text(like.shape()),
                                   shape_text(gradient.shape())));
  }
}

}  // namespace

AttentionShape check_backward_args(const char* function, const Tensor& q, const Tensor& k, const Tensor& v,
                                   const Tensor& out, const Tensor* lse, const Tensor& dout, AttentionGradients& grads,
                                   const AttentionOptions& options, const Dropout& dropout) {
  // check_attention_args allocates an undefined lse; a backward pass needs the forward's, so an
  // undefined one is refused first.
  if (lse != nullptr && !lse->defined()) throw RuntimeError(fmt::format("{}: lse must be given", function));
  Tensor lse_view = lse != nullptr ? *lse : Tensor();
  const AttentionShape shape =
      check_attention_args(function, q, k, v, out, options, lse != nullptr ? &lse_view : nullptr);
  if (!dout.defined() || dout.device() != Device::Cpu || !dtype_is_float(dout.dtype())) {
    throw RuntimeError(fmt::format("{}: dout must be a float CPU tensor", function));
  }
  if (dout.shape() != out.shape()) {
    throw RuntimeError(fmt::format("{}: dout must have the shape of out {}, got {}", function, shape_text(out.shape()),
                                   shape_text(dout.shape())));
  }
  prepare_gradient(function, grads.dq, q, "dq");
  prepare_gradient(function, grads.dk, k, "dk");
  prepare_gradient(function, grads.dv, v, "dv");
  check_dropout(function, dropout);
  return shape;
}

}  // namespace attnc
