#include "compiler/TileClassifier.h"

#include <limits>
#include <unordered_map>

#include "compiler/IRMutator.h"
#include "compiler/Pipeline.h"
#include "dsl/Errors.h"

namespace attnc::ir {

namespace {

constexpr int64_t kIntMin = std::numeric_limits<int32_t>::min();
constexpr int64_t kIntMax = std::numeric_limits<int32_t>::max();
constexpr float kInf = std::numeric_limits<float>::infinity();

// The abstract value of one subexpression over a tile; which fields are used depends on its type.
struct Abstract {
  // Int: every value the expression takes lies in [lo, hi] (Int64 expressions).
  Expr lo, hi;
  // Float: every non-NaN value lies in [lo, hi] (Float expressions, never NaN themselves);
  // may_nan says whether NaN is possible.
  Expr may_nan;
  // Bool: whether the expression can be true / false somewhere in the tile.
  Expr may_true, may_false;
};

// Small builders that keep the interval formulas readable.
Expr i64(int64_t v) { return make_int64(v); }
Expr add(Expr a, Expr b) { return make_binary(Op::Add, std::move(a), std::move(b)); }
Expr sub(Expr a, Expr b) { return make_binary(Op::Sub, std::move(a), std::move(b)); }
Expr mul(Expr a, Expr b) { return make_binary(Op::Mul, std::move(a), std::move(b)); }
Expr div(Expr a, Expr b) { return make_binary(Op::Div, std::move(a), std::move(b)); }
Expr neg(Expr a) { return make_unary(Op::Neg, std::move(a)); }
Expr min(Expr a, Expr b) { return make_binary(Op::Min, std::move(a), std::move(b)); }
Expr max(Expr a, Expr b) { return make_binary(Op::Max, std::move(a), std::move(b)); }
Expr min4(Expr a, Expr b, Expr c, Expr d) { return min(min(std::move(a), std::move(b)), min(std::move(c), std::move(d))); }
Expr max4(Expr a, Expr b, Expr c, Expr d) { return max(max(std::move(a), std::move(b)), max(std::move(c), std::move(d))); }
Expr lt(Expr a, Expr b) { return make_binary(Op::Lt, std::move(a), std::move(b)); }
Expr le(Expr a, Expr b) { return make_binary(Op::Le, std::move(a), std::move(b)); }
Expr eq(Expr a, Expr b) { return make_binary(Op::Eq, std::move(a), std::move(b)); }
Expr ne(Expr a, Expr b) { return make_binary(Op::Ne, std::move(a), std::move(b)); }
Expr both(Expr a, Expr b) { return make_binary(Op::And, std::move(a), std::move(b)); }
Expr either(Expr a, Expr b) { return make_binary(Op::Or, std::move(a), std::move(b)); }
Expr no(Expr a) { return make_unary(Op::Not, std::move(a)); }
Expr pick(Expr c, Expr a, Expr b) { return make_select(std::move(c), std::move(a), std::move(b)); }
Expr to_i64(Expr a) { return make_cast(Type::Int64, std::move(a)); }
Expr yes() { return make_bool(true); }
Expr abs_i64(Expr a) { return make_call(Op::Abs, {std::move(a)}); }

Abstract int_range(Expr lo, Expr hi) { return {std::move(lo), std::move(hi), nullptr, nullptr, nullptr}; }
Abstract int_exact(const Expr& value) {
  Expr v = to_i64(value);
  return int_range(v, v);
}
Abstract int_top() { return int_range(i64(kIntMin), i64(kIntMax)); }

// The bounds are exact integers; when they leave the int32 range the real (wrapping) value may be
// anything, so the interval widens to every int.
Abstract int_wrapped(Expr lo, Expr hi) {
  Expr overflow = either(lt(lo, i64(kIntMin)), lt(i64(kIntMax), hi));
  return int_range(pick(overflow, i64(kIntMin), lo), pick(overflow, i64(kIntMax), hi));
}

Abstract bool_range(Expr may_true, Expr may_false) {
  return {nullptr, nullptr, nullptr, std::move(may_true), std::move(may_false)};
}
Abstract bool_top() { return bool_range(yes(), yes()); }

// A float interval whose bound computations may themselves have produced NaN (inf - inf, 0 * inf):
// such a bound is replaced by the infinite one and the value is marked possibly NaN.
Abstract float_range(Expr lo, Expr hi, Expr may_nan) {
  Expr lo_nan = ne(lo, lo), hi_nan = ne(hi, hi);
  Abstract a;
  a.lo = pick(lo_nan, make_float(-kInf), lo);
  a.hi = pick(hi_nan, make_float(kInf), hi);
  a.may_nan = either(std::move(may_nan), either(std::move(lo_nan), std::move(hi_nan)));
  return a;
}
Abstract float_top() { return {make_float(-kInf), make_float(kInf), yes(), nullptr, nullptr}; }
Expr is_infinite(const Expr& x) { return eq(make_call(Op::Abs, {x}), make_float(kInf)); }

class Analysis {
 public:
  Abstract of(const Expr& e) {
    auto found = memo_.find(e.get());
    ATTNC_ASSERT(found != memo_.end(), "operand analysed before its user");
    return found->second;
  }

