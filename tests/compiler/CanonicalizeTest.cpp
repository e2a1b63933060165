// Canonical operand order: mirrored comparisons, commutative operands, flattened associative chains
// with constants last, float operators only swapped (never reassociated), and idempotence.

#include "compiler/Canonicalize.h"

#include <string>

#include <catch2/catch.hpp>

#include "compiler/Printer.h"

using namespace attnc::ir;

namespace {

Expr q() { return make_builtin(Builtin::QIdx); }
Expr k() { return make_builtin(Builtin::KvIdx); }
Expr h() { return make_builtin(Builtin::Head); }
Expr s() { return make_builtin(Builtin::Score); }
Expr w() { return make_param(0, Type::Int); }
Expr f() { return make_param(1, Type::Float); }
Expr c() { return make_param(2, Type::Bool); }
Expr d() { return make_param(3, Type::Bool); }
Expr bin(Op op, Expr a, Expr b) { return make_binary(op, std::move(a), std::move(b)); }

void check_same_canonical_form(const Expr& a, const Expr& b) {
  Expr ca = canonicalize(a);
  Expr cb = canonicalize(b);
  CAPTURE(print_expr(a), print_expr(b), print_expr(ca), print_expr(cb));
  CHECK(equal(ca, cb));
}

}  // namespace

TEST_CASE("canonicalize turns mirrored comparisons into < and <=", "[canonicalize]") {
  CHECK(equal(canonicalize(bin(Op::Gt, q(), k())), bin(Op::Lt, k(), q())));
  CHECK(equal(canonicalize(bin(Op::Ge, q(), k())), bin(Op::Le, k(), q())));
  CHECK(equal(canonicalize(bin(Op::Gt, s(), f())), bin(Op::Lt, f(), s())));
  // q_idx >= kv_idx and kv_idx <= q_idx are one form.
  check_same_canonical_form(bin(Op::Ge, q(), k()), bin(Op::Le, k(), q()));
  // < and <= themselves keep their operand order: they are not commutative.
  Expr lt = bin(Op::Lt, q(), k());
  CHECK(canonicalize(lt) == lt);
}

TEST_CASE("canonicalize orders the operands of every commutative operator", "[canonicalize]") {
  auto [op, type] = GENERATE(table<Op, Type>({
      {Op::Add, Type::Int},
      {Op::Mul, Type::Int},
      {Op::Min, Type::Int},
      {Op::Max, Type::Int},
      {Op::Eq, Type::Int},
      {Op::Ne, Type::Int},
      {Op::Add, Type::Float},
      {Op::Mul, Type::Float},
      {Op::Eq, Type::Float},
      {Op::Ne, Type::Float},
      {Op::And, Type::Bool},
      {Op::Or, Type::Bool},
      {Op::Eq, Type::Bool},
  }));
  CAPTURE(op_spelling(op), type_name(type));
  Expr a = make_param(0, type);
  Expr b = make_param(1, type);
  check_same_canonical_form(bin(op, a, b), bin(op, b, a));
  // Parameter #0 sorts before #1 (structural order, never addresses).
  Expr canonical = canonicalize(bin(op, b, a));
  REQUIRE(canonical->kind == Kind::Binary);
  CHECK(canonical->operands[0]->index == 0);
}

TEST_CASE("canonicalize puts constants after the other operands", "[canonicalize]") {
  CHECK(equal(canonicalize(bin(Op::Add, make_int(1), q())), bin(Op::Add, q(), make_int(1))));
  CHECK(equal(canonicalize(bin(Op::Mul, make_float(2.0f), s())), bin(Op::Mul, s(), make_float(2.0f))));
  CHECK(equal(canonicalize(bin(Op::Eq, make_int(0), q())), bin(Op::Eq, q(), make_int(0))));
  check_same_canonical_form(bin(Op::Add, make_int(1), q()), bin(Op::Add, q(), make_int(1)));
}

