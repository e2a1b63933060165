#pragma once
// The tile-map pre-pass on the GPU (runtime/tilemap/TileMap.h): builds, for every query tile of a
// call, the compact list of live key tiles that kernels like the Hopper template walk
// (tile_map_abi.cuh). Two kinds of kernel:
//
//   summarize   one thread per block of one tensor the mask indexes: the block's minimum and
//               maximum (attnc_abi::range_int / range_float, the semantics of the IR's LoadRange),
//               written contiguously as int32 or fp32. The classifier reads these instead of walking
//               the tensor.
//   build       one CTA of 128 threads per (query tile, b, h) of the map: each thread classifies
//               one key tile with the generated classifier (0 EMPTY, 1 FULL, 2 PARTIAL), and the
//               CTA compacts the non-EMPTY ones in increasing order with a prefix sum (warp shuffles,
//               then the warps' totals through shared memory), 128 key tiles per round.
//
// The translation unit (runtime/tilemap/TileMapSource.cpp) is this header, the generated code of
// compiler/TileMapClassifier.h's classifier (attnc_gen::ModParams with the mask's parameters and
// the summaries, and attnc_gen::tile_map_class), an adapter, and the instantiations:
//   ATTNC_INSTANTIATE_TILE_MAP_BUILD(attnc_tile_map_build, Classifier, attnc_gen::ModParams)
//   ATTNC_INSTANTIATE_TILE_MAP_SUMMARY(attnc_tile_map_summary0, I32, false, 2)   one per summary
// Launches: summaries first (grid ceil(count / 128), 128 threads), then build (grid (q_tiles,
// heads of the map, batches of the map), 128 threads, 16 bytes of dynamic shared memory).

#include "device_primitives.cuh"
#include "mod_abi.cuh"
#include "tile_map_abi.cuh"

namespace attnc_tile_map {

using attnc_abi::ModPoint;
using attnc_abi::TileBox;

template <class ModParams>
struct BuildParams {
  int32_t* counts;
  int32_t* entries;
  int32_t batch_stride, head_stride, capacity, q_tiles;  // the map's layout (tile_map_abi.cuh)
  int32_t batch, num_heads, num_kv_heads, q_len, kv_len, q_offset, block_m, block_n;  // the call
  ModParams mods;  // the classifier's parameters: the mask's, then the summaries
};

// Classifier: static int classify(const TileBox&, const ModPoint&, const ModParams&).
template <class Classifier, class ModParams>
struct BuildTileMap {
  static constexpr int kThreads = 128;
  static constexpr int kWarps = kThreads / 32;
  static constexpr int kSharedBytes = kWarps * 4;

