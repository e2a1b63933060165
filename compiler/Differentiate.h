#pragma once
// Derivatives of a score mod, for the backward pass: d s' / d score, and d s' / d (each element of a
// float tensor parameter the mod reads), built as IR by reverse-mode differentiation of the DAG. The
// results are ordinary Float (and Int) expressions over the same builtins and parameters as the
// score mod, so they go through the same pipeline, signatures, interpreter and code generators.
//
// Needs: a Float body with no ModCall or LoadRange (an optimised score mod, compiler/Pipeline.h).
// Guarantees, at every point (the one-sided choices are documented for users in docs/gradients.md):
// - Where the body is differentiable in the value of a node, the derivative is the exact derivative
//   evaluated in binary32 by the chain rule (not bit-exact against a symbolic derivative).
// - Bool and Int values carry no derivative: comparisons, casts to int, integer arithmetic,
//   indices, floor/ceil/round (zero everywhere, their jumps included).
// - abs at 0 gives 0; min/max give the whole derivative to the operand they return and split it
//   half and half on a tie (the mean of the one-sided derivatives, which is what a central difference
//   sees, and which does not depend on the operand order that canonicalisation chooses); a NaN
//   operand gets nothing (fminf/fmaxf return the other one).
// - Select / where / ?: passes the derivative to the branch taken only; the other branch gets exactly
//   0 even where its own derivative is infinite or NaN (a zero upstream derivative contributes zero,
//   never 0 * inf).
// - pow(x, y): d/dx is 0 where y == 0, d/dy is 0 where x == 0 and y >= 0 (as PyTorch); elsewhere the
//   usual formulas (NaN for x < 0 in d/dy, as log(x) is).
// - Float `%` (fmod): d/dx = 1, d/dy = -trunc(x / y).

#include <cstdint>
#include <vector>

#include "compiler/IR.h"
#include "compiler/Module.h"

namespace attnc::ir {

// One place where the body reads a float tensor parameter: the derivative of the body with respect
// to the element read there. A tensor's gradient at one (b, h, q_idx, kv_idx) is the sum over its
// sites whose indices name the element (scatter-add).
struct TensorGradientSite {
  uint32_t param = 0;
  std::vector<Expr> indices;  // Int, one per dimension, already clamped into [0, extent) as Load does
  Expr derivative;            // Float
};

struct ScoreModDerivative {
  Expr d_score;                           // Float: d body / d score (the constant 0 when the body ignores score)
  std::vector<TensorGradientSite> sites;  // in post-order of their Load nodes (deterministic)
};

// The derivatives of `body`, unoptimised (run compiler/Pipeline.h's optimize_expr on them).
// Throws InternalError when `body` is not Float or holds a ModCall or LoadRange.
ScoreModDerivative differentiate(const Expr& body);

// The derivatives of an optimised score mod as optimised score-mod definitions over the same
// parameters, ready for a backend that evaluates score mods: `d_score`, and per site its derivative
// and its indices as float(index). An index converts to float exactly while the tensor's extent is at
// most 2^24 (indices are clamped first); callers that rely on the float form check that.
struct DerivativeDefs {
  struct Site {
    uint32_t param = 0;
    ModDef derivative;
    std::vector<ModDef> indices;
  };
  ModDef d_score;
  std::vector<Site> sites;
};
DerivativeDefs derivative_defs(const ModDef& optimized_score_mod);

// The largest tensor extent for which DerivativeDefs' float indices are exact.
inline constexpr int64_t kMaxExactFloatIndexExtent = int64_t{1} << 24;

}  // namespace attnc::ir
