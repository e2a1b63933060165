#include "compiler/FoldConstants.h"

#include <vector>

#include "compiler/IRMutator.h"
#include "compiler/Semantics.h"

namespace attnc::ir {

namespace {

bool all_const(const Expr& node) {
  for (const Expr& operand : node->operands) {
    if (!operand->is_const()) return false;
  }
  return true;
}

Value value_of(const Expr& constant) { return {constant->type, constant->int_value, constant->float_value}; }

Expr constant_of(const Value& value) { return make_const(value.type, value.i, value.f); }

Expr fold_node(const Expr& node) {
  if (node->kind == Kind::Select && node->operands[0]->is_const()) {
    return node->operands[0]->int_value != 0 ? node->operands[1] : node->operands[2];
  }
  if (node->operands.empty() || !all_const(node)) return node;
  switch (node->kind) {
    case Kind::Unary: return constant_of(evaluate_unary(node->op, value_of(node->operands[0])));
    case Kind::Binary:
      return constant_of(evaluate_binary(node->op, value_of(node->operands[0]), value_of(node->operands[1])));
    case Kind::Cast: return constant_of(evaluate_cast(node->type, value_of(node->operands[0])));
    case Kind::Call: {
      std::vector<Value> args;
      for (const Expr& operand : node->operands) args.push_back(value_of(operand));
      return constant_of(evaluate_call(node->op, args));
    }
    default: return node;  // loads read memory; ModCalls are inlined first
  }
}

}  // namespace

Expr fold_constants(const Expr& expr) { return rewrite_bottom_up(expr, fold_node); }

}  // namespace attnc::ir
