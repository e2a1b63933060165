#include "nn/Linear.h"

#include <mutex>
#include <vector>

#include <fmt/format.h>

#include "distributed/Sharding.h"
#include "nn/Blas.h"
#include "nn/Cublas.h"
#include "runtime/core/RuntimeError.h"
#include "runtime/cuda/DeviceTensor.h"

namespace attnc::nn {

namespace {

std::vector<int64_t> output_shape(const Tensor& x, int64_t out) {
  std::vector<int64_t> shape = x.shape();
  shape.back() = out;
  return shape;
}

}  // namespace

struct Linear::DeviceCopy {
  std::mutex mutex;
  Tensor weight, bias;
  std::unique_ptr<CublasHandle> handle;
};

Linear::Linear(const Tensor& weight, const Tensor& bias) : device_(std::make_shared<DeviceCopy>()) {
  if (!weight.defined() || weight.rank() != 2 || !dtype_is_float(weight.dtype()) || weight.device() != Device::Cpu) {
    throw RuntimeError(fmt::format("Linear: the weight must be a float (in, out) CPU tensor, got {}",
                                   weight.defined() ? weight.describe() : "an undefined tensor"));
  }
  weight_ = distributed::contiguous_as(weight, DType::F32);
  if (bias.defined()) {
    if (bias.rank() != 1 || bias.size(0) != weight.size(1) || !dtype_is_float(bias.dtype()) ||
        bias.device() != Device::Cpu) {
      throw RuntimeError(fmt::format("Linear: the bias must be a float ({}) CPU tensor for weight {}, got {}",
                                     weight.size(1), weight.describe(), bias.describe()));
    }
    bias_ = distributed::contiguous_as(bias, DType::F32);
  }
}

Tensor Linear::forward(const Tensor& x) const {
  if (!x.defined() || x.rank() < 1 || x.dtype() != DType::F32 || x.size(x.rank() - 1) != in_features()) {
    throw RuntimeError(fmt::format("Linear: x must be fp32 (..., {}), got {}", in_features(),
                                   x.defined() ? x.describe() : "an undefined tensor"));
  }
  const int64_t in = in_features(), out = out_features(), rows = x.numel() / std::max<int64_t>(in, 1);
  if (x.device() == Device::Cuda) {
    if (!x.is_contiguous())
      throw RuntimeError(fmt::format("Linear: a CUDA x must be contiguous, got {}", x.describe()));
    std::lock_guard guard(device_->mutex);
    if (!device_->handle) {
      device_->handle = std::make_unique<CublasHandle>();
      device_->weight = cuda::to_device(weight_);
      if (bias_.defined()) device_->bias = cuda::to_device(bias_);
    }
    Tensor y = cuda::empty_device_tensor(DType::F32, output_shape(x, out));
    device_->handle->sgemm(rows, out, in, static_cast<const float*>(x.data()), in,
                           static_cast<const float*>(device_->weight.data()), out, static_cast<float*>(y.data()), out);
    if (bias_.defined()) {
      const Tensor ones = cuda::to_device(Tensor::from_vector(std::vector<float>(static_cast<size_t>(rows), 1.0f)));
      device_->handle->sgemm(rows, out, 1, static_cast<const float*>(ones.data()), 1,
                             static_cast<const float*>(device_->bias.data()), out, static_cast<float*>(y.data()), out,
                             true);
    }
    return y;
  }
  const Tensor input = x.is_contiguous() ? x : x.contiguous_copy();
  Tensor y = Tensor::empty(DType::F32, output_shape(x, out));
  auto* data = static_cast<float*>(y.data());
  if (bias_.defined()) {
    const auto* b = static_cast<const float*>(bias_.data());
    for (int64_t r = 0; r < rows; ++r) std::copy(b, b + out, data + r * out);
  }
  sgemm(rows, out, in, static_cast<const float*>(input.data()), std::max<int64_t>(in, 1),
        static_cast<const float*>(weight_.data()), std::max<int64_t>(out, 1), data, std::max<int64_t>(out, 1),
        bias_.defined());
  return y;
}

}  // namespace attnc::nn
