#pragma once
// Hash-consing: makes structurally equal subexpressions one shared node, so later stages (the
// interpreter's tape, code generators emitting one temporary per node, the canonical printer's
// numbered temporaries) compute each distinct value once.
//
// Needs: any expression.
// Guarantees: the result is structurally equal to the input (ir::equal), and two of its nodes are
// structurally equal only if they are the same object. Which of several equal nodes survives is the
// first one in post-order (operands left to right), so the result does not depend on addresses.
// An expression that is already fully shared is returned as is.

#include "compiler/IR.h"

namespace attnc::ir {

Expr share_subexpressions(const Expr& expr);

}  // namespace attnc::ir
