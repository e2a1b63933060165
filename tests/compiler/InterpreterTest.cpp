#include "compiler/Interpreter.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "dsl/Errors.h"

using namespace attnc;
using namespace attnc::ir;

namespace {

constexpr int32_t kIntMin = std::numeric_limits<int32_t>::min();
constexpr int32_t kIntMax = std::numeric_limits<int32_t>::max();
constexpr int64_t kInt64Min = std::numeric_limits<int64_t>::min();
constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();
const float kInf = std::numeric_limits<float>::infinity();
const float kNaN = std::numeric_limits<float>::quiet_NaN();

Value run(const Expr& e, std::vector<ParamBinding> params = {}) {
  Environment env;
  env.params = std::move(params);
  return evaluate(e, env);
}

uint32_t bits(float f) { return std::bit_cast<uint32_t>(f); }

template <typename T>
TensorArg tensor_of(const std::vector<T>& data, DType dtype, std::vector<int64_t> shape, std::vector<int64_t> strides) {
  return TensorArg{data.data(), dtype, std::move(shape), std::move(strides)};
}

Expr index(int32_t i) { return make_int(i); }
Expr bound(int64_t i) { return make_int64(i); }

}  // namespace

TEST_CASE("int arithmetic wraps and divides like the contract says", "[interpreter][int]") {
  auto [op, a, b, expected] = GENERATE(table<Op, int32_t, int32_t, int32_t>({
      {Op::Add, 2, 3, 5},
      {Op::Add, kIntMax, 1, kIntMin},
      {Op::Sub, kIntMin, 1, kIntMax},
      {Op::Sub, 3, 10, -7},
      {Op::Mul, -7, 6, -42},
      {Op::Mul, 65536, 65536, 0},
      {Op::Mul, 65537, 65537, 131073},
      {Op::Mul, kIntMin, -1, kIntMin},
      {Op::Div, 7, 2, 3},
      {Op::Div, -7, 2, -3},
      {Op::Div, 7, -2, -3},
      {Op::Div, kIntMin, -1, kIntMin},
      {Op::Div, 7, 0, 0},
      {Op::Div, -7, 0, 0},
      {Op::Mod, 7, 3, 1},
      {Op::Mod, -7, 3, -1},
      {Op::Mod, 7, -3, 1},
      {Op::Mod, -7, -3, -1},
      {Op::Mod, 7, 0, 0},
      {Op::Mod, kIntMin, -1, 0},
      {Op::Min, -3, 2, -3},
      {Op::Max, -3, 2, 2},
      {Op::Min, kIntMin, kIntMax, kIntMin},
      {Op::Max, kIntMin, kIntMax, kIntMax},
  }));
  CAPTURE(op_spelling(op), a, b);
  // Through parameters, so the values arrive at run time as they would in a real mod.
  Expr e = make_binary(op, make_param(0, Type::Int), make_param(1, Type::Int));
  Value v = run(e, {Value::of_int(a), Value::of_int(b)});
  CHECK(v.type == Type::Int);
  CHECK(v.as_int() == expected);
}

TEST_CASE("int comparisons give bools", "[interpreter][int]") {
  auto [op, a, b, expected] = GENERATE(table<Op, int32_t, int32_t, bool>({
      {Op::Lt, 1, 2, true},
      {Op::Lt, 2, 2, false},
      {Op::Le, 2, 2, true},
      {Op::Le, 3, 2, false},
      {Op::Gt, kIntMax, kIntMin, true},
      {Op::Gt, 2, 2, false},
      {Op::Ge, 2, 2, true},
      {Op::Ge, -1, 0, false},
      {Op::Eq, -5, -5, true},
      {Op::Eq, -5, 5, false},
      {Op::Ne, -5, 5, true},
      {Op::Ne, 0, 0, false},
  }));
  CAPTURE(op_spelling(op), a, b);
  Value v = run(make_binary(op, make_param(0, Type::Int), make_int(b)), {Value::of_int(a)});
  CHECK(v.type == Type::Bool);
  CHECK(v.as_bool() == expected);
}

