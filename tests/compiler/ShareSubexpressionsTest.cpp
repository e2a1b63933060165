// Hash-consing: structurally equal subtrees become one node, deterministically, without changing
// the structure; an already shared expression comes back as the same object.

#include "compiler/ShareSubexpressions.h"

#include <catch2/catch.hpp>

#include "compiler/IRMutator.h"

using namespace attnc::ir;

namespace {

// q_idx - kv_idx, built fresh each call so that equal trees are distinct objects.
Expr distance() { return make_binary(Op::Sub, make_builtin(Builtin::QIdx), make_builtin(Builtin::KvIdx)); }

}  // namespace

TEST_CASE("share_subexpressions makes equal subtrees one node", "[share]") {
  Expr a = distance();
  Expr b = distance();
  REQUIRE(a != b);
  Expr e = make_binary(Op::And, make_binary(Op::Lt, a, make_param(0, Type::Int)),
                       make_binary(Op::Lt, make_unary(Op::Neg, make_param(0, Type::Int)), b));
  // q_idx, kv_idx, q - kv and $0 twice each, two <, one neg, &&.
  CHECK(count_nodes(e) == 12);
  Expr shared = share_subexpressions(e);
  CHECK(equal(shared, e));
  // q_idx, kv_idx, q - kv, $0, -$0, two <, &&.
  CHECK(count_nodes(shared) == 8);
  CHECK(shared->operands[0]->operands[0] == shared->operands[1]->operands[1]);
}

TEST_CASE("share_subexpressions keeps the first of equal nodes in post-order", "[share]") {
  Expr first = distance();
  Expr second = distance();
  Expr e = make_binary(Op::Add, first, second);
  Expr shared = share_subexpressions(e);
  // The left operand is visited first, so it is the survivor and is reused on the right.
  CHECK(shared->operands[0] == first);
  CHECK(shared->operands[1] == first);
}

TEST_CASE("share_subexpressions does not merge nodes that differ in type or constant bits", "[share]") {
  // +0.0 and -0.0 compare equal as floats but are different constants.
  Expr e = make_binary(Op::Add, make_float(0.0f), make_float(-0.0f));
  Expr shared = share_subexpressions(e);
  CHECK(shared->operands[0] != shared->operands[1]);
  // int 1 and bool true both hold int_value 1.
  Expr mixed = make_binary(Op::Eq, make_cast(Type::Int, make_bool(true)), make_int(1));
  CHECK(share_subexpressions(mixed) == mixed);
  CHECK(count_nodes(mixed) == 4);
}

TEST_CASE("share_subexpressions returns a fully shared expression unchanged", "[share]") {
  Expr d = distance();
  Expr e = make_binary(Op::Mul, d, d);
  CHECK(share_subexpressions(e) == e);
  Expr shared = share_subexpressions(make_binary(Op::Mul, distance(), distance()));
  CHECK(share_subexpressions(shared) == shared);
}

TEST_CASE("share_subexpressions merges deep equal trees", "[share]") {
  // Two separately built copies of a 200-node chain collapse into one.
  auto chain = [] {
    Expr e = make_builtin(Builtin::QIdx);
    for (int i = 0; i < 100; ++i) e = make_binary(Op::Add, e, make_int(i));
    return e;
  };
  Expr e = make_binary(Op::Eq, chain(), chain());
  Expr shared = share_subexpressions(e);
  CHECK(shared->operands[0] == shared->operands[1]);
  CHECK(count_nodes(shared) == count_nodes(chain()) + 1);
}
