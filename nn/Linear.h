#pragma once
// A dense layer, y = x W + b, with flax's (and attnax's) layout: W is (in, out). On the CPU the
// product is nn::sgemm (OpenBLAS when the build has it); on CUDA tensors cuBLAS (nn/Cublas.h), with
// the weights copied to the device on first use and the bias added as a rank-1 product (ones b),
// so no kernel of attnc's own is needed.

#include <cstdint>
#include <memory>

#include "runtime/core/Tensor.h"

namespace attnc::nn {

class Linear {
 public:
  // weight (in, out) and bias (out) or undefined: float CPU tensors of any dtype and strides, copied
  // into fp32. RuntimeError for other shapes or dtypes.
  Linear(const Tensor& weight, const Tensor& bias = Tensor());

  int64_t in_features() const { return weight_.size(0); }
  int64_t out_features() const { return weight_.size(1); }
  const Tensor& weight() const { return weight_; }  // fp32 (in, out), contiguous
  const Tensor& bias() const { return bias_; }      // fp32 (out), contiguous, or undefined

  // x (..., in), fp32, on the CPU (any strides) or CUDA (contiguous) -> a new contiguous fp32
  // tensor (..., out) on x's device.
  Tensor forward(const Tensor& x) const;

 private:
  struct DeviceCopy;  // the weights on the GPU, made on first use
  Tensor weight_, bias_;
  std::shared_ptr<DeviceCopy> device_;
};

}  // namespace attnc::nn
