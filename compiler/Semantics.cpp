#include "compiler/Semantics.h"

#include <bit>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "dsl/Errors.h"

namespace attnc::ir {

namespace {

int32_t wrap(int64_t v) { return static_cast<int32_t>(static_cast<uint32_t>(static_cast<uint64_t>(v))); }

int64_t int64_div(int64_t a, int64_t b) {
  if (b == 0) return 0;
  if (a == std::numeric_limits<int64_t>::min() && b == -1) return a;
  return a / b;
}

int64_t int64_mod(int64_t a, int64_t b) {
  if (b == 0 || b == -1) return 0;
  return a % b;
}

int64_t wrap64(__int128 v) { return static_cast<int64_t>(static_cast<unsigned __int128>(v)); }

Value integer_binary(Op op, Type type, int64_t a, int64_t b) {
  auto make = [type](int64_t v) {
    return type == Type::Int ? Value::of_int(wrap(v)) : Value::of_int64(v);
  };
  switch (op) {
    case Op::Add: return make(type == Type::Int ? a + b : wrap64(static_cast<__int128>(a) + b));
    case Op::Sub: return make(type == Type::Int ? a - b : wrap64(static_cast<__int128>(a) - b));
    case Op::Mul: return make(type == Type::Int ? a * b : wrap64(static_cast<__int128>(a) * b));
    case Op::Div: return make(type == Type::Int ? int_div(static_cast<int32_t>(a), static_cast<int32_t>(b)) : int64_div(a, b));
    case Op::Mod: return make(type == Type::Int ? int_mod(static_cast<int32_t>(a), static_cast<int32_t>(b)) : int64_mod(a, b));
    case Op::Min: return make(a < b ? a : b);
    case Op::Max: return make(a > b ? a : b);
    case Op::Lt: return Value::of_bool(a < b);
    case Op::Le: return Value::of_bool(a <= b);
    case Op::Gt: return Value::of_bool(a > b);
    case Op::Ge: return Value::of_bool(a >= b);
    case Op::Eq: return Value::of_bool(a == b);
    case Op::Ne: return Value::of_bool(a != b);
    default: break;
  }
  ATTNC_ASSERT(false, fmt::format("operator '{}' on integers", op_spelling(op)));
  return {};
}

Value float_binary(Op op, float a, float b) {
  switch (op) {
    case Op::Add: return Value::of_float(a + b);
    case Op::Sub: return Value::of_float(a - b);
    case Op::Mul: return Value::of_float(a * b);
    case Op::Div: return Value::of_float(a / b);
    case Op::Mod: return Value::of_float(std::fmod(a, b));
    case Op::Min: return Value::of_float(float_min(a, b));
    case Op::Max: return Value::of_float(float_max(a, b));
    case Op::Lt: return Value::of_bool(a < b);
    case Op::Le: return Value::of_bool(a <= b);
    case Op::Gt: return Value::of_bool(a > b);
    case Op::Ge: return Value::of_bool(a >= b);
    case Op::Eq: return Value::of_bool(a == b);
    case Op::Ne: return Value::of_bool(a != b);
    default: break;
  }
  ATTNC_ASSERT(false, fmt::format("operator '{}' on floats", op_spelling(op)));
  return {};
}

}  // namespace

int32_t int_div(int32_t a, int32_t b) {
  if (b == 0) return 0;
  if (a == std::numeric_limits<int32_t>::min() && b == -1) return a;
  return a / b;
}

int32_t int_mod(int32_t a, int32_t b) {
  if (b == 0 || b == -1) return 0;
  return a % b;
}

int32_t float_to_int(float f) {
  if (std::isnan(f)) return 0;
  if (f >= 2147483648.0f) return std::numeric_limits<int32_t>::max();
  if (f <= -2147483648.0f) return std::numeric_limits<int32_t>::min();
  return static_cast<int32_t>(f);  // truncates toward zero
}

// Written out rather than std::fmin: fminf(+0, -0) returns either zero depending on operand order
// and on the build (libm vs SSE minss), which would make min/max non-commutative.
float float_min(float a, float b) {
  if (std::isnan(a)) return b;
  if (std::isnan(b)) return a;
  if (a == b) return std::signbit(a) ? a : b;  // -0 is the smaller zero
  return a < b ? a : b;
}

float float_max(float a, float b) {
  if (std::isnan(a)) return b;
  if (std::isnan(b)) return a;
  if (a == b) return std::signbit(a) ? b : a;  // +0 is the larger zero
  return a > b ? a : b;
}

float round_half_even(float f) { return std::nearbyint(f); }  // default rounding mode: to nearest even

bool identical(const Value& a, const Value& b) {
  if (a.type != b.type) return false;
  if (a.type == Type::Float) return std::bit_cast<uint32_t>(a.f) == std::bit_cast<uint32_t>(b.f);
  return a.i == b.i;
}

std::string to_string(const Value& v) {
  switch (v.type) {
    case Type::Bool: return v.i ? "true" : "false";
    case Type::Int:
    case Type::Int64: return std::to_string(v.i);
    case Type::Float: return fmt::format("{}", v.f);
  }
  return "?";
}

Value evaluate_unary(Op op, const Value& x) {
  if (op == Op::Not) {
    ATTNC_ASSERT(x.type == Type::Bool, "! takes a bool");
    return Value::of_bool(!x.as_bool());
  }
  ATTNC_ASSERT(op == Op::Neg, "unary operator");
  switch (x.type) {
    case Type::Int: return Value::of_int(wrap(-x.i));
    case Type::Int64: return Value::of_int64(wrap64(-static_cast<__int128>(x.i)));
    case Type::Float: return Value::of_float(-x.f);
    case Type::Bool: break;
  }
  ATTNC_ASSERT(false, "negation of a bool");
  return {};
}

Value evaluate_binary(Op op, const Value& a, const Value& b) {
  ATTNC_ASSERT(a.type == b.type, "binary operands of different types");
  if (op == Op::And) return Value::of_bool(a.as_bool() && b.as_bool());
  if (op == Op::Or) return Value::of_bool(a.as_bool() || b.as_bool());
  if (a.type == Type::Bool) {
    ATTNC_ASSERT(op == Op::Eq || op == Op::Ne, "bools only compare for equality");
    return Value::of_bool(op == Op::Eq ? a.i == b.i : a.i != b.i);
  }
  if (a.type == Type::Float) return float_binary(op, a.f, b.f);
  return integer_binary(op, a.type, a.i, b.i);
}

Value evaluate_call(Op function, std::span<const Value> args) {
  ATTNC_ASSERT(static_cast<int>(args.size()) == op_arity(function), "wrong number of arguments");
  const Value& x = args[0];
  if (function == Op::Abs) {
    if (x.type == Type::Int) return Value::of_int(wrap(x.i < 0 ? -x.i : x.i));
    if (x.type == Type::Int64) return Value::of_int64(x.i < 0 ? wrap64(-static_cast<__int128>(x.i)) : x.i);
    ATTNC_ASSERT(x.type == Type::Float, "abs of a bool");
    return Value::of_float(std::fabs(x.f));
  }
  for (const Value& a : args) ATTNC_ASSERT(a.type == Type::Float, "math functions take floats");
  float f = x.f;
  switch (function) {
    case Op::Exp: return Value::of_float(std::exp(f));
    case Op::Exp2: return Value::of_float(std::exp2(f));
    case Op::Log: return Value::of_float(std::log(f));
    case Op::Log2: return Value::of_float(std::log2(f));
    case Op::Sqrt: return Value::of_float(std::sqrt(f));
    case Op::Rsqrt: return Value::of_float(1.0f / std::sqrt(f));
    case Op::Tanh: return Value::of_float(std::tanh(f));
    case Op::Sigmoid: return Value::of_float(1.0f / (1.0f + std::exp(-f)));
    case Op::Sin: return Value::of_float(std::sin(f));
    case Op::Cos: return Value::of_float(std::cos(f));
    case Op::Floor: return Value::of_float(std::floor(f));
    case Op::Ceil: return Value::of_float(std::ceil(f));
    case Op::Round: return Value::of_float(round_half_even(f));
    case Op::Pow: return Value::of_float(std::pow(f, args[1].f));
    default: break;
  }
  ATTNC_ASSERT(false, fmt::format("'{}' is not a math function", op_spelling(function)));
  return {};
}

Value evaluate_cast(Type to, const Value& v) {
  if (v.type == to) return v;
  switch (to) {
    case Type::Bool:
      return Value::of_bool(v.type == Type::Float ? v.f != 0.0f : v.i != 0);
    case Type::Int:
      if (v.type == Type::Float) return Value::of_int(float_to_int(v.f));
      return Value::of_int(wrap(v.i));  // Bool is 0/1; Int64 narrows by wrapping
    case Type::Int64:
      if (v.type == Type::Float) {
        if (std::isnan(v.f)) return Value::of_int64(0);
        if (v.f >= 9.2233720368547758e18f) return Value::of_int64(std::numeric_limits<int64_t>::max());
        if (v.f <= -9.2233720368547758e18f) return Value::of_int64(std::numeric_limits<int64_t>::min());
        return Value::of_int64(static_cast<int64_t>(v.f));
      }
      return Value::of_int64(v.i);
    case Type::Float:
      return Value::of_float(static_cast<float>(v.i));  // round to nearest, as C
  }
  return {};
}

}  // namespace attnc::ir
