#pragma once
// Building a tile map on the CPU (runtime/tilemap/TileMap.h), with the interpreter: the block
// summaries of every tensor the mask's classifier reads (compiler/TileMapClassifier.h), then the
// classifier once per (query tile, key tile) pair. The reference for the CUDA pre-pass, and what
// the CPU kernels can walk.

#include <span>

#include "compiler/IR.h"
#include "runtime/core/Mod.h"
#include "runtime/core/Tensor.h"
#include "runtime/tilemap/TileMap.h"

namespace attnc {

// The map of a fully bound mask mod whose tensors are on the CPU, for `shape`. RuntimeError for a
// mod that is not a mask, is not fully bound, has tensors elsewhere, or tiles that are not positive.
TileMap build_tile_map_cpu(const Mod& mask, const TileMapShape& shape);

// The minima (or maxima) of `source`'s elements, read as `elem` (Int: int32, wrapping int64; Float:
// fp32 from any float storage, NaN skipped unless a block is all NaN), over blocks of block[d]
// elements per dimension: a contiguous int32 or fp32 CPU tensor of extents ceil(extent / block).
Tensor summarize_blocks(const Tensor& source, ir::Type elem, std::span<const int64_t> block, bool minima);

}  // namespace attnc
