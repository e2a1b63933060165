// The derivative pass checked three ways: hand-computed derivatives of small mods; central finite
// differences in float64 (tests/support/Float64Evaluator.h) on every built-in score mod, the
// compositions and random score mods at random points; and the derivative IR through the optimiser
// against the unoptimised one on the interpreter, bit for bit.

#include <cmath>
#include <cstring>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "compiler/Differentiate.h"
#include "compiler/Frontend.h"
#include "compiler/IRMutator.h"
#include "compiler/Interpreter.h"
#include "compiler/Pipeline.h"
#include "compiler/Prelude.h"
#include "compiler/Printer.h"
#include "tests/support/Float64Evaluator.h"
#include "tests/support/RandomExpr.h"
#include "tests/support/TestMods.h"

using namespace attnc;
using namespace attnc::ir;
using namespace attnc::ir::test;

namespace {

ModDef optimized_score_mod(const Module& module, const char* name) {
  const ModDef* def = module.find(name);
  REQUIRE(def != nullptr);
  return optimize(module, *def);
}

float interpret(const Expr& e, const Environment& env) { return evaluate(e, env).f; }

// Float storage for one tensor parameter, owned by the test.
struct FloatTensor {
  std::vector<float> values;
  TensorArg arg;
  FloatTensor(std::vector<int64_t> shape, std::mt19937& rng, float low, float high) {
    int64_t count = 1;
    arg.strides.assign(shape.size(), 1);
    for (size_t d = shape.size(); d-- > 0;) {
      arg.strides[d] = count;
      count *= shape[d];
    }
    values.resize(count);
    for (float& v : values) v = std::uniform_real_distribution<float>(low, high)(rng);
    arg.data = values.data();
    arg.dtype = DType::F32;
    arg.shape = std::move(shape);
  }
};

// What a finite-difference check saw: derivatives compared, and points skipped because the function
// is not smooth (or not finite) within the step there.
struct FdCounts {
  int compared = 0;
  int skipped = 0;
};

// The central difference of `f` (the body as a function of the shift, also returning its discrete
// decisions) at step h and h / 2; nullopt where the decisions differ anywhere within the step (a jump
// or kink crossed), the two quotients disagree, or a value is not finite.
template <typename F>
std::optional<double> smooth_central_difference(F&& f, double x) {
  const double h = 1e-5 * std::max(1.0, std::fabs(x));
  std::vector<double> at, moved;
  const double f0 = f(0.0, at);
  double values[4];
  const double steps[4] = {h, -h, h / 2, -h / 2};
  for (int i = 0; i < 4; ++i) {
    moved.clear();
    values[i] = f(steps[i], moved);
    // NaN decisions never compare equal, so a NaN decision also skips the point.
    if (moved != at) return std::nullopt;
  }
  const double wide = (values[0] - values[1]) / (2 * h), narrow = (values[2] - values[3]) / h;
  if (!std::isfinite(f0) || !std::isfinite(wide) || !std::isfinite(narrow)) return std::nullopt;
  const double scale = std::max({1.0, std::fabs(narrow), 1e-9 * std::fabs(f0) / h});
  if (std::fabs(wide - narrow) > 1e-4 * scale) return std::nullopt;
  return narrow;
}

bool close(double derivative, double difference, double f0, double x) {
  const double h = 1e-5 * std::max(1.0, std::fabs(x));
  const double scale = std::max({1.0, std::fabs(difference), 1e-9 * std::fabs(f0) / h});
  return std::fabs(derivative - difference) <= 1e-3 * scale;
}

// Checks d_score and every float tensor's gradient of `body` at `env` against central differences in
// float64; the derivatives themselves are evaluated in float64 too (this checks the rules, not float
// rounding; the optimiser test below covers the binary32 path).
void check_by_finite_differences(const Expr& body, const Environment& env, FdCounts& counts) {
  const ScoreModDerivative derivative = differentiate(body);
  const double f0 = evaluate_float64(body, env);
  const double score = env.builtins[static_cast<int>(Builtin::Score)].f;
  if (auto fd = smooth_central_difference(
          [&](double delta, std::vector<double>& decisions) {
            return evaluate_float64(body, env, {.score_delta = delta}, &decisions);
          },
          score)) {
    const double d = evaluate_float64(derivative.d_score, env);
    INFO("body: " << print_expr(body) << "\nd_score: " << print_expr(derivative.d_score) << "\nat score " << score
                  << ", value " << f0 << ": fd " << *fd << " derivative " << d);
    CHECK(close(d, *fd, f0, score));
    ++counts.compared;
  } else {
    ++counts.skipped;
  }
  for (size_t p = 0; p < env.params.size(); ++p) {
    const auto* tensor = std::get_if<TensorArg>(&env.params[p]);
    if (tensor == nullptr || !dtype_is_float(tensor->dtype)) continue;
    int64_t count = 1;
    for (int64_t extent : tensor->shape) count *= extent;
    // Scatter-add of the sites: gradient[element] = sum of the derivatives of the sites reading it.
    std::vector<double> gradient(count, 0.0);
    for (const TensorGradientSite& site : derivative.sites) {
      if (site.param != p) continue;
      int64_t offset = 0;
      for (size_t d = 0; d < site.indices.size(); ++d) {
        const double index = evaluate_float64(make_cast(Type::Float, site.indices[d]), env);
        REQUIRE(index >= 0);
        REQUIRE(index < tensor->shape[d]);
        offset += static_cast<int64_t>(index) * tensor->strides[d];
      }
      gradient[offset] += evaluate_float64(site.derivative, env);
    }
    for (int64_t element = 0; element < count; ++element) {
      const double x = load_as_float(tensor->data, tensor->dtype, element);
      const auto f = [&](double delta, std::vector<double>& decisions) {
        return evaluate_float64(
            body, env, {.param = static_cast<int64_t>(p), .element = element, .element_delta = delta}, &decisions);
      };
      if (auto fd = smooth_central_difference(f, x)) {
        INFO("body: " << print_expr(body) << "\nparam " << p << " element " << element << ": fd " << *fd << " gradient "
                      << gradient[element]);
        CHECK(close(gradient[element], *fd, f0, x));
        ++counts.compared;
      } else {
        ++counts.skipped;
      }
    }
  }
}

}  // namespace

