// The optimiser checked against the interpreter (Halide's simplifier fuzzer, in spirit): thousands of
// random expressions, each evaluated in several random environments before and after every pass and
// after the whole pipeline, must give the same value bit for bit (any NaN matches any NaN).
// A failure prints the seed, the pass, the expression before and after, and the environment values.

#include <functional>
#include <map>
#include <random>
#include <string>

#include <catch2/catch.hpp>

#include "compiler/Canonicalize.h"
#include "compiler/FoldConstants.h"
#include "compiler/IRMutator.h"
#include "compiler/InlineCalls.h"
#include "compiler/Interpreter.h"
#include "compiler/Pipeline.h"
#include "compiler/Printer.h"
#include "compiler/ShareSubexpressions.h"
#include "compiler/Simplify.h"
#include "tests/support/RandomExpr.h"

using namespace attnc::ir;
using namespace attnc::ir::test;

namespace {

struct NamedPass {
  const char* name;
  std::function<Expr(const Expr&)> run;
};

const std::vector<NamedPass>& passes() {
  static const std::vector<NamedPass> all{
      {"fold-constants", [](const Expr& e) { return fold_constants(e); }},
      {"simplify", [](const Expr& e) { return simplify(e); }},
      {"canonicalize", [](const Expr& e) { return canonicalize(e); }},
      {"share-subexpressions", [](const Expr& e) { return share_subexpressions(e); }},
      {"pipeline", [](const Expr& e) { return optimize_expr(e); }},
  };
  return all;
}

std::string describe_builtins(const Environment& env) {
  std::string out;
  for (int b = 0; b < kBuiltinCount; ++b) {
    out += std::string(builtin_spelling(static_cast<Builtin>(b))) + "=" + to_string(env.builtins[b]) + " ";
  }
  for (size_t p = 0; p < env.params.size(); ++p) {
    if (const auto* v = std::get_if<Value>(&env.params[p])) out += "$" + std::to_string(p) + "=" + to_string(*v) + " ";
  }
  return out;
}

struct Counts {
  int expressions = 0;
  int evaluations = 0;
  std::map<std::string, int> changed;  // per pass: how many expressions it rewrote
};

// Runs every pass on `count` random expressions; returns how often each pass changed something.
Counts run_differential(uint32_t seed, int count, const RandomExprOptions& options, int max_depth) {
  Counts counts;
  std::mt19937 rng(seed);
  constexpr int kEnvironments = 8;
  const Type types[] = {Type::Bool, Type::Int, Type::Float};
  for (int n = 0; n < count; ++n) {
    const uint32_t expr_seed = static_cast<uint32_t>(rng());
    std::mt19937 expr_rng(expr_seed);
    const Type type = types[expr_seed % 3];
    const int depth = 1 + static_cast<int>(expr_rng() % max_depth);
    Expr original = random_expr(expr_rng, type, depth, options);
    std::vector<RandomEnvironment> environments;
    for (int e = 0; e < kEnvironments; ++e) environments.push_back(random_environment(expr_rng, options));
    CompiledExpr reference(original);
    std::vector<Value> expected;
    for (const RandomEnvironment& env : environments) expected.push_back(reference.evaluate(env.env));
    ++counts.expressions;

    for (const NamedPass& pass : passes()) {
      Expr optimized = pass.run(original);
      // Sharing never changes structure, only the number of distinct nodes.
      if (!equal(optimized, original) || count_nodes(optimized) != count_nodes(original)) ++counts.changed[pass.name];
      REQUIRE(optimized->type == original->type);
      CompiledExpr compiled(optimized);
      for (size_t e = 0; e < environments.size(); ++e) {
        const Value actual = compiled.evaluate(environments[e].env);
        ++counts.evaluations;
        if (!same_result(expected[e], actual)) {
          CAPTURE(seed, expr_seed, pass.name, e);
          CAPTURE(print_expr(original, nullptr, PrintStyle::Canonical));
          CAPTURE(print_expr(optimized, nullptr, PrintStyle::Canonical));
          CAPTURE(describe_builtins(environments[e].env));
          CAPTURE(to_string(expected[e]), to_string(actual));
          FAIL("the pass changed the value of the expression");
        }
      }
    }
  }
  return counts;
}

}  // namespace

TEST_CASE("every pass and the pipeline preserve the value of random expressions", "[differential][pipeline]") {
  const uint32_t seed = GENERATE(1u, 2u, 3u);
  RandomExprOptions options;
  Counts counts = run_differential(seed, 3000, options, 5);
  CAPTURE(seed, counts.evaluations);
  // The test is only as good as the rewrites it exercises: each pass must have had work to do.
  for (const NamedPass& pass : passes()) {
    CAPTURE(pass.name, counts.changed[pass.name]);
    CHECK(counts.changed[pass.name] > counts.expressions / 20);
  }
}