TEST_CASE("int64 arithmetic wraps at 64 bits", "[interpreter][int64]") {
  CHECK(run(make_binary(Op::Add, make_int64(kInt64Max), make_int64(1))).i == kInt64Min);
  CHECK(run(make_binary(Op::Div, make_int64(kInt64Min), make_int64(-1))).i == kInt64Min);
  CHECK(run(make_binary(Op::Div, make_int64(9), make_int64(0))).i == 0);
  CHECK(run(make_binary(Op::Mul, make_int64(int64_t{1} << 40), make_int64(3))).i == (int64_t{3} << 40));
  CHECK(run(make_unary(Op::Neg, make_int64(kInt64Min))).i == kInt64Min);
  CHECK(run(make_binary(Op::Lt, make_int64(-(int64_t{1} << 40)), make_int64(1))).as_bool());
}

TEST_CASE("float arithmetic follows IEEE binary32", "[interpreter][float]") {
  auto [op, a, b, expected] = GENERATE(table<Op, float, float, float>({
      {Op::Add, 1.5f, 2.25f, 3.75f},
      {Op::Add, 1.0f, 0x1p-24f, 1.0f},  // rounds to nearest even in binary32, not double
      {Op::Sub, 1.0f, 1.0f, 0.0f},
      {Op::Mul, 1e30f, 1e30f, kInf},
      {Op::Mul, -3.0f, 0.5f, -1.5f},
      {Op::Div, 1.0f, 0.0f, kInf},
      {Op::Div, -1.0f, 0.0f, -kInf},
      {Op::Div, 1.0f, 3.0f, 1.0f / 3.0f},
      {Op::Mod, 7.5f, 2.0f, 1.5f},
      {Op::Mod, -7.5f, 2.0f, -1.5f},
      {Op::Min, kNaN, 3.0f, 3.0f},
      {Op::Min, 3.0f, kNaN, 3.0f},
      {Op::Max, kNaN, -3.0f, -3.0f},
      {Op::Max, -1.0f, 2.0f, 2.0f},
      {Op::Min, -1.0f, 2.0f, -1.0f},
  }));
  CAPTURE(op_spelling(op), a, b);
  Value v = run(make_binary(op, make_param(0, Type::Float), make_param(1, Type::Float)),
                {Value::of_float(a), Value::of_float(b)});
  CHECK(v.type == Type::Float);
  CHECK(bits(v.f) == bits(expected));
}

TEST_CASE("float operations that produce NaN", "[interpreter][float]") {
  CHECK(std::isnan(run(make_binary(Op::Div, make_float(0.0f), make_float(0.0f))).f));
  CHECK(std::isnan(run(make_binary(Op::Sub, make_float(kInf), make_float(kInf))).f));
  CHECK(std::isnan(run(make_binary(Op::Min, make_float(kNaN), make_float(kNaN))).f));
  CHECK(std::isnan(run(make_binary(Op::Mod, make_float(1.0f), make_float(0.0f))).f));
}

TEST_CASE("float comparisons with NaN are false except !=", "[interpreter][float]") {
  auto [op, a, b, expected] = GENERATE(table<Op, float, float, bool>({
      {Op::Lt, kNaN, 1.0f, false},
      {Op::Ge, kNaN, 1.0f, false},
      {Op::Eq, kNaN, kNaN, false},
      {Op::Ne, kNaN, kNaN, true},
      {Op::Eq, 0.0f, -0.0f, true},
      {Op::Le, 1.0f, 1.0f, true},
      {Op::Gt, 2.0f, 1.0f, true},
      {Op::Ge, 1.0f, 2.0f, false},
      {Op::Lt, -kInf, -1e38f, true},
  }));
  CAPTURE(op_spelling(op), a, b);
  CHECK(run(make_binary(op, make_float(a), make_float(b))).as_bool() == expected);
}

TEST_CASE("bool operators evaluate both sides and compare for equality", "[interpreter][bool]") {
  auto [a, b] = GENERATE(table<bool, bool>({{false, false}, {false, true}, {true, false}, {true, true}}));
  CAPTURE(a, b);
  std::vector<ParamBinding> params{Value::of_bool(a), Value::of_bool(b)};
  Expr pa = make_param(0, Type::Bool), pb = make_param(1, Type::Bool);
  CHECK(run(make_binary(Op::And, pa, pb), params).as_bool() == (a && b));
  CHECK(run(make_binary(Op::Or, pa, pb), params).as_bool() == (a || b));
  CHECK(run(make_binary(Op::Eq, pa, pb), params).as_bool() == (a == b));
  CHECK(run(make_binary(Op::Ne, pa, pb), params).as_bool() == (a != b));
  CHECK(run(make_unary(Op::Not, pa), params).as_bool() == !a);
}

