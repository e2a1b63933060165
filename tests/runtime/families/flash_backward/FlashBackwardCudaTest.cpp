// The CUDA backward family's launch side (runtime/families/flash_backward/FlashBackwardCuda.h): the
// launch checks and the kernel argument with fake device tensors (no GPU needed), the kernel cache,
// attention_backward's dispatch for CUDA tensors, and, where a GPU is present, the gradients against
// the fp64 reference (skipped here without libcuda, with a WARN saying so).

#include "runtime/families/flash_backward/FlashBackwardCuda.h"

#include <cstddef>
#include <cstring>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "runtime/Attention.h"
#include "runtime/core/Mods.h"
#include "runtime/core/RuntimeError.h"
#include "runtime/cuda/DeviceTensor.h"
#include "runtime/cuda/Nvrtc.h"
#include "runtime/families/flash_backward/flash_backward.cuh"
#include "runtime/reference/ReferenceBackward.h"
#include "tests/support/AttentionComparison.h"
#include "tests/support/CudaTesting.h"
#include "tests/support/TestTensors.h"

using namespace attnc;
using namespace attnc::flash_backward;
using namespace attnc::test;

namespace {

// A fake CUDA tensor: the checks look at shapes, strides and alignment only, and packing never
// dereferences it.
Tensor fake_cuda(DType dtype, std::vector<int64_t> shape, std::vector<int64_t> strides = {}, uintptr_t address = 4096) {
  return Tensor::from_data(reinterpret_cast<void*>(address), dtype, std::move(shape), std::move(strides), Device::Cuda);
}

FlashBackwardSpec spec_for(const Mod* score, const Mod* mask, int head_dim) {
  FlashBackwardSpec spec;
  spec.score = ModSpec::of(score);
  spec.mask = ModSpec::of(mask);
  spec.head_dim = spec.head_dim_v = head_dim;
  return spec;
}

std::shared_ptr<const FlashBackwardKernel> fake_kernel(const Mod* score, const Mod* mask, int head_dim) {
  // A kernel object over a fake binary: the checks and the packing need the key and the mods only.
  const FlashBackwardPlan plan = plan_flash_backward_kernel(spec_for(score, mask, head_dim));
  auto binary = std::make_shared<const CachedKernel>(CachedKernel{"cubin", "entry=attnc_flash_backward\n"});
  return std::make_shared<const FlashBackwardKernel>(plan, plan.key.with("nvrtc", "test"), CacheSource::Compiled,
                                                     binary, flash_backward_mods(plan.spec), 0);
}

struct FakeCall {
  Tensor q = fake_cuda(DType::BF16, {2, 4, 100, 64});
  Tensor k = fake_cuda(DType::BF16, {2, 2, 90, 64});
  Tensor v = fake_cuda(DType::BF16, {2, 2, 90, 64});
  Tensor out = fake_cuda(DType::BF16, {2, 4, 100, 64});
  Tensor lse = fake_cuda(DType::F32, {2, 4, 100});
  Tensor dout = fake_cuda(DType::BF16, {2, 4, 100, 64});
  Tensor dq = fake_cuda(DType::BF16, {2, 4, 100, 64});
  Tensor dk = fake_cuda(DType::BF16, {2, 2, 90, 64});
  Tensor dv = fake_cuda(DType::BF16, {2, 2, 90, 64});
};

}  // namespace

