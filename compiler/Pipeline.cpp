#include "compiler/Pipeline.h"

#include "compiler/Canonicalize.h"
#include "compiler/FoldConstants.h"
#include "compiler/InlineCalls.h"
#include "compiler/ShareSubexpressions.h"
#include "compiler/Simplify.h"

namespace attnc::ir {

namespace {

// Each round can expose work for the others (folding makes simplify rules match, simplify and
// canonicalize make constants meet); real mods settle in two or three rounds. The cap only bounds a
// rule pair that would undo each other, which would be a bug but must not hang the compiler.
constexpr int kMaxRounds = 8;

// Runs the scalar passes on `expr` to a fixed point; `report` is called after each pass.
template <typename Report>
Expr run_to_fixed_point(Expr expr, Report&& report) {
  for (int round = 0; round < kMaxRounds; ++round) {
    const Expr before = expr;
    expr = fold_constants(expr);
    report("fold-constants", expr);
    expr = simplify(expr);
    report("simplify", expr);
    expr = canonicalize(expr);
    report("canonicalize", expr);
    expr = share_subexpressions(expr);
    report("share-subexpressions", expr);
    // Structural, not pointer, comparison: sharing may rebuild nodes without changing the meaning.
    if (equal(before, expr)) break;
  }
  return expr;
}

}  // namespace

ModDef optimize(const Module& module, const ModDef& def, const PipelineOptions& options) {
  ModDef result = inline_calls(module, def);
  if (options.after_pass) options.after_pass("inline-calls", result);
  result.body = run_to_fixed_point(result.body, [&](std::string_view pass, const Expr& body) {
    if (!options.after_pass) return;
    ModDef snapshot = result;
    snapshot.body = body;
    options.after_pass(pass, snapshot);
  });
  return result;
}

Expr optimize_expr(const Expr& expr) {
  return run_to_fixed_point(expr, [](std::string_view, const Expr&) {});
}

}  // namespace attnc::ir
