#include "compiler/IRMutator.h"

#include <unordered_map>
#include <unordered_set>

namespace attnc::ir {

namespace {

// Explicit stack: a 1 MB file of parentheses must not overflow the call stack.
template <typename OnNode>
void post_order(const Expr& root, OnNode&& on_node) {
  std::unordered_set<const Node*> done;
  struct Frame {
    const Expr* node;
    size_t next;
  };
  std::vector<Frame> stack{{&root, 0}};
  while (!stack.empty()) {
    Frame& top = stack.back();
    const Expr& node = *top.node;
    if (top.next == 0 && done.count(node.get())) {
      stack.pop_back();
      continue;
    }
    if (top.next < node->operands.size()) {
      const Expr& child = node->operands[top.next++];
      if (!done.count(child.get())) stack.push_back({&child, 0});
      continue;
    }
    done.insert(node.get());
    on_node(node);
    stack.pop_back();
  }
}

}  // namespace

Expr rewrite_bottom_up(const Expr& root, const std::function<Expr(const Expr&)>& rewrite) {
  std::unordered_map<const Node*, Expr> replaced;
  post_order(root, [&](const Expr& node) {
    Expr rebuilt = node;
    if (!node->operands.empty()) {
      std::vector<Expr> operands;
      operands.reserve(node->operands.size());
      for (const Expr& operand : node->operands) operands.push_back(replaced.at(operand.get()));
      rebuilt = with_operands(node, std::move(operands));
    }
    replaced[node.get()] = rewrite(rebuilt);
  });
  return replaced.at(root.get());
}

void for_each_node(const Expr& root, const std::function<void(const Expr&)>& visit) { post_order(root, visit); }

size_t count_nodes(const Expr& root) {
  size_t count = 0;
  post_order(root, [&](const Expr&) { ++count; });
  return count;
}

}  // namespace attnc::ir