  void analyse(const Expr& e) { memo_[e.get()] = compute(e); }

 private:
  Abstract compute(const Expr& e) {
    switch (e->kind) {
      case Kind::Const:
      case Kind::Param:
      case Kind::Extent: return exact(e);
      case Kind::Builtin: return builtin(e);
      case Kind::Cast: return cast(e);
      case Kind::Unary: return unary(e);
      case Kind::Binary: return binary(e);
      case Kind::Select: return select(e);
      case Kind::Call: return call(e);
      case Kind::Load: return load(e);
      default: break;
    }
    ATTNC_ASSERT(false, std::string("tile classification of a ") + kind_name(e->kind) + " node");
    return {};
  }

  // A value that is the same everywhere in the tile.
  Abstract exact(const Expr& e) {
    switch (e->type) {
      case Type::Int: return int_exact(e);
      case Type::Int64: return int_range(e, e);
      case Type::Bool: return bool_range(e, no(e));
      case Type::Float: return float_range(e, e, ne(e, e));
    }
    return {};
  }

  Abstract builtin(const Expr& e) {
    switch (e->builtin) {
      case Builtin::QIdx:
        return int_range(to_i64(make_builtin(Builtin::QTileFirst)), to_i64(make_builtin(Builtin::QTileLast)));
      case Builtin::KvIdx:
        return int_range(to_i64(make_builtin(Builtin::KvTileFirst)), to_i64(make_builtin(Builtin::KvTileLast)));
      case Builtin::Score: ATTNC_ASSERT(false, "a mask mod reads no score"); break;
      default: break;
    }
    return exact(e);  // b, h and the sizes are fixed for a tile
  }

  Abstract cast(const Expr& e) {
    const Expr& x = e->operands[0];
    Abstract a = of(x);
    if (e->type == Type::Float && (x->type == Type::Int || x->type == Type::Int64)) {
      // Rounding int -> float is monotone, so the rounded bounds bound the rounded values.
      return {make_cast(Type::Float, a.lo), make_cast(Type::Float, a.hi), make_bool(false), nullptr, nullptr};
    }
    if (e->type == Type::Float && x->type == Type::Bool) {
      return {pick(a.may_false, make_float(0), make_float(1)), pick(a.may_true, make_float(1), make_float(0)),
              make_bool(false), nullptr, nullptr};
    }
    if (e->type == Type::Int && x->type == Type::Bool) {
      return int_range(pick(a.may_false, i64(0), i64(1)), pick(a.may_true, i64(1), i64(0)));
    }
    if (e->type == Type::Int && x->type == Type::Float) {
      // Saturating truncation is monotone; NaN converts to 0.
      Expr lo = to_i64(make_cast(Type::Int, a.lo)), hi = to_i64(make_cast(Type::Int, a.hi));
      return int_range(pick(a.may_nan, min(lo, i64(0)), lo), pick(a.may_nan, max(hi, i64(0)), hi));
    }
    if (e->type == Type::Int64 && x->type == Type::Int) return a;
    if (e->type == Type::Bool) {
      if (x->type == Type::Float) {
        Expr zero = make_float(0);
        Expr may_nonzero = either(a.may_nan, either(lt(a.lo, zero), lt(zero, a.hi)));
        return bool_range(may_nonzero, both(le(a.lo, zero), le(zero, a.hi)));
      }
      if (x->type == Type::Int || x->type == Type::Int64) {
        return bool_range(either(ne(a.lo, i64(0)), ne(a.hi, i64(0))), both(le(a.lo, i64(0)), le(i64(0), a.hi)));
      }
    }
    return top(e->type);
  }

