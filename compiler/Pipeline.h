#pragma once
// The optimisation pipeline, in order: inline_calls, fold_constants, simplify, canonicalize,
// share_subexpressions, repeated to a fixed point. Its output is the canonical form that
// signatures, the tile classifier and the code generators consume.

#include <functional>
#include <string>
#include <string_view>

#include "compiler/Module.h"

namespace attnc::ir {

struct PipelineOptions {
  // Called after each pass with the pass name and the definition as it stands (for
  // `attnc ir --print-after-all`). May be empty.
  std::function<void(std::string_view pass, const ModDef& def)> after_pass;
};

// The optimised, self-contained form of definition `def` of `module` (no ModCall nodes left).
// Throws dsl::CompileError when inlining makes the definition larger than the documented limit
// (compiler/InlineCalls.h, compiler/Limits.h). The passes take time near-linear in its size.
ModDef optimize(const Module& module, const ModDef& def, const PipelineOptions& options = {});

// The same for a single expression that has no ModCalls (used on generated IR, e.g. tile
// classifiers and random expressions in tests).
Expr optimize_expr(const Expr& expr);

}  // namespace attnc::ir
