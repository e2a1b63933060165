// The LLVM JIT checked against the interpreter (issue 4's differential test): random well-typed
// expressions, compiled by the JIT and evaluated at random points, must give the interpreter's
// result bit for bit (any NaN matches any NaN). Scalar code calls the same libm functions as the
// interpreter and never lets LLVM fold them, so there transcendental functions are held to the same
// standard as exact operations. The 16-lane key loop may compute them with glibc's libmvec instead
// (jit::CodegenTarget::vector_math), so a transcendental function on per-key values is allowed
// kTranscendentalUlps ulp, with NaN, infinities and zeros still classified exactly; everything else
// stays bit for bit. Random tile bodies that contain a transcendental function are held only
// loosely (their mismatch rate is bounded): later operations can amplify those few ulp without
// limit (log(exp(x) / x) near 1, a comparison on the edge), so no per-element bound holds. Edge values (x / 0, x % 0,
// INT_MIN / -1, overflow, NaN, +-inf, -0, out-of-range tensor indices, fp16/bf16/int64 storage) come from the
// generator's leaves and from the hand-written tables below. Three paths are covered: the point function (scalar code,
// every type including the tile classifier's Int64 and LoadRange), the tile function (16-lane vector code over keys,
// and the scalar bounds-checked path) and the tile classifier.

#include <catch2/catch.hpp>

#if ATTNC_HAVE_LLVM

#include <bit>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "compiler/IRMutator.h"
#include "compiler/Interpreter.h"
#include "compiler/Pipeline.h"
#include "compiler/Printer.h"
#include "compiler/TileClassifier.h"
#include "runtime/cpu/CpuModProgram.h"
#include "runtime/llvm/LlvmJit.h"
#include "tests/support/RandomExpr.h"

using namespace attnc;
using namespace attnc::ir;
using namespace attnc::ir::test;