  Abstract top(Type type) {
    switch (type) {
      case Type::Bool: return bool_top();
      case Type::Float: return float_top();
      default: return int_top();
    }
  }

  Abstract unary(const Expr& e) {
    Abstract a = of(e->operands[0]);
    if (e->op == Op::Not) return bool_range(a.may_false, a.may_true);
    if (e->type == Type::Float) return float_range(neg(a.hi), neg(a.lo), a.may_nan);
    return int_wrapped(neg(a.hi), neg(a.lo));
  }

  Abstract binary(const Expr& e) {
    const Expr& x = e->operands[0];
    const Expr& y = e->operands[1];
    Abstract a = of(x), b = of(y);
    switch (e->op) {
      case Op::And: return bool_range(both(a.may_true, b.may_true), either(a.may_false, b.may_false));
      case Op::Or: return bool_range(either(a.may_true, b.may_true), both(a.may_false, b.may_false));
      default: break;
    }
    if (op_is_comparison(e->op)) return compare(e->op, x->type, a, b);
    if (x->type == Type::Float) return float_arithmetic(e->op, a, b);
    return int_arithmetic(e->op, a, b);
  }

  Abstract compare(Op op, Type type, const Abstract& a, const Abstract& b) {
    switch (op) {
      case Op::Gt: return compare(Op::Lt, type, b, a);
      case Op::Ge: return compare(Op::Le, type, b, a);
      case Op::Ne: {
        Abstract equal = compare(Op::Eq, type, a, b);
        return bool_range(equal.may_false, equal.may_true);
      }
      default: break;
    }
    if (type == Type::Bool) {
      ATTNC_ASSERT(op == Op::Eq, "bools compare only for equality");
      return bool_range(either(both(a.may_true, b.may_true), both(a.may_false, b.may_false)),
                        either(both(a.may_true, b.may_false), both(a.may_false, b.may_true)));
    }
    // Over intervals: some pair satisfies x < y iff x.lo < y.hi; some pair fails iff x.hi >= y.lo.
    Expr may_true, may_false;
    switch (op) {
      case Op::Lt: may_true = lt(a.lo, b.hi); may_false = le(b.lo, a.hi); break;
      case Op::Le: may_true = le(a.lo, b.hi); may_false = lt(b.lo, a.hi); break;
      case Op::Eq:
        may_true = both(le(a.lo, b.hi), le(b.lo, a.hi));
        may_false = no(both(both(eq(a.lo, a.hi), eq(b.lo, b.hi)), eq(a.lo, b.lo)));
        break;
      default: ATTNC_ASSERT(false, "comparison operator");
    }
    if (type == Type::Float) {
      // A NaN operand makes every comparison false (and == false), never true.
      may_false = either(may_false, either(a.may_nan, b.may_nan));
    }
    return bool_range(may_true, may_false);
  }

  Abstract int_arithmetic(Op op, const Abstract& a, const Abstract& b) {
    switch (op) {
      case Op::Add: return int_wrapped(add(a.lo, b.lo), add(a.hi, b.hi));
      case Op::Sub: return int_wrapped(sub(a.lo, b.hi), sub(a.hi, b.lo));
      case Op::Mul: {
        // Products of int32 bounds are exact in int64.
        Expr p1 = mul(a.lo, b.lo), p2 = mul(a.lo, b.hi), p3 = mul(a.hi, b.lo), p4 = mul(a.hi, b.hi);
        return int_wrapped(min4(p1, p2, p3, p4), max4(p1, p2, p3, p4));
      }
      case Op::Min: return int_range(min(a.lo, b.lo), min(a.hi, b.hi));
      case Op::Max: return int_range(max(a.lo, b.lo), max(a.hi, b.hi));
      case Op::Div: return int_divide(a, b);
      case Op::Mod: return int_remainder(a, b);
      default: break;
    }
    ATTNC_ASSERT(false, std::string("interval of int operator ") + op_spelling(op));
    return {};
  }

