#pragma once
// Algebraic simplification: rewrites that hold exactly under the IR's semantics (wrapping Int and
// Int64, IEEE binary32 floats with NaN, infinities and signed zeros, total division), so the result
// evaluates to the same value as the input at every point. Rules that are only "usually" true
// (float x * 0 == 0, float x - x == 0, float x + 0.0 == x, reassociating float sums) are not applied.
//
// Needs: any well-typed expression. Works best after fold_constants and canonicalize (constants
// last in commutative chains), which the pipeline arranges.
// Guarantees: the same value at every point, bit for bit, except that a NaN may change its payload or
// sign (it stays a NaN); nodes whose operands did not change and match no rule are kept as they are.

#include "compiler/IR.h"

namespace attnc::ir {

Expr simplify(const Expr& expr);

}  // namespace attnc::ir