TEST_CASE("derivatives of small score mods match hand-computed values", "[differentiate]") {
  const Module module = load_module_text("small.attn", R"(
score_mod softcap(cap: float) = cap * tanh(score / cap);
score_mod alibi(slopes: float[H]) = score - slopes[h] * abs(q_idx - kv_idx);
score_mod bias(table: float[NH, R]) = score * 2.0 + table[h, clamp(q_idx - kv_idx + R / 2, 0, R - 1)];
score_mod squash(t: float[N]) = where(score > 0.0, sqrt(score), -inf) + t[0] * t[0];
)");
  Environment env;
  env.set_point(0, 1, 5, 2, 0.75f);
  env.set_sizes(8, 8, 2, 2);

  SECTION("softcap: d/dscore = 1 - tanh(score / cap)^2") {
    env.params = {Value::of_float(2.0f)};
    const ScoreModDerivative d = differentiate(optimized_score_mod(module, "softcap").body);
    const double t = std::tanh(0.75 / 2.0);
    CHECK(interpret(d.d_score, env) == Approx(1.0 - t * t).epsilon(1e-6));
    CHECK(d.sites.empty());
  }
  SECTION("alibi: d/dscore = 1, d/dslopes[h] = -|q_idx - kv_idx|") {
    std::vector<float> slopes{0.5f, 0.25f};
    env.params = {TensorArg{slopes.data(), DType::F32, {2}, {1}}};
    const ScoreModDerivative d = differentiate(optimized_score_mod(module, "alibi").body);
    CHECK(interpret(d.d_score, env) == 1.0f);
    REQUIRE(d.sites.size() == 1);
    CHECK(d.sites[0].param == 0);
    CHECK(evaluate(d.sites[0].indices[0], env).as_int() == 1);
    CHECK(interpret(d.sites[0].derivative, env) == -3.0f);
  }
  SECTION("a relative bias table: d/dscore = 2, the bucket read gets 1") {
    std::vector<float> table(2 * 5, 0.0f);
    env.params = {TensorArg{table.data(), DType::F32, {2, 5}, {5, 1}}};
    const ScoreModDerivative d = differentiate(optimized_score_mod(module, "bias").body);
    CHECK(interpret(d.d_score, env) == 2.0f);
    REQUIRE(d.sites.size() == 1);
    CHECK(evaluate(d.sites[0].indices[0], env).as_int() == 1);
    CHECK(evaluate(d.sites[0].indices[1], env).as_int() == 4);  // clamp(3 + 2, 0, 4)
    CHECK(interpret(d.sites[0].derivative, env) == 1.0f);
  }
  SECTION("where: the branch not taken gives exactly 0, not 0 * inf") {
    std::vector<float> t{3.0f};
    env.params = {TensorArg{t.data(), DType::F32, {1}, {1}}};
    const ScoreModDerivative d = differentiate(optimized_score_mod(module, "squash").body);
    env.set(Builtin::Score, Value::of_float(-1.0f));  // sqrt'(-1) is NaN, but that branch is not taken
    CHECK(interpret(d.d_score, env) == 0.0f);
    env.set(Builtin::Score, Value::of_float(0.0f));  // not taken either: the condition is false at 0
    CHECK(interpret(d.d_score, env) == 0.0f);
    env.set(Builtin::Score, Value::of_float(4.0f));
    CHECK(interpret(d.d_score, env) == 0.25f);
    REQUIRE(d.sites.size() == 1);  // t[0] * t[0]: one load node read twice
    CHECK(interpret(d.sites[0].derivative, env) == 6.0f);
  }
}