namespace {

constexpr int32_t kIntMin = std::numeric_limits<int32_t>::min();
constexpr int32_t kIntMax = std::numeric_limits<int32_t>::max();
constexpr float kInf = std::numeric_limits<float>::infinity();
const float kNaN = std::numeric_limits<float>::quiet_NaN();

int32_t wrapping_add(int32_t a, int32_t b) {
  return static_cast<int32_t>(static_cast<uint32_t>(a) + static_cast<uint32_t>(b));
}

// The runtime's view of an interpreter environment's parameters.
std::vector<CpuParam> cpu_params(const Environment& env) {
  std::vector<CpuParam> params(env.params.size());
  for (size_t i = 0; i < env.params.size(); ++i) {
    CpuParam& p = params[i];
    if (const auto* v = std::get_if<Value>(&env.params[i])) {
      p.int_value = v->as_int();
      p.float_value = v->f;
      p.bool_value = v->as_bool() ? 1 : 0;
      continue;
    }
    const TensorArg& t = std::get<TensorArg>(env.params[i]);
    p.data = t.data;
    p.rank = static_cast<int32_t>(t.shape.size());
    for (size_t d = 0; d < t.shape.size(); ++d) {
      p.shape[d] = t.shape[d];
      p.strides[d] = t.strides[d];
    }
  }
  return params;
}

TilePosition position_of(const Environment& env) {
  auto get = [&](Builtin b) { return env.builtins[static_cast<int>(b)].as_int(); };
  TilePosition at;
  at.b = get(Builtin::Batch);
  at.h = get(Builtin::Head);
  at.q_len = get(Builtin::QLen);
  at.kv_len = get(Builtin::KvLen);
  at.num_heads = get(Builtin::NumHeads);
  at.num_kv_heads = get(Builtin::NumKvHeads);
  return at;
}

// The interpreter with the runtime's reporting rule: the first out-of-range index is recorded and
// evaluation goes on clamped.
Value interpret(const CompiledExpr& expr, Environment& env, CpuBoundsReport& report) {
  try {
    return expr.evaluate(env);
  } catch (const IndexOutOfRange& e) {
    if (report.failed == 0) {
      report.failed = 1;
      report.param = static_cast<int32_t>(e.param);
      report.dim = static_cast<int32_t>(e.dim);
      report.index = e.index;
      report.extent = e.extent;
      report.b = env.builtins[static_cast<int>(Builtin::Batch)].as_int();
      report.h = env.builtins[static_cast<int>(Builtin::Head)].as_int();
      report.q_idx = env.builtins[static_cast<int>(Builtin::QIdx)].as_int();
      report.kv_idx = env.builtins[static_cast<int>(Builtin::KvIdx)].as_int();
    }
    const bool checking = env.check_bounds;
    env.check_bounds = false;
    Value v = expr.evaluate(env);
    env.check_bounds = checking;
    return v;
  }
}

Value run_point(const jit::CompiledPoint& point, Type type, const Environment& env, bool check_bounds,
                CpuBoundsReport& report) {
  int32_t builtins[kBuiltinCount] = {};
  for (int b = 0; b < kBuiltinCount; ++b) {
    if (builtin_type(static_cast<Builtin>(b)) == Type::Int) builtins[b] = env.builtins[b].as_int();
  }
  std::vector<CpuParam> params = cpu_params(env);
  int64_t int_result = 0x5a5a5a5a5a5a;
  float float_result = 0;
  point.function(builtins, env.builtins[static_cast<int>(Builtin::Score)].f, params.data(), check_bounds ? 1 : 0,
                 &report, &int_result, &float_result);
  switch (type) {
    case Type::Float: return Value::of_float(float_result);
    case Type::Int64: return Value::of_int64(int_result);
    case Type::Int: {
      Value v = Value::of_int(static_cast<int32_t>(int_result));
      if (v.i != int_result) v.i = int_result;  // a wrong sign extension shows up as a mismatch
      return v;
    }
    case Type::Bool: return Value{Type::Bool, int_result, 0};
  }
  return {};
}

bool same_report(const CpuBoundsReport& a, const CpuBoundsReport& b) {
  return a.failed == b.failed && a.param == b.param && a.dim == b.dim && a.index == b.index && a.extent == b.extent &&
         a.b == b.b && a.h == b.h && a.q_idx == b.q_idx && a.kv_idx == b.kv_idx;
}

std::string describe_report(const CpuBoundsReport& r) {
  return "failed=" + std::to_string(r.failed) + " param=" + std::to_string(r.param) + " dim=" + std::to_string(r.dim) +
         " index=" + std::to_string(r.index) + " extent=" + std::to_string(r.extent) + " at (" + std::to_string(r.b) +
         ", " + std::to_string(r.h) + ", " + std::to_string(r.q_idx) + ", " + std::to_string(r.kv_idx) + ")";
}

std::string describe_environment(const Environment& env) {
  std::string out;
  for (int b = 0; b < kBuiltinCount; ++b) {
    out += std::string(builtin_spelling(static_cast<Builtin>(b))) + "=" + to_string(env.builtins[b]) + " ";
  }
  for (size_t p = 0; p < env.params.size(); ++p) {
    if (const auto* v = std::get_if<Value>(&env.params[p])) out += "p" + std::to_string(p) + "=" + to_string(*v) + " ";
  }
  return out;
}

std::string print(const Expr& e) { return print_expr(e); }

// How far libmvec's functions may stray from libm's (glibc documents at most 4 ulp for the float
// vector variants used here).
constexpr int64_t kTranscendentalUlps = 4;

bool is_transcendental(Op op) {
  switch (op) {
    case Op::Exp:
    case Op::Exp2:
    case Op::Log:
    case Op::Log2:
    case Op::Tanh:
    case Op::Sin:
    case Op::Cos:
    case Op::Sigmoid:
    case Op::Pow: return true;
    default: return false;
  }
}

bool has_transcendental(const Expr& root) {
  bool found = false;
  for_each_node(root,
                [&](const Expr& node) { found = found || (node->kind == Kind::Call && is_transcendental(node->op)); });
  return found;
}

// The position of `f` on a line that orders all floats, -0 and +0 adjacent, so that the distance of
// two finite floats is their distance in ulp.
int64_t ordered(float f) {
  const auto bits = static_cast<int32_t>(std::bit_cast<uint32_t>(f));
  return bits < 0 ? -static_cast<int64_t>(bits & 0x7fffffff) - 1 : static_cast<int64_t>(bits);
}

// same_result, or, for two finite floats, at most `ulps` apart. NaN matches only NaN, and an
// infinity only itself, so special values are classified exactly.
bool close_result(const Value& got, const Value& expected, int64_t ulps) {
  if (same_result(got, expected)) return true;
  if (ulps == 0 || got.type != Type::Float || expected.type != Type::Float) return false;
  if (!std::isfinite(got.f) || !std::isfinite(expected.f)) return false;
  const int64_t distance = ordered(got.f) - ordered(expected.f);
  return (distance < 0 ? -distance : distance) <= ulps;
}

ModDef random_def(ModKind kind, const Expr& body, const RandomExprOptions& options) {
  ModDef def;
  def.name = "random";
  def.kind = kind;
  def.params = random_param_decls(options);
  def.body = body;
  return def;
}

}  // namespace

