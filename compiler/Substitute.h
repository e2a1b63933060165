#pragma once
// Substitution of a definition's inputs: the one mechanism behind inlining calls and composing
// mods (compose_score_mods, and_masks, ...). Replaces the Score builtin, scalar parameters and
// tensor parameter references of an expression, sharing everything else.

#include <optional>
#include <vector>

#include "compiler/IR.h"

namespace attnc::ir {

struct Substitution {
  std::optional<Expr> score;            // replaces Builtin::Score when set
  std::vector<Expr> scalar_params;      // replaces Param #i (entries for tensor params unused)
  std::vector<uint32_t> tensor_params;  // tensor param #i becomes tensor param #tensor_params[i]
                                        // in Load, LoadRange, Extent and TensorRef nodes
};

// `expr` with the substitution applied. Parameters outside the vectors' range are left alone.
Expr substitute(const Expr& expr, const Substitution& substitution);

// The substitution's rule for one node whose operands have been substituted already (what
// `substitute` applies at every node): the replacement of a Score, Param or TensorRef leaf, an
// Extent, Load or LoadRange re-pointed at the substituted tensor, or `node` itself.
Expr substitute_node(const Expr& node, const Substitution& substitution);

}  // namespace attnc::ir
