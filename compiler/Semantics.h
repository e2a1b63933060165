#pragma once
// The one definition of what every IR operation computes on concrete values. The interpreter and
// constant folding both call these functions, so an optimised mod cannot drift from the reference;
// the CUDA and LLVM code generators must reproduce them (their tests check against the interpreter).
//
// Choices where C or IEEE leave room (documented for users in docs/language.md):
// - Int arithmetic wraps (two's complement); x / 0 == 0 and x % 0 == 0; INT_MIN / -1 == INT_MIN and
//   INT_MIN % -1 == 0; abs(INT_MIN) == INT_MIN; / truncates toward zero, % has the dividend's sign.
// - Float -> Int truncates toward zero, saturates at the Int range, and maps NaN to 0.
// - min/max on floats ignore a NaN operand (C fminf/fmaxf) and order -0 below +0, so they are
//   commutative bit for bit; round() rounds half to even (as
//   torch.round); floor/ceil/round of an int first convert it to float.
// - Float arithmetic is binary32 with round-to-nearest; functions use the C library's float versions.

#include <cstdint>
#include <span>
#include <string>

#include "compiler/IR.h"

namespace attnc::ir {

// A concrete value of one IR type. Bool and the integer types live in `i`, Float in `f`.
struct Value {
  Type type = Type::Int;
  int64_t i = 0;
  float f = 0;

  static Value of_bool(bool v) { return {Type::Bool, v ? 1 : 0, 0}; }
  static Value of_int(int32_t v) { return {Type::Int, v, 0}; }
  static Value of_int64(int64_t v) { return {Type::Int64, v, 0}; }
  static Value of_float(float v) { return {Type::Float, 0, v}; }

  bool as_bool() const { return i != 0; }
  int32_t as_int() const { return static_cast<int32_t>(i); }
};

// Bitwise equality for floats (so NaN == NaN and -0 != +0): what "the same result" means in tests.
bool identical(const Value& a, const Value& b);
std::string to_string(const Value& v);

// Operations. Operand types must be as the IR requires (InternalError otherwise).
Value evaluate_unary(Op op, const Value& operand);
Value evaluate_binary(Op op, const Value& lhs, const Value& rhs);
Value evaluate_call(Op function, std::span<const Value> args);
Value evaluate_cast(Type to, const Value& value);

// The scalar rules, for backends and tests that want them directly.
int32_t int_div(int32_t a, int32_t b);
int32_t int_mod(int32_t a, int32_t b);
int32_t float_to_int(float f);
float round_half_even(float f);
float float_min(float a, float b);
float float_max(float a, float b);

}  // namespace attnc::ir
