#pragma once
// Running the Hopper template (runtime/families/flash_sm90/flash_attention_sm90.cuh) under the host
// emulation in tests: the tensor maps a launch would encode (here with the emulation's encoder), a
// tile map given as host vectors, the grid and the shared memory the launcher uses.

#include <cmath>
#include <cstring>
#include <vector>

#include <catch2/catch.hpp>

#include "runtime/core/Tensor.h"
#include "runtime/emulation/HostEmulation.h"
#include "runtime/families/flash_sm90/flash_attention_sm90.cuh"

namespace attnc::test {

// A tile map in host memory (tile_map_abi.cuh's layout).
struct HostTileMap {
  std::vector<int32_t> counts, entries;
  int32_t batch_stride = 0, head_stride = 0, capacity = 0, q_tiles = 0;

  attnc_abi::TileMapView view() const {
    return attnc_abi::TileMapView{counts.data(), entries.data(), batch_stride, head_stride, capacity, q_tiles};
  }
};

// The map of `keep(b, h, q_idx, kv_idx)` by brute force over every element (the oracle the real
// builders are compared with): per (b, h, query tile of block_m rows at q_offset, key tile).
template <class Keep>
HostTileMap brute_force_tile_map(int batch, int heads, int q_len, int kv_len, int q_offset, int block_m, int block_n,
                                 Keep&& keep) {
  HostTileMap map;
  map.q_tiles = (q_len + block_m - 1) / block_m;
  map.capacity = (kv_len + block_n - 1) / block_n;
  map.head_stride = map.q_tiles;
  map.batch_stride = heads * map.q_tiles;
  map.counts.assign(size_t(batch) * heads * map.q_tiles, 0);
  map.entries.assign(map.counts.size() * map.capacity, -1);
  for (int b = 0; b < batch; ++b) {
    for (int h = 0; h < heads; ++h) {
      for (int qt = 0; qt < map.q_tiles; ++qt) {
        const size_t row = size_t(b) * map.batch_stride + size_t(h) * map.head_stride + qt;
        for (int kt = 0; kt < map.capacity; ++kt) {
          bool any = false, all = true;
          for (int q = qt * block_m; q < std::min(q_len, (qt + 1) * block_m); ++q) {
            for (int kv = kt * block_n; kv < std::min(kv_len, (kt + 1) * block_n); ++kv) {
              const bool kept = keep(b, h, q_offset + q, kv);
              any = any || kept;
              all = all && kept;
            }
          }
          if (!any) continue;
          map.entries[row * map.capacity + map.counts[row]++] = attnc_abi::tile_map_entry(kt, !all);
        }
      }
    }
  }
  return map;
}

// A 4-D tensor map (d, row, head, batch) over `t` (B, H, S, D) with boxes of (64, box_rows).
inline void encode_attention_map(attnc_dev::TensorMap& map, const Tensor& t, uint32_t box_rows) {
  const uint64_t dims[4] = {uint64_t(t.size(3)), uint64_t(t.size(2)), uint64_t(t.size(1)), uint64_t(t.size(0))};
  // A stride of a dimension of extent 1 is never used; the encoder still wants a multiple of 16.
  auto stride = [&](size_t d) { return t.size(d) == 1 ? uint64_t(16) : uint64_t(t.stride(d)) * 2; };
  const uint64_t strides[3] = {stride(2), stride(1), stride(0)};
  const uint32_t box[4] = {64, box_rows, 1, 1};
  host_emulation::encode_tensor_map(&map, t.data(), 2, 4, dims, strides, box, host_emulation::TensorMapSwizzle::B128);
}

// Runs FlashForwardSm90<Mods, Elem, D, DV, BN, STAGES> on host tensors; out and lse are written.
template <class Mods, class Elem, int D, int DV, int BN, int STAGES>
host_emulation::LaunchStats run_sm90(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                                     const Tensor* lse, const typename Mods::Params& mods, const HostTileMap* map,
                                     int q_offset, float scale, attnc_abi::BoundsReport* bounds = nullptr) {
  using Kernel = attnc_flash_sm90::FlashForwardSm90<Mods, Elem, D, DV, BN, STAGES>;
  auto p = std::make_unique<attnc_flash_sm90::FlashSm90Params<typename Mods::Params>>();
  encode_attention_map(p->q_map, q, 64);
  encode_attention_map(p->k_map, k, BN);
  encode_attention_map(p->v_map, v, BN);
  encode_attention_map(p->out_map, out, 64);
  p->lse = lse != nullptr ? static_cast<float*>(lse->data()) : nullptr;
  if (lse != nullptr) {
    p->lse_batch_stride = lse->stride(0), p->lse_head_stride = lse->stride(1), p->lse_row_stride = lse->stride(2);
  }
  p->tile_map = map != nullptr ? map->view() : attnc_abi::TileMapView{nullptr, nullptr, 0, 0, 0, 0};
  p->batch = int32_t(q.size(0)), p->num_heads = int32_t(q.size(1)), p->num_kv_heads = int32_t(k.size(1));
  p->q_len = int32_t(q.size(2)), p->kv_len = int32_t(k.size(2));
  p->q_offset = q_offset;
  p->scale = scale;
  p->mods = mods;
  p->bounds = bounds;
  const host_emulation::Dim3 grid{uint32_t((q.size(2) + 127) / 128), uint32_t(q.size(1)), uint32_t(q.size(0))};
  const auto* params = p.get();
  return host_emulation::launch(grid, host_emulation::Dim3{384, 1, 1}, Kernel::kSharedBytes,
                                [params] { Kernel::run(*params); });
}

}  // namespace attnc::test
