#include "tests/support/Float64Evaluator.h"

#include <cmath>
#include <limits>
#include <variant>
#include <vector>

#include "compiler/DType.h"
#include "compiler/IRMutator.h"
#include "compiler/Semantics.h"
#include "dsl/Errors.h"

namespace attnc::ir::test {

namespace {

// A value: Bool/Int in `i` (as Semantics' Value), Float in `f` as a double.
struct Value64 {
  Type type = Type::Int;
  int64_t i = 0;
  double f = 0;
};

Value to_value(const Value64& v) { return {v.type, v.i, 0.0f}; }
Value64 from_value(const Value& v) { return {v.type, v.i, v.f}; }
Value64 of_float(double f) { return {Type::Float, 0, f}; }
Value64 of_bool(bool b) { return {Type::Bool, b ? 1 : 0, 0}; }

int32_t saturating_int(double f) {
  if (std::isnan(f)) return 0;
  if (f <= static_cast<double>(std::numeric_limits<int32_t>::min())) return std::numeric_limits<int32_t>::min();
  if (f >= static_cast<double>(std::numeric_limits<int32_t>::max())) return std::numeric_limits<int32_t>::max();
  return static_cast<int32_t>(f);
}

// fminf/fmaxf: a NaN operand is ignored.
double min_ignoring_nan(double a, double b) { return std::isnan(a) ? b : std::isnan(b) ? a : (a < b ? a : b); }
double max_ignoring_nan(double a, double b) { return std::isnan(a) ? b : std::isnan(b) ? a : (a > b ? a : b); }

Value64 cast(Type to, const Value64& v) {
  if (v.type != Type::Float) {
    if (to == Type::Float) return of_float(static_cast<double>(v.type == Type::Bool ? v.i != 0 : v.i));
    return from_value(evaluate_cast(to, to_value(v)));
  }
  if (to == Type::Bool) return of_bool(v.f != 0.0);
  if (to == Type::Int) return {Type::Int, saturating_int(v.f), 0};
  ATTNC_ASSERT(false, "float64 evaluator: unsupported cast");
  return {};
}

Value64 binary(Op op, const Value64& a, const Value64& b) {
  if (a.type != Type::Float) return from_value(evaluate_binary(op, to_value(a), to_value(b)));
  const double x = a.f, y = b.f;
  switch (op) {
    case Op::Add: return of_float(x + y);
    case Op::Sub: return of_float(x - y);
    case Op::Mul: return of_float(x * y);
    case Op::Div: return of_float(x / y);
    case Op::Mod: return of_float(std::fmod(x, y));
    case Op::Min: return of_float(min_ignoring_nan(x, y));
    case Op::Max: return of_float(max_ignoring_nan(x, y));
    case Op::Lt: return of_bool(x < y);
    case Op::Le: return of_bool(x <= y);
    case Op::Gt: return of_bool(x > y);
    case Op::Ge: return of_bool(x >= y);
    case Op::Eq: return of_bool(x == y);
    case Op::Ne: return of_bool(x != y);
    default: break;
  }
  ATTNC_ASSERT(false, "float64 evaluator: unsupported float operator");
  return {};
}

Value64 call(Op function, const std::vector<Value64>& args) {
  if (args[0].type != Type::Float && function != Op::Floor && function != Op::Ceil && function != Op::Round) {
    std::vector<Value> values;
    for (const Value64& arg : args) values.push_back(to_value(arg));
    return from_value(evaluate_call(function, values));
  }
  const double x = args[0].type == Type::Float ? args[0].f : static_cast<double>(args[0].i);
  switch (function) {
    case Op::Abs: return of_float(std::fabs(x));
    case Op::Exp: return of_float(std::exp(x));
    case Op::Exp2: return of_float(std::exp2(x));
    case Op::Log: return of_float(std::log(x));
    case Op::Log2: return of_float(std::log2(x));
    case Op::Sqrt: return of_float(std::sqrt(x));
    case Op::Rsqrt: return of_float(1.0 / std::sqrt(x));
    case Op::Tanh: return of_float(std::tanh(x));
    case Op::Sigmoid: return of_float(1.0 / (1.0 + std::exp(-x)));
    case Op::Sin: return of_float(std::sin(x));
    case Op::Cos: return of_float(std::cos(x));
    case Op::Floor: return of_float(std::floor(x));
    case Op::Ceil: return of_float(std::ceil(x));
    case Op::Round: return of_float(std::nearbyint(x));  // the default rounding mode: half to even
    case Op::Pow: return of_float(std::pow(x, args[1].f));
    default: break;
  }
  ATTNC_ASSERT(false, "float64 evaluator: unsupported function");
  return {};
}

// The discrete choice `node` made from float operands, if any (see evaluate_float64).
void record_decision(const Expr& node, const std::vector<Value64>& values, const PostOrder& order,
                     const Value64& result, std::vector<double>& decisions) {
  const auto operand = [&](size_t k) { return values[order.position.find(node->operands[k].get())]; };
  // A NaN met on the way (which pow(1, NaN) = 1 or a select can hide from the result): not smooth.
  if (result.type == Type::Float && std::isnan(result.f)) decisions.push_back(NAN);
  if (node->operands.empty() || operand(0).type != Type::Float) return;
  switch (node->kind) {
    case Kind::Cast: decisions.push_back(static_cast<double>(result.i)); return;
    case Kind::Binary:
      if (op_is_comparison(node->op)) {
        decisions.push_back(static_cast<double>(result.i));
      } else if (node->op == Op::Min || node->op == Op::Max) {
        const double x = operand(0).f, y = operand(1).f;
        decisions.push_back(x < y ? -1.0 : x > y ? 1.0 : x == y ? 0.0 : 2.0);
      } else if (node->op == Op::Mod) {
        decisions.push_back(std::trunc(operand(0).f / operand(1).f));
      } else if (node->op == Op::Div && operand(1).f == 0) {
        decisions.push_back(NAN);  // a singular point: see below
      }
      return;
    case Kind::Call:
      if (node->op == Op::Floor || node->op == Op::Ceil || node->op == Op::Round) {
        decisions.push_back(result.f);
      } else if (node->op == Op::Abs) {
        decisions.push_back(operand(0).f > 0 ? 1.0 : operand(0).f < 0 ? -1.0 : 0.0);
      } else if ((node->op == Op::Sqrt || node->op == Op::Rsqrt || node->op == Op::Log || node->op == Op::Log2 ||
                  node->op == Op::Pow) &&
                 (operand(0).f == 0 || (node->op == Op::Pow && operand(0).f < 0))) {
        // A function at its singularity: the chain rule may multiply its infinite derivative by a
        // zero (sqrt(0 * score) is flat in score, its chain-rule derivative NaN, as in PyTorch and
        // JAX). pow of a negative base is defined only at integer exponents. A NaN decision never
        // equals another, so such points are never compared.
        decisions.push_back(NAN);
      }
      return;
    default: return;
  }
}

}  // namespace

double evaluate_float64(const Expr& root, const Environment& env, const Float64Shift& shift,
                        std::vector<double>* decisions) {
  ATTNC_ASSERT(root->type == Type::Float, "evaluate_float64 needs a Float expression");
  PostOrder order(root);
  std::vector<Value64> values;
  values.reserve(order.nodes.size());
  const auto operand = [&](const Expr& node, size_t k) { return values[order.position.find(node->operands[k].get())]; };
  for (const Expr* entry : order.nodes) {
    const Expr& node = *entry;
    Value64 result;
    switch (node->kind) {
      case Kind::Const: result = {node->type, node->int_value, node->float_value}; break;
      case Kind::Builtin:
        result = from_value(env.builtins[static_cast<int>(node->builtin)]);
        if (node->builtin == Builtin::Score) result.f += shift.score_delta;
        break;
      case Kind::Param: result = from_value(std::get<Value>(env.params.at(node->index))); break;
      case Kind::Extent: {
        const TensorArg& tensor = std::get<TensorArg>(env.params.at(node->index));
        result = {Type::Int, tensor.shape.at(node->dim), 0};
        break;
      }
      case Kind::Cast: result = cast(node->type, operand(node, 0)); break;
      case Kind::Unary: {
        const Value64 a = operand(node, 0);
        result = a.type == Type::Float ? of_float(-a.f) : from_value(evaluate_unary(node->op, to_value(a)));
        break;
      }
      case Kind::Binary: result = binary(node->op, operand(node, 0), operand(node, 1)); break;
      case Kind::Select: result = operand(node, 0).i != 0 ? operand(node, 1) : operand(node, 2); break;
      case Kind::Call: {
        std::vector<Value64> args;
        for (size_t k = 0; k < node->operands.size(); ++k) args.push_back(operand(node, k));
        result = call(node->op, args);
        break;
      }
      case Kind::Load: {
        const TensorArg& tensor = std::get<TensorArg>(env.params.at(node->index));
        int64_t offset = 0;
        for (size_t d = 0; d < node->operands.size(); ++d) {
          int64_t index = operand(node, d).i;
          index = index < 0 ? 0 : index >= tensor.shape[d] ? tensor.shape[d] - 1 : index;
          offset += index * tensor.strides[d];
        }
        if (node->type == Type::Float) {
          result = of_float(load_as_float(tensor.data, tensor.dtype, offset));
          if (shift.param == static_cast<int64_t>(node->index) && shift.element == offset)
            result.f += shift.element_delta;
        } else if (node->type == Type::Int) {
          result = {Type::Int,
                    static_cast<int32_t>(static_cast<uint32_t>(load_as_int(tensor.data, tensor.dtype, offset))), 0};
        } else {
          result = of_bool(load_as_bool(tensor.data, tensor.dtype, offset));
        }
        break;
      }
      default: ATTNC_ASSERT(false, "float64 evaluator: unsupported node kind");
    }
    if (decisions) record_decision(node, values, order, result, *decisions);
    values.push_back(result);
  }
  return values.back().f;
}

}  // namespace attnc::ir::test
