#pragma once
// Inlining of mod calls: replaces each ModCall by the body of the definition it calls, so that every
// later pass, the signature and the code generators see one self-contained expression.
//
// Needs: `def`'s ModCall nodes name earlier definitions of `module` (node->index into module.defs)
// and carry the arguments the type checker gives them: for a score mod first the new score, then
// one argument per callee parameter (for a mask mod just the latter). A scalar parameter's argument
// is any expression of its type; a tensor parameter's argument is a TensorRef naming one of the
// caller's tensor parameters, of the same element type and rank.
// Guarantees: the returned definition has the same name, kind, parameters and range as `def`, and a
// body without ModCall or TensorRef nodes, computing what the calls computed: the callee's
// parameters read the call's arguments, its `score` reads the first argument, and its loads and
// extents read the caller's tensors. Nested calls are inlined too, without recursion (a chain of
// definitions of any length costs no call stack).
// Sharing: the body is built interned (structurally equal subexpressions are one node), and a call
// is expanded once per distinct callee and arguments, so the work and the result grow with the
// number of distinct subexpressions, not with the size of the tree they stand for.
// Limit: when that number passes kMaxInlinedNodes (compiler/Limits.h), throws dsl::CompileError
// with one diagnostic at the definition ("'NAME' is too large to compile: ..."). A body without
// calls under the limit is returned unchanged (the same object).

#include "compiler/Module.h"

namespace attnc::ir {

ModDef inline_calls(const Module& module, const ModDef& def);

}  // namespace attnc::ir
