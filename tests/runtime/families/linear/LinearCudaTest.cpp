// The CUDA linear attention family's plan, key, compilation through the kernel cache (NVRTC, no GPU)
// and launch checks; with a GPU, linear_attention on device tensors against the fp64 formulas.
// Where NVRTC or the driver is missing, the tests say so in one WARN line and pass.

#include "runtime/families/linear/LinearCuda.h"

#include <catch2/catch.hpp>

#include "runtime/Attention.h"
#include "runtime/core/RuntimeError.h"
#include "runtime/cuda/CompileThroughCache.h"
#include "runtime/cuda/DeviceTensor.h"
#include "runtime/families/flash/FlashSource.h"
#include "runtime/reference/LinearReference.h"
#include "tests/support/AttentionComparison.h"
#include "tests/support/CudaTesting.h"
#include "tests/support/TestTensors.h"

using namespace attnc;
using namespace attnc::linear;

namespace {

KernelCacheOptions memory_only() {
  KernelCacheOptions options;
  options.use_disk = false;
  return options;
}

Tensor fake_cuda(DType dtype, std::vector<int64_t> shape) {
  return Tensor::from_data(reinterpret_cast<void*>(uintptr_t{4096}), dtype, std::move(shape), {}, Device::Cuda);
}

}  // namespace

TEST_CASE("linear plans fit shared memory and key everything that changes the binary", "[linear][cuda]") {
  LinearSpec spec;
  spec.dtype = DType::F32;
  spec.head_dim = 128;
  spec.head_dim_v = 128;
  const LinearPlan plan = plan_linear_kernel(spec);
  CHECK(plan.shared_bytes <= kMaxSharedBytes);
  CHECK(plan.tile.chunk == 32);  // 64 would need 130 KiB with a 64-column slice
  CHECK(plan.tile.dv_tile == 64);
  CHECK(plan.key.family == "linear");
  CHECK(*plan.key.find("causal") == "1");
  CHECK(*plan.key.find("chunk") == "32");
  spec.causal = false;
  CHECK(plan_linear_kernel(spec).key.hash_hex() != plan.key.hash_hex());
  spec.head_dim = spec.head_dim_v = 256;
  CHECK(plan_linear_kernel(spec).shared_bytes <= kMaxSharedBytes);
  spec.chunk_size = 5;
  CHECK(plan_linear_kernel(spec).tile.chunk == 16);

  SECTION("its template hash is its own") {
    flash::FlashSpec flash;
    CHECK(*plan.key.find("template") != *flash::plan_flash_kernel(flash).key.find("template"));
  }
  SECTION("it refuses what the template cannot take") {
    spec.dtype = DType::I32;
    CHECK_THROWS_WITH(plan_linear_kernel(spec), Catch::Contains("fp32, bf16 or fp16"));
    spec.dtype = DType::F16;
    spec.head_dim = 300;
    CHECK_THROWS_WITH(plan_linear_kernel(spec), Catch::Contains("head dims 1 to 256"));
  }
}

TEST_CASE("linear kernels compile through the kernel cache to cubins, once per key", "[linear][cuda]") {
  if (!test::nvrtc_or_warn()) return;
  KernelCache cache(memory_only());
  for (DType dtype : {DType::F32, DType::BF16, DType::F16}) {
    for (bool causal : {true, false}) {
      CAPTURE(dtype_name(dtype), causal);
      LinearSpec spec;
      spec.dtype = dtype;
      spec.head_dim = 64;
      spec.head_dim_v = 64;
      spec.causal = causal;
      spec.arch = "sm_90";
      const auto kernel = load_linear_kernel(plan_linear_kernel(spec), cache);
      CHECK(kernel->source() == CacheSource::Compiled);
      CHECK(kernel->cubin().substr(1, 3) == "ELF");
      CHECK(load_linear_kernel(plan_linear_kernel(spec), cache)->source() == CacheSource::Memory);
    }
  }
  CHECK(cache.stats().compiles == 6);
}

TEST_CASE("a linear kernel's launch checks its arguments before touching the driver", "[linear][cuda]") {
  if (!test::nvrtc_or_warn()) return;
  KernelCache cache(memory_only());
  LinearSpec spec;
  spec.dtype = DType::BF16;
  spec.head_dim = 32;
  spec.head_dim_v = 32;
  const auto kernel = load_linear_kernel(plan_linear_kernel(spec), cache);
  const Tensor q = fake_cuda(DType::BF16, {1, 2, 8, 32});
  LinearAttentionOptions options;
  CHECK_THROWS_WITH(kernel->launch(q, q, q, fake_cuda(DType::F16, {1, 2, 8, 32}), options),
                    Catch::Contains("out must be bf16 (the kernel's dtype)"));
  CHECK_THROWS_WITH(
      kernel->launch(fake_cuda(DType::BF16, {1, 2, 8, 16}), fake_cuda(DType::BF16, {1, 2, 8, 16}),
                     fake_cuda(DType::BF16, {1, 2, 8, 16}), fake_cuda(DType::BF16, {1, 2, 8, 16}), options),
      Catch::Contains("compiled for head dims 32/32"));
  options.causal = false;
  CHECK_THROWS_WITH(kernel->launch(q, q, q, q, options),
                    Catch::Contains("compiled causal, but the call is non-causal"));
  options.causal = true;
  options.mask = fake_cuda(DType::I32, {1, 1, 1, 8});
  CHECK_THROWS_WITH(kernel->launch(q, q, q, q, options), Catch::Contains("the mask must be bool or uint8 on CUDA"));
}

TEST_CASE("linear attention on a GPU equals the fp64 formulas", "[linear][cuda][gpu]") {
  if (!test::gpu_or_warn()) return;
  for (DType dtype : {DType::F32, DType::BF16, DType::F16}) {
    for (bool causal : {true, false}) {
      CAPTURE(dtype_name(dtype), causal);
      const Tensor q = test::uniform_tensor(1, dtype, {2, 4, 301, 64}, -2.0f, 2.0f);
      const Tensor k = test::uniform_tensor(2, dtype, {2, 2, 301, 64}, -2.0f, 2.0f);
      const Tensor v = test::uniform_tensor(3, dtype, {2, 2, 301, 64});
      LinearAttentionOptions options;
      options.causal = causal;
      const Tensor ref = linear_attention_reference(q, k, v, options);
      Tensor out = cuda::empty_device_tensor(dtype, {2, 4, 301, 64});
      linear_attention(cuda::to_device(q), cuda::to_device(k), cuda::to_device(v), out, options);
      const double tolerance = dtype == DType::F32 ? 1e-5 : dtype == DType::F16 ? 1.0 / 1024 : 1.0 / 128;
      CHECK(attnc_test::relative_error(cuda::to_host(out), ref) <= tolerance);
    }
  }
}