TEST_CASE("negation wraps for ints and flips the sign bit for floats", "[interpreter][unary]") {
  CHECK(run(make_unary(Op::Neg, make_int(5))).as_int() == -5);
  CHECK(run(make_unary(Op::Neg, make_int(kIntMin))).as_int() == kIntMin);
  CHECK(bits(run(make_unary(Op::Neg, make_float(0.0f))).f) == bits(-0.0f));
  CHECK(run(make_unary(Op::Neg, make_float(-kInf))).f == kInf);
}

TEST_CASE("math functions give the documented values", "[interpreter][call]") {
  auto [function, x, expected] = GENERATE(table<Op, float, float>({
      {Op::Abs, -2.5f, 2.5f},      {Op::Abs, -0.0f, 0.0f},       {Op::Exp, 0.0f, 1.0f},      {Op::Exp, -kInf, 0.0f},
      {Op::Exp2, 3.0f, 8.0f},      {Op::Exp2, -1.0f, 0.5f},      {Op::Log, 1.0f, 0.0f},      {Op::Log, 0.0f, -kInf},
      {Op::Log2, 8.0f, 3.0f},      {Op::Sqrt, 4.0f, 2.0f},       {Op::Rsqrt, 4.0f, 0.5f},    {Op::Rsqrt, 0.0f, kInf},
      {Op::Tanh, 0.0f, 0.0f},      {Op::Tanh, 100.0f, 1.0f},     {Op::Tanh, -100.0f, -1.0f}, {Op::Sigmoid, 0.0f, 0.5f},
      {Op::Sigmoid, 200.0f, 1.0f}, {Op::Sigmoid, -200.0f, 0.0f}, {Op::Sin, 0.0f, 0.0f},      {Op::Cos, 0.0f, 1.0f},
      {Op::Floor, -1.5f, -2.0f},   {Op::Floor, 2.0f, 2.0f},      {Op::Ceil, -1.5f, -1.0f},   {Op::Ceil, 1.25f, 2.0f},
      {Op::Round, 0.5f, 0.0f},     {Op::Round, 1.5f, 2.0f},      {Op::Round, 2.5f, 2.0f},    {Op::Round, 3.5f, 4.0f},
      {Op::Round, -2.5f, -2.0f},   {Op::Round, -0.5f, -0.0f},    {Op::Round, 2.6f, 3.0f},
  }));
  CAPTURE(op_spelling(function), x);
  Value v = run(make_call(function, {make_param(0, Type::Float)}), {Value::of_float(x)});
  CHECK(v.type == Type::Float);
  CHECK(bits(v.f) == bits(expected));
}

TEST_CASE("math functions outside their domain give NaN", "[interpreter][call]") {
  auto [function, x] =
      GENERATE(table<Op, float>({{Op::Log, -1.0f}, {Op::Sqrt, -1.0f}, {Op::Log2, -kInf}, {Op::Sin, kInf}}));
  CAPTURE(op_spelling(function), x);
  CHECK(std::isnan(run(make_call(function, {make_float(x)})).f));
}

TEST_CASE("transcendental functions are close to their true values", "[interpreter][call]") {
  CHECK(run(make_call(Op::Exp, {make_float(1.0f)})).f == Approx(2.7182818f));
  CHECK(run(make_call(Op::Log, {make_float(10.0f)})).f == Approx(2.3025851f));
  CHECK(run(make_call(Op::Tanh, {make_float(0.5f)})).f == Approx(0.46211716f));
  CHECK(run(make_call(Op::Sigmoid, {make_float(1.0f)})).f == Approx(0.7310586f));
  CHECK(run(make_call(Op::Sin, {make_float(1.0f)})).f == Approx(0.84147098f));
}

TEST_CASE("pow and abs on ints", "[interpreter][call]") {
  CHECK(run(make_call(Op::Pow, {make_float(2.0f), make_float(10.0f)})).f == 1024.0f);
  CHECK(run(make_call(Op::Pow, {make_float(4.0f), make_float(0.5f)})).f == 2.0f);
  CHECK(run(make_call(Op::Pow, {make_float(0.0f), make_float(0.0f)})).f == 1.0f);
  CHECK(std::isnan(run(make_call(Op::Pow, {make_float(-8.0f), make_float(1.0f / 3.0f)})).f));
  Value a = run(make_call(Op::Abs, {make_int(-3)}));
  CHECK(a.type == Type::Int);
  CHECK(a.as_int() == 3);
  CHECK(run(make_call(Op::Abs, {make_int(kIntMin)})).as_int() == kIntMin);
  // floor of an int goes through float, as the type checker writes it.
  CHECK(run(make_call(Op::Floor, {make_cast(Type::Float, make_int(-7))})).f == -7.0f);
}

