#include "compiler/ShareSubexpressions.h"

#include <vector>

#include "compiler/IRMutator.h"

namespace attnc::ir {

Expr InternTable::intern(const Expr& node) {
  if (2 * (count_ + 1) > slots_.size()) grow();
  for (size_t at = slot_of(node->hash);; at = (at + 1) & (slots_.size() - 1)) {
    Expr& slot = slots_[at];
    if (!slot) {
      slot = node;
      ++count_;
      return node;
    }
    // Operands are interned already, so equal() compares them by address and stays shallow.
    if (slot->hash == node->hash && equal(slot, node)) return slot;
  }
}

size_t InternTable::slot_of(uint64_t hash) const {
  return static_cast<size_t>((hash * 0x9e3779b97f4a7c15ull) >> 32) & (slots_.size() - 1);
}

void InternTable::grow() {
  std::vector<Expr> old = std::move(slots_);
  slots_.assign(old.empty() ? 64 : 2 * old.size(), nullptr);
  for (Expr& node : old) {
    if (!node) continue;
    size_t at = slot_of(node->hash);
    while (slots_[at]) at = (at + 1) & (slots_.size() - 1);
    slots_[at] = std::move(node);
  }
}

Expr share_subexpressions(const Expr& expr) {
  InternTable table;
  return rewrite_bottom_up(expr, [&](const Expr& node) { return table.intern(node); });
}

}  // namespace attnc::ir
