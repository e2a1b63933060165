#include "runtime/Attention.h"

#include <string>

#include <fmt/format.h>

#include "runtime/core/AttentionChecks.h"
#include "runtime/core/RuntimeError.h"
#include "runtime/families/decode/DecodeConfig.h"
#include "runtime/families/decode/DecodeCpu.h"
#include "runtime/families/decode/DecodeCuda.h"
#include "runtime/families/flash/FlashCpu.h"
#include "runtime/families/flash/FlashCuda.h"

namespace attnc {

namespace {

// Every defined tensor of the call must be on `device`.
void check_device(Device device, const Tensor& t, const std::string& role) {
  if (t.defined() && t.device() != device) {
    throw RuntimeError(fmt::format("attention: q is on {} but {} is on {}; move every tensor to one device",
                                   device_name(device), role, device_name(t.device())));
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
  check_mods_on_device("attention", device, options);
  // Short queries (decoding, speculative tokens) go to the decode family, which reads each K/V row
  // once per GQA group and splits the keys across the machine; longer ones to the flash family.
  const bool short_query = q.rank() == 4 && q.size(2) <= decode::kDecodeMaxQueryRows;
  switch (device) {
    case Device::Cpu:
      if (short_query) {
        decode::decode_attention(q, k, v, out, options, lse);
      } else {
        flash_attention(q, k, v, out, options, lse);
      }
      return;
    case Device::Cuda:
      if (short_query && v.defined() && v.rank() == 4 &&
          decode::decode_cuda_supports(q.dtype(), q.size(3), v.size(3))) {
        decode::decode_attention_cuda(q, k, v, out, options, lse);
      } else {
        flash::flash_attention_cuda(q, k, v, out, options, lse);
      }
      return;
  }
}

}  // namespace attnc
