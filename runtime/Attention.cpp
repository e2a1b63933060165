#include "runtime/Attention.h"

#include <cstdlib>
#include <mutex>
#include <string>

#include <fmt/format.h>

#include "runtime/core/AttentionChecks.h"
#include "runtime/core/Mods.h"
#include "runtime/core/RuntimeError.h"
#include "runtime/cuda/CudaDriver.h"
#include "runtime/families/decode/DecodeConfig.h"
#include "runtime/families/decode/DecodeCpu.h"
#include "runtime/families/decode/DecodeCuda.h"
#include "runtime/families/flash/FlashCpu.h"
#include "runtime/families/flash/FlashCuda.h"
#include "runtime/families/flash_sm90/FlashSm90Cuda.h"
#include "runtime/tilemap/TileMap.h"
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

// Whether a CUDA call goes to the Hopper family: device 0 is sm_90a (asked once per process), the
// kernel takes the call, and ATTNC_NO_SM90 is not set.
bool use_sm90(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out) {
  static std::once_flag once;
  static bool hopper = false;
  std::call_once(once, [] {
    const char* off = std::getenv("ATTNC_NO_SM90");
    // Without a driver the flash family's path reports it (after its argument checks), as before.
    hopper = (off == nullptr || std::string(off) != "1") && cuda::CudaDriver::available() &&
             cuda::CudaDriver::get().device_count() > 0 && cuda::CudaDriver::get().device_info(0).arch() == "sm_90a";
  });
  return hopper && flash_sm90::flash_sm90_accepts(q, k, v, out);
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
      } else if (use_sm90(q, k, v, out)) {
        flash_sm90::flash_attention_sm90(q, k, v, out, options, lse);
      } else {
        flash::flash_attention_cuda(q, k, v, out, options, lse);
      }
      return;
  }
}

std::shared_ptr<const TileMap> build_tile_map(const Tensor& q, const Tensor& k, const Tensor& v,
                                              const AttentionOptions& options) {
  if (!q.defined() || q.device() != Device::Cuda || options.mask_mod == nullptr) return nullptr;
  // The output's layout does not change the choice: a contiguous one of q's dtype stands in.
  const Tensor out =
      Tensor::from_data(q.data(), q.dtype(), {q.size(0), q.size(1), q.size(2), v.size(3)}, {}, Device::Cuda);
  if (!use_sm90(q, k, v, out)) return nullptr;
  return flash_sm90::build_flash_sm90_tile_map(q, k, v, options);
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
