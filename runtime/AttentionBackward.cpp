// attention_backward and attention_dropout (runtime/Attention.h): the training entry points,
// beside attention()'s dispatch in Attention.cpp.

#include <fmt/format.h>

#include "runtime/Attention.h"
#include "runtime/core/AttentionChecks.h"
#include "runtime/core/RuntimeError.h"
#include "runtime/families/flash/FlashCpu.h"
#include "runtime/families/flash/FlashCuda.h"
#include "runtime/families/flash_backward/FlashBackwardCpu.h"
#include "runtime/families/flash_backward/FlashBackwardCuda.h"
#include "runtime/reference/ReferenceBackward.h"

namespace attnc {

namespace {

void require_cpu(const char* function, const Tensor& t, const char* role) {
  if (t.defined() && t.device() != Device::Cpu) {
    throw RuntimeError(
        fmt::format("{}: {} is on {}; this runs on the CPU only for now", function, role, device_name(t.device())));
  }
}

void require_device(const char* function, const Tensor& t, const char* role, Device device) {
  if (t.defined() && t.device() != device) {
    throw RuntimeError(fmt::format("{}: q is on {} but {} is on {}; move every tensor to one device", function,
                                   device_name(device), role, device_name(t.device())));
  }
}

}  // namespace

void attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse,
                        const Tensor& dout, AttentionGradients& grads, const AttentionOptions& options,
                        const Dropout& dropout) {
  constexpr const char* kFunction = "attention_backward";
  const Device device = q.defined() ? q.device() : Device::Cpu;
  for (auto [t, role] : {std::pair{&q, "q"},
                         {&k, "k"},
                         {&v, "v"},
                         {&out, "out"},
                         {&lse, "lse"},
                         {&dout, "dout"},
                         {&grads.dq, "dq"},
                         {&grads.dk, "dk"},
                         {&grads.dv, "dv"}}) {
    require_device(kFunction, *t, role, device);
  }
  if (device == Device::Cuda) {
    // The CUDA template (runtime/families/flash_backward/flash_backward.cuh).
    check_mods_on_device(kFunction, device, options);
    flash_backward::flash_attention_backward_cuda(q, k, v, out, lse, dout, grads, options, dropout);
    return;
  }
  flash_attention_backward(q, k, v, out, lse, dout, grads, options, dropout);
}

void attention_dropout(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out, const AttentionOptions& options,
                       const Dropout& dropout, Tensor* lse) {
  if (!dropout.enabled()) {
    check_dropout("attention_dropout", dropout);
    attention(q, k, v, out, options, lse);
    return;
  }
  if (q.device() == Device::Cuda) {
    // The sm_80 flash template drops (the Hopper family does not yet): it runs on any card.
    flash::flash_attention_cuda(q, k, v, out, options, lse, dropout);
    return;
  }
  for (auto [t, role] : {std::pair{&q, "q"}, {&k, "k"}, {&v, "v"}, {&out, "out"}})
    require_cpu("attention_dropout", *t, role);
  FlashOptions flash;
  flash.dropout = dropout;
  flash_attention(q, k, v, out, options, flash, lse);
}

}  // namespace attnc
