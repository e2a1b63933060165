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

// Whether `e` is a node of a chain of `op` with result type `type`.
bool in_chain(const Node& e, Op op, Type type) { return e.kind == Kind::Binary && e.op == op && e.type == type; }

// Operand order and mirrored comparisons for a node that is not the root of an associative chain.
Expr canonicalize_node(const Expr& node) {
  if (node->kind != Kind::Binary) return node;
  const Expr& a = node->operands[0];
  const Expr& b = node->operands[1];
  // a > b == b < a and a >= b == b <= a, also for NaN (all four are false).
  if (node->op == Op::Gt) return make_binary(Op::Lt, b, a);
  if (node->op == Op::Ge) return make_binary(Op::Le, b, a);
  if (may_swap(node->op) && canonical_operand_less(b, a)) return make_binary(node->op, b, a);
  return node;
}

// One pass over the DAG, operands first. A chain is flattened from its root through the nodes it
// alone uses ("absorbed": a chain node whose only user is the next node up the same chain); a node
// used anywhere else is a leaf of the chains above it and the root of its own. So each node belongs
// to one chain, and flattening, sorting and rebuilding every chain costs time near-linear in the
// number of distinct nodes, however long the chains or however shared the DAG. (Flattening through
// shared nodes as well would repeat their operands once per path: exponentially many for
// x1 = a + b, x2 = x1 + x1, ...)
class Canonicalizer {
 public:
  explicit Canonicalizer(const Expr& root) : order_(root), info_(order_.nodes.size()), replaced_(order_.nodes.size()) {}

  Expr run() {
    for (const Expr* node : order_.nodes) {
      const bool chain = (*node)->kind == Kind::Binary && is_associative((*node)->op, (*node)->operands[0]->type);
      for (const Expr& operand : (*node)->operands) {
        Info& info = info_[position(*operand)];
        ++info.uses;
        info.chain_user = chain && in_chain(*operand, (*node)->op, (*node)->type);
      }
    }
    for (size_t i = 0; i < order_.nodes.size(); ++i) {
      if (absorbed(i)) continue;  // rebuilt by the root of its chain
      replaced_[i] = rewrite(*order_.nodes[i]);
    }
    return replaced_.back();
  }

 private:
  struct Info {
    uint32_t uses = 0;        // operand slots that hold the node
    bool chain_user = false;  // its (last seen) user continues its chain; meaningful when uses == 1
  };

  uint32_t position(const Node& node) const { return order_.position.find(&node); }
  bool absorbed(uint32_t i) const { return info_[i].uses == 1 && info_[i].chain_user; }
  const Expr& replacement(const Expr& node) const { return replaced_[position(*node)]; }

  Expr rewrite(const Expr& node) {
    if (node->operands.empty()) return node;
    if (node->kind == Kind::Binary && is_associative(node->op, node->operands[0]->type)) return rewrite_chain(node);
    std::vector<Expr> operands;
    operands.reserve(node->operands.size());
    for (const Expr& operand : node->operands) operands.push_back(replacement(operand));
    return canonicalize_node(with_operands(node, std::move(operands)));
  }

  // Flattens the chain rooted at `root`, sorts its leaves and rebuilds it left-deep; returns `root`
  // itself when it is in that form already.
  Expr rewrite_chain(const Expr& root) {
    std::vector<const Expr*> leaves;  // left to right
    bool left_deep = true;
    struct Item {
      const Expr* node;
      bool right;  // the right operand of its parent
    };
    std::vector<Item> stack{{&root, false}};
    while (!stack.empty()) {
      Item item = stack.back();
      stack.pop_back();
      const Expr& e = *item.node;
      if (item.node == &root || absorbed(position(*e))) {
        left_deep = left_deep && !(item.right && item.node != &root);
        stack.push_back({&e->operands[1], true});  // pushed first so the left operand is visited first
        stack.push_back({&e->operands[0], false});
      } else {
        leaves.push_back(item.node);
      }
    }
    std::vector<Expr> sorted;
    sorted.reserve(leaves.size());
    bool unchanged = left_deep;
    for (const Expr* leaf : leaves) {
      sorted.push_back(replacement(*leaf));
      unchanged = unchanged && sorted.back() == *leaf;
    }
    std::stable_sort(sorted.begin(), sorted.end(), canonical_operand_less);
    for (size_t i = 0; unchanged && i < sorted.size(); ++i) unchanged = sorted[i] == *leaves[i];
    if (unchanged) return root;
    Expr rebuilt = sorted[0];
    for (size_t i = 1; i < sorted.size(); ++i) rebuilt = make_binary(root->op, rebuilt, sorted[i]);
    return rebuilt;
  }

  PostOrder order_;
  std::vector<Info> info_;      // by post-order position
  std::vector<Expr> replaced_;  // by post-order position; empty for absorbed nodes
};

}  // namespace

Expr canonicalize(const Expr& expr) { return Canonicalizer(expr).run(); }

}  // namespace attnc::ir
