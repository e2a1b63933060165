#include "runtime/Attention.h"

#include <string>
#include <variant>

#include <fmt/format.h>

#include "runtime/core/Mods.h"
#include "runtime/core/RuntimeError.h"
#include "runtime/families/flash/FlashCpu.h"
#include "runtime/families/flash/FlashCuda.h"
#include "runtime/families/linear/LinearCpu.h"
#include "runtime/families/linear/LinearCuda.h"

namespace attnc {

namespace {

// Every defined tensor of the call must be on `device`.
void check_device(Device device, const Tensor& t, const std::string& role) {
  if (t.defined() && t.device() != device) {
    throw RuntimeError(fmt::format("attention: q is on {} but {} is on {}; move every tensor to one device",
                                   device_name(device), role, device_name(t.device())));
  }
}

void check_mod_device(Device device, const Mod* mod) {
  if (mod == nullptr) return;
  for (size_t i = 0; i < mod->def().params.size(); ++i) {
    const auto& argument = mod->argument(i);
    if (!argument) continue;  // unbound: reported by the backend
    if (const Tensor* tensor = std::get_if<Tensor>(&*argument)) {
      check_device(device, *tensor, fmt::format("{}'s parameter '{}'", mod->describe(), mod->def().params[i].name));
    }
  }
}

}  // namespace

void attention(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out, const AttentionOptions& options,
               Tensor* lse) {
  if (!q.defined()) throw RuntimeError("attention: q is undefined");
  const Device device = q.device();
  check_device(device, k, "k");
  check_device(device, v, "v");
  check_device(device, out, "out");
  if (lse != nullptr) check_device(device, *lse, "lse");
  check_mod_device(device, options.score_mod);
  check_mod_device(device, options.mask_mod);
  switch (device) {
    case Device::Cpu: flash_attention(q, k, v, out, options, lse); return;
    case Device::Cuda: flash::flash_attention_cuda(q, k, v, out, options, lse); return;
  }
}

void attention(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out, const Tensor& mask,
               const AttentionOptions& options, Tensor* lse) {
  attention(q, k, v, out, with_mask(options, mask), lse);
}

void linear_attention(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out,
                      const LinearAttentionOptions& options) {
  if (!q.defined()) throw RuntimeError("linear_attention: q is undefined");
  const Device device = q.device();
  check_device(device, k, "k");
  check_device(device, v, "v");
  check_device(device, out, "out");
  check_device(device, options.mask, "mask");
  switch (device) {
    case Device::Cpu: linear_attention_cpu(q, k, v, out, options); return;
    case Device::Cuda: linear::linear_attention_cuda(q, k, v, out, options); return;
  }
}

}  // namespace attnc
