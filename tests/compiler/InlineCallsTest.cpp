// Inlining of mod calls: parameters, score, tensors and extents of the callee read the caller's
// arguments, nested calls inline recursively, and no ModCall or TensorRef is left.

#include "compiler/InlineCalls.h"

#include <catch2/catch.hpp>

#include "compiler/Frontend.h"
#include "compiler/IRMutator.h"
#include "compiler/Printer.h"

using namespace attnc::ir;

namespace {

bool has_kind(const Expr& e, Kind kind) {
  bool found = false;
  for_each_node(e, [&](const Expr& node) { found = found || node->kind == kind; });
  return found;
}

Expr q() { return make_builtin(Builtin::QIdx); }
Expr k() { return make_builtin(Builtin::KvIdx); }

ParamDecl scalar(std::string name, Type elem) { return ParamDecl{std::move(name), elem, {}}; }

ParamDecl tensor(std::string name, Type elem, uint32_t self, uint32_t rank) {
  ParamDecl p{std::move(name), elem, {}};
  for (uint32_t d = 0; d < rank; ++d) p.dims.push_back(TensorDim{p.name + "_d" + std::to_string(d), -1, self, d});
  return p;
}

}  // namespace

TEST_CASE("inline_calls substitutes scalar arguments for the callee's parameters", "[inline]") {
  Module module;
  // mask_mod window(w: int) = q_idx - kv_idx < w;
  module.defs.push_back(ModDef{"window",
                               ModKind::Mask,
                               {scalar("w", Type::Int)},
                               make_binary(Op::Lt, make_binary(Op::Sub, q(), k()), make_param(0, Type::Int)),
                               {}});
  // mask_mod caller(a: bool, n: int) = a && window(n + 1);
  Expr call = make_mod_call(0, Type::Bool, {make_binary(Op::Add, make_param(1, Type::Int), make_int(1))});
  ModDef caller{"caller",
                ModKind::Mask,
                {scalar("a", Type::Bool), scalar("n", Type::Int)},
                make_binary(Op::And, make_param(0, Type::Bool), call),
                {}};
  module.defs.push_back(caller);

  ModDef inlined = inline_calls(module, caller);
  Expr expected = make_binary(
      Op::And, make_param(0, Type::Bool),
      make_binary(Op::Lt, make_binary(Op::Sub, q(), k()), make_binary(Op::Add, make_param(1, Type::Int), make_int(1))));
  CAPTURE(print_expr(inlined.body));
  CHECK(equal(inlined.body, expected));
  CHECK(inlined.name == "caller");
  CHECK(inlined.params.size() == 2);
  CHECK_FALSE(has_kind(inlined.body, Kind::ModCall));
}

TEST_CASE("inline_calls replaces a score mod's score by the first argument", "[inline]") {
  Module module;
  // score_mod cap(c: float) = c * tanh(score / c);
  Expr c = make_param(0, Type::Float);
  Expr score = make_builtin(Builtin::Score);
  module.defs.push_back(ModDef{"cap",
                               ModKind::Score,
                               {scalar("c", Type::Float)},
                               make_binary(Op::Mul, c, make_call(Op::Tanh, {make_binary(Op::Div, score, c)})),
                               {}});
  // score_mod twice = cap(score * 2.0, 30.0);
  ModDef caller{"twice",
                ModKind::Score,
                {},
                make_mod_call(0, Type::Float, {make_binary(Op::Mul, score, make_float(2.0f)), make_float(30.0f)}),
                {}};
  module.defs.push_back(caller);
  ModDef inlined = inline_calls(module, caller);
  Expr doubled = make_binary(Op::Mul, score, make_float(2.0f));
  Expr expected =
      make_binary(Op::Mul, make_float(30.0f), make_call(Op::Tanh, {make_binary(Op::Div, doubled, make_float(30.0f))}));
  CAPTURE(print_expr(inlined.body));
  CHECK(equal(inlined.body, expected));
}