TEST_CASE("casts truncate, saturate and map NaN to zero", "[interpreter][cast]") {
  auto [x, expected] = GENERATE(table<float, int32_t>({
      {kNaN, 0},
      {1e10f, kIntMax},
      {-1e10f, kIntMin},
      {kInf, kIntMax},
      {-kInf, kIntMin},
      {2147483648.0f, kIntMax},
      {2147483520.0f, 2147483520},  // the largest float below 2^31 fits
      {-2147483648.0f, kIntMin},
      {2.7f, 2},
      {-2.7f, -2},
      {-0.5f, 0},
  }));
  CAPTURE(x);
  Value v = run(make_cast(Type::Int, make_param(0, Type::Float)), {Value::of_float(x)});
  CHECK(v.type == Type::Int);
  CHECK(v.as_int() == expected);
}

TEST_CASE("int(log(0.0)) is the smallest int", "[interpreter][cast]") {
  CHECK(run(make_cast(Type::Int, make_call(Op::Log, {make_float(0.0f)}))).as_int() == kIntMin);
}

TEST_CASE("casts between bool, int, int64 and float", "[interpreter][cast]") {
  CHECK(run(make_cast(Type::Float, make_int(16777217))).f == 16777216.0f);  // round to nearest even
  CHECK(run(make_cast(Type::Float, make_bool(true))).f == 1.0f);
  CHECK(run(make_cast(Type::Int, make_bool(true))).as_int() == 1);
  CHECK(run(make_cast(Type::Int, make_bool(false))).as_int() == 0);
  CHECK_FALSE(run(make_cast(Type::Bool, make_float(0.0f))).as_bool());
  CHECK_FALSE(run(make_cast(Type::Bool, make_float(-0.0f))).as_bool());
  CHECK(run(make_cast(Type::Bool, make_float(kNaN))).as_bool());
  CHECK(run(make_cast(Type::Bool, make_int(-5))).as_bool());
  Value widened = run(make_cast(Type::Int64, make_int(-5)));
  CHECK(widened.type == Type::Int64);
  CHECK(widened.i == -5);
  CHECK(run(make_cast(Type::Int, make_int64((int64_t{1} << 32) + 5))).as_int() == 5);
  CHECK(run(make_cast(Type::Int, make_int64(int64_t{1} << 31))).as_int() == kIntMin);
  CHECK(run(make_cast(Type::Int64, make_float(1e30f))).i == kInt64Max);
  CHECK(run(make_cast(Type::Float, make_int64(int64_t{1} << 40))).f == 0x1p40f);
}

TEST_CASE("select picks an arm by its condition", "[interpreter][select]") {
  Expr e = make_select(make_param(0, Type::Bool), make_float(1.5f), make_cast(Type::Float, make_int(-2)));
  CHECK(run(e, {Value::of_bool(true)}).f == 1.5f);
  CHECK(run(e, {Value::of_bool(false)}).f == -2.0f);
  // Both arms are evaluated; a division by zero in the unused arm is harmless.
  Expr safe = make_select(make_bool(false), make_binary(Op::Div, make_int(1), make_int(0)), make_int(7));
  CHECK(run(safe).as_int() == 7);
}

TEST_CASE("builtins read the point and the sizes", "[interpreter][builtin]") {
  Environment env;
  env.set_point(1, 2, 30, 40, -0.75f);
  env.set_sizes(128, 256, 16, 4);
  env.set(Builtin::QTileFirst, Value::of_int(64));
  env.set(Builtin::KvTileLast, Value::of_int(191));
  auto [builtin, expected] = GENERATE(table<Builtin, int32_t>({
      {Builtin::Batch, 1},
      {Builtin::Head, 2},
      {Builtin::QIdx, 30},
      {Builtin::KvIdx, 40},
      {Builtin::QLen, 128},
      {Builtin::KvLen, 256},
      {Builtin::NumHeads, 16},
      {Builtin::NumKvHeads, 4},
      {Builtin::QTileFirst, 64},
      {Builtin::KvTileLast, 191},
  }));
  CAPTURE(builtin_spelling(builtin));
  CHECK(evaluate(make_builtin(builtin), env).as_int() == expected);
  CHECK(evaluate(make_builtin(Builtin::Score), env).f == -0.75f);
}

