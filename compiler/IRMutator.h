#pragma once
// Traversal helpers for the expression DAG. Each visits each distinct node once, children before
// parents, in an order fixed by the structure (operands left to right), never by addresses, with an
// explicit stack: time linear in the number of distinct nodes, stack space independent of depth.

#include <cstdint>
#include <functional>
#include <vector>

#include "compiler/IR.h"

namespace attnc::ir {

inline constexpr uint32_t kAbsent = UINT32_MAX;  // NodeIndex::find of a node not in the table

// Node addresses -> dense indices (such as positions in post-order), in one flat open-addressed table:
// a traversal touches every node, and a node-based std::unordered_map spends most of that time
// chasing pointers once the IR outgrows the caches. Only looked up, never iterated, so addresses
// cannot leak into any result.
class NodeIndex {
 public:
  uint32_t find(const Node* node) const {
    if (slots_.empty()) return kAbsent;
    for (size_t at = slot_of(node);; at = (at + 1) & (slots_.size() - 1)) {
      if (slots_[at].node == node) return slots_[at].index;
      if (slots_[at].node == nullptr) return kAbsent;
    }
  }

  void insert(const Node* node, uint32_t index) {
    if (2 * (count_ + 1) > slots_.size()) grow();
    size_t at = slot_of(node);
    while (slots_[at].node != nullptr) at = (at + 1) & (slots_.size() - 1);
    slots_[at] = {node, index};
    ++count_;
  }

 private:
  struct Slot {
    const Node* node = nullptr;
    uint32_t index = 0;
  };

  size_t slot_of(const Node* node) const {
    // Fibonacci hashing of the address; the low bits are alignment and carry nothing.
    const uint64_t h = (reinterpret_cast<uintptr_t>(node) >> 4) * 0x9e3779b97f4a7c15ull;
    return static_cast<size_t>(h >> 32) & (slots_.size() - 1);
  }

  void grow() {
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(old.empty() ? 64 : 2 * old.size(), Slot{});
    count_ = 0;
    for (const Slot& slot : old) {
      if (slot.node != nullptr) insert(slot.node, slot.index);
    }
  }

  std::vector<Slot> slots_;  // size a power of two, at most half full
  size_t count_ = 0;
};

// The distinct nodes of `root` in post-order (operands first, left to right, the root last), with
// each one's position. Explicit stack: a 1 MB file of parentheses or a long chain of definitions
// must not overflow the call stack.
struct PostOrder {
  explicit PostOrder(const Expr& root);
  std::vector<const Expr*> nodes;
  NodeIndex position;
};

// Rebuilds `root` bottom-up. `rewrite` receives each node with its operands already rewritten
// (the original node when none changed) and returns its replacement (or the node itself).
// Shared subexpressions are rewritten once and stay shared.
Expr rewrite_bottom_up(const Expr& root, const std::function<Expr(const Expr&)>& rewrite);

// Calls `visit` on each distinct node of `root` in post-order (operands first).
void for_each_node(const Expr& root, const std::function<void(const Expr&)>& visit);

// Number of distinct nodes (after sharing) in `root`.
size_t count_nodes(const Expr& root);

}  // namespace attnc::ir
