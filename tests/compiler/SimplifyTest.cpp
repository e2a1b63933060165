// Algebraic simplification: each rule checked on a hand-built before/after pair, and each rule that
// would be wrong for some value (float x * 0, x + 0.0, x - x, ordering negations on floats) checked
// to stay unapplied.

#include "compiler/Simplify.h"

#include <limits>
#include <string>

#include <catch2/catch.hpp>

#include "compiler/Printer.h"

using namespace attnc::ir;

namespace {

Expr q() { return make_builtin(Builtin::QIdx); }
Expr k() { return make_builtin(Builtin::KvIdx); }
Expr s() { return make_builtin(Builtin::Score); }
Expr c() { return make_param(0, Type::Bool); }
Expr d() { return make_param(1, Type::Bool); }
Expr f() { return make_param(2, Type::Float); }
Expr wide() { return make_cast(Type::Int64, q()); }

Expr bin(Op op, Expr a, Expr b) { return make_binary(op, std::move(a), std::move(b)); }
Expr neg(Expr a) { return make_unary(Op::Neg, std::move(a)); }
Expr lnot(Expr a) { return make_unary(Op::Not, std::move(a)); }
Expr sel(Expr c, Expr a, Expr b) { return make_select(std::move(c), std::move(a), std::move(b)); }
Expr fl(float v) { return make_float(v); }

constexpr int32_t kIntMin = std::numeric_limits<int32_t>::min();
constexpr int32_t kIntMax = std::numeric_limits<int32_t>::max();

struct Rule {
  std::string name;
  Expr before;
  Expr after;
};

void check_rules(const std::vector<Rule>& rules) {
  for (const Rule& rule : rules) {
    CAPTURE(rule.name, print_expr(rule.before), print_expr(rule.after));
    Expr simplified = simplify(rule.before);
    CAPTURE(print_expr(simplified));
    CHECK(equal(simplified, rule.after));
  }
}

void check_unchanged(const std::vector<std::pair<std::string, Expr>>& cases) {
  for (const auto& [name, e] : cases) {
    CAPTURE(name, print_expr(e));
    CHECK(simplify(e) == e);
  }
}

}  // namespace