TEST_CASE("inline_calls re-points loads and extents to the caller's tensors", "[inline]") {
  Module module;
  // mask_mod same_doc(ids: int[B, S]) = ids[b, q_idx] == ids[b, min(kv_idx, S - 1)];
  Expr b = make_builtin(Builtin::Batch);
  Expr extent = make_extent(0, 1);
  module.defs.push_back(ModDef{
      "same_doc",
      ModKind::Mask,
      {tensor("ids", Type::Int, 0, 2)},
      make_binary(Op::Eq, make_load(0, Type::Int, {b, q()}),
                  make_load(0, Type::Int, {b, make_binary(Op::Min, k(), make_binary(Op::Sub, extent, make_int(1)))})),
      {}});
  // mask_mod caller(w: int, docs: int[X, Y]) = same_doc(docs) && kv_idx < w;
  ModDef caller{"caller",
                ModKind::Mask,
                {scalar("w", Type::Int), tensor("docs", Type::Int, 1, 2)},
                make_binary(Op::And, make_mod_call(0, Type::Bool, {make_tensor_ref(1, Type::Int)}),
                            make_binary(Op::Lt, k(), make_param(0, Type::Int))),
                {}};
  module.defs.push_back(caller);
  ModDef inlined = inline_calls(module, caller);
  Expr expected = make_binary(
      Op::And,
      make_binary(Op::Eq, make_load(1, Type::Int, {b, q()}),
                  make_load(1, Type::Int,
                            {b, make_binary(Op::Min, k(), make_binary(Op::Sub, make_extent(1, 1), make_int(1)))})),
      make_binary(Op::Lt, k(), make_param(0, Type::Int)));
  CAPTURE(print_expr(inlined.body));
  CHECK(equal(inlined.body, expected));
  CHECK_FALSE(has_kind(inlined.body, Kind::TensorRef));
}

TEST_CASE("inline_calls inlines calls of calls from source text", "[inline]") {
  Module module = load_module_text("inline.attn", R"(
    mask_mod causal = q_idx >= kv_idx;
    mask_mod window(w: int) = q_idx - kv_idx < w;
    mask_mod local(w: int) = causal && window(w);
    mask_mod doc(ids: int[N]) = ids[q_idx] == ids[kv_idx];
    mask_mod both(size: int, docs: int[M]) = local(size * 2) && doc(docs);
    score_mod bias(t: float[R]) = score + t[kv_idx];
    score_mod twice(u: float[R]) = bias(bias(score, u), u);
  )");
  const ModDef& both = *module.find("both");
  ModDef inlined = inline_calls(module, both);
  CAPTURE(print_expr(inlined.body, &inlined));
  CHECK_FALSE(has_kind(inlined.body, Kind::ModCall));
  CHECK_FALSE(has_kind(inlined.body, Kind::TensorRef));
  // The window's parameter became the caller's `size * 2`, the loads read `docs` (#1).
  Module flat = load_module_text("flat.attn", R"(
    mask_mod both(size: int, docs: int[M]) = (q_idx >= kv_idx && q_idx - kv_idx < size * 2) && docs[q_idx] == docs[kv_idx];
  )");
  CHECK(equal(inlined.body, flat.defs[0].body));

  ModDef twice = inline_calls(module, *module.find("twice"));
  Module flat_twice = load_module_text("flat.attn", "score_mod twice(u: float[R]) = (score + u[kv_idx]) + u[kv_idx];");
  CAPTURE(print_expr(twice.body, &twice));
  CHECK(equal(twice.body, flat_twice.defs[0].body));
}

TEST_CASE("inline_calls returns the body unchanged when there is no call", "[inline]") {
  Module module = load_module_text("plain.attn", "mask_mod causal = q_idx >= kv_idx;");
  ModDef inlined = inline_calls(module, module.defs[0]);
  CHECK(inlined.body == module.defs[0].body);
}
