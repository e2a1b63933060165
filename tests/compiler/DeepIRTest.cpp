// IR as deep or as shared as user input can make it: nothing that walks, compares or frees the IR may
// recurse once per level (a chain of definitions or lets makes IR hundreds of thousands of levels
// deep), and nothing may walk a DAG as the tree it stands for (a few dozen definitions make that
// tree astronomically large).

#include <string>

#include <catch2/catch.hpp>

#include "compiler/IR.h"
#include "compiler/IRMutator.h"

using namespace attnc::ir;

namespace {

// ((q_idx + 0) + 1) + ... : `length` Add nodes, each the left operand of the next.
Expr int_chain(int length, int bottom = 0) {
  Expr e = make_binary(Op::Add, make_builtin(Builtin::QIdx), make_int(bottom));
  for (int i = 1; i < length; ++i) e = make_binary(Op::Add, e, make_int(i));
  return e;
}

// x1 = leaf + leaf, x2 = x1 * x1, ...: `levels` distinct nodes standing for a tree of 2^levels leaves.
Expr doubling(int levels, Expr leaf) {
  Expr e = std::move(leaf);
  for (int i = 0; i < levels; ++i) e = make_binary(i % 2 ? Op::Mul : Op::Add, e, e);
  return e;
}

}  // namespace

TEST_CASE("freeing a chain of a million IR nodes does not recurse once per node", "[ir][deep]") {
  Expr chain = int_chain(1'000'000);
  CHECK(chain->operands.size() == 2);
  chain.reset();  // a recursive release would overflow the stack here
  SUCCEED("freed");
}

TEST_CASE("freeing shared IR frees each node once and keeps nodes still in use", "[ir][deep]") {
  Expr kept = int_chain(1000);
  Expr user = make_binary(Op::Mul, kept, kept);
  for (int i = 0; i < 1000; ++i) user = make_binary(Op::Sub, user, kept);
  user.reset();
  CHECK(count_nodes(kept) == 2 * 1000 + 1);
  CHECK(kept.use_count() == 1);
}

TEST_CASE("equal and structurally_less compare chains 300000 nodes deep", "[ir][deep]") {
  Expr a = int_chain(300'000);
  Expr b = int_chain(300'000);
  REQUIRE(a != b);
  CHECK(equal(a, b));
  CHECK_FALSE(structurally_less(a, b));
  CHECK_FALSE(structurally_less(b, a));
  // Differing only at the very bottom: the order is decided 300000 levels down.
  Expr c = int_chain(300'000, 1);
  CHECK_FALSE(equal(a, c));
  CHECK(structurally_less(a, c));
  CHECK_FALSE(structurally_less(c, a));
}

TEST_CASE("equal and structurally_less visit a DAG's nodes, not the tree it stands for", "[ir][deep]") {
  // Two separately built copies of a 2^64-leaf tree: walking the tree would never finish.
  Expr a = doubling(64, make_builtin(Builtin::QIdx));
  Expr b = doubling(64, make_builtin(Builtin::QIdx));
  REQUIRE(a != b);
  CHECK(equal(a, b));
  CHECK_FALSE(structurally_less(a, b));
  CHECK_FALSE(structurally_less(b, a));
  Expr c = doubling(64, make_builtin(Builtin::KvIdx));
  CHECK_FALSE(equal(a, c));
  CHECK(structurally_less(a, c) != structurally_less(c, a));
  CHECK(structurally_less(a, c) == structurally_less(make_builtin(Builtin::QIdx), make_builtin(Builtin::KvIdx)));
}
