#pragma once
// Tile maps: for each query tile of a call, the compact list of key tiles whose elements the mask may
// keep, each marked FULL (every element kept) or PARTIAL; the tiles not listed are EMPTY. This is
// what FlexAttention's BlockMask holds, but it is derived from the mask's compiled tile classifier
// (compiler/TileMapClassifier.h) once per tile pair, with every tensor the mask indexes summarised by
// per-block minima and maxima first, never from an S x S evaluation of the mask. Kernels that take a
// map (the Hopper family) walk the list instead of classifying tiles themselves.
//
// A map depends on the mask's signature and bound arguments, the call's sizes and q_offset, and the
// kernel's tile sizes (TileMapShape). It is built per call automatically, or once by the caller and
// passed in AttentionOptions::tile_map for every call with the same mask arguments: check_matches()
// refuses a map built for other sizes, tiles, mask signature or arguments (scalars by value, tensors
// by memory, shape and strides; the caller promises not to change tensor contents in between).
//
// The layout is runtime/kernels/tile_map_abi.cuh's (int32 counts and entries). Builders:
// build_tile_map_cpu (runtime/tilemap/TileMapCpu.h) and the CUDA pre-pass (TileMapCuda.h).

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/core/Mod.h"
#include "runtime/core/Tensor.h"
#include "runtime/kernels/tile_map_abi.cuh"

namespace attnc {

// What a map is built for: the call's sizes, q_offset, and the kernel's tiles.
struct TileMapShape {
  int32_t batch = 0, heads = 0, kv_heads = 0, q_len = 0, kv_len = 0;
  int32_t q_offset = 0;
  int32_t block_m = 0, block_n = 0;

  int32_t q_tiles() const { return (q_len + block_m - 1) / block_m; }
  int32_t kv_tiles() const { return (kv_len + block_n - 1) / block_n; }
  std::string describe() const;  // "B=2 H=4 Hkv=2 q_len=100 kv_len=90 q_offset=0 tiles 128x128"
  friend bool operator==(const TileMapShape&, const TileMapShape&) = default;
};

class TileMap {
 public:
  // Made by the builders. `counts` (rows) and `entries` (rows x kv_tiles) are contiguous int32 on one
  // device; rows are indexed b * batch_stride + h * head_stride + q_tile, the strides 0 when the
  // classes do not depend on b / h. `keep_alive` holds buffers the map's kernels used (summaries).
  TileMap(Mod mask, TileMapShape shape, Tensor counts, Tensor entries, int32_t batch_stride, int32_t head_stride,
          std::vector<Tensor> keep_alive = {});

  const TileMapShape& shape() const { return shape_; }
  Device device() const { return counts_.device(); }
  const Mod& mask() const { return mask_; }
  const Tensor& counts() const { return counts_; }
  const Tensor& entries() const { return entries_; }
  int32_t batch_stride() const { return batch_stride_; }
  int32_t head_stride() const { return head_stride_; }

  // What kernels read (pointers on device()).
  attnc_abi::TileMapView view() const;

  // RuntimeError, prefixed with `function`, unless this map was built for `mask` (its signature and
  // bound arguments) and `shape`.
  void check_matches(const char* function, const Mod& mask, const TileMapShape& shape) const;

  // 0 EMPTY, 1 FULL, 2 PARTIAL for (b, h, q_tile, kv_tile), from a map on the CPU (tests, tools).
  int tile_class(int32_t b, int32_t h, int32_t q_tile, int32_t kv_tile) const;
  // Live key tiles over the whole map (for reports): rows x their counts.
  int64_t live_tiles() const;

 private:
  Mod mask_;
  TileMapShape shape_;
  Tensor counts_, entries_;
  int32_t batch_stride_ = 0, head_stride_ = 0;
  std::vector<Tensor> keep_alive_;
};

}  // namespace attnc