TEST_CASE("simplify applies integer identities that hold under wrapping", "[simplify]") {
  check_rules({
      {"x + 0", bin(Op::Add, q(), make_int(0)), q()},
      {"0 + x", bin(Op::Add, make_int(0), q()), q()},
      {"x - 0", bin(Op::Sub, q(), make_int(0)), q()},
      {"0 - x", bin(Op::Sub, make_int(0), q()), neg(q())},
      {"x - x", bin(Op::Sub, bin(Op::Mul, q(), k()), bin(Op::Mul, q(), k())), make_int(0)},
      {"x * 1", bin(Op::Mul, q(), make_int(1)), q()},
      {"1 * x", bin(Op::Mul, make_int(1), q()), q()},
      {"x * 0", bin(Op::Mul, q(), make_int(0)), make_int(0)},
      {"0 * x", bin(Op::Mul, make_int(0), q()), make_int(0)},
      {"x * -1", bin(Op::Mul, q(), make_int(-1)), neg(q())},
      {"x / 1", bin(Op::Div, q(), make_int(1)), q()},
      {"x / -1", bin(Op::Div, q(), make_int(-1)), neg(q())},
      {"x / 0 (total division)", bin(Op::Div, q(), make_int(0)), make_int(0)},
      {"x % 1", bin(Op::Mod, q(), make_int(1)), make_int(0)},
      {"x % -1", bin(Op::Mod, q(), make_int(-1)), make_int(0)},
      {"x % 0", bin(Op::Mod, q(), make_int(0)), make_int(0)},
      {"x + -y", bin(Op::Add, q(), neg(k())), bin(Op::Sub, q(), k())},
      {"-y + x", bin(Op::Add, neg(k()), q()), bin(Op::Sub, q(), k())},
      {"x - -y", bin(Op::Sub, q(), neg(k())), bin(Op::Add, q(), k())},
      {"--x", neg(neg(q())), q()},
      {"-(a - b)", neg(bin(Op::Sub, q(), k())), bin(Op::Sub, k(), q())},
      {"min(x, x)", bin(Op::Min, q(), q()), q()},
      {"max(x, x)", bin(Op::Max, q(), q()), q()},
      {"min(x, INT_MIN)", bin(Op::Min, q(), make_int(kIntMin)), make_int(kIntMin)},
      {"min(x, INT_MAX)", bin(Op::Min, q(), make_int(kIntMax)), q()},
      {"max(INT_MAX, x)", bin(Op::Max, make_int(kIntMax), q()), make_int(kIntMax)},
      {"max(x, INT_MIN)", bin(Op::Max, q(), make_int(kIntMin)), q()},
      {"(x + 1) + 2", bin(Op::Add, bin(Op::Add, q(), make_int(1)), make_int(2)), bin(Op::Add, q(), make_int(3))},
      {"(x + INT_MAX) + 1 wraps", bin(Op::Add, bin(Op::Add, q(), make_int(kIntMax)), make_int(1)),
       bin(Op::Add, q(), make_int(kIntMin))},
      {"(x * 3) * 5", bin(Op::Mul, bin(Op::Mul, q(), make_int(3)), make_int(5)), bin(Op::Mul, q(), make_int(15))},
      {"min(min(x, 3), 5)", bin(Op::Min, bin(Op::Min, q(), make_int(3)), make_int(5)), bin(Op::Min, q(), make_int(3))},
      {"abs(abs(x))", make_call(Op::Abs, {make_call(Op::Abs, {q()})}), make_call(Op::Abs, {q()})},
      {"abs(-x)", make_call(Op::Abs, {neg(q())}), make_call(Op::Abs, {q()})},
      {"int64 x - x", bin(Op::Sub, wide(), wide()), make_int64(0)},
      {"int64 x * 1", bin(Op::Mul, wide(), make_int64(1)), wide()},
      {"int64 min(x, INT64_MIN)", bin(Op::Min, wide(), make_int64(std::numeric_limits<int64_t>::min())),
       make_int64(std::numeric_limits<int64_t>::min())},
  });
}

TEST_CASE("simplify decides integer comparisons of an operand with itself", "[simplify]") {
  Expr x = bin(Op::Add, q(), k());
  check_rules({
      {"x < x", bin(Op::Lt, x, x), make_bool(false)},
      {"x <= x", bin(Op::Le, x, x), make_bool(true)},
      {"x > x", bin(Op::Gt, x, x), make_bool(false)},
      {"x >= x", bin(Op::Ge, x, x), make_bool(true)},
      {"x == x", bin(Op::Eq, x, x), make_bool(true)},
      {"x != x", bin(Op::Ne, x, x), make_bool(false)},
      {"bool c == c", bin(Op::Eq, c(), c()), make_bool(true)},
  });
}

TEST_CASE("simplify applies only the float identities that are exact", "[simplify]") {
  check_rules({
      {"x * 1.0", bin(Op::Mul, s(), fl(1.0f)), s()},
      {"1.0 * x", bin(Op::Mul, fl(1.0f), s()), s()},
      {"x * -1.0", bin(Op::Mul, s(), fl(-1.0f)), neg(s())},
      {"x / 1.0", bin(Op::Div, s(), fl(1.0f)), s()},
      {"x / -1.0", bin(Op::Div, s(), fl(-1.0f)), neg(s())},
      {"x + -0.0", bin(Op::Add, s(), fl(-0.0f)), s()},
      {"-0.0 + x", bin(Op::Add, fl(-0.0f), s()), s()},
      {"x - 0.0", bin(Op::Sub, s(), fl(0.0f)), s()},
      {"--x", neg(neg(s())), s()},
      {"min(x, x)", bin(Op::Min, s(), s()), s()},
      {"max(x, x)", bin(Op::Max, s(), s()), s()},
      {"abs(-x)", make_call(Op::Abs, {neg(s())}), make_call(Op::Abs, {s()})},
  });
}