TEST_CASE("JIT'd point functions agree with the interpreter on random expressions of every type",
          "[runtime][llvm][differential]") {
  auto type = GENERATE(Type::Bool, Type::Int, Type::Float, Type::Int64);
  CAPTURE(type_name(type));
  RandomExprOptions options;
  options.use_int64 = true;
  options.use_tile_builtins = true;
  const std::vector<DType> storage = random_param_storage(options);
  int evaluations = 0, reports = 0;
  for (uint32_t seed = 0; seed < 120; ++seed) {
    std::mt19937 rng(seed * 4 + static_cast<uint32_t>(type));
    Expr expr = random_expr(rng, type, 4, options);
    CAPTURE(seed, print(expr));
    jit::CompiledPoint point = jit::LlvmJit::instance().compile_point(expr, storage);
    CompiledExpr reference(expr);
    for (int point_index = 0; point_index < 8; ++point_index) {
      RandomEnvironment random = random_environment(rng, options);
      const bool check = point_index % 2 == 1;
      random.env.check_bounds = check;
      CAPTURE(point_index, check, describe_environment(random.env));
      CpuBoundsReport expected_report, got_report;
      Value expected = interpret(reference, random.env, expected_report);
      Value got = run_point(point, type, random.env, check, got_report);
      CAPTURE(to_string(expected), to_string(got), describe_report(expected_report), describe_report(got_report));
      CHECK(same_result(got, expected));
      CHECK(same_report(got_report, expected_report));
      ++evaluations;
      reports += expected_report.failed;
    }
  }
  CHECK(evaluations == 960);
  CHECK(reports > 0);  // bounds reports were exercised, not only clamping
}

TEST_CASE("JIT'd tile functions of random score and mask mods agree with the interpreter",
          "[runtime][llvm][differential]") {
  auto kind = GENERATE(ModKind::Score, ModKind::Mask);
  CAPTURE(kind == ModKind::Score ? "score" : "mask");
  RandomExprOptions options;
  options.use_score = kind == ModKind::Score;
  const std::vector<DType> storage = random_param_storage(options);
  const int cols_choices[] = {1, 7, 16, 17, 33};
  int elements = 0, loose_elements = 0, loose_mismatches = 0;
  for (uint32_t seed = 0; seed < 100; ++seed) {
    std::mt19937 rng(1000 + seed * 2 + (kind == ModKind::Score ? 0 : 1));
    Expr body = random_expr(rng, kind == ModKind::Score ? Type::Float : Type::Bool, 4, options);
    const bool loose = has_transcendental(body);
    CAPTURE(seed, print(body), loose);
    ModDef def = random_def(kind, body, options);
    jit::CompiledMod compiled = jit::LlvmJit::instance().compile_mod(def, storage);
    CompiledExpr reference(body);
    for (int tile = 0; tile < 4; ++tile) {
      RandomEnvironment random = random_environment(rng, options);
      const bool check = tile % 2 == 1;
      random.env.check_bounds = check;
      const TilePosition at = position_of(random.env);
      const int32_t q_first = random.env.builtins[static_cast<int>(Builtin::QIdx)].as_int();
      const int32_t kv_first = random.env.builtins[static_cast<int>(Builtin::KvIdx)].as_int();
      const int rows = 1 + static_cast<int>(rng() % 3);
      const int cols = cols_choices[rng() % std::size(cols_choices)];
      CAPTURE(tile, check, rows, cols, q_first, kv_first, describe_environment(random.env));
      std::vector<float> scores(static_cast<size_t>(rows * cols));
      for (float& s : scores) s = random_value(rng, Type::Float).f;
      std::vector<float> expected = scores;
      CpuBoundsReport expected_report, got_report;
      for (int r = 0; r < rows; ++r) {
        for (int c = 0; c < cols; ++c) {
          float& s = expected[static_cast<size_t>(r * cols + c)];
          random.env.set_point(at.b, at.h, wrapping_add(q_first, r), wrapping_add(kv_first, c), s);
          Value v = interpret(reference, random.env, expected_report);
          if (kind == ModKind::Score) {
            s = v.f;
          } else if (!v.as_bool()) {
            s = -kInf;
          }
        }
      }
      std::vector<CpuParam> params = cpu_params(random.env);
      compiled.tile(scores.data(), cols, rows, cols, q_first, kv_first, &at, params.data(), check ? 1 : 0, &got_report);
      for (size_t i = 0; i < scores.size(); ++i) {
        CAPTURE(i, expected[i], scores[i]);
        const bool close = close_result(Value::of_float(scores[i]), Value::of_float(expected[i]), kTranscendentalUlps);
        if (loose) {
          ++loose_elements;
          if (!close) ++loose_mismatches;
        } else {
          CHECK(same_result(Value::of_float(scores[i]), Value::of_float(expected[i])));
        }
        ++elements;
      }
      CAPTURE(describe_report(expected_report), describe_report(got_report));
      CHECK(same_report(got_report, expected_report));
    }
  }
  CHECK(elements > 2000);
  // Bodies with transcendental functions were exercised and nearly all their elements stay within
  // kTranscendentalUlps ulp despite the amplification.
  CAPTURE(loose_elements, loose_mismatches);
  CHECK(loose_elements > 100);
  CHECK(loose_mismatches * 100 <= loose_elements);
}