  static ATTNC_DEVICE_INLINE void run(const BuildParams<ModParams>& p) {
    const int tid = attnc_dev::thread_idx_x(), lane = tid % 32, warp = tid / 32;
    const int q_tile = attnc_dev::block_idx_x(), h = attnc_dev::block_idx_y(), b = attnc_dev::block_idx_z();
    const int64_t row = int64_t(b) * p.batch_stride + int64_t(h) * p.head_stride + q_tile;
    int32_t* warp_totals = reinterpret_cast<int32_t*>(attnc_dev::dynamic_shared_memory());
    const int q_end = q_tile * p.block_m + p.block_m < p.q_len ? q_tile * p.block_m + p.block_m : p.q_len;
    const ModPoint point{b, h, 0, 0, p.q_len, p.kv_len, p.num_heads, p.num_kv_heads};
    int count = 0;
    for (int chunk = 0; chunk < p.capacity; chunk += kThreads) {
      const int kv_tile = chunk + tid;
      int tile_class = 0;
      if (kv_tile < p.capacity) {
        const int kv_first = kv_tile * p.block_n;
        const int kv_end = kv_first + p.block_n < p.kv_len ? kv_first + p.block_n : p.kv_len;
        const TileBox box{p.q_offset + q_tile * p.block_m, p.q_offset + q_end - 1, kv_first, kv_end - 1};
        tile_class = Classifier::classify(box, point, p.mods);
      }
      const int live = tile_class != 0 ? 1 : 0;
      // Inclusive prefix sum of `live` over the warp (Hillis-Steele with shuffles).
      int prefix = live;
      ATTNC_UNROLL
      for (int d = 1; d < 32; d *= 2) {
        const int other =
            static_cast<int>(attnc_dev::shfl_idx(static_cast<uint32_t>(prefix), lane >= d ? lane - d : lane));
        if (lane >= d) prefix += other;
      }
      if (lane == 31) warp_totals[warp] = prefix;
      attnc_dev::block_barrier();
      int before = 0, total = 0;
      ATTNC_UNROLL
      for (int w = 0; w < kWarps; ++w) {
        before += w < warp ? warp_totals[w] : 0;
        total += warp_totals[w];
      }
      if (live != 0) {
        p.entries[row * p.capacity + count + before + prefix - 1] = attnc_abi::tile_map_entry(kv_tile, tile_class == 2);
      }
      count += total;
      attnc_dev::block_barrier();  // warp_totals is rewritten next round
    }
    if (tid == 0) p.counts[row] = count;
  }
};

// One summary: `source` cut into blocks of block[d] elements per dimension (the last one shorter),
// the minima and maxima of the blocks written to `minima` / `maxima` in C order of `blocks`.
struct SummaryParams {
  attnc_abi::TensorParam source;
  void* minima;
  void* maxima;
  int64_t block[attnc_abi::kMaxRank];
  int64_t blocks[attnc_abi::kMaxRank];
  int64_t count;  // the product of blocks
};

template <attnc_abi::Storage S, bool IS_FLOAT, int RANK>
ATTNC_DEVICE_INLINE void summarize(const SummaryParams& p) {
  const int64_t i = int64_t(attnc_dev::block_idx_x()) * 128 + attnc_dev::thread_idx_x();
  if (i >= p.count) return;
  int64_t first[RANK], last[RANK];
  int64_t rest = i;
  ATTNC_UNROLL
  for (int d = RANK - 1; d >= 0; --d) {
    const int64_t j = rest % p.blocks[d];
    rest /= p.blocks[d];
    first[d] = j * p.block[d];
    last[d] = first[d] + p.block[d] - 1 < p.source.shape[d] - 1 ? first[d] + p.block[d] - 1 : p.source.shape[d] - 1;
  }
  if (IS_FLOAT) {
    static_cast<float*>(p.minima)[i] = attnc_abi::range_float<S, true, RANK>(p.source, first, last);
    static_cast<float*>(p.maxima)[i] = attnc_abi::range_float<S, false, RANK>(p.source, first, last);
  } else {
    static_cast<int32_t*>(p.minima)[i] = attnc_abi::range_int<S, true, RANK>(p.source, first, last);
    static_cast<int32_t*>(p.maxima)[i] = attnc_abi::range_int<S, false, RANK>(p.source, first, last);
  }
}

}  // namespace attnc_tile_map

#define ATTNC_INSTANTIATE_TILE_MAP_BUILD(NAME, CLASSIFIER, MOD_PARAMS)                                               \
  extern "C" ATTNC_KERNEL void ATTNC_LAUNCH_BOUNDS(128) NAME(const attnc_tile_map::BuildParams<MOD_PARAMS> params) { \
    attnc_tile_map::BuildTileMap<CLASSIFIER, MOD_PARAMS>::run(params);                                               \
  }

#define ATTNC_INSTANTIATE_TILE_MAP_SUMMARY(NAME, STORAGE, IS_FLOAT, RANK)                                  \
  extern "C" ATTNC_KERNEL void ATTNC_LAUNCH_BOUNDS(128) NAME(const attnc_tile_map::SummaryParams params) { \
    attnc_tile_map::summarize<attnc_abi::Storage::STORAGE, IS_FLOAT, RANK>(params);                        \
  }
