#include "compiler/IRMutator.h"

#include <cstdint>
#include <vector>

namespace attnc::ir {

PostOrder::PostOrder(const Expr& root) {
  struct Frame {
    const Expr* node;
    size_t next;
  };
  std::vector<Frame> stack{{&root, 0}};
  while (!stack.empty()) {
    Frame& top = stack.back();
    const Expr& node = *top.node;
    if (top.next == 0 && position.find(node.get()) != kAbsent) {
      stack.pop_back();
      continue;
    }
    if (top.next < node->operands.size()) {
      const Expr& child = node->operands[top.next++];
      if (position.find(child.get()) == kAbsent) stack.push_back({&child, 0});
      continue;
    }
    position.insert(node.get(), static_cast<uint32_t>(nodes.size()));
    nodes.push_back(&node);
    stack.pop_back();
  }
}

Expr rewrite_bottom_up(const Expr& root, const std::function<Expr(const Expr&)>& rewrite) {
  PostOrder order(root);
  std::vector<Expr> replaced;  // by post-order position
  replaced.reserve(order.nodes.size());
  for (const Expr* node : order.nodes) {
    Expr rebuilt = *node;
    if (!(*node)->operands.empty()) {
      std::vector<Expr> operands;
      operands.reserve((*node)->operands.size());
      for (const Expr& operand : (*node)->operands) operands.push_back(replaced[order.position.find(operand.get())]);
      rebuilt = with_operands(*node, std::move(operands));
    }
    replaced.push_back(rewrite(rebuilt));
  }
  return replaced.back();
}

void for_each_node(const Expr& root, const std::function<void(const Expr&)>& visit) {
  PostOrder order(root);
  for (const Expr* node : order.nodes) visit(*node);
}

size_t count_nodes(const Expr& root) { return PostOrder(root).nodes.size(); }

}  // namespace attnc::ir