TEST_CASE("a score that was never set is reported, not read as an int", "[interpreter][builtin]") {
  Environment env;
  CHECK_THROWS_AS(evaluate(make_builtin(Builtin::Score), env), std::invalid_argument);
}

TEST_CASE("mistyped or missing parameter bindings are the caller's error", "[interpreter][param]") {
  std::vector<float> data{1.0f};
  SECTION("a scalar of the wrong type") {
    CHECK_THROWS_WITH(run(make_param(0, Type::Int), {Value::of_float(1.0f)}),
                      Catch::Contains("parameter #0") && Catch::Contains("float"));
  }
  SECTION("a tensor where a scalar is used") {
    CHECK_THROWS_AS(run(make_param(0, Type::Int), {tensor_of(data, DType::F32, {1}, {1})}), std::invalid_argument);
  }
  SECTION("no binding at all") {
    CHECK_THROWS_WITH(run(make_param(2, Type::Float), {Value::of_float(1.0f)}), Catch::Contains("parameter #2"));
  }
  SECTION("a scalar where a tensor is loaded") {
    CHECK_THROWS_AS(run(make_load(0, Type::Float, {index(0)}), {Value::of_float(1.0f)}), std::invalid_argument);
  }
  SECTION("a tensor of the wrong element kind") {
    std::vector<int32_t> ints{1};
    CHECK_THROWS_WITH(run(make_load(0, Type::Float, {index(0)}), {tensor_of(ints, DType::I32, {1}, {1})}),
                      Catch::Contains("int32"));
  }
  SECTION("a tensor of the wrong rank") {
    CHECK_THROWS_WITH(run(make_load(0, Type::Float, {index(0), index(0)}), {tensor_of(data, DType::F32, {1}, {1})}),
                      Catch::Contains("rank 1"));
  }
  SECTION("a well-typed binding is read") {
    CHECK(run(make_param(1, Type::Float), {Value::of_int(0), Value::of_float(2.5f)}).f == 2.5f);
  }
}

TEST_CASE("loads read strided tensors of every storage type", "[interpreter][load]") {
  SECTION("fp32, transposed view") {
    std::vector<float> data(12);
    for (int i = 0; i < 12; ++i) data[i] = static_cast<float>(i) + 0.5f;
    // A 3x4 row-major buffer viewed as its 4x3 transpose: element [i, j] is data[i + 4 j].
    TensorArg t = tensor_of(data, DType::F32, {4, 3}, {1, 4});
    CHECK(run(make_load(0, Type::Float, {index(1), index(2)}), {t}).f == 9.5f);
    CHECK(run(make_load(0, Type::Float, {index(3), index(0)}), {t}).f == 3.5f);
  }
  SECTION("fp16") {
    std::vector<uint16_t> data;
    for (int i = 0; i < 6; ++i) data.push_back(float_to_half(static_cast<float>(i) * -0.5f));
    TensorArg t = tensor_of(data, DType::F16, {2, 3}, {3, 1});
    CHECK(run(make_load(0, Type::Float, {index(1), index(2)}), {t}).f == -2.5f);
  }
  SECTION("bf16 with padded rows") {
    std::vector<uint16_t> data(8, float_to_bfloat16(99.0f));
    data[4] = float_to_bfloat16(-3.0f);
    data[2] = float_to_bfloat16(0.25f);
    TensorArg t = tensor_of(data, DType::BF16, {2, 3}, {4, 1});
    CHECK(run(make_load(0, Type::Float, {index(1), index(0)}), {t}).f == -3.0f);
    CHECK(run(make_load(0, Type::Float, {index(0), index(2)}), {t}).f == 0.25f);
  }
  SECTION("int64 narrows to int by wrapping") {
    std::vector<int64_t> data{(int64_t{1} << 32) + 7, -1, int64_t{1} << 31, -(int64_t{1} << 31) - 1};
    TensorArg t = tensor_of(data, DType::I64, {4}, {1});
    auto [i, expected] = GENERATE(table<int32_t, int32_t>({{0, 7}, {1, -1}, {2, kIntMin}, {3, kIntMax}}));
    CAPTURE(i);
    Value v = run(make_load(0, Type::Int, {index(i)}), {t});
    CHECK(v.type == Type::Int);
    CHECK(v.as_int() == expected);
  }
  SECTION("int32 through a negative stride") {
    std::vector<int32_t> data{10, 20, 30, 40};
    TensorArg t{data.data() + 3, DType::I32, {4}, {-1}};
    CHECK(run(make_load(0, Type::Int, {index(0)}), {t}).as_int() == 40);
    CHECK(run(make_load(0, Type::Int, {index(3)}), {t}).as_int() == 10);
  }
  SECTION("uint8 and bool storage: nonzero is true") {
    std::vector<uint8_t> data{0, 1, 2, 255};
    auto dtype = GENERATE(DType::U8, DType::Bool);
    CAPTURE(dtype_name(dtype));
    TensorArg t = tensor_of(data, dtype, {4}, {1});
    CHECK_FALSE(run(make_load(0, Type::Bool, {index(0)}), {t}).as_bool());
    CHECK(run(make_load(0, Type::Bool, {index(1)}), {t}).as_bool());
    CHECK(run(make_load(0, Type::Bool, {index(2)}), {t}).as_bool());
    CHECK(run(make_load(0, Type::Bool, {index(3)}), {t}).as_bool());
  }
}

