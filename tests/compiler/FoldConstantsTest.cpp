// Constant folding: each foldable node kind becomes the constant Semantics.h computes, selects with
// a constant condition pick their arm, and anything reading a variable is left alone.

#include "compiler/FoldConstants.h"

#include <bit>
#include <cmath>
#include <limits>

#include <catch2/catch.hpp>

#include "compiler/IRMutator.h"

using namespace attnc::ir;

namespace {

constexpr int32_t kIntMin = std::numeric_limits<int32_t>::min();
constexpr int32_t kIntMax = std::numeric_limits<int32_t>::max();
const float kNaN = std::numeric_limits<float>::quiet_NaN();
const float kInf = std::numeric_limits<float>::infinity();

Expr q() { return make_builtin(Builtin::QIdx); }

}  // namespace

TEST_CASE("fold_constants evaluates integer operators with the contract's wrapping rules", "[fold]") {
  auto [op, a, b, expected] = GENERATE(table<Op, int32_t, int32_t, int32_t>({
      {Op::Add, kIntMax, 1, kIntMin},
      {Op::Sub, kIntMin, 1, kIntMax},
      {Op::Mul, 65536, 65536, 0},
      {Op::Div, 7, -2, -3},
      {Op::Div, 5, 0, 0},
      {Op::Div, kIntMin, -1, kIntMin},
      {Op::Mod, -7, 2, -1},
      {Op::Mod, 5, 0, 0},
      {Op::Min, -3, 2, -3},
      {Op::Max, -3, 2, 2},
  }));
  CAPTURE(op_spelling(op), a, b);
  Expr folded = fold_constants(make_binary(op, make_int(a), make_int(b)));
  REQUIRE(folded->is_const());
  CHECK(folded->type == Type::Int);
  CHECK(folded->int_value == expected);
}

TEST_CASE("fold_constants evaluates comparisons to bool constants", "[fold]") {
  CHECK(is_const_bool(fold_constants(make_binary(Op::Lt, make_int(1), make_int(2))), true));
  CHECK(is_const_bool(fold_constants(make_binary(Op::Ge, make_int(1), make_int(2))), false));
  // NaN is unordered: every ordering and == are false, != is true.
  CHECK(is_const_bool(fold_constants(make_binary(Op::Le, make_float(kNaN), make_float(kNaN))), false));
  CHECK(is_const_bool(fold_constants(make_binary(Op::Eq, make_float(kNaN), make_float(kNaN))), false));
  CHECK(is_const_bool(fold_constants(make_binary(Op::Ne, make_float(kNaN), make_float(kNaN))), true));
  CHECK(is_const_bool(fold_constants(make_binary(Op::Eq, make_float(0.0f), make_float(-0.0f))), true));
}

TEST_CASE("fold_constants evaluates float operators, signed zeros and infinities included", "[fold]") {
  SECTION("-0.0 + -0.0 is -0.0") {
    Expr e = fold_constants(make_binary(Op::Add, make_float(-0.0f), make_float(-0.0f)));
    REQUIRE(e->is_const());
    CHECK(std::signbit(e->float_value));
  }
  SECTION("inf * 0 is NaN") {
    Expr e = fold_constants(make_binary(Op::Mul, make_float(kInf), make_float(0.0f)));
    REQUIRE(e->is_const());
    CHECK(std::isnan(e->float_value));
  }
  SECTION("1 / -0.0 is -inf") {
    Expr e = fold_constants(make_binary(Op::Div, make_float(1.0f), make_float(-0.0f)));
    REQUIRE(e->is_const());
    CHECK(e->float_value == -kInf);
  }
  SECTION("negation flips the sign of zero") {
    Expr e = fold_constants(make_unary(Op::Neg, make_float(0.0f)));
    REQUIRE(e->is_const());
    CHECK(std::bit_cast<uint32_t>(e->float_value) == 0x80000000u);
  }
}

TEST_CASE("fold_constants evaluates math functions and casts", "[fold]") {
  SECTION("functions") {
    Expr e = fold_constants(make_call(Op::Sqrt, {make_float(16.0f)}));
    REQUIRE(e->is_const());
    CHECK(e->float_value == 4.0f);
    Expr p = fold_constants(make_call(Op::Pow, {make_float(2.0f), make_float(10.0f)}));
    REQUIRE(p->is_const());
    CHECK(p->float_value == 1024.0f);
    Expr r = fold_constants(make_call(Op::Round, {make_float(2.5f)}));
    REQUIRE(r->is_const());
    CHECK(r->float_value == 2.0f);  // half to even
    Expr a = fold_constants(make_call(Op::Abs, {make_int(kIntMin)}));
    CHECK(is_const_int(a, kIntMin));
  }
  SECTION("float to int saturates and maps NaN to 0") {
    CHECK(is_const_int(fold_constants(make_cast(Type::Int, make_float(1e20f))), kIntMax));
    CHECK(is_const_int(fold_constants(make_cast(Type::Int, make_float(-kInf))), kIntMin));
    CHECK(is_const_int(fold_constants(make_cast(Type::Int, make_float(kNaN))), 0));
    CHECK(is_const_int(fold_constants(make_cast(Type::Int, make_float(-2.9f))), -2));
  }
  SECTION("bool and int conversions") {
    Expr f = fold_constants(make_cast(Type::Float, make_bool(true)));
    REQUIRE(f->is_const());
    CHECK(f->float_value == 1.0f);
    CHECK(is_const_bool(fold_constants(make_cast(Type::Bool, make_float(-0.0f))), false));
    CHECK(is_const_bool(fold_constants(make_cast(Type::Bool, make_int(-5))), true));
  }
}

TEST_CASE("fold_constants folds nested constant trees completely", "[fold]") {
  // ((2 + 3) * -(4)) < min(1, 7)  ->  -20 < 1  ->  true
  Expr e = make_binary(
      Op::Lt, make_binary(Op::Mul, make_binary(Op::Add, make_int(2), make_int(3)), make_unary(Op::Neg, make_int(4))),
      make_binary(Op::Min, make_int(1), make_int(7)));
  CHECK(is_const_bool(fold_constants(e), true));
}

TEST_CASE("fold_constants picks the arm of a select with a constant condition", "[fold]") {
  Expr a = make_binary(Op::Add, q(), make_int(1));
  Expr b = make_builtin(Builtin::KvIdx);
  CHECK(fold_constants(make_select(make_bool(true), a, b)) == a);
  CHECK(fold_constants(make_select(make_bool(false), a, b)) == b);
  // The condition itself may fold first.
  Expr condition = make_binary(Op::Eq, make_int(3), make_int(4));
  CHECK(fold_constants(make_select(condition, a, b)) == b);
}

TEST_CASE("fold_constants folds constant operands below variable nodes", "[fold]") {
  Expr e = make_binary(Op::Add, q(), make_binary(Op::Mul, make_int(3), make_int(4)));
  Expr folded = fold_constants(e);
  REQUIRE(folded->kind == Kind::Binary);
  CHECK(folded->operands[0] == e->operands[0]);
  CHECK(is_const_int(folded->operands[1], 12));
}

TEST_CASE("fold_constants returns its input when nothing is constant", "[fold]") {
  Expr e = make_binary(Op::Add, q(), make_load(0, Type::Int, {make_int(2)}));
  CHECK(fold_constants(e) == e);
  // A load with constant indices still reads memory: not a constant.
  Expr load = make_load(0, Type::Float, {make_int(1)});
  CHECK(fold_constants(load) == load);
  Expr call = make_mod_call(0, Type::Bool, {make_int(1)});
  CHECK(fold_constants(call) == call);
}