TEST_CASE("canonicalize flattens and sorts integer and boolean chains", "[canonicalize]") {
  SECTION("(x + 1) + y and (y + x) + 1") {
    Expr a = bin(Op::Add, bin(Op::Add, q(), make_int(1)), k());
    Expr b = bin(Op::Add, bin(Op::Add, k(), q()), make_int(1));
    check_same_canonical_form(a, b);
    // Left-deep, constant last.
    Expr canonical = canonicalize(a);
    REQUIRE(canonical->op == Op::Add);
    CHECK(is_const_int(canonical->operands[1], 1));
    CHECK(canonical->operands[0]->op == Op::Add);
  }
  SECTION("a chain nested on the right") {
    check_same_canonical_form(bin(Op::Mul, q(), bin(Op::Mul, k(), bin(Op::Mul, h(), w()))),
                              bin(Op::Mul, bin(Op::Mul, bin(Op::Mul, w(), h()), k()), q()));
  }
  SECTION("min and max chains") {
    check_same_canonical_form(bin(Op::Min, bin(Op::Min, q(), make_int(4)), k()),
                              bin(Op::Min, k(), bin(Op::Min, make_int(4), q())));
    check_same_canonical_form(bin(Op::Max, bin(Op::Max, q(), k()), h()), bin(Op::Max, h(), bin(Op::Max, k(), q())));
  }
  SECTION("boolean chains") {
    Expr p = bin(Op::Lt, q(), k());
    check_same_canonical_form(bin(Op::And, bin(Op::And, c(), p), d()), bin(Op::And, d(), bin(Op::And, p, c())));
    check_same_canonical_form(bin(Op::Or, c(), bin(Op::Or, d(), p)), bin(Op::Or, bin(Op::Or, p, d()), c()));
  }
  SECTION("different operators do not mix") {
    // (q + k) * h has a Mul of an Add: only the Add's operands are ordered.
    Expr e = canonicalize(bin(Op::Mul, bin(Op::Add, k(), q()), h()));
    REQUIRE(e->op == Op::Mul);
    Expr sum = e->operands[0]->kind == Kind::Binary ? e->operands[0] : e->operands[1];
    CHECK(equal(sum, canonicalize(bin(Op::Add, q(), k()))));
  }
}

TEST_CASE("canonicalize never reassociates float arithmetic", "[canonicalize]") {
  // (s + f) + 1.0 and s + (f + 1.0) round differently, so they must stay different.
  Expr a = bin(Op::Add, bin(Op::Add, s(), f()), make_float(1.0f));
  Expr b = bin(Op::Add, s(), bin(Op::Add, f(), make_float(1.0f)));
  CHECK_FALSE(equal(canonicalize(a), canonicalize(b)));
  // Only the two direct operands of each node are ordered.
  Expr e = canonicalize(bin(Op::Add, make_float(1.0f), bin(Op::Add, f(), s())));
  REQUIRE(e->kind == Kind::Binary);
  CHECK(e->operands[1]->is_const());
  CHECK(e->operands[0]->op == Op::Add);
}

TEST_CASE("canonicalize orders the operands of float min and max", "[canonicalize]") {
  // Exact because Semantics orders -0 below +0 instead of leaving the zero case to fminf.
  CHECK(equal(canonicalize(bin(Op::Min, make_float(1.0f), s())), canonicalize(bin(Op::Min, s(), make_float(1.0f)))));
  CHECK(equal(canonicalize(bin(Op::Max, f(), s())), canonicalize(bin(Op::Max, s(), f()))));
  Expr e = canonicalize(bin(Op::Min, make_float(1.0f), s()));
  CHECK(e->operands[1]->is_const());  // constants last
}

TEST_CASE("canonicalize returns its input when it is canonical already", "[canonicalize]") {
  Expr e = canonicalize(
      bin(Op::And, bin(Op::Ge, q(), k()), bin(Op::Lt, bin(Op::Add, make_int(3), bin(Op::Sub, q(), k())), w())));
  CHECK(canonicalize(e) == e);
  Expr chain = canonicalize(bin(Op::Add, bin(Op::Add, make_int(2), k()), bin(Op::Add, q(), h())));
  CHECK(canonicalize(chain) == chain);
}

TEST_CASE("canonicalize keeps a shared chain node whole, however many paths reach it", "[canonicalize][deep]") {
  // x1 = q + k, x2 = x1 + x1, ...: flattening through the shared nodes would give 2^64 leaves.
  Expr x = bin(Op::Add, k(), q());
  for (int i = 0; i < 64; ++i) x = bin(Op::Add, x, x);
  Expr e = canonicalize(x);
  CHECK(canonicalize(e) == e);
  // Each level stays one node over the shared level below it; only the bottom sum is reordered.
  Expr bottom = e;
  for (int i = 0; i < 64; ++i) {
    REQUIRE(bottom->operands[0] == bottom->operands[1]);
    bottom = bottom->operands[0];
  }
  CHECK(equal(bottom, bin(Op::Add, q(), k())));
}

TEST_CASE("canonicalize sorts a chain of 30000 conditions in one pass", "[canonicalize][deep]") {
  // ((c0 && c1) && c2) && ...: each node used once, so the whole chain is flattened from its root.
  Expr e = bin(Op::Lt, q(), make_int(30000));
  for (int i = 30000 - 1; i >= 0; --i) e = bin(Op::And, e, bin(Op::Lt, q(), make_int(i)));
  Expr c = canonicalize(e);
  // Sorted by the constant, left-deep: the rightmost leaf is the largest.
  REQUIRE(c->op == Op::And);
  CHECK(is_const_int(c->operands[1]->operands[1], 30000));
  CHECK(is_const_int(c->operands[0]->operands[1]->operands[1], 29999));
  CHECK(canonicalize(c) == c);
}
