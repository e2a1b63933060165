#pragma once
// Canonical operand order, so that expressions that differ only in how they were written (operand
// order of commutative operators, mirrored comparisons, association of int sums) become one form.
// Signatures, codegen and the tile classifier rely on it.
//
// Needs: any well-typed expression.
// Guarantees:
// - no Binary Gt or Ge is left: a > b becomes b < a, a >= b becomes b <= a (exact, NaN included);
// - the operands of commutative operators are ordered: non-constants by ir::structurally_less,
//   then constants (so `1 + x` and `x + 1` both become `x + 1`);
// - chains of one associative operator (Bool And/Or; Int/Int64 Add/Mul/Min/Max, which wrap) are
//   flattened, sorted as a whole and rebuilt left-deep: `(x + 1) + y` and `(y + x) + 1` both become
//   `(x + y) + 1`. A chain node that is also used elsewhere (shared in the DAG) is not flattened into
//   the chain above it: it is a leaf there and the root of its own chain, so sharing survives and
//   the pass takes near-linear time on any DAG. Float Add/Mul are not associative, so only their two operands are
//   ordered; float Min/Max keep their order because fminf/fmaxf may return either signed zero of min(+0, -0);
// - idempotent: canonicalize(canonicalize(e)) returns its argument (the same object);
// - the result evaluates to the same value as the input everywhere (a NaN may change its payload).

#include "compiler/IR.h"

namespace attnc::ir {

Expr canonicalize(const Expr& expr);

// The order canonicalize gives commutative operands: non-constants before constants, each group in
// ir::structurally_less order. A strict weak order that depends only on structure.
bool canonical_operand_less(const Expr& a, const Expr& b);

}  // namespace attnc::ir
