#pragma once
// Printing IR as text. The canonical style names no user identifier (parameters are $0, $1, ...,
// extents $1.dim0, shared subexpressions t0, t1, ... in visit order), so two mods that differ only in
// names print identically; the signature hashes it. The readable style uses the user's names.
//
//   mask_mod ($0: int) -> bool               (canonical: no definition or parameter names)
//     t0 = q_idx - kv_idx
//     return (kv_idx <= q_idx) && (t0 < $0)
//
// Tensor dimensions in a canonical header: a literal prints as its number, a named extent as `_`,
// and a name already bound by an earlier dimension as that extent (`$0: int[_, _], $1: float[$0.dim0]`).
// Binary operators are fully parenthesised below the top of a line, negation always (`(-x)`, so it
// never prints like the literal `-5`); int64 constants carry an `L`; floats print shortest-exact.

#include <string>

#include "compiler/IR.h"
#include "compiler/Module.h"

namespace attnc::ir {

enum class PrintStyle { Readable, Canonical };

// One expression. Nodes used more than once become numbered temporaries printed before it.
// `context` supplies parameter names for the readable style (may be null).
std::string print_expr(const Expr& expr, const ModDef* context = nullptr, PrintStyle style = PrintStyle::Readable);

// A whole definition: header with kind, parameters and types, then its body.
std::string print_def(const ModDef& def, PrintStyle style = PrintStyle::Readable);

}  // namespace attnc::ir
