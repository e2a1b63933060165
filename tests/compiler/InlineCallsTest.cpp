// Inlining of mod calls: parameters, score, tensors and extents of the callee read the caller's
// arguments, nested calls inline recursively, and no ModCall or TensorRef is left. A call is built
// once per distinct callee and arguments, so sharing survives and size stays bounded.

#include "compiler/InlineCalls.h"

#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "compiler/Frontend.h"
#include "compiler/IRMutator.h"
#include "compiler/Limits.h"
#include "compiler/Printer.h"
#include "compiler/Substitute.h"
#include "dsl/Diagnostics.h"
#include "tests/support/RandomExpr.h"

using namespace attnc::ir;
using namespace attnc::ir::test;

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

// ---- Sharing, size limits and the earlier inliner as a reference. ----

namespace {

// The inliner as it was before calls were memoised per call site: each ModCall is replaced by the
// callee's inlined body with the arguments substituted, every call separately. Kept here as the
// reference the sharing inliner must agree with exactly.
Expr reference_inline(const Module& module, const Expr& body) {
  return rewrite_bottom_up(body, [&](const Expr& node) {
    if (node->kind != Kind::ModCall) return node;
    const ModDef& callee = module.defs[node->index];
    const size_t first = callee.kind == ModKind::Score ? 1 : 0;
    Substitution substitution;
    if (callee.kind == ModKind::Score) substitution.score = node->operands[0];
    substitution.scalar_params.resize(callee.params.size());
    substitution.tensor_params.resize(callee.params.size());
    for (uint32_t i = 0; i < callee.params.size(); ++i) {
      const Expr& arg = node->operands[first + i];
      if (callee.params[i].is_tensor()) {
        substitution.tensor_params[i] = arg->index;
      } else {
        substitution.scalar_params[i] = arg;
        substitution.tensor_params[i] = i;
      }
    }
    return substitute(reference_inline(module, callee.body), substitution);
  });
}

std::string numbered_definitions(const std::string& first, const std::string& pattern, int count) {
  // `pattern` uses {i} for this definition's number and {p} for the previous one's.
  std::string text = first + "\n";
  for (int i = 1; i < count; ++i) {
    std::string line = pattern;
    for (size_t at; (at = line.find("{i}")) != std::string::npos;) line.replace(at, 3, std::to_string(i));
    for (size_t at; (at = line.find("{p}")) != std::string::npos;) line.replace(at, 3, std::to_string(i - 1));
    text += line + "\n";
  }
  return text;
}

// A random call of one of the first `upto` definitions of `module` whose body has type `type`, or
// null when there is none. Scalar arguments are random expressions, sometimes with calls inside.
Expr random_call(std::mt19937& rng, const Module& module, size_t upto, Type type, const RandomExprOptions& options,
                 int depth) {
  std::vector<uint32_t> candidates;
  for (uint32_t j = 0; j < upto; ++j) {
    if (module.defs[j].body->type == type) candidates.push_back(j);
  }
  if (candidates.empty()) return nullptr;
  const ModDef& callee = module.defs[candidates[rng() % candidates.size()]];
  const uint32_t index = static_cast<uint32_t>(&callee - module.defs.data());
  auto argument = [&](Type arg_type) {
    Expr arg = random_expr(rng, arg_type, 2, options);
    if (depth > 0 && rng() % 3 == 0) {
      if (Expr inner = random_call(rng, module, index, arg_type, options, depth - 1)) return inner;
    }
    return arg;
  };
  std::vector<Expr> args;
  if (callee.kind == ModKind::Score) args.push_back(argument(Type::Float));
  for (uint32_t i = 0; i < callee.params.size(); ++i) {
    const ParamDecl& param = callee.params[i];
    if (param.is_tensor()) {
      // Parameters #3 and #7 are both float[N]: a call may pass either for either.
      uint32_t passed = (i == 3 || i == 7) && rng() % 2 == 0 ? (i == 3 ? 7 : 3) : i;
      args.push_back(make_tensor_ref(passed, param.elem));
    } else {
      args.push_back(argument(param.elem));
    }
  }
  return make_mod_call(index, type, std::move(args));
}

// A module of `count` definitions, each combining a random expression with calls of earlier ones
// (arguments may themselves call), mask mods and score mods mixed.
Module random_module(std::mt19937& rng, int count, const RandomExprOptions& options) {
  Module module;
  const std::vector<ParamDecl> decls = random_param_decls(options);
  for (int i = 0; i < count; ++i) {
    const bool is_score = rng() % 2 == 0;
    const Type type = is_score ? Type::Float : Type::Bool;
    Expr body = random_expr(rng, type, 3, options);
    for (int calls = 0; calls < 2; ++calls) {
      Expr call = random_call(rng, module, module.defs.size(), type, options, 2);
      if (!call) break;
      body = is_score ? make_binary(rng() % 2 ? Op::Add : Op::Mul, body, call)
                      : make_binary(rng() % 2 ? Op::And : Op::Or, call, body);
      if (is_score && rng() % 3 == 0) {
        if (Expr mask = random_call(rng, module, module.defs.size(), Type::Bool, options, 1)) {
          body = make_select(mask, body, call);
        }
      }
    }
    module.defs.push_back(ModDef{"d" + std::to_string(i), is_score ? ModKind::Score : ModKind::Mask, decls, body, {}});
  }
  return module;
}

}  // namespace