TEST_CASE("simplify leaves float rewrites that NaN, infinities or signed zeros break", "[simplify]") {
  check_unchanged({
      {"x * 0.0 (inf * 0 is NaN)", bin(Op::Mul, s(), fl(0.0f))},
      {"x + 0.0 (-0 + 0 is +0)", bin(Op::Add, s(), fl(0.0f))},
      {"x - -0.0 (-0 - -0 is +0)", bin(Op::Sub, s(), fl(-0.0f))},
      {"0.0 - x (0 - 0 is +0, -0 is -0)", bin(Op::Sub, fl(0.0f), s())},
      {"x - x (inf - inf is NaN)", bin(Op::Sub, s(), s())},
      {"x == x (NaN)", bin(Op::Eq, s(), s())},
      {"x < x", bin(Op::Lt, s(), s())},
      {"x / x", bin(Op::Div, s(), s())},
      {"!(x < y) (NaN)", lnot(bin(Op::Lt, s(), f()))},
      {"-(a - b) (-(a - a) is -0)", neg(bin(Op::Sub, s(), f()))},
      {"(x + 1.0) + 2.0 (not associative)", bin(Op::Add, bin(Op::Add, s(), fl(1.0f)), fl(2.0f))},
  });
}

TEST_CASE("simplify leaves integer rewrites that are not exact", "[simplify]") {
  check_unchanged({
      {"x / x (0 / 0 is 0)", bin(Op::Div, q(), q())},
      {"(x + 1) < (y + 1) (wraps)", bin(Op::Lt, bin(Op::Add, q(), make_int(1)), bin(Op::Add, k(), make_int(1)))},
      {"(x * 2) / 2 (wraps)", bin(Op::Div, bin(Op::Mul, q(), make_int(2)), make_int(2))},
      {"(x - 1) - 2 (constant not last of an Add chain)", bin(Op::Sub, bin(Op::Sub, q(), make_int(1)), make_int(2))},
  });
}

TEST_CASE("simplify applies boolean identities", "[simplify]") {
  check_rules({
      {"!!c", lnot(lnot(c())), c()},
      {"c && true", bin(Op::And, c(), make_bool(true)), c()},
      {"true && c", bin(Op::And, make_bool(true), c()), c()},
      {"c && false", bin(Op::And, c(), make_bool(false)), make_bool(false)},
      {"false && c", bin(Op::And, make_bool(false), c()), make_bool(false)},
      {"c || true", bin(Op::Or, c(), make_bool(true)), make_bool(true)},
      {"c || false", bin(Op::Or, c(), make_bool(false)), c()},
      {"false || c", bin(Op::Or, make_bool(false), c()), c()},
      {"c && c", bin(Op::And, c(), c()), c()},
      {"c || c", bin(Op::Or, c(), c()), c()},
      {"c && !c", bin(Op::And, c(), lnot(c())), make_bool(false)},
      {"!c || c", bin(Op::Or, lnot(c()), c()), make_bool(true)},
      {"c == true", bin(Op::Eq, c(), make_bool(true)), c()},
      {"false == c", bin(Op::Eq, make_bool(false), c()), lnot(c())},
      {"c != true", bin(Op::Ne, c(), make_bool(true)), lnot(c())},
      {"c != false", bin(Op::Ne, c(), make_bool(false)), c()},
      {"!(a == b)", lnot(bin(Op::Eq, q(), k())), bin(Op::Ne, q(), k())},
      {"!(a != b)", lnot(bin(Op::Ne, c(), d())), bin(Op::Eq, c(), d())},
      {"float !(a == b)", lnot(bin(Op::Eq, s(), f())), bin(Op::Ne, s(), f())},
      {"!(a < b)", lnot(bin(Op::Lt, q(), k())), bin(Op::Le, k(), q())},
      {"!(a <= b)", lnot(bin(Op::Le, q(), k())), bin(Op::Lt, k(), q())},
      {"!(a > b)", lnot(bin(Op::Gt, q(), k())), bin(Op::Le, q(), k())},
      {"!(a >= b)", lnot(bin(Op::Ge, q(), k())), bin(Op::Lt, q(), k())},
      {"!!(a < b) keeps the comparison", lnot(lnot(bin(Op::Lt, q(), k()))), bin(Op::Lt, q(), k())},
  });
}