TEST_CASE("load indices outside the extent are clamped", "[interpreter][load]") {
  std::vector<int32_t> data{10, 20, 30, 40};
  TensorArg t = tensor_of(data, DType::I32, {4}, {1});
  auto [i, expected] = GENERATE(table<int32_t, int32_t>(
      {{-1, 10}, {-5, 10}, {kIntMin, 10}, {0, 10}, {3, 40}, {4, 40}, {100, 40}, {kIntMax, 40}}));
  CAPTURE(i);
  CHECK(run(make_load(0, Type::Int, {make_param(1, Type::Int)}), {t, Value::of_int(i)}).as_int() == expected);
}

TEST_CASE("with bounds checking on, an index outside the extent throws IndexOutOfRange", "[interpreter][load]") {
  std::vector<float> data(16, 1.0f);
  Environment env;
  env.check_bounds = true;
  env.params = {Value::of_int(0), tensor_of(data, DType::F32, {2, 8}, {8, 1})};
  Expr load = make_load(1, Type::Float, {make_param(0, Type::Int), make_int(9)});
  SECTION("the fields name the parameter, dimension, index and extent") {
    try {
      evaluate(load, env);
      FAIL("expected IndexOutOfRange");
    } catch (const IndexOutOfRange& e) {
      CHECK(e.param == 1);
      CHECK(e.dim == 1);
      CHECK(e.index == 9);
      CHECK(e.extent == 8);
      CHECK(std::string(e.what()) == "index 9 is out of range for dimension 1 of extent 8");
    }
  }
  SECTION("negative indices are out of range too") {
    env.params[0] = Value::of_int(-1);
    Expr in_range_column = make_load(1, Type::Float, {make_param(0, Type::Int), make_int(3)});
    CHECK_THROWS_MATCHES(evaluate(in_range_column, env), IndexOutOfRange,
                         Catch::Message("index -1 is out of range for dimension 0 of extent 2"));
  }
  SECTION("indices in range still load") {
    Expr ok = make_load(1, Type::Float, {make_param(0, Type::Int), make_int(7)});
    CHECK(evaluate(ok, env).f == 1.0f);
  }
}

TEST_CASE("extent reads the bound tensor's shape", "[interpreter][extent]") {
  std::vector<float> data(21);
  std::vector<ParamBinding> params{Value::of_int(0), tensor_of(data, DType::F32, {3, 7}, {7, 1})};
  CHECK(run(make_extent(1, 0), params).as_int() == 3);
  CHECK(run(make_extent(1, 1), params).as_int() == 7);
  CHECK(run(make_binary(Op::Sub, make_extent(1, 1), make_int(1)), params).as_int() == 6);
  CHECK_THROWS_AS(run(make_extent(1, 2), params), std::invalid_argument);
  CHECK_THROWS_AS(run(make_extent(0, 0), params), std::invalid_argument);
}