TEST_CASE("inline_calls gives exactly what inlining every call separately gives", "[inline][differential]") {
  std::mt19937 rng(61);
  RandomExprOptions options;
  int compared = 0;
  for (int n = 0; n < 150; ++n) {
    Module module = random_module(rng, 6, options);
    for (const ModDef& def : module.defs) {
      ModDef inlined = inline_calls(module, def);
      Expr expected = reference_inline(module, def.body);
      CAPTURE(n, def.name, print_expr(expected, nullptr, PrintStyle::Canonical), print_expr(inlined.body, nullptr, PrintStyle::Canonical));
      REQUIRE(equal(inlined.body, expected));
      CHECK_FALSE(has_kind(inlined.body, Kind::ModCall));
      CHECK(count_nodes(inlined.body) <= count_nodes(expected));
      ++compared;
    }
  }
  CHECK(compared == 900);
}

TEST_CASE("inline_calls builds a call with equal arguments once", "[inline][deep]") {
  SECTION("sixty score mods that each call the previous one twice with the same score") {
    // As a tree this is 2^60 multiplications; as a DAG it is one per definition.
    Module module = load_module_text(
        "twice.attn",
        numbered_definitions("score_mod s0 = score * 2.0;", "score_mod s{i} = s{p}(score) * s{p}(score);", 60));
    ModDef inlined = inline_calls(module, *module.find("s59"));
    CHECK(count_nodes(inlined.body) == 60 + 2);
  }
  SECTION("sixty score mods that call the previous one at the score and at the score plus one") {
    // s_i(x) needs s_{i-1}(x) and s_{i-1}(x + 1): calls at x + k for k <= i, so quadratically many.
    Module module = load_module_text(
        "shifted.attn",
        numbered_definitions("score_mod s0 = score * 2.0;", "score_mod s{i} = s{p}(score) - s{p}(score + 1.0);", 60));
    ModDef inlined = inline_calls(module, *module.find("s59"));
    CHECK(count_nodes(inlined.body) < 60 * 60 * 3);
  }
  SECTION("five thousand masks, each the previous one and one more condition") {
    Module module = load_module_text(
        "chain.attn",
        numbered_definitions("mask_mod m0 = kv_idx <= q_idx;", "mask_mod m{i} = m{p} && q_idx - kv_idx < {i};", 5000));
    ModDef inlined = inline_calls(module, *module.find("m4999"));
    // kv_idx <= q_idx, then per definition: the constant, <, && (q_idx, kv_idx and q_idx - kv_idx shared).
    CHECK(count_nodes(inlined.body) == 4 + 3 * 4999);
  }
}

TEST_CASE("a definition that inlines to more than the node limit is a compile error", "[inline][deep]") {
  // s_i = s_{i-1}(s_{i-1}(score)) adds 1.0 to the score 2^i times: 2^i distinct additions.
  const std::string text =
      numbered_definitions("score_mod s0 = score + 1.0;", "score_mod s{i} = s{p}(s{p}(score));", 31);
  Module module = load_module_text("deep.attn", text);
  // s15 is 2^15 additions deep, under the limit, and inlines.
  CHECK(count_nodes(inline_calls(module, *module.find("s15")).body) == (1u << 15) + 2);
  for (const char* name : {"s18", "s30"}) {
    CAPTURE(name);
    try {
      inline_calls(module, *module.find(name));
      FAIL("no error");
    } catch (const attnc::dsl::CompileError& e) {
      const std::string message = e.what();
      CAPTURE(message);
      CHECK(message.find(std::string("'") + name + "' is too large") != std::string::npos);
      CHECK(message.find(std::to_string(kMaxInlinedNodes)) != std::string::npos);
      REQUIRE(e.diagnostics().size() == 1);
      CHECK(e.diagnostics()[0].line == static_cast<uint32_t>(std::stoi(name + 1) + 1));
    }
  }
}
