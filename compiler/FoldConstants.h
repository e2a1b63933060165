#pragma once
// Constant folding: evaluates every operation whose operands are all constants, using the shared
// rules of compiler/Semantics.h (so a folded mod computes exactly what the interpreter would).
//
// Needs: any well-typed expression (ModCalls and loads are left alone).
// Guarantees: no Unary, Binary, Call, Cast or Select node has only Const operands, and no Select
// has a constant condition; the result evaluates bit-identically to the input everywhere.

#include "compiler/IR.h"

namespace attnc::ir {

Expr fold_constants(const Expr& expr);

}  // namespace attnc::ir