  // Truncating division is monotone in the dividend and, for a divisor of one sign, monotone in the
  // divisor too, so the corners bound it. A divisor range holding 0 (where x / 0 == 0) only allows
  // |x / y| <= |x|.
  Abstract int_divide(const Abstract& a, const Abstract& b) {
    Expr one_sign = either(lt(i64(0), b.lo), lt(b.hi, i64(0)));
    Expr q1 = div(a.lo, b.lo), q2 = div(a.lo, b.hi), q3 = div(a.hi, b.lo), q4 = div(a.hi, b.hi);
    Expr magnitude = max(abs_i64(a.lo), abs_i64(a.hi));
    return int_wrapped(pick(one_sign, min4(q1, q2, q3, q4), neg(magnitude)),
                       pick(one_sign, max4(q1, q2, q3, q4), magnitude));
  }

  // x % y has the dividend's sign and |x % y| < |y| (and x % 0 == 0). When the divisor is a single
  // positive value and the dividend stays within one non-negative period, the remainder is exact.
  Abstract int_remainder(const Abstract& a, const Abstract& b) {
    // The largest possible |x % y| (0 when the divisor can only be 0, since x % 0 == 0).
    Expr limit = max(sub(max(abs_i64(b.lo), abs_i64(b.hi)), i64(1)), i64(0));
    Expr lo = pick(le(i64(0), a.lo), i64(0), max(a.lo, neg(limit)));
    Expr hi = pick(le(a.hi, i64(0)), i64(0), min(a.hi, limit));
    Expr same_period = both(both(eq(b.lo, b.hi), lt(i64(0), b.lo)),
                            both(le(i64(0), a.lo), eq(div(a.lo, b.lo), div(a.hi, b.lo))));
    Expr period_lo = make_binary(Op::Mod, a.lo, b.lo), period_hi = make_binary(Op::Mod, a.hi, b.lo);
    return int_range(pick(same_period, period_lo, lo), pick(same_period, period_hi, hi));
  }

  Abstract float_arithmetic(Op op, const Abstract& a, const Abstract& b) {
    Expr nan = either(a.may_nan, b.may_nan);
    switch (op) {
      case Op::Add:
        // inf + -inf is NaN: possible when both sides can be infinite.
        return float_range(add(a.lo, b.lo), add(a.hi, b.hi), either(nan, both(is_infinite_any(a), is_infinite_any(b))));
      case Op::Sub:
        return float_range(sub(a.lo, b.hi), sub(a.hi, b.lo), either(nan, both(is_infinite_any(a), is_infinite_any(b))));
      case Op::Mul: {
        // Rounding is monotone, so the rounded corner products bound the rounded products; 0 * inf
        // is NaN, possible when one side can be infinite.
        Expr p1 = mul(a.lo, b.lo), p2 = mul(a.lo, b.hi), p3 = mul(a.hi, b.lo), p4 = mul(a.hi, b.hi);
        Expr any_nan_corner = either(either(ne(p1, p1), ne(p2, p2)), either(ne(p3, p3), ne(p4, p4)));
        return float_range(pick(any_nan_corner, make_float(-kInf), min4(p1, p2, p3, p4)),
                           pick(any_nan_corner, make_float(kInf), max4(p1, p2, p3, p4)),
                           either(nan, either(either(is_infinite_any(a), is_infinite_any(b)), any_nan_corner)));
      }
      case Op::Min:
      case Op::Max: {
        // fmin/fmax ignore a NaN operand: the result is NaN only when both are.
        Expr both_nan = both(a.may_nan, b.may_nan);
        // When one side may be NaN the result may be the other side alone.
        Expr lo = op == Op::Min ? min(a.lo, b.lo) : max(a.lo, b.lo);
        Expr hi = op == Op::Min ? min(a.hi, b.hi) : max(a.hi, b.hi);
        Expr any_nan = either(a.may_nan, b.may_nan);
        return float_range(pick(any_nan, min(a.lo, b.lo), lo), pick(any_nan, max(a.hi, b.hi), hi), both_nan);
      }
      default: break;
    }
    return float_top();
  }

  static Expr is_infinite_any(const Abstract& a) { return either(is_infinite(a.lo), is_infinite(a.hi)); }

