#pragma once
// The tile map as kernels read it (runtime/tilemap/TileMap.h builds it, on the CPU or with the
// pre-pass kernel tile_map.cuh): for each query tile of BLOCK_M rows of one (b, h), the key tiles of
// BLOCK_N keys whose elements the mask may keep, in increasing order, each marked FULL (every
// element kept: no mask to evaluate) or PARTIAL. Key tiles that are not listed are EMPTY.
//
// The query tile qt of (b, h) is row `index = b * batch_stride + h * head_stride + qt`: its
// counts[index] entries are entries[index * capacity + i], i < counts[index], each
// kv_tile * 2 + (PARTIAL ? 1 : 0). A map whose classes do not depend on b (or h) has a stride of 0
// there and stores one row for all of them. Query tile qt covers the mods' positions
// q_offset + qt * BLOCK_M ... of the call it was built for.

#include "fixed_width_types.cuh"

#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define ATTNC_TILE_MAP_FN __host__ __device__ __forceinline__ constexpr
#else
#define ATTNC_TILE_MAP_FN inline constexpr
#endif

namespace attnc_abi {

struct TileMapView {
  const int32_t* counts;              // null: no map (no mask): every key tile is live and FULL
  const int32_t* entries;             // kv_tile * 2 + partial
  int32_t batch_stride, head_stride;  // in query-tile rows; 0 when the map does not depend on b / h
  int32_t capacity;                   // entries per query tile: the number of key tiles
  int32_t q_tiles;                    // query tiles per (b, h)
};

ATTNC_TILE_MAP_FN int32_t tile_map_entry(int32_t kv_tile, bool partial) { return kv_tile * 2 + (partial ? 1 : 0); }
ATTNC_TILE_MAP_FN int32_t tile_map_kv_tile(int32_t entry) { return entry >> 1; }
ATTNC_TILE_MAP_FN bool tile_map_partial(int32_t entry) { return (entry & 1) != 0; }

}  // namespace attnc_abi