TEST_CASE("simplify rewrites selects", "[simplify]") {
  Expr a = bin(Op::Add, q(), make_int(1));
  Expr b = k();
  check_rules({
      {"select(c, a, a)", sel(c(), a, bin(Op::Add, q(), make_int(1))), a},
      {"select(!c, a, b)", sel(lnot(c()), a, b), sel(c(), b, a)},
      {"select(c, select(c, a, b), x)", sel(c(), sel(c(), a, b), q()), sel(c(), a, q())},
      {"select(c, x, select(c, a, b))", sel(c(), q(), sel(c(), a, b)), sel(c(), q(), b)},
      {"select(c, true, false)", sel(c(), make_bool(true), make_bool(false)), c()},
      {"select(c, false, true)", sel(c(), make_bool(false), make_bool(true)), lnot(c())},
      {"select(c, true, d)", sel(c(), make_bool(true), d()), bin(Op::Or, c(), d())},
      {"select(c, d, false)", sel(c(), d(), make_bool(false)), bin(Op::And, c(), d())},
      {"select(c, false, d)", sel(c(), make_bool(false), d()), bin(Op::And, lnot(c()), d())},
      {"select(c, d, true)", sel(c(), d(), make_bool(true)), bin(Op::Or, lnot(c()), d())},
      {"select(!c, false, d)", sel(lnot(c()), make_bool(false), d()), bin(Op::And, c(), d())},
  });
}

TEST_CASE("simplify removes exact double conversions only", "[simplify]") {
  Expr b = c();
  check_rules({
      {"int(int64(x))", make_cast(Type::Int, wide()), q()},
      {"float(int64(x))", make_cast(Type::Float, wide()), make_cast(Type::Float, q())},
      {"float(int(b))", make_cast(Type::Float, make_cast(Type::Int, b)), make_cast(Type::Float, b)},
      {"bool(float(b))", make_cast(Type::Bool, make_cast(Type::Float, b)), b},
      {"int(float(b))", make_cast(Type::Int, make_cast(Type::Float, b)), make_cast(Type::Int, b)},
      {"bool(float(x))", make_cast(Type::Bool, make_cast(Type::Float, q())), make_cast(Type::Bool, q())},
  });
  check_unchanged({
      {"int(float(x)) rounds above 2^24", make_cast(Type::Int, make_cast(Type::Float, q()))},
      {"int(int64(f)) saturates differently", make_cast(Type::Int, make_cast(Type::Int64, s()))},
      {"bool(int(f)) truncates 0.5 to 0", make_cast(Type::Bool, make_cast(Type::Int, s()))},
      {"float(int(f)) truncates", make_cast(Type::Float, make_cast(Type::Int, s()))},
  });
}

TEST_CASE("simplify rewrites nested expressions bottom-up", "[simplify]") {
  // ((q * 1) + 0) < (k - 0) && true  ->  q < k
  Expr e = bin(Op::And,
               bin(Op::Lt, bin(Op::Add, bin(Op::Mul, q(), make_int(1)), make_int(0)), bin(Op::Sub, k(), make_int(0))),
               make_bool(true));
  CHECK(equal(simplify(e), bin(Op::Lt, q(), k())));
}

TEST_CASE("simplify returns its input when no rule applies", "[simplify]") {
  Expr e = bin(Op::And, bin(Op::Le, k(), q()), bin(Op::Lt, bin(Op::Sub, q(), k()), make_param(3, Type::Int)));
  CHECK(simplify(e) == e);
}