TEST_CASE("LoadRange takes the min or max over the clamped box", "[interpreter][load_range]") {
  // 3 x 4:
  //    5  1   7   3
  //    2  9  -4   8
  //    6  0  11  -2
  std::vector<int32_t> data{5, 1, 7, 3, 2, 9, -4, 8, 6, 0, 11, -2};
  TensorArg t = tensor_of(data, DType::I32, {3, 4}, {4, 1});
  auto range = [&](Op op, int64_t r0, int64_t c0, int64_t r1, int64_t c1) {
    Value v = run(make_load_range(op, 0, Type::Int, {bound(r0), bound(c0)}, {bound(r1), bound(c1)}), {t});
    CHECK(v.type == Type::Int);
    return v.as_int();
  };
  CHECK(range(Op::Min, 0, 1, 1, 2) == -4);
  CHECK(range(Op::Max, 0, 1, 1, 2) == 9);
  CHECK(range(Op::Min, 1, 2, 0, 1) == -4);  // first > last scans the same box
  CHECK(range(Op::Max, 2, 0, 2, 0) == 6);   // a single element
  CHECK(range(Op::Min, -100, -100, 100, 100) == -4);
  CHECK(range(Op::Max, -100, -100, 100, 100) == 11);
  CHECK(range(Op::Max, kInt64Min, 3, 0, kInt64Max) == 3);  // clamps to row 0, column 3
  CHECK(range(Op::Min, 5, 5, 7, 9) == -2);                 // entirely past the end: the last element
}

TEST_CASE("LoadRange over a float tensor ignores NaN unless every element is NaN", "[interpreter][load_range]") {
  std::vector<float> data{kNaN, 2.0f, kNaN, -1.0f};
  TensorArg t = tensor_of(data, DType::F32, {4}, {1});
  auto range = [&](Op op, int64_t first, int64_t last) {
    Value v = run(make_load_range(op, 0, Type::Float, {bound(first)}, {bound(last)}), {t});
    CHECK(v.type == Type::Float);
    return v.f;
  };
  CHECK(range(Op::Min, 0, 3) == -1.0f);
  CHECK(range(Op::Max, 0, 3) == 2.0f);
  CHECK(range(Op::Max, 0, 2) == 2.0f);
  CHECK(std::isnan(range(Op::Min, 0, 0)));
  CHECK(std::isnan(range(Op::Max, -5, 0)));
  std::vector<uint16_t> halves{float_to_half(0.5f), float_to_half(-0.25f)};
  Value h =
      run(make_load_range(Op::Min, 0, Type::Float, {bound(0)}, {bound(1)}), {tensor_of(halves, DType::F16, {2}, {1})});
  CHECK(h.f == -0.25f);
}

TEST_CASE("LoadRange over an int64 tensor sees the values a load would, after wrapping", "[interpreter][load_range]") {
  std::vector<int64_t> data{(int64_t{1} << 32) + 1, 5, int64_t{1} << 31};
  TensorArg t = tensor_of(data, DType::I64, {3}, {1});
  CHECK(run(make_load_range(Op::Min, 0, Type::Int, {bound(0)}, {bound(1)}), {t}).as_int() == 1);
  CHECK(run(make_load_range(Op::Max, 0, Type::Int, {bound(0)}, {bound(2)}), {t}).as_int() == 5);
  CHECK(run(make_load_range(Op::Min, 0, Type::Int, {bound(0)}, {bound(2)}), {t}).as_int() == kIntMin);
}

TEST_CASE("LoadRange clamps even with bounds checking on", "[interpreter][load_range]") {
  std::vector<int32_t> data{4, -6, 8};
  Environment env;
  env.check_bounds = true;
  env.params = {tensor_of(data, DType::I32, {3}, {1})};
  CHECK(evaluate(make_load_range(Op::Min, 0, Type::Int, {bound(-10)}, {bound(10)}), env).as_int() == -6);
}

TEST_CASE("LoadRange equals the extremum of every clamped load with indices in the box", "[interpreter][load_range]") {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int32_t> value(-50, 50);
  std::vector<int32_t> data(5 * 6);
  for (int32_t& v : data) v = value(rng);
  TensorArg t = tensor_of(data, DType::I32, {5, 6}, {6, 1});
  Expr load = make_load(0, Type::Int, {make_param(1, Type::Int), make_param(2, Type::Int)});
  CompiledExpr compiled_load(load);
  std::uniform_int_distribution<int32_t> coordinate(-3, 9);
  for (int trial = 0; trial < 200; ++trial) {
    int32_t r0 = coordinate(rng), c0 = coordinate(rng), r1 = coordinate(rng), c1 = coordinate(rng);
    CAPTURE(r0, c0, r1, c1);
    Environment env;
    env.params = {t, Value::of_int(0), Value::of_int(0)};
    int32_t lo = kIntMax, hi = kIntMin;
    for (int32_t r = std::min(r0, r1); r <= std::max(r0, r1); ++r) {
      for (int32_t c = std::min(c0, c1); c <= std::max(c0, c1); ++c) {
        env.params[1] = Value::of_int(r);
        env.params[2] = Value::of_int(c);
        int32_t v = compiled_load.evaluate(env).as_int();
        lo = std::min(lo, v);
        hi = std::max(hi, v);
      }
    }
    Value got_min =
        evaluate(make_load_range(Op::Min, 0, Type::Int, {bound(r0), bound(c0)}, {bound(r1), bound(c1)}), env);
    Value got_max =
        evaluate(make_load_range(Op::Max, 0, Type::Int, {bound(r0), bound(c0)}, {bound(r1), bound(c1)}), env);
    REQUIRE(got_min.as_int() == lo);
    REQUIRE(got_max.as_int() == hi);
  }
}

