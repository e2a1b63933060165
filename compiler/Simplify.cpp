#include "compiler/Simplify.h"

#include <bit>
#include <cstdint>
#include <limits>

#include "compiler/IRMutator.h"
#include "compiler/Semantics.h"

namespace attnc::ir {

namespace {

// Every rule below carries one comment line saying why it is exact. "int" means Int and Int64: both
// wrap, and the IR has no side effects or traps, so an operand may be dropped or duplicated freely.

bool is_integer(Type type) { return type == Type::Int || type == Type::Int64; }

// A float constant with exactly these bits (so -0.0 and +0.0 are different).
bool is_float_bits(const Expr& e, float value) {
  return e->kind == Kind::Const && e->type == Type::Float &&
         std::bit_cast<uint32_t>(e->float_value) == std::bit_cast<uint32_t>(value);
}

bool is_op(const Expr& e, Kind kind, Op op) { return e->kind == kind && e->op == op; }
bool is_not(const Expr& e) { return is_op(e, Kind::Unary, Op::Not); }
bool is_neg(const Expr& e) { return is_op(e, Kind::Unary, Op::Neg); }

// True when `a` is `!b` or `b` is `!a`.
bool are_complements(const Expr& a, const Expr& b) {
  return (is_not(a) && equal(a->operands[0], b)) || (is_not(b) && equal(b->operands[0], a));
}

int64_t lowest(Type type) {
  return type == Type::Int ? std::numeric_limits<int32_t>::min() : std::numeric_limits<int64_t>::min();
}
int64_t highest(Type type) {
  return type == Type::Int ? std::numeric_limits<int32_t>::max() : std::numeric_limits<int64_t>::max();
}

Expr zero(Type type) { return make_const(type, 0, 0); }

Value value_of(const Expr& constant) { return {constant->type, constant->int_value, constant->float_value}; }

Expr simplify_node(const Expr& node);

// Builders that simplify the node they make, so a rule's output is already in simplified form.
Expr negate(const Expr& x) { return simplify_node(make_unary(Op::Neg, x)); }
Expr logical_not(const Expr& c) { return simplify_node(make_unary(Op::Not, c)); }
Expr binary(Op op, const Expr& a, const Expr& b) { return simplify_node(make_binary(op, a, b)); }

Expr simplify_unary(const Expr& node) {
  const Expr& x = node->operands[0];
  if (node->op == Op::Neg) {
    // -(-x) == x: int negation wraps symmetrically (-(-INT_MIN) == INT_MIN), float negation flips the sign bit.
    if (is_neg(x)) return x->operands[0];
    // -(a - b) == b - a for ints: both are the same value mod 2^n. (Not floats: -(a - a) is -0, a - a is +0.)
    if (is_integer(x->type) && is_op(x, Kind::Binary, Op::Sub)) return binary(Op::Sub, x->operands[1], x->operands[0]);
    return node;
  }
  // !!c == c.
  if (is_not(x)) return x->operands[0];
  if (x->kind != Kind::Binary) return node;
  const Expr& a = x->operands[0];
  const Expr& b = x->operands[1];
  // !(a == b) == (a != b) and back, for every type: IEEE defines != as the negation of == (NaN != NaN).
  if (x->op == Op::Eq) return make_binary(Op::Ne, a, b);
  if (x->op == Op::Ne) return make_binary(Op::Eq, a, b);
  // Negated orderings flip for ints, which are totally ordered (not floats: !(NaN < y) is true, y <= NaN false).
  if (is_integer(a->type)) {
    if (x->op == Op::Lt) return make_binary(Op::Le, b, a);
    if (x->op == Op::Le) return make_binary(Op::Lt, b, a);
    if (x->op == Op::Gt) return make_binary(Op::Le, a, b);
    if (x->op == Op::Ge) return make_binary(Op::Lt, a, b);
  }
  return node;
}

// (e op c1) op c2 -> e op (c1 op c2) for int Add/Mul/Min/Max: associative under wrapping arithmetic.
// canonicalize puts constants last in these chains, so this collects all of a chain's constants.
Expr reassociate_constants(const Expr& node) {
  const Expr& a = node->operands[0];
  const Expr& b = node->operands[1];
  if (!b->is_const() || !is_op(a, Kind::Binary, node->op) || !a->operands[1]->is_const()) return node;
  Value folded = evaluate_binary(node->op, value_of(a->operands[1]), value_of(b));
  return make_binary(node->op, a->operands[0], make_const(folded.type, folded.i, folded.f));
}

Expr simplify_integer_arithmetic(const Expr& node) {
  const Expr& a = node->operands[0];
  const Expr& b = node->operands[1];
  const Type type = a->type;
  switch (node->op) {
    case Op::Add:
      // x + 0 == 0 + x == x.
      if (is_const_int(b, 0)) return a;
      if (is_const_int(a, 0)) return b;
      // x + (-y) == x - y under wrapping.
      if (is_neg(b)) return binary(Op::Sub, a, b->operands[0]);
      if (is_neg(a)) return binary(Op::Sub, b, a->operands[0]);
      return reassociate_constants(node);
    case Op::Sub:
      // x - 0 == x; 0 - x == -x (wrapping negation is subtraction from zero).
      if (is_const_int(b, 0)) return a;
      if (is_const_int(a, 0)) return negate(b);
      // x - x == 0 for ints (no NaN or infinity).
      if (equal(a, b)) return zero(type);
      // x - (-y) == x + y under wrapping.
      if (is_neg(b)) return binary(Op::Add, a, b->operands[0]);
      return node;
    case Op::Mul:
      // x * 1 == x; x * 0 == 0 (ints have no NaN or infinity); x * -1 == -x under wrapping.
      if (is_const_int(b, 1)) return a;
      if (is_const_int(a, 1)) return b;
      if (is_const_int(a, 0) || is_const_int(b, 0)) return zero(type);
      if (is_const_int(b, -1)) return negate(a);
      if (is_const_int(a, -1)) return negate(b);
      return reassociate_constants(node);
    case Op::Div:
      // x / 1 == x; x / 0 == 0 (Semantics.h); x / -1 == -x (INT_MIN / -1 == INT_MIN == -INT_MIN).
      if (is_const_int(b, 1)) return a;
      if (is_const_int(b, 0)) return zero(type);
      if (is_const_int(b, -1)) return negate(a);
      return node;
    case Op::Mod:
      // x % 1 == x % -1 == x % 0 == 0 (Semantics.h).
      if (is_const_int(b, 1) || is_const_int(b, -1) || is_const_int(b, 0)) return zero(type);
      return node;
    case Op::Min:
    case Op::Max: {
      const bool is_min = node->op == Op::Min;
      // min(x, x) == max(x, x) == x.
      if (equal(a, b)) return a;
      // The type's extremes absorb or vanish: min(x, MIN) == MIN, min(x, MAX) == x, and mirrored for max.
      const int64_t absorbing = is_min ? lowest(type) : highest(type);
      const int64_t neutral = is_min ? highest(type) : lowest(type);
      if (is_const_int(b, absorbing)) return b;
      if (is_const_int(a, absorbing)) return a;
      if (is_const_int(b, neutral)) return a;
      if (is_const_int(a, neutral)) return b;
      return reassociate_constants(node);
    }
    case Op::Lt:
    case Op::Gt:
      // x < x is false for ints (no NaN).
      if (equal(a, b)) return make_bool(false);
      return node;
    case Op::Le:
    case Op::Ge:
      // x <= x is true for ints (no NaN).
      if (equal(a, b)) return make_bool(true);
      return node;
    default: return node;
  }
}

Expr simplify_float_arithmetic(const Expr& node) {
  const Expr& a = node->operands[0];
  const Expr& b = node->operands[1];
  switch (node->op) {
    case Op::Add:
      // x + (-0.0) == x, signed zeros included (+0 + -0 == +0, -0 + -0 == -0). Not x + 0.0: -0 + +0 == +0.
      if (is_float_bits(b, -0.0f)) return a;
      if (is_float_bits(a, -0.0f)) return b;
      return node;
    case Op::Sub:
      // x - 0.0 == x + (-0.0) == x.
      if (is_float_bits(b, 0.0f)) return a;
      return node;
    case Op::Mul:
      // x * 1.0 == x and x * -1.0 == -x are exact in IEEE arithmetic (not x * 0.0: inf * 0 is NaN).
      if (is_float_bits(b, 1.0f)) return a;
      if (is_float_bits(a, 1.0f)) return b;
      if (is_float_bits(b, -1.0f)) return negate(a);
      if (is_float_bits(a, -1.0f)) return negate(b);
      return node;
    case Op::Div:
      // x / 1.0 == x and x / -1.0 == -x are exact in IEEE arithmetic.
      if (is_float_bits(b, 1.0f)) return a;
      if (is_float_bits(b, -1.0f)) return negate(a);
      return node;
    case Op::Min:
    case Op::Max:
      // fminf(x, x) == fmaxf(x, x) == x (NaN included).
      if (equal(a, b)) return a;
      return node;
    default: return node;
  }
}

Expr simplify_logic(const Expr& node) {
  const Expr& a = node->operands[0];
  const Expr& b = node->operands[1];
  const bool is_and = node->op == Op::And;
  // c && true == c, c && false == false; c || false == c, c || true == true.
  const bool identity = is_and;
  if (is_const_bool(b, identity)) return a;
  if (is_const_bool(a, identity)) return b;
  if (is_const_bool(b, !identity)) return b;
  if (is_const_bool(a, !identity)) return a;
  // c && c == c || c == c.
  if (equal(a, b)) return a;
  // c && !c == false, c || !c == true.
  if (are_complements(a, b)) return make_bool(!is_and);
  return node;
}

Expr simplify_equality(const Expr& node) {
  const Expr& a = node->operands[0];
  const Expr& b = node->operands[1];
  const bool is_eq = node->op == Op::Eq;
  // x == x is true and x != x false for ints and bools (not floats: NaN != NaN).
  if (a->type != Type::Float && equal(a, b)) return make_bool(is_eq);
  if (a->type == Type::Bool) {
    // c == true == c, c == false == !c, c != true == !c, c != false == c.
    for (const auto& [constant, other] : {std::pair{b, a}, std::pair{a, b}}) {
      if (!constant->is_const()) continue;
      const bool keeps = (constant->int_value != 0) == is_eq;
      return keeps ? other : logical_not(other);
    }
  }
  return node;
}

Expr simplify_binary(const Expr& node) {
  switch (node->op) {
    case Op::And:
    case Op::Or: return simplify_logic(node);
    case Op::Eq:
    case Op::Ne: return simplify_equality(node);
    default: break;
  }
  if (is_integer(node->operands[0]->type)) return simplify_integer_arithmetic(node);
  if (node->operands[0]->type == Type::Float) return simplify_float_arithmetic(node);
  return node;
}

Expr simplify_select(const Expr& node) {
  const Expr& c = node->operands[0];
  const Expr& a = node->operands[1];
  const Expr& b = node->operands[2];
  // select(!c, a, b) == select(c, b, a).
  if (is_not(c)) return make_select(c->operands[0], b, a);
  // select(c, a, a) == a: both arms are evaluated anyway and have no side effects.
  if (equal(a, b)) return a;
  // An arm that selects on the same condition again takes the same branch.
  if (a->kind == Kind::Select && equal(a->operands[0], c)) return make_select(c, a->operands[1], b);
  if (b->kind == Kind::Select && equal(b->operands[0], c)) return make_select(c, a, b->operands[2]);
  if (a->type == Type::Bool) {
    // Bool selects with a constant arm are logic: select(c, true, x) == c || x, select(c, x, false) ==
    // c && x, select(c, false, x) == !c && x, select(c, x, true) == !c || x (both sides are total).
    if (is_const_bool(a, true)) return binary(Op::Or, c, b);
    if (is_const_bool(b, false)) return binary(Op::And, c, a);
    if (is_const_bool(a, false)) return binary(Op::And, logical_not(c), b);
    if (is_const_bool(b, true)) return binary(Op::Or, logical_not(c), a);
  }
  return node;
}

Expr simplify_call(const Expr& node) {
  if (node->op != Op::Abs) return node;
  const Expr& x = node->operands[0];
  // abs(abs(x)) == abs(x) (abs(INT_MIN) == INT_MIN is a fixed point); abs(-x) == abs(x) (wrapping; fabs
  // clears the sign bit either way).
  if (is_op(x, Kind::Call, Op::Abs)) return x;
  if (is_neg(x)) return make_call(Op::Abs, {x->operands[0]});
  return node;
}

Expr simplify_cast(const Expr& node) {
  const Expr& inner = node->operands[0];
  if (inner->kind != Kind::Cast) return node;
  const Expr& source = inner->operands[0];
  const Type to = node->type;
  // A bool converted to a number is exactly 0 or 1, which every later conversion keeps.
  if (source->type == Type::Bool) return make_cast(to, source);
  // Int -> Int64 is exact, so converting from the widened value is converting from the int.
  if (inner->type == Type::Int64 && source->type == Type::Int) return make_cast(to, source);
  // An int converted to float is zero exactly when the int is zero, so its truth value is the int's.
  if (to == Type::Bool && inner->type == Type::Float && is_integer(source->type)) return make_cast(to, source);
  return node;
}

Expr simplify_once(const Expr& node) {
  switch (node->kind) {
    case Kind::Unary: return simplify_unary(node);
    case Kind::Binary: return simplify_binary(node);
    case Kind::Select: return simplify_select(node);
    case Kind::Call: return simplify_call(node);
    case Kind::Cast: return simplify_cast(node);
    default: return node;
  }
}

// Applies rules at one node until none matches; each rule makes the tree smaller or moves a negation
// down, so a small bound is never reached in practice and only guards against a rule cycle.
Expr simplify_node(const Expr& node) {
  Expr current = node;
  for (int round = 0; round < 16; ++round) {
    Expr next = simplify_once(current);
    if (next == current) break;
    current = next;
  }
  return current;
}

}  // namespace

Expr simplify(const Expr& expr) { return rewrite_bottom_up(expr, simplify_node); }

}  // namespace attnc::ir
