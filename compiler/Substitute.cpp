#include "compiler/Substitute.h"

#include "compiler/IRMutator.h"

namespace attnc::ir {

Expr substitute_node(const Expr& node, const Substitution& s) {
  switch (node->kind) {
    case Kind::Builtin:
      if (node->builtin == Builtin::Score && s.score) return *s.score;
      return node;
    case Kind::Param:
      if (node->index < s.scalar_params.size() && s.scalar_params[node->index]) return s.scalar_params[node->index];
      return node;
    case Kind::Extent:
      if (node->index < s.tensor_params.size()) return make_extent(s.tensor_params[node->index], node->dim);
      return node;
    case Kind::TensorRef:
      if (node->index < s.tensor_params.size()) return make_tensor_ref(s.tensor_params[node->index], node->type);
      return node;
    case Kind::Load:
      if (node->index < s.tensor_params.size())
        return make_load(s.tensor_params[node->index], node->type, node->operands);
      return node;
    case Kind::LoadRange:
      if (node->index < s.tensor_params.size()) {
        size_t rank = node->operands.size() / 2;
        std::vector<Expr> first(node->operands.begin(), node->operands.begin() + rank);
        std::vector<Expr> last(node->operands.begin() + rank, node->operands.end());
        return make_load_range(node->op, s.tensor_params[node->index], node->type, std::move(first), std::move(last));
      }
      return node;
    default: return node;
  }
}

Expr substitute(const Expr& expr, const Substitution& s) {
  return rewrite_bottom_up(expr, [&](const Expr& node) { return substitute_node(node, s); });
}

}  // namespace attnc::ir