TEST_CASE("JIT'd tile classifiers of random masks agree with the interpreter's", "[runtime][llvm][differential]") {
  RandomExprOptions options;
  options.use_score = false;
  const std::vector<DType> storage = random_param_storage(options);
  int tiles = 0;
  for (uint32_t seed = 0; seed < 80; ++seed) {
    std::mt19937 rng(5000 + seed);
    ModDef def = random_def(ModKind::Mask, optimize_expr(random_expr(rng, Type::Bool, 4, options)), options);
    CAPTURE(seed, print(def.body));
    jit::CompiledMod compiled = jit::LlvmJit::instance().compile_mod(def, storage);
    REQUIRE(compiled.classify != nullptr);
    TileClassifier reference(def);
    for (int tile = 0; tile < 8; ++tile) {
      RandomEnvironment random = random_environment(rng, options);
      const int32_t q_first = std::uniform_int_distribution<int32_t>(-3, 40)(rng);
      const int32_t kv_first = std::uniform_int_distribution<int32_t>(-3, 40)(rng);
      const int32_t q_last = q_first + std::uniform_int_distribution<int32_t>(0, 15)(rng);
      const int32_t kv_last = kv_first + std::uniform_int_distribution<int32_t>(0, 15)(rng);
      CAPTURE(tile, q_first, q_last, kv_first, kv_last, describe_environment(random.env));
      const TilePosition at = position_of(random.env);
      std::vector<CpuParam> params = cpu_params(random.env);
      auto expected = static_cast<int32_t>(reference.classify(random.env, q_first, q_last, kv_first, kv_last));
      CHECK(compiled.classify(q_first, q_last, kv_first, kv_last, &at, params.data()) == expected);
      ++tiles;
    }
  }
  CHECK(tiles == 640);
}

