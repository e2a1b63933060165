#pragma once
// Hash-consing: makes structurally equal subexpressions one shared node, so later stages (the
// interpreter's tape, code generators emitting one temporary per node, the canonical printer's
// numbered temporaries) compute each distinct value once.
//
// Needs: any expression.
// Guarantees: the result is structurally equal to the input (ir::equal), and two of its nodes are
// structurally equal only if they are the same object. Which of several equal nodes survives is the
// first one in post-order (operands left to right), so the result does not depend on addresses.
// An expression that is already fully shared is returned as is.

#include <cstddef>
#include <cstdint>
#include <vector>

#include "compiler/IR.h"

namespace attnc::ir {

// The distinct nodes seen so far, by structure: the table behind share_subexpressions, and the
// inliner's (which builds its result interned). A flat open-addressed table keyed by the structural
// hash; only looked up, never iterated, so the result cannot depend on addresses.
class InternTable {
 public:
  // The first node interned that is structurally equal to `node`, or `node` itself when it is new.
  // Needs: `node`'s operands were interned here already (so equal structure is one address).
  Expr intern(const Expr& node);
  // How many distinct nodes the table holds.
  size_t size() const { return count_; }

 private:
  size_t slot_of(uint64_t hash) const;
  void grow();

  std::vector<Expr> slots_;  // size a power of two, at most half full
  size_t count_ = 0;
};

Expr share_subexpressions(const Expr& expr);

}  // namespace attnc::ir
