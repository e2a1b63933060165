// cuBLAS opened at run time (nn/Cublas.h): found and versioned without a GPU, a handle that needs
// one refused with cuBLAS's status, and with a GPU, the device path of nn::Linear against the CPU's.

#include "nn/Cublas.h"

#include <catch2/catch.hpp>

#include "nn/Linear.h"
#include "runtime/cuda/CudaDriver.h"
#include "runtime/cuda/DeviceTensor.h"
#include "tests/support/AttentionComparison.h"
#include "tests/support/CudaTesting.h"
#include "tests/support/TestTensors.h"

using namespace attnc;
using namespace attnc::nn;

TEST_CASE("cuBLAS is opened at run time and reports its version without a GPU", "[nn][cublas]") {
  if (!Cublas::available()) {
    CHECK_THROWS_AS(Cublas::get(), CublasUnavailable);
    WARN("no libcublas on this machine: the cuBLAS tests did not run");
    return;
  }
  CHECK_FALSE(Cublas::get().library().empty());
  CHECK(Cublas::get().version() >= 110000);
  if (!cuda::CudaDriver::available()) {
    CHECK_THROWS_WITH(CublasHandle(), Catch::Contains("cublasCreate failed"));
  }
}

TEST_CASE("a linear layer on CUDA tensors runs cuBLAS and matches the CPU", "[nn][cublas][gpu]") {
  const Linear layer(test::uniform_tensor(1, DType::F32, {64, 48}), test::uniform_tensor(2, DType::F32, {48}));
  const Tensor x = test::uniform_tensor(3, DType::F32, {3, 17, 64});
  if (!test::gpu_or_warn()) {
    CHECK_THROWS_AS(layer.forward(Tensor::from_data(x.data(), DType::F32, x.shape(), {}, Device::Cuda)), RuntimeError);
    return;
  }
  const Tensor y = cuda::to_host(layer.forward(cuda::to_device(x)));
  CHECK(attnc_test::relative_error(y, layer.forward(x)) <= 1e-5);
}