namespace {

const int32_t kIntEdges[] = {0, 1, -1, 2, -2, 7, -7, 3, kIntMin, kIntMax, kIntMin + 1, 1 << 24, (1 << 24) + 1};
const float kFloatEdges[] = {0.0f,           -0.0f,         1.0f,        -1.0f,   0.5f,     -0.5f,
                             1.5f,           2.5f,          -2.5f,       3.5f,    kInf,     -kInf,
                             kNaN,           1e-45f,        -1e-45f,     3.4e38f, -3.4e38f, 2147483648.0f,
                             -2147483648.0f, 2147483520.0f, 16777217.0f, 7.0f,    -7.25f,   100.0f};

// Runs the tile function of score mod `body` over one row whose scores are `scores` (keys
// kv_first, kv_first + 1, ...) and compares every element with the interpreter.
void check_row(const Expr& body, const std::vector<float>& scores, int32_t kv_first,
               const std::vector<Value>& scalars) {
  RandomExprOptions options;
  options.params.clear();
  for (const Value& v : scalars) options.params.push_back({v.type, {}, DType::I32});
  ModDef def = random_def(ModKind::Score, body, options);
  jit::CompiledMod compiled = jit::LlvmJit::instance().compile_mod(def, {});
  Environment env;
  env.set_sizes(1, 1, 1, 1);
  for (const Value& v : scalars) env.params.emplace_back(v);
  std::vector<CpuParam> params = cpu_params(env);
  TilePosition at = position_of(env);
  std::vector<float> got = scores;
  compiled.tile(got.data(), static_cast<int64_t>(got.size()), 1, static_cast<int32_t>(got.size()), 0, kv_first, &at,
                params.data(), 0, nullptr);
  const int64_t ulps = has_transcendental(body) ? kTranscendentalUlps : 0;
  for (size_t c = 0; c < scores.size(); ++c) {
    env.set_point(0, 0, 0, wrapping_add(kv_first, static_cast<int32_t>(c)), scores[c]);
    Value expected = evaluate(body, env);
    CAPTURE(c, scores[c], wrapping_add(kv_first, static_cast<int32_t>(c)), to_string(expected), got[c]);
    CHECK(close_result(Value::of_float(got[c]), expected, ulps));
  }
}

std::vector<float> float_edges() { return {std::begin(kFloatEdges), std::end(kFloatEdges)}; }

}  // namespace

TEST_CASE("vectorised float operations follow Semantics.h on edge values", "[runtime][llvm][differential]") {
  auto op = GENERATE(Op::Add, Op::Sub, Op::Mul, Op::Div, Op::Mod, Op::Min, Op::Max, Op::Pow);
  CAPTURE(op_spelling(op));
  for (float other : kFloatEdges) {
    CAPTURE(other);
    Expr score = make_builtin(Builtin::Score);
    Expr param = make_param(0, Type::Float);
    Expr body = op == Op::Pow ? make_call(op, {score, param}) : make_binary(op, score, param);
    check_row(body, float_edges(), 0, {Value::of_float(other)});
    Expr swapped = op == Op::Pow ? make_call(op, {param, score}) : make_binary(op, param, score);
    check_row(swapped, float_edges(), 0, {Value::of_float(other)});
  }
}

TEST_CASE("vectorised float functions, comparisons and casts follow Semantics.h on edge values",
          "[runtime][llvm][differential]") {
  Expr score = make_builtin(Builtin::Score);
  std::vector<Expr> bodies;
  for (Op f : {Op::Abs, Op::Exp, Op::Exp2, Op::Log, Op::Log2, Op::Sqrt, Op::Rsqrt, Op::Tanh, Op::Sigmoid, Op::Sin,
               Op::Cos, Op::Floor, Op::Ceil, Op::Round}) {
    bodies.push_back(make_call(f, {score}));
  }
  bodies.push_back(make_unary(Op::Neg, score));
  // float -> int saturates and maps NaN to 0; the int is then widened back exactly (|v| < 2^24) or
  // compared, so the integer result itself is checked.
  Expr as_int = make_cast(Type::Int, score);
  bodies.push_back(make_select(make_binary(Op::Eq, as_int, make_int(kIntMax)), make_float(1.0f),
                               make_select(make_binary(Op::Eq, as_int, make_int(kIntMin)), make_float(-1.0f),
                                           make_cast(Type::Float, make_binary(Op::Mod, as_int, make_int(1 << 20))))));
  bodies.push_back(make_cast(Type::Float, make_cast(Type::Bool, score)));
  for (Op cmp : {Op::Lt, Op::Le, Op::Gt, Op::Ge, Op::Eq, Op::Ne}) {
    bodies.push_back(make_select(make_binary(cmp, score, make_float(0.5f)), make_float(1.0f), make_float(0.0f)));
  }
  for (const Expr& body : bodies) {
    CAPTURE(print(body));
    check_row(body, float_edges(), 0, {});
  }
}