TEST_CASE("backward launch arguments are checked with clear messages", "[cuda][launch][flash_backward]") {
  const Mod mask = causal_mod();
  auto kernel = fake_kernel(nullptr, &mask, 64);
  AttentionOptions options;
  options.mask_mod = &mask;
  Dropout dropout;
  auto pack = [&](const FakeCall& c) {
    return kernel->pack_arguments(c.q, c.k, c.v, c.out, c.lse, c.dout, c.dq, c.dk, c.dv, options, dropout, {}, nullptr,
                                  nullptr, nullptr);
  };
  const FakeCall good;
  const std::vector<unsigned char> bytes = pack(good);
  // The prefix of FlashBackwardParams as the device reads it, then no mod parameters (causal has none).
  attnc_flash_bwd::FlashBackwardParams<char> p{};
  std::memcpy(&p, bytes.data(), offsetof(attnc_flash_bwd::FlashBackwardParams<char>, mods));
  CHECK(p.num_heads == 4);
  CHECK(p.num_kv_heads == 2);
  CHECK(p.q_len == 100);
  CHECK(p.kv_len == 90);
  CHECK(p.dk_row_stride == 64);
  CHECK(p.lse_head_stride == 100);
  CHECK(p.scale == Approx(0.125f));
  CHECK(p.dropout_threshold == 0);  // no dropout
  dropout = Dropout{0.25f, 0x0123456789abcdefULL};
  std::memcpy(&p, pack(good).data(), offsetof(attnc_flash_bwd::FlashBackwardParams<char>, mods));
  CHECK(p.dropout_threshold == dropout_threshold(0.25f));
  CHECK(p.dropout_keep_scale == Approx(1.0f / 0.75f));
  CHECK(p.dropout_seed == 0x0123456789abcdefULL);
  dropout = Dropout{1.0f, 1};
  CHECK_THROWS_AS(pack(good), RuntimeError);
  dropout = Dropout{};

  FakeCall c = good;
  c.dout = fake_cuda(DType::BF16, {2, 4, 99, 64});
  CHECK_THROWS_WITH(pack(c), Catch::Contains("dout must be a bf16 CUDA tensor shaped like out"));
  c = good;
  c.dk = fake_cuda(DType::F16, {2, 2, 90, 64});
  CHECK_THROWS_WITH(pack(c), Catch::Contains("dk must be a bf16 CUDA tensor shaped like k"));
  c = good;
  c.dq = fake_cuda(DType::BF16, {2, 4, 100, 64}, {}, 4104);
  CHECK_THROWS_WITH(pack(c), Catch::Contains("dq must be 16-byte aligned"));
  c = good;
  c.dv = fake_cuda(DType::BF16, {2, 2, 90, 64}, {11540, 5770, 65, 1});
  CHECK_THROWS_WITH(pack(c), Catch::Contains("the strides of dv must be multiples of 8"));
  c = good;
  c.lse = Tensor();
  CHECK_THROWS_WITH(pack(c), Catch::Contains("lse must be given"));
  options.mask_mod = nullptr;  // not the kernel's mask
  CHECK_THROWS_AS(pack(good), RuntimeError);
}

TEST_CASE("the gradient buffers of tensor parameters are checked and packed", "[cuda][launch][flash_backward]") {
  const Mod bias = additive_bias_mod(fake_cuda(DType::F32, {1, 1, 100, 90}));
  auto kernel = fake_kernel(&bias, nullptr, 64);
  AttentionOptions options;
  options.score_mod = &bias;
  const FakeCall c;
  auto pack = [&](const std::vector<Tensor>& dparams) {
    return kernel->pack_arguments(c.q, c.k, c.v, c.out, c.lse, c.dout, c.dq, c.dk, c.dv, options, {}, dparams, nullptr,
                                  nullptr, nullptr);
  };
  const std::vector<unsigned char> bytes = pack({fake_cuda(DType::F32, {1, 1, 100, 90}, {}, 8192)});
  attnc_flash_bwd::FlashBackwardParams<char> p{};
  std::memcpy(&p, bytes.data(), offsetof(attnc_flash_bwd::FlashBackwardParams<char>, mods));
  CHECK(p.dparams[0] == reinterpret_cast<float*>(8192));
  CHECK(p.dparams[1] == nullptr);
  CHECK_THROWS_WITH(pack({}), Catch::Contains("1 float tensor parameters (at most 4); got 0 gradient tensors"));
  CHECK_THROWS_WITH(pack({fake_cuda(DType::F32, {1, 1, 90, 100})}),
                    Catch::Contains("the gradient of parameter 'bias' must be a contiguous fp32 CUDA tensor"));
  CHECK_THROWS_AS(pack({fake_cuda(DType::BF16, {1, 1, 100, 90})}), RuntimeError);
}

TEST_CASE("attention_backward sends CUDA tensors to the CUDA family and refuses what it lacks",
          "[cuda][launch][flash_backward]") {
  const FakeCall c;
  AttentionGradients grads;
  // Mixed devices fail before any driver call.
  const Tensor host_dout = Tensor::zeros(DType::BF16, {2, 4, 100, 64});
  CHECK_THROWS_WITH(attention_backward(c.q, c.k, c.v, c.out, c.lse, host_dout, grads),
                    Catch::Contains("q is on cuda but dout is on cpu"));
}

