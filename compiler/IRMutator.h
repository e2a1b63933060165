#pragma once
// Traversal helpers for the expression DAG. Both visit each distinct node once, children before
// parents, in an order fixed by the structure (operands left to right), never by addresses.

#include <functional>

#include "compiler/IR.h"

namespace attnc::ir {

// Rebuilds `root` bottom-up. `rewrite` receives each node with its operands already rewritten
// (the original node when none changed) and returns its replacement (or the node itself).
// Shared subexpressions are rewritten once and stay shared.
Expr rewrite_bottom_up(const Expr& root, const std::function<Expr(const Expr&)>& rewrite);

// Calls `visit` on each distinct node of `root` in post-order (operands first).
void for_each_node(const Expr& root, const std::function<void(const Expr&)>& visit);

// Number of distinct nodes (after sharing) in `root`.
size_t count_nodes(const Expr& root);

}  // namespace attnc::ir
