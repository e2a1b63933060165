// The optimisation pipeline: pass order and dump hooks, inlining before the scalar passes, the
// fixed point, and the canonical form it gives mods written in different ways.

#include "compiler/Pipeline.h"

#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "compiler/Frontend.h"
#include "compiler/IRMutator.h"
#include "compiler/Printer.h"

using namespace attnc::ir;

namespace {

ModDef optimized(const std::string& text, const std::string& name) {
  Module module = load_module_text("pipeline.attn", text);
  const ModDef* def = module.find(name);
  REQUIRE(def != nullptr);
  return optimize(module, *def);
}

Expr q() { return make_builtin(Builtin::QIdx); }
Expr k() { return make_builtin(Builtin::KvIdx); }

}  // namespace

TEST_CASE("optimize runs inline-calls once, then the scalar passes in rounds, reporting each", "[pipeline]") {
  Module module = load_module_text("p.attn", R"(
    mask_mod causal = q_idx >= kv_idx;
    mask_mod m(w: int) = causal && (q_idx - kv_idx < w + 0);
  )");
  std::vector<std::string> names;
  std::vector<std::string> dumps;
  PipelineOptions options;
  options.after_pass = [&](std::string_view pass, const ModDef& def) {
    names.emplace_back(pass);
    dumps.push_back(print_def(def));
  };
  ModDef result = optimize(module, module.defs[1], options);
  REQUIRE(names.size() >= 5);
  CHECK(names[0] == "inline-calls");
  CHECK((names.size() - 1) % 4 == 0);
  const char* round[] = {"fold-constants", "simplify", "canonicalize", "share-subexpressions"};
  for (size_t i = 1; i < names.size(); ++i) {
    CAPTURE(i);
    CHECK(names[i] == round[(i - 1) % 4]);
  }
  // The last dump is the result; the first already has the call inlined.
  CHECK(dumps.back() == print_def(result));
  CHECK(dumps.front().find("causal") == std::string::npos);
  CHECK(result.name == "m");
  CHECK(result.params.size() == 1);
}

TEST_CASE("optimize works without a dump hook", "[pipeline]") {
  ModDef result = optimized("mask_mod m = q_idx >= kv_idx && true;", "m");
  CHECK(equal(result.body, make_binary(Op::Le, k(), q())));
}

TEST_CASE("the pipeline combines the passes to reach simple canonical forms", "[pipeline]") {
  SECTION("constants collected at the end of a sum") {
    Expr a = optimize_expr(
        make_binary(Op::Add, make_binary(Op::Add, q(), make_int(1)), make_binary(Op::Add, make_int(2), k())));
    Expr b = optimize_expr(make_binary(Op::Add, make_binary(Op::Add, k(), make_int(3)), q()));
    CAPTURE(print_expr(a), print_expr(b));
    CHECK(equal(a, b));
    REQUIRE(a->kind == Kind::Binary);
    CHECK(is_const_int(a->operands[1], 3));
  }
  SECTION("a select folded after its condition simplifies") {
    // select(q - q == 0, kv_idx, q_idx) -> kv_idx
    Expr condition = make_binary(Op::Eq, make_binary(Op::Sub, q(), q()), make_int(0));
    CHECK(equal(optimize_expr(make_select(condition, k(), q())), k()));
  }
  SECTION("float identities that are not exact survive") {
    ModDef result = optimized("score_mod s = score * 1.0 + 0.0 * 2.0;", "s");
    // score * 1.0 is score; 0.0 * 2.0 folds to 0.0; score + 0.0 stays (it turns -0.0 into +0.0).
    CHECK(equal(result.body, make_binary(Op::Add, make_builtin(Builtin::Score), make_float(0.0f))));
  }
  SECTION("negated comparisons") {
    ModDef result = optimized("mask_mod m = !(q_idx < kv_idx) && !!(kv_idx != q_idx);", "m");
    // !(q < kv) -> kv <= q; !!(kv != q) -> kv != q -> q != kv (ordered).
    Expr expected = optimize_expr(make_binary(Op::And, make_binary(Op::Le, k(), q()), make_binary(Op::Ne, q(), k())));
    CAPTURE(print_expr(result.body));
    CHECK(equal(result.body, expected));
  }
}

TEST_CASE("the pipeline output shares every repeated subexpression", "[pipeline]") {
  ModDef result =
      optimized("mask_mod m(w: int) = (q_idx - kv_idx < w) && (q_idx - kv_idx > -w) && (q_idx - kv_idx != 0);", "m");
  size_t differences = 0;
  for_each_node(result.body, [&](const Expr& node) {
    if (node->kind == Kind::Binary && node->op == Op::Sub) ++differences;
  });
  CHECK(differences == 1);
}

TEST_CASE("the pipeline is at a fixed point on its own output", "[pipeline]") {
  Module module = load_module_text("p.attn", R"(
    score_mod alibi(slopes: float[H]) = score - slopes[h] * abs(q_idx - kv_idx);
    score_mod softcap(cap: float) = cap * tanh(score / cap);
    score_mod relative_bias(table: float[NH, R]) =
        let d = clamp(q_idx - kv_idx + R / 2, 0, R - 1);
        score + table[h, d];
    mask_mod sliding_window(window: int) = q_idx >= kv_idx && q_idx - kv_idx < window;
  )");
  for (const ModDef& def : module.defs) {
    CAPTURE(def.name);
    ModDef once = optimize(module, def);
    Expr again = optimize_expr(once.body);
    CHECK(again == once.body);
  }
}

TEST_CASE("optimize_expr returns an already optimal expression unchanged", "[pipeline]") {
  Expr e = optimize_expr(make_binary(Op::And, make_binary(Op::Ge, q(), k()),
                                     make_binary(Op::Lt, make_binary(Op::Sub, q(), k()), make_param(0, Type::Int))));
  CHECK(optimize_expr(e) == e);
}
