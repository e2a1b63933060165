#include "tools/attnc/RunDevice.h"

#include <cstdio>
#include <vector>

#include <fmt/format.h>

#include "runtime/Attention.h"
#include "runtime/core/Mods.h"
#include "runtime/core/RuntimeError.h"
#include "runtime/cuda/CudaDriver.h"
#include "runtime/cuda/DeviceTensor.h"
#include "tools/attnc/RunLinear.h"
#include "tools/attnc/RunPaged.h"

namespace attnc::cli {

namespace {

// A copy of `mod` whose tensor arguments live on the GPU.
Mod with_device_tensors(const Mod& mod) {
  Mod copy = mod;
  for (size_t i = 0; i < mod.def().params.size(); ++i) {
    const auto& argument = mod.argument(i);
    if (argument) {
      if (const Tensor* t = std::get_if<Tensor>(&*argument)) copy.bind(mod.def().params[i].name, cuda::to_device(*t));
    }
  }
  return copy;
}

// A bool or uint8 host mask as int32 0 / 1 of the same shape: mask mods on CUDA read int tensors.
Tensor as_int32_mask(const Tensor& mask) {
  const Tensor source = mask.contiguous_copy();
  Tensor ints = Tensor::empty(DType::I32, source.shape());
  const auto* bytes = static_cast<const unsigned char*>(source.data());
  auto* values = static_cast<int32_t*>(ints.data());
  for (int64_t i = 0; i < source.numel(); ++i) values[i] = bytes[i] != 0 ? 1 : 0;
  return ints;
}

void use_gpu_0() {
  cuda::CudaDriver& driver = cuda::CudaDriver::get();  // "no CUDA driver (libcuda.so.1) on this machine"
  if (driver.device_count() == 0) throw RuntimeError("the CUDA driver sees no GPU on this machine");
  driver.use_device(0);
}

void run_linear_on_gpu(const RunOptions& o, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                       Tensor& out) {
  const LinearPlacement placement = place_linear_queries(o.causal, o.q_offset, k.rank() == 4 ? k.size(2) : 0);
  LinearAttentionOptions options;
  options.causal = placement.causal;
  if (mask.defined()) options.mask = cuda::to_device(mask);  // the linear family reads bool or uint8 keys
  const Tensor padded_q = pad_query_rows(q, placement.pad_rows);
  Tensor device_out = cuda::empty_device_tensor(out.dtype(), {out.size(0), out.size(1), padded_q.size(2), out.size(3)});
  linear_attention(cuda::to_device(padded_q), cuda::to_device(k), cuda::to_device(v), device_out, options);
  const Tensor padded_out = cuda::to_host(device_out);
  drop_query_rows(padded_out, placement.pad_rows, out);
}

}  // namespace

void run_on_gpu(const RunOptions& o, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, Tensor& out,
                const AttentionOptions& options, std::optional<Tensor>& lse) {
  use_gpu_0();
  if (o.kernel == RunKernel::Linear) {
    run_linear_on_gpu(o, q, k, v, mask, out);
    return;
  }
  if (q.dtype() != DType::F16 && q.dtype() != DType::BF16) {
    throw RuntimeError(fmt::format("--device cuda needs fp16 or bf16 inputs; q is {}", dtype_name(q.dtype())));
  }
  std::optional<Mod> score_dev, mask_dev;
  if (options.score_mod) score_dev = with_device_tensors(*options.score_mod);
  if (options.mask_mod) mask_dev = with_device_tensors(*options.mask_mod);
  AttentionOptions device_options = options;
  device_options.score_mod = score_dev ? &*score_dev : nullptr;
  device_options.mask_mod = mask_dev ? &*mask_dev : nullptr;
  const MaskedOptions masked =
      with_mask(device_options, mask.defined() ? cuda::to_device(as_int32_mask(mask)) : Tensor());
  Tensor device_out = cuda::empty_device_tensor(out.dtype(), out.shape());
  Tensor device_lse;
  if (lse) device_lse = cuda::empty_device_tensor(DType::F32, lse->shape());
  const Tensor device_q = cuda::to_device(q), device_k = cuda::to_device(k), device_v = cuda::to_device(v);
  if (o.page_size != 0) {
    run_paged(device_q, device_k, device_v, device_out, masked, lse ? &device_lse : nullptr, o.page_size, o.seed,
              stderr);
  } else {
    attention(device_q, device_k, device_v, device_out, masked, lse ? &device_lse : nullptr);
  }
  out = cuda::to_host(device_out);
  if (lse) lse = cuda::to_host(device_lse);
}

}  // namespace attnc::cli
