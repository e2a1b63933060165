#pragma once
// The tile classifier (compiler/TileClassifier.h) as a tile-map pre-pass runs it: once per (query
// tile, key tile) pair of a call, with every tensor summary read from precomputed per-block minima
// and maxima instead of a walk over the tile's box.
//
// A LoadRange may be answered from any box that contains it (compiler/IR.h), so replacing the box
// [first, last] of dimension d by the blocks of `block[d]` elements that cover it keeps the
// classification sound: EMPTY and FULL are still only claimed when true. The rewrite is
//   LoadRange(op, t, first, last)  ->  LoadRange(op, t_op, first / block, last / block)
// where t_op holds, for each block, the op (min or max) of t's elements in it. Clamping commutes with
// the division (clamp(x / g) == clamp(x) / g for the block tensor's extents ceil(n / g)), so the
// clamped indices of the original select exactly the blocks its clamped box touches.
//
// Blocks per dimension follow what the dimension is indexed with: q_block along dimensions whose
// indices depend on the query tile (q_tile_first / q_tile_last), kv_block along the key tile, their
// greatest common divisor where both (a document mask's ids: 128 x 128 tiles read blocks of 128,
// 128 x 80 tiles blocks of 16), and 1 (exact) where neither (b, h, scalars). A tensor whose blocks
// are all 1 keeps being read directly. Where every box is a union of blocks (tiles aligned to the
// blocks, tail tiles ending at a block boundary or at the tensor's end) the classification is the
// same as TileClassifier's; elsewhere (a q_offset that is not a multiple of the block, indices like
// q_idx + 3, a sequence shorter than its ids) it may say PARTIAL where TileClassifier would say EMPTY
// or FULL, never the reverse.

#include <cstdint>
#include <vector>

#include "compiler/IR.h"
#include "compiler/Module.h"

namespace attnc::ir {

// One tensor parameter of the mask, summarised by blocks.
struct BlockSummary {
  uint32_t param = 0;          // the mask's tensor parameter
  Type elem = Type::Int;       // Int (summaries stored as int32) or Float (stored as fp32)
  std::vector<int64_t> block;  // block extent per dimension, >= 1
  uint32_t min_param = 0;      // the classifier's parameter holding the block minima
  uint32_t max_param = 0;      // ... and the block maxima (same shape: ceil(extent / block) per dim)
};

struct TileMapClassifier {
  Expr expr;                      // Int: 0 EMPTY, 1 FULL, 2 PARTIAL; optimised
  std::vector<ParamDecl> params;  // the mask's parameters, then min and max of each summary
  std::vector<BlockSummary> summaries;
  bool reads_batch = false;  // whether the class can depend on b
  bool reads_head = false;   // ... on h
};

// The classifier of an optimised mask mod for tiles of q_block query rows and kv_block keys.
TileMapClassifier build_tile_map_classifier(const ModDef& mask, int32_t q_block, int32_t kv_block);

}  // namespace attnc::ir