TEST_CASE("vectorised integer operations wrap, and divide and take remainders by zero as Semantics.h says",
          "[runtime][llvm][differential]") {
  auto op = GENERATE(Op::Add, Op::Sub, Op::Mul, Op::Div, Op::Mod, Op::Min, Op::Max);
  CAPTURE(op_spelling(op));
  Expr kv = make_builtin(Builtin::KvIdx);
  Expr param = make_param(0, Type::Int);
  // The int result is split into two exactly representable halves, so no bit is lost to the float.
  auto encode = [](const Expr& x) {
    Expr high = make_binary(Op::Div, x, make_int(1 << 16));
    Expr low = make_binary(Op::Mod, x, make_int(1 << 16));
    return make_binary(Op::Add, make_binary(Op::Mul, make_cast(Type::Float, high), make_float(65536.0f)),
                       make_binary(Op::Mul, make_cast(Type::Float, low), make_float(1.0f / 65536.0f)));
  };
  std::vector<float> scores(19, 0.0f);  // a full vector and a tail
  for (int32_t kv_first : {-9, kIntMin, kIntMax - 9, -(1 << 24)}) {
    for (int32_t other : kIntEdges) {
      CAPTURE(kv_first, other);
      check_row(encode(make_binary(op, kv, param)), scores, kv_first, {Value::of_int(other)});
      check_row(encode(make_binary(op, param, kv)), scores, kv_first, {Value::of_int(other)});
    }
  }
}

TEST_CASE("the JIT's integer rules match hand-computed values", "[runtime][llvm][differential]") {
  using Row = std::tuple<Op, int32_t, int32_t, int32_t>;
  auto [op, a, b, expected] = GENERATE(table<Op, int32_t, int32_t, int32_t>({
      Row{Op::Div, 7, 0, 0},
      Row{Op::Mod, 7, 0, 0},
      Row{Op::Div, kIntMin, -1, kIntMin},
      Row{Op::Mod, kIntMin, -1, 0},
      Row{Op::Div, -7, 2, -3},
      Row{Op::Mod, -7, 2, -1},
      Row{Op::Mod, 7, -2, 1},
      Row{Op::Add, kIntMax, 1, kIntMin},
      Row{Op::Mul, 65536, 65536, 0},
      Row{Op::Sub, kIntMin, 1, kIntMax},
  }));
  CAPTURE(op_spelling(op), a, b);
  std::vector<DType> storage{DType::I32, DType::I32};
  jit::CompiledPoint point = jit::LlvmJit::instance().compile_point(
      make_binary(op, make_param(0, Type::Int), make_param(1, Type::Int)), storage);
  Environment env;
  env.params = {Value::of_int(a), Value::of_int(b)};
  CpuBoundsReport report;
  CHECK(run_point(point, Type::Int, env, false, report).i == expected);
}

TEST_CASE("JIT'd loads clamp, report and convert every storage type", "[runtime][llvm][differential]") {
  auto dtype = GENERATE(DType::F32, DType::F16, DType::BF16, DType::I32, DType::I64, DType::U8, DType::Bool);
  CAPTURE(dtype_name(dtype));
  Type elem = dtype_is_float(dtype) ? Type::Float : (dtype_is_integer(dtype) ? Type::Int : Type::Bool);
  RandomExprOptions options;
  options.params = {{elem, {5, 3}, dtype}};
  // A strided view: rows of 3 taken from a wider buffer by using the environment's own layout.
  Expr load = make_load(0, elem, {make_builtin(Builtin::QIdx), make_builtin(Builtin::KvIdx)});
  std::vector<DType> storage{dtype};
  jit::CompiledPoint point = jit::LlvmJit::instance().compile_point(load, storage);
  std::mt19937 rng(17);
  int reported = 0;
  for (int trial = 0; trial < 40; ++trial) {
    RandomEnvironment random = random_environment(rng, options);
    for (int q : {-2, 0, 4, 5, 9}) {
      for (int kv : {-1, 0, 2, 3, kIntMax}) {
        random.env.set_point(0, 0, q, kv);
        random.env.check_bounds = ((q ^ kv) & 1) == 0;  // q + kv even, without overflowing at INT_MAX
        CAPTURE(q, kv, random.env.check_bounds);
        CpuBoundsReport expected_report, got_report;
        Value expected = interpret(CompiledExpr(load), random.env, expected_report);
        Value got = run_point(point, elem, random.env, random.env.check_bounds, got_report);
        CAPTURE(to_string(expected), to_string(got));
        // Loads are exact: even NaN payloads of fp16 / bf16 come through unchanged.
        CHECK(identical(got, expected));
        CHECK(same_report(got_report, expected_report));
        reported += got_report.failed;
      }
    }
  }
  CHECK(reported > 0);
}

#endif