TEST_CASE("non-differentiable points take the documented values", "[differentiate]") {
  const Expr score = make_builtin(Builtin::Score);
  const Expr two = make_float(2.0f);
  Environment env;
  const auto d_at = [&](const Expr& body, float at) {
    env.set(Builtin::Score, Value::of_float(at));
    return interpret(differentiate(body).d_score, env);
  };
  CHECK(d_at(make_call(Op::Abs, {score}), 0.0f) == 0.0f);
  CHECK(d_at(make_call(Op::Abs, {score}), -3.0f) == -1.0f);
  CHECK(d_at(make_binary(Op::Min, score, two), 2.0f) == 0.5f);  // a tie splits
  CHECK(d_at(make_binary(Op::Min, two, score), 2.0f) == 0.5f);  // whichever operand comes first
  CHECK(d_at(make_binary(Op::Max, score, two), 3.0f) == 1.0f);
  CHECK(d_at(make_binary(Op::Max, score, two), 1.0f) == 0.0f);
  CHECK(d_at(make_binary(Op::Min, score, make_float(NAN)), 1.0f) == 1.0f);  // fminf returns score
  CHECK(d_at(make_call(Op::Floor, {score}), 1.5f) == 0.0f);
  CHECK(d_at(make_cast(Type::Float, make_cast(Type::Int, score)), 1.5f) == 0.0f);
  CHECK(d_at(make_call(Op::Pow, {score, make_float(0.0f)}), 0.0f) == 0.0f);   // d/dx x^0 at 0
  CHECK(d_at(make_call(Op::Pow, {make_float(0.0f), score}), 2.0f) == 0.0f);   // d/dy 0^y for y >= 0
  CHECK(d_at(make_binary(Op::Mod, make_float(7.0f), score), 2.0f) == -3.0f);  // -trunc(7 / 2)
}

TEST_CASE("derivatives of the built-in and composed score mods match central differences", "[differentiate]") {
  std::mt19937 rng(1234);
  FdCounts counts;
  const struct {
    const Module* module;
    const char* name;
  } mods[] = {{&prelude_module(), "alibi"},
              {&prelude_module(), "softcap"},
              {&prelude_module(), "additive_bias"},
              {&attnc::test::composition_mods(), "softcap_alibi"},
              {&attnc::test::composition_mods(), "everything"}};
  for (const auto& named : mods) {
    const ModDef def = optimized_score_mod(*named.module, named.name);
    for (int trial = 0; trial < 40; ++trial) {
      CAPTURE(named.name, trial);
      Environment env;
      env.set_point(std::uniform_int_distribution<int>(0, 1)(rng), std::uniform_int_distribution<int>(0, 3)(rng),
                    std::uniform_int_distribution<int>(0, 9)(rng), std::uniform_int_distribution<int>(0, 9)(rng),
                    std::uniform_real_distribution<float>(-6.0f, 6.0f)(rng));
      env.set_sizes(10, 10, 4, 2);
      std::vector<FloatTensor> tensors;
      tensors.reserve(4);
      std::vector<std::vector<uint8_t>> bools;
      for (const ParamDecl& param : def.params) {
        if (!param.is_tensor()) {
          env.params.emplace_back(param.elem == Type::Float
                                      ? Value::of_float(std::uniform_real_distribution<float>(1.0f, 8.0f)(rng))
                                      : Value::of_int(std::uniform_int_distribution<int>(-3, 3)(rng)));
          continue;
        }
        std::vector<int64_t> shape(param.rank(), 3);
        if (param.elem == Type::Float) {
          tensors.emplace_back(shape, rng, -2.0f, 2.0f);
          env.params.emplace_back(tensors.back().arg);
        } else {
          bools.emplace_back(27, 0);
          for (uint8_t& v : bools.back()) v = std::uniform_int_distribution<int>(0, 1)(rng);
          std::vector<int64_t> strides(param.rank(), 1);
          for (size_t d = param.rank() - 1; d-- > 0;) strides[d] = strides[d + 1] * 3;
          env.params.emplace_back(TensorArg{bools.back().data(), DType::Bool, shape, strides});
        }
      }
      check_by_finite_differences(def.body, env, counts);
    }
  }
  CAPTURE(counts.compared, counts.skipped);
  CHECK(counts.compared > 5 * 40);  // most points are smooth for these mods
}

