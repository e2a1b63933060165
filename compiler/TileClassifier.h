#pragma once
// Tile classification: the analysis that makes masks cheap. For a tile of queries
// [q_first, q_last] x keys [kv_first, kv_last] (inclusive) of one (b, h), with the parameters bound,
// it says whether the mask keeps no element (Empty), every element (Full) or some (Partial).
// Kernels skip Empty tiles, run Full tiles without the mask, and evaluate the mask per element
// only on Partial tiles.
//
// It works by interval (range) analysis over the mask's IR: each Int subexpression becomes an
// exact-integer interval (bounds kept in Int64 so they cannot wrap; an interval that leaves the
// int32 range is widened to all ints because the real value wrapped), each Bool a pair
// (may be true, may be false), each Float an interval plus "may be NaN". Tensor lookups become
// min/max summaries of the box of indices the tile can read (LoadRange), so a document mask sees
// two tiles with disjoint document-id ranges as Empty.
//
// Guarantees: sound for every mask (Empty and Full are never claimed wrongly). Exact (Partial only
// when the tile really is mixed) for causal, bottom-right causal, both kinds of sliding window
// (window >= 1) and prefix-LM, because each of their conditions is monotone in one of q_idx,
// kv_idx or q_idx - kv_idx, whose values over a rectangular tile form a contiguous range.
//
// The classifier is itself IR (an Int expression: 0 Empty, 1 Full, 2 Partial) over b, h, the
// sizes, the parameters and the Tile* builtins, so backends compile it into their kernels; the
// interpreter runs it for the reference path and the tests.

#include <cstdint>

#include "compiler/IR.h"
#include "compiler/Interpreter.h"
#include "compiler/Module.h"

namespace attnc::ir {

enum class TileClass : int32_t { Empty = 0, Full = 1, Partial = 2 };

const char* tile_class_name(TileClass c);  // "EMPTY", "FULL", "PARTIAL"

// The classifier of an optimised mask mod (compiler/Pipeline.h), itself optimised.
Expr build_tile_classifier(const ModDef& mask);

// The interpreter path: a classifier compiled once, evaluated per tile.
class TileClassifier {
 public:
  explicit TileClassifier(const ModDef& mask);

  const Expr& expr() const { return expr_; }
  // `env` holds b, h, the sizes and the bound parameters; the tile bounds are set here.
  TileClass classify(Environment& env, int32_t q_first, int32_t q_last, int32_t kv_first, int32_t kv_last) const;

 private:
  Expr expr_;
  CompiledExpr compiled_;
};

}  // namespace attnc::ir