TEST_CASE("a compiled expression evaluates at many points and agrees with C++", "[interpreter][tape]") {
  // sliding window: q_idx >= kv_idx && q_idx - kv_idx < window
  Expr q = make_builtin(Builtin::QIdx), kv = make_builtin(Builtin::KvIdx);
  Expr body = make_binary(Op::And, make_binary(Op::Ge, q, kv),
                          make_binary(Op::Lt, make_binary(Op::Sub, q, kv), make_param(0, Type::Int)));
  // Built from a temporary: the compiled expression must keep its nodes alive.
  CompiledExpr compiled(make_binary(Op::Eq, body, make_bool(true)));
  CHECK(compiled.type() == Type::Bool);
  Environment env;
  env.params = {Value::of_int(3)};
  int kept = 0;
  for (int32_t qi = 0; qi < 8; ++qi) {
    for (int32_t ki = 0; ki < 8; ++ki) {
      env.set_point(0, 0, qi, ki);
      bool expected = qi >= ki && qi - ki < 3;
      CAPTURE(qi, ki);
      REQUIRE(compiled.evaluate(env).as_bool() == expected);
      kept += expected ? 1 : 0;
    }
  }
  CHECK(kept == 8 + 7 + 6);
}

TEST_CASE("shared subexpressions are evaluated once per point", "[interpreter][tape]") {
  // x_{k+1} = x_k + x_k, 31 times: 2^31 paths through the DAG but 32 distinct nodes.
  Expr x = make_param(0, Type::Int);
  for (int k = 0; k < 31; ++k) x = make_binary(Op::Add, x, x);
  CHECK(run(x, {Value::of_int(3)}).as_int() == kIntMin);  // 3 * 2^31 wraps to -2^31
  CHECK(run(x, {Value::of_int(0)}).as_int() == 0);
}

TEST_CASE("deep expressions evaluate without recursion", "[interpreter][tape]") {
  Expr x = make_param(0, Type::Int);
  for (int k = 0; k < 10000; ++k) x = make_binary(Op::Add, x, make_int(1));
  CHECK(run(x, {Value::of_int(-5)}).as_int() == 9995);
}

TEST_CASE("ModCall and TensorRef must be inlined before evaluating", "[interpreter][tape]") {
  CHECK_THROWS_AS(CompiledExpr(make_mod_call(0, Type::Bool, {})), InternalError);
  CHECK_THROWS_AS(
      CompiledExpr(make_mod_call(1, Type::Float, {make_builtin(Builtin::Score), make_tensor_ref(0, Type::Int)})),
      InternalError);
}

TEST_CASE("IndexOutOfRange reads like a sentence", "[interpreter][errors]") {
  IndexOutOfRange e(3, 0, -7, 128);
  CHECK(std::string(e.what()) == "index -7 is out of range for dimension 0 of extent 128");
  CHECK(e.param == 3);
}

TEST_CASE("float min and max order -0 below +0 whatever the operand order", "[interpreter]") {
  using attnc::ir::Value;
  auto bits = [](float f) { return std::signbit(f); };
  for (auto [a, b] : {std::pair{0.0f, -0.0f}, std::pair{-0.0f, 0.0f}}) {
    CAPTURE(a, b);
    CHECK(bits(attnc::ir::evaluate_binary(attnc::ir::Op::Min, Value::of_float(a), Value::of_float(b)).f));
    CHECK_FALSE(bits(attnc::ir::evaluate_binary(attnc::ir::Op::Max, Value::of_float(a), Value::of_float(b)).f));
  }
}