TEST_CASE("backward kernels compile through the cache once per key", "[cuda][cache][flash_backward]") {
  if (!nvrtc_or_warn()) return;
  KernelCache cache(KernelCacheOptions{{}, /*use_disk=*/false});
  const Mod window = sliding_window_mod(16, true);
  const Mod other_window = sliding_window_mod(300, true);  // another value, the same signature
  const FlashBackwardPlan plan = plan_flash_backward_kernel(spec_for(nullptr, &window, 64));
  const auto first = load_flash_backward_kernel(plan, cache);
  const auto second =
      load_flash_backward_kernel(plan_flash_backward_kernel(spec_for(nullptr, &other_window, 64)), cache);
  CHECK(first->source() == CacheSource::Compiled);
  CHECK(second->source() == CacheSource::Memory);
  CHECK(first->cubin() == second->cubin());
  CHECK(cache.stats().compiles == 1);
  CHECK(first->shared_bytes() == flash_backward_shared_bytes(first->tile(), 64, 64));
}

TEST_CASE("the CUDA backward matches the reference on a GPU", "[cuda][gpu][flash_backward]") {
  if (!gpu_or_warn()) return;
  const Mod softcap = softcap_mod(2.0f);
  const Mod causal = causal_mod();
  for (DType dtype : {DType::BF16, DType::F16}) {
    for (int head_dim : {64, 128}) {
      CAPTURE(dtype_name(dtype), head_dim);
      const Tensor q = normal_tensor(1, dtype, {2, 4, 77, head_dim});
      const Tensor k = normal_tensor(2, dtype, {2, 1, 133, head_dim});
      const Tensor v = normal_tensor(3, dtype, {2, 1, 133, head_dim});
      const Tensor dout = normal_tensor(4, dtype, {2, 4, 77, head_dim});
      AttentionOptions options;
      options.score_mod = &softcap;
      options.mask_mod = &causal;
      // Half the runs with dropout: the CPU forward's decisions are the device's.
      const Dropout dropout = head_dim == 64 ? Dropout{0.2f, 42} : Dropout{};
      Tensor out = Tensor::empty(dtype, {2, 4, 77, head_dim});
      Tensor lse;
      attention_dropout(q, k, v, out, options, dropout, &lse);  // on the CPU: the same forward, uploaded
      AttentionGradients grads;
      attention_backward(cuda::to_device(q), cuda::to_device(k), cuda::to_device(v), cuda::to_device(out),
                         cuda::to_device(lse), cuda::to_device(dout), grads, options, dropout);
      AttentionGradients ref;
      standard_attention_backward(q, k, v, dout, ref, options, dropout);
      const double tolerance = dtype == DType::BF16 ? 1e-2 : 2e-3;  // FlashBackwardTemplateTest's
      CHECK(attnc_test::relative_error(cuda::to_host(grads.dq), ref.dq) < tolerance);
      CHECK(attnc_test::relative_error(cuda::to_host(grads.dk), ref.dk) < tolerance);
      CHECK(attnc_test::relative_error(cuda::to_host(grads.dv), ref.dv) < tolerance);
    }
  }
  // A learned bias: its gradient is scatter-added on the device.
  const Mod bias = additive_bias_mod(normal_tensor(9, DType::F32, {1, 1, 77, 133}));
  const Mod bias_on_device = on_device(bias);
  const Tensor q = normal_tensor(1, DType::BF16, {2, 4, 77, 64});
  const Tensor k = normal_tensor(2, DType::BF16, {2, 2, 133, 64});
  const Tensor v = normal_tensor(3, DType::BF16, {2, 2, 133, 64});
  const Tensor dout = normal_tensor(4, DType::BF16, {2, 4, 77, 64});
  AttentionOptions options;
  options.score_mod = &bias;
  Tensor out = Tensor::empty(DType::BF16, {2, 4, 77, 64});
  Tensor lse;
  attention(q, k, v, out, options, &lse);
  AttentionGradients ref;
  standard_attention_backward(q, k, v, dout, ref, options);
  options.score_mod = &bias_on_device;
  AttentionGradients grads;
  attention_backward(cuda::to_device(q), cuda::to_device(k), cuda::to_device(v), cuda::to_device(out),
                     cuda::to_device(lse), cuda::to_device(dout), grads, options);
  CHECK(attnc_test::relative_error(cuda::to_host(grads.dparams.at("bias")), ref.dparams.at("bias")) < 1e-2);
}