TEST_CASE("derivatives of random score mods match central differences", "[differentiate][random]") {
  RandomExprOptions options;
  options.params = {{Type::Int, {}, DType::I32},       {Type::Float, {}, DType::F32},   {Type::Float, {3}, DType::F32},
                    {Type::Float, {2, 3}, DType::F16}, {Type::Int, {2, 3}, DType::I32}, {Type::Bool, {4}, DType::Bool}};
  options.edge_value_probability = 0.05;
  FdCounts counts;
  int nonconstant = 0;
  for (uint32_t seed = 0; seed < 1500; ++seed) {
    std::mt19937 rng(seed);
    const Expr body = random_expr(rng, Type::Float, 1 + seed % 5, options);
    CAPTURE(seed);
    if (differentiate(optimize_expr(body)).d_score->kind != Kind::Const) ++nonconstant;
    for (int point = 0; point < 3; ++point) {
      RandomEnvironment random = random_environment(rng, options);
      check_by_finite_differences(body, random.env, counts);
    }
  }
  CAPTURE(counts.compared, counts.skipped, nonconstant);
  // Random mods hit NaN, infinities and jumps often; most points must still be comparable.
  CHECK(counts.compared > counts.skipped);
  CHECK(nonconstant > 250);
}

TEST_CASE("optimising the derivative IR does not change its value", "[differentiate][random]") {
  int evaluations = 0;
  for (uint32_t seed = 0; seed < 1500; ++seed) {
    std::mt19937 rng(seed);
    const Expr body = random_expr(rng, Type::Float, 1 + seed % 6);
    const ScoreModDerivative derivative = differentiate(body);
    std::vector<Expr> derivatives{derivative.d_score};
    for (const TensorGradientSite& site : derivative.sites) {
      derivatives.push_back(site.derivative);
      derivatives.insert(derivatives.end(), site.indices.begin(), site.indices.end());
    }
    for (const Expr& e : derivatives) {
      const Expr optimized = optimize_expr(e);
      const CompiledExpr before(e), after(optimized);
      for (int point = 0; point < 4; ++point) {
        const RandomEnvironment random = random_environment(rng);
        const Value want = before.evaluate(random.env), got = after.evaluate(random.env);
        INFO("seed " << seed << "\nbefore: " << print_expr(e) << "\nafter: " << print_expr(optimized) << "\n"
                     << to_string(want) << " vs " << to_string(got));
        REQUIRE(same_result(want, got));
        ++evaluations;
      }
    }
  }
  CHECK(evaluations > 6000);
}

TEST_CASE("derivative definitions are optimised score mods over the same parameters", "[differentiate]") {
  const ModDef alibi = optimized_score_mod(prelude_module(), "alibi");
  const DerivativeDefs defs = derivative_defs(alibi);
  CHECK(defs.d_score.kind == ModKind::Score);
  CHECK(defs.d_score.params.size() == alibi.params.size());
  CHECK(defs.d_score.body->kind == Kind::Const);  // d(score - ...)/dscore folds to 1
  REQUIRE(defs.sites.size() == 1);
  REQUIRE(defs.sites[0].indices.size() == 1);
  CHECK(defs.sites[0].indices[0].body->type == Type::Float);
  // The optimised definitions are a fixed point of the pipeline.
  CHECK(equal(optimize_expr(defs.sites[0].derivative.body), defs.sites[0].derivative.body));
}
