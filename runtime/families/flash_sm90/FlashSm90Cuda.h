#pragma once
// The Hopper forward family on a GPU, staged as the flash family:
//
//   FlashSm90Spec --plan_flash_sm90_kernel--> FlashSm90Plan --load_flash_sm90_kernel(plan, cache)-->
//   FlashSm90Kernel --launch(q, k, v, out, lse, options, stream)--> results
//
// Loading goes through the kernel cache and needs no GPU; the cubin is loaded into the driver on the
// first launch. A launch encodes four tensor maps (q, k, v, out as (d, row, head, batch), through
// the driver's cuTensorMapEncodeTiled), and with a mask mod walks a tile map: options.tile_map when
// the caller built one (runtime/Attention.h, build_tile_map; checked against the call), otherwise
// one built now by the pre-pass (runtime/tilemap/TileMapCuda.h), in which case the launch waits
// for the kernel before freeing it.
//
// Launch checks, with RuntimeErrors saying which: the shared attention checks with CUDA tensors of
// the kernel's dtype and head dims, then what TMA needs: 16-byte aligned data, head dim contiguous,
// every other stride a multiple of 8 elements and nonzero where its extent is above 1; mods of the
// compiled signatures, fully bound, with device tensor arguments.

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "compiler/CudaCodegen.h"
#include "runtime/cache/KernelCache.h"
#include "runtime/core/AttentionOptions.h"
#include "runtime/core/Tensor.h"
#include "runtime/cuda/CudaDriver.h"
#include "runtime/families/flash_sm90/FlashSm90Source.h"
#include "runtime/kernels/tile_map_abi.cuh"
#include "runtime/tilemap/TileMap.h"

namespace attnc::flash_sm90 {

// What a launch asks cuTensorMapEncodeTiled for, for one of q, k, v and out (B, H, S, D): 16-bit
// elements, dims (D, S, H, B), byte strides of the last three, a box of (64, box_rows, 1, 1), the
// 128-byte swizzle. A dimension of extent 1 gets a stride that its neighbours imply (the copy engine
// never steps along it, but the encoder checks every stride).
struct TensorMapRequest {
  const void* global = nullptr;
  uint64_t dims[4] = {};
  uint64_t strides[3] = {};
  uint32_t box[4] = {};
};
TensorMapRequest attention_tensor_map(const Tensor& t, uint32_t box_rows);

// Fills a 128-byte tensor map for a request (the driver's encoder on a GPU; tests pass the host
// emulation's).
using TensorMapEncoder = std::function<void(void* map, const TensorMapRequest& request)>;

class FlashSm90Kernel {
 public:
  FlashSm90Kernel(FlashSm90Plan plan, KernelKey key, CacheSource source, std::shared_ptr<const CachedKernel> binary,
                  ir::CudaModSource mods, int device);
  ~FlashSm90Kernel();

  const FlashSm90Spec& spec() const { return plan_.spec; }
  const KernelKey& key() const { return key_; }
  CacheSource source() const { return source_; }
  const std::string& cubin() const { return binary_->payload; }
  const Sm90Tiles& tiles() const { return plan_.tiles; }
  size_t shared_bytes() const { return shared_bytes_; }

  // The tile-map shape of a call (its sizes and q_offset with the kernel's tiles).
  TileMapShape tile_map_shape(const Tensor& q, const Tensor& k, const AttentionOptions& options) const;

  // Launches attention on `stream` (see the header comment); returns without waiting unless it had
  // to build a tile map, or check_bounds is on.
  void launch(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out, const Tensor* lse,
              const AttentionOptions& options, cuda::CuStream stream = nullptr) const;

  // The checked bytes of the kernel's FlashSm90Params for these tensors, options and tile map (its
  // view; ignored without a mask mod), with tensor maps made by `encode`. For tests.
  std::vector<unsigned char> pack_arguments(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                                            const Tensor* lse, const AttentionOptions& options,
                                            const attnc_abi::TileMapView& map, void* bounds,
                                            const TensorMapEncoder& encode) const;

 private:
  cuda::CuFunction function() const;

  FlashSm90Plan plan_;
  KernelKey key_;
  CacheSource source_;
  std::shared_ptr<const CachedKernel> binary_;
  ir::CudaModSource mods_;
  size_t shared_bytes_ = 0;
  int device_ = 0;
  mutable std::mutex load_mutex_;
  mutable std::unique_ptr<cuda::CudaModule> module_;
  mutable cuda::CuFunction function_ = nullptr;
};

std::shared_ptr<const FlashSm90Kernel> load_flash_sm90_kernel(const FlashSm90Plan& plan, KernelCache& cache,
                                                              int device = 0);

// Whether the Hopper kernel takes this call (dtype, head dims, strides TMA can describe).
bool flash_sm90_accepts(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out);

// attention() on CUDA tensors of a compute capability 9.0 device: kernels from
// cuda::default_kernel_cache(), kept loaded for the life of the process; launches on the default
// stream and waits. An undefined *lse is allocated on the device.
void flash_attention_sm90(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                          const AttentionOptions& options, Tensor* lse);

// The tile map flash_attention_sm90 would build for this call (q, k, options.mask_mod, q_offset),
// for callers who reuse it across calls (runtime/Attention.h, build_tile_map). Waits for it.
std::shared_ptr<const TileMap> build_flash_sm90_tile_map(const Tensor& q, const Tensor& k, const Tensor& v,
                                                         const AttentionOptions& options);

}  // namespace attnc::flash_sm90
