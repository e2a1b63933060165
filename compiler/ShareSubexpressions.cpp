#include "compiler/ShareSubexpressions.h"

#include <unordered_map>
#include <vector>

#include "compiler/IRMutator.h"

namespace attnc::ir {

namespace {

// Distinct nodes seen so far, bucketed by structural hash. Only looked up, never iterated, so the
// unordered container cannot make the result depend on addresses.
class NodeTable {
 public:
  // The first node seen that is structurally equal to `node`, or `node` itself when it is new.
  Expr intern(const Expr& node) {
    std::vector<Expr>& bucket = buckets_[node->hash];
    for (const Expr& seen : bucket) {
      // Operands are interned already, so equal() compares them by pointer and stays shallow.
      if (equal(seen, node)) return seen;
    }
    bucket.push_back(node);
    return node;
  }

 private:
  std::unordered_map<uint64_t, std::vector<Expr>> buckets_;
};

}  // namespace

Expr share_subexpressions(const Expr& expr) {
  NodeTable table;
  return rewrite_bottom_up(expr, [&](const Expr& node) { return table.intern(node); });
}

}  // namespace attnc::ir
