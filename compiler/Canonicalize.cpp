#include "compiler/Canonicalize.h"

#include <algorithm>
#include <vector>

#include "compiler/IRMutator.h"

namespace attnc::ir {

bool canonical_operand_less(const Expr& a, const Expr& b) {
  if (a->is_const() != b->is_const()) return b->is_const();
  return structurally_less(a, b);
}

namespace {

// Operators whose chains may be flattened and reordered freely: commutative and associative, exactly.
bool is_associative(Op op, Type type) {
  switch (op) {
    case Op::And:
    case Op::Or: return type == Type::Bool;
    case Op::Add:
    case Op::Mul:
    case Op::Min:
    case Op::Max: return type == Type::Int || type == Type::Int64;  // wrapping arithmetic associates
    default: return false;
  }
}

// Operators whose two operands may be swapped without changing the value.
bool may_swap(Op op) {
  // Every commutative operator is commutative bit for bit, float min/max included: Semantics
  // orders -0 below +0 rather than leaving the zero case to fminf.
  return op_is_commutative(op);
}

// The leaves of a chain of `op` rooted at `root` (operands that are not themselves `op` of the same
// type), left to right. Iterative: chains from long generated expressions must not exhaust the stack.
std::vector<Expr> chain_operands(const Expr& root) {
  std::vector<Expr> leaves;
  std::vector<const Expr*> stack{&root};
  while (!stack.empty()) {
    const Expr& e = *stack.back();
    stack.pop_back();
    if (e->kind == Kind::Binary && e->op == root->op && e->type == root->type) {
      stack.push_back(&e->operands[1]);  // pushed first so the left operand is visited first
      stack.push_back(&e->operands[0]);
    } else {
      leaves.push_back(e);
    }
  }
  return leaves;
}

Expr canonicalize_chain(const Expr& node) {
  std::vector<Expr> leaves = chain_operands(node);
  std::stable_sort(leaves.begin(), leaves.end(), canonical_operand_less);
  Expr rebuilt = leaves[0];
  for (size_t i = 1; i < leaves.size(); ++i) rebuilt = make_binary(node->op, rebuilt, leaves[i]);
  // Keep the input object when the chain was already in canonical form.
  return equal(rebuilt, node) ? node : rebuilt;
}

Expr canonicalize_node(const Expr& node) {
  if (node->kind != Kind::Binary) return node;
  const Expr& a = node->operands[0];
  const Expr& b = node->operands[1];
  // a > b == b < a and a >= b == b <= a, also for NaN (all four are false).
  if (node->op == Op::Gt) return make_binary(Op::Lt, b, a);
  if (node->op == Op::Ge) return make_binary(Op::Le, b, a);
  if (is_associative(node->op, a->type)) return canonicalize_chain(node);
  if (may_swap(node->op) && canonical_operand_less(b, a)) return make_binary(node->op, b, a);
  return node;
}

}  // namespace

Expr canonicalize(const Expr& expr) { return rewrite_bottom_up(expr, canonicalize_node); }

}  // namespace attnc::ir
