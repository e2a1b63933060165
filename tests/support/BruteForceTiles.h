#pragma once
// The oracle of tile classification: the class of every tile of one (b, h) from the interpreter at
// every element of the tile (EMPTY when it keeps none, FULL when it keeps all). Slow on purpose;
// for the tests of tile maps, their reports and `attnc explain`.

#include <cstdint>
#include <vector>

#include "runtime/core/Mod.h"
#include "runtime/tilemap/TileMap.h"

namespace attnc::test {

// 0 EMPTY, 1 FULL, 2 PARTIAL per tile, q_tiles x kv_tiles row-major. `mask` fully bound on the CPU.
std::vector<int> classify_tiles_by_elements(const Mod& mask, const TileMapShape& shape, int32_t b, int32_t h);

// The number of (q, kv) of one (b, h) the mask keeps, q_idx = shape.q_offset + q.
int64_t count_kept_elements(const Mod& mask, const TileMapShape& shape, int32_t b, int32_t h);

}  // namespace attnc::test