TEST_CASE("passes preserve values when expressions reuse few subexpressions", "[differential]") {
  // High reuse and shallow trees make x - x, min(x, x), select(c, a, a), c && !c and friends common.
  RandomExprOptions options;
  options.reuse_probability = 0.5;
  options.leaf_probability = 0.3;
  Counts counts = run_differential(11, 1500, options, 4);
  CHECK(counts.changed["simplify"] > counts.expressions / 10);
}

TEST_CASE("passes preserve the value of Int64 and range-load expressions", "[differential]") {
  RandomExprOptions options;
  options.use_int64 = true;
  options.use_tile_builtins = true;
  Counts counts = run_differential(21, 800, options, 5);
  CHECK(counts.changed["pipeline"] > counts.expressions / 20);
}

TEST_CASE("canonicalize is idempotent on random expressions", "[differential][canonicalize]") {
  std::mt19937 rng(31);
  RandomExprOptions options;
  for (int n = 0; n < 2000; ++n) {
    const Type type = static_cast<Type>(n % 3);
    Expr once = canonicalize(random_expr(rng, type, 1 + n % 6, options));
    Expr twice = canonicalize(once);
    CAPTURE(n, print_expr(once, nullptr, PrintStyle::Canonical));
    REQUIRE(twice == once);
  }
}

TEST_CASE("the pipeline reaches a fixed point on random expressions", "[differential][pipeline]") {
  std::mt19937 rng(41);
  RandomExprOptions options;
  for (int n = 0; n < 1000; ++n) {
    const Type type = static_cast<Type>(n % 3);
    Expr once = optimize_expr(random_expr(rng, type, 1 + n % 6, options));
    Expr twice = optimize_expr(once);
    CAPTURE(n, print_expr(once, nullptr, PrintStyle::Canonical), print_expr(twice, nullptr, PrintStyle::Canonical));
    REQUIRE(equal(twice, once));
  }
}

TEST_CASE("inlined calls compute what the callee computes at the call's arguments", "[differential][inline]") {
  // The callee reads every parameter of the default layout; the caller passes random expressions for
  // the scalars and its own tensors (swapping the two compatible float[N] tensors) for the tensors.
  std::mt19937 rng(51);
  RandomExprOptions options;
  const std::vector<ParamDecl> decls = random_param_decls(options);
  int checked = 0;
  for (int n = 0; n < 400; ++n) {
    const bool is_score = n % 2 == 0;
    Module module;
    module.defs.push_back(ModDef{"callee",
                                 is_score ? ModKind::Score : ModKind::Mask,
                                 decls,
                                 random_expr(rng, is_score ? Type::Float : Type::Bool, 4, options),
                                 {}});
    std::vector<Expr> args;
    if (is_score) args.push_back(random_expr(rng, Type::Float, 2, options));
    std::vector<uint32_t> tensor_map(decls.size());
    for (uint32_t i = 0; i < decls.size(); ++i) {
      tensor_map[i] = i;
      if (decls[i].is_tensor()) {
        // Parameters #3 and #7 are both float[N]: a call may pass either for either.
        if ((i == 3 || i == 7) && rng() % 2 == 0) tensor_map[i] = i == 3 ? 7 : 3;
        args.push_back(make_tensor_ref(tensor_map[i], decls[i].elem));
      } else {
        args.push_back(random_expr(rng, decls[i].elem, 2, options));
      }
    }
    const ModDef& callee = module.defs[0];
    ModDef caller{"caller", callee.kind, decls, make_mod_call(0, callee.body->type, args), {}};
    ModDef inlined = inline_calls(module, caller);
    CompiledExpr compiled(inlined.body);
    CompiledExpr callee_compiled(callee.body);
    for (int e = 0; e < 4; ++e) {
      RandomEnvironment caller_env = random_environment(rng, options);
      // The callee's environment: the caller's point, the arguments' values, the passed tensors.
      Environment callee_env = caller_env.env;
      const size_t first = is_score ? 1 : 0;
      if (is_score) callee_env.set(Builtin::Score, evaluate(args[0], caller_env.env));
      for (uint32_t i = 0; i < decls.size(); ++i) {
        callee_env.params[i] = decls[i].is_tensor() ? caller_env.env.params[tensor_map[i]]
                                                    : ParamBinding(evaluate(args[first + i], caller_env.env));
      }
      const Value expected = callee_compiled.evaluate(callee_env);
      const Value actual = compiled.evaluate(caller_env.env);
      CAPTURE(n, e, print_expr(callee.body, nullptr, PrintStyle::Canonical),
              print_expr(inlined.body, nullptr, PrintStyle::Canonical));
      CAPTURE(to_string(expected), to_string(actual));
      REQUIRE(same_result(expected, actual));
      ++checked;
    }
  }
  CHECK(checked == 1600);
}