  Abstract select(const Expr& e) {
    Abstract c = of(e->operands[0]), x = of(e->operands[1]), y = of(e->operands[2]);
    Expr only_true = no(c.may_false), only_false = no(c.may_true);
    switch (e->type) {
      case Type::Bool:
        return bool_range(either(both(c.may_true, x.may_true), both(c.may_false, y.may_true)),
                          either(both(c.may_true, x.may_false), both(c.may_false, y.may_false)));
      case Type::Float: {
        Abstract hull{min(x.lo, y.lo), max(x.hi, y.hi), either(x.may_nan, y.may_nan), nullptr, nullptr};
        return {pick(only_true, x.lo, pick(only_false, y.lo, hull.lo)),
                pick(only_true, x.hi, pick(only_false, y.hi, hull.hi)),
                pick(only_true, x.may_nan, pick(only_false, y.may_nan, hull.may_nan)), nullptr, nullptr};
      }
      default:
        return int_range(pick(only_true, x.lo, pick(only_false, y.lo, min(x.lo, y.lo))),
                         pick(only_true, x.hi, pick(only_false, y.hi, max(x.hi, y.hi))));
    }
  }

  Abstract call(const Expr& e) {
    Abstract a = of(e->operands[0]);
    if (e->op == Op::Abs) {
      if (e->type == Type::Float) {
        Expr zero = make_float(0);
        return float_range(pick(le(zero, a.lo), a.lo, pick(le(a.hi, zero), neg(a.hi), zero)),
                           max(make_call(Op::Abs, {a.lo}), make_call(Op::Abs, {a.hi})), a.may_nan);
      }
      Expr lo = pick(le(i64(0), a.lo), a.lo, pick(le(a.hi, i64(0)), neg(a.hi), i64(0)));
      return int_wrapped(lo, max(abs_i64(a.lo), abs_i64(a.hi)));
    }
    // floor, ceil and round are exact, monotone and map infinities to themselves.
    if (e->op == Op::Floor || e->op == Op::Ceil || e->op == Op::Round) {
      return float_range(make_call(e->op, {a.lo}), make_call(e->op, {a.hi}), a.may_nan);
    }
    // Library transcendental functions differ by an ulp between backends; claim nothing.
    return float_top();
  }

  // A tensor lookup reads one element of the box spanned by its index intervals (clamped into the
  // tensor exactly as the load clamps), so the box's min and max bound it.
  Abstract load(const Expr& e) {
    if (e->type == Type::Bool) return bool_top();
    std::vector<Expr> first, last;
    for (const Expr& index : e->operands) {
      Abstract range = of(index);
      first.push_back(range.lo);
      last.push_back(range.hi);
    }
    Expr lo = make_load_range(Op::Min, e->index, e->type, first, last);
    Expr hi = make_load_range(Op::Max, e->index, e->type, first, last);
    if (e->type == Type::Int) return int_range(to_i64(lo), to_i64(hi));
    // Summaries ignore NaN (like fmin/fmax), so a NaN element is always possible.
    return float_range(lo, hi, yes());
  }

  std::unordered_map<const Node*, Abstract> memo_;  // lookup only; never iterated
};

}  // namespace

const char* tile_class_name(TileClass c) {
  switch (c) {
    case TileClass::Empty: return "EMPTY";
    case TileClass::Full: return "FULL";
    case TileClass::Partial: return "PARTIAL";
  }
  return "?";
}

Expr build_tile_classifier(const ModDef& mask) {
  ATTNC_ASSERT(mask.kind == ModKind::Mask && mask.body->type == Type::Bool, "tile classification needs a mask mod");
  Analysis analysis;
  for_each_node(mask.body, [&](const Expr& node) { analysis.analyse(node); });
  Abstract result = analysis.of(mask.body);
  Expr classifier = pick(no(result.may_true), make_int(static_cast<int32_t>(TileClass::Empty)),
                         pick(no(result.may_false), make_int(static_cast<int32_t>(TileClass::Full)),
                              make_int(static_cast<int32_t>(TileClass::Partial))));
  return optimize_expr(classifier);
}

TileClassifier::TileClassifier(const ModDef& mask) : expr_(build_tile_classifier(mask)), compiled_(expr_) {}

TileClass TileClassifier::classify(Environment& env, int32_t q_first, int32_t q_last, int32_t kv_first,
                                   int32_t kv_last) const {
  env.set(Builtin::QTileFirst, Value::of_int(q_first));
  env.set(Builtin::QTileLast, Value::of_int(q_last));
  env.set(Builtin::KvTileFirst, Value::of_int(kv_first));
  env.set(Builtin::KvTileLast, Value::of_int(kv_last));
  return static_cast<TileClass>(compiled_.evaluate(env).as_int());
}

}  // namespace attnc::ir
