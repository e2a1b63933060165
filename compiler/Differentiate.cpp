#include "compiler/Differentiate.h"

#include <numbers>
#include <optional>
#include <string>
#include <utility>

#include "compiler/IRMutator.h"
#include "compiler/Pipeline.h"
#include "dsl/Errors.h"

namespace attnc::ir {

namespace {

Expr constant(float value) { return make_float(value); }
Expr add(Expr a, Expr b) { return make_binary(Op::Add, std::move(a), std::move(b)); }
Expr sub(Expr a, Expr b) { return make_binary(Op::Sub, std::move(a), std::move(b)); }
Expr mul(Expr a, Expr b) { return make_binary(Op::Mul, std::move(a), std::move(b)); }
Expr div(Expr a, Expr b) { return make_binary(Op::Div, std::move(a), std::move(b)); }
Expr neg(Expr a) { return make_unary(Op::Neg, std::move(a)); }
Expr call(Op function, Expr a) { return make_call(function, {std::move(a)}); }
Expr select(Expr c, Expr a, Expr b) { return make_select(std::move(c), std::move(a), std::move(b)); }
Expr compare(Op op, Expr a, Expr b) { return make_binary(op, std::move(a), std::move(b)); }

// The derivative of the body with respect to one node, and whether it may be exactly zero because a
// select, abs or min/max cut the path. Such an adjoint is guarded before it is multiplied by a local
// derivative, so that a branch not taken contributes 0 and not 0 * inf = NaN.
struct Adjoint {
  Expr value;
  bool may_be_zero = false;
};

class Differentiator {
 public:
  explicit Differentiator(const Expr& body) : order_(body) { adjoints_.resize(order_.nodes.size()); }

  ScoreModDerivative run() {
    const Expr& root = *order_.nodes.back();
    ATTNC_ASSERT(root->type == Type::Float, "differentiate needs a Float body");
    adjoints_.back() = Adjoint{constant(1.0f), false};
    ScoreModDerivative result;
    // Reverse post-order: every user of a node comes after it in post-order, so its adjoint is
    // complete by the time the node is reached.
    for (size_t at = order_.nodes.size(); at-- > 0;) {
      const Expr& node = *order_.nodes[at];
      ATTNC_ASSERT(node->kind != Kind::ModCall && node->kind != Kind::LoadRange,
                   "differentiate needs an inlined score mod without LoadRange");
      if (!adjoints_[at] || node->type != Type::Float) continue;
      const Adjoint adjoint = *adjoints_[at];
      if (node->kind == Kind::Builtin && node->builtin == Builtin::Score) {
        result.d_score = result.d_score ? add(result.d_score, adjoint.value) : adjoint.value;
      } else if (node->kind == Kind::Load) {
        result.sites.push_back(site_of(node, adjoint.value));
      } else {
        propagate(node, adjoint);
      }
    }
    if (!result.d_score) result.d_score = constant(0.0f);
    return result;
  }

 private:
  static TensorGradientSite site_of(const Expr& load, Expr derivative) {
    TensorGradientSite site;
    site.param = load->index;
    for (size_t d = 0; d < load->operands.size(); ++d) {
      const Expr last = make_binary(Op::Sub, make_extent(load->index, static_cast<uint32_t>(d)), make_int(1));
      site.indices.push_back(make_binary(Op::Max, make_binary(Op::Min, load->operands[d], last), make_int(0)));
    }
    site.derivative = std::move(derivative);
    return site;
  }

  void contribute(const Expr& operand, Expr value, bool may_be_zero) {
    if (operand->type != Type::Float) return;  // ints and bools carry no derivative
    std::optional<Adjoint>& slot = adjoints_[order_.position.find(operand.get())];
    if (!slot) {
      slot = Adjoint{std::move(value), may_be_zero};
    } else {
      slot->value = add(slot->value, std::move(value));
      slot->may_be_zero = slot->may_be_zero || may_be_zero;
    }
  }

  // adjoint * local, written by `times` as a function of the adjoint's value; 0 where a guarded
  // adjoint is 0.
  template <typename Times>
  void contribute_scaled(const Expr& operand, const Adjoint& adjoint, Times&& times) {
    if (operand->type != Type::Float) return;
    Expr product = times(adjoint.value);
    if (adjoint.may_be_zero) {
      product = select(compare(Op::Eq, adjoint.value, constant(0.0f)), constant(0.0f), std::move(product));
    }
    contribute(operand, std::move(product), adjoint.may_be_zero);
  }

  void propagate(const Expr& node, const Adjoint& a) {
    const std::vector<Expr>& x = node->operands;
    switch (node->kind) {
      case Kind::Unary:
        if (node->op == Op::Neg) contribute(x[0], neg(a.value), a.may_be_zero);
        return;
      case Kind::Binary: return propagate_binary(node, a);
      case Kind::Select:
        contribute(x[1], select(x[0], a.value, constant(0.0f)), true);
        contribute(x[2], select(x[0], constant(0.0f), a.value), true);
        return;
      case Kind::Call: return propagate_call(node, a);
      default: return;  // Const, Param, Extent, other builtins, Cast from int or bool: no operand to reach
    }
  }

  void propagate_binary(const Expr& node, const Adjoint& a) {
    const Expr& x = node->operands[0];
    const Expr& y = node->operands[1];
    switch (node->op) {
      case Op::Add:
        contribute(x, a.value, a.may_be_zero);
        contribute(y, a.value, a.may_be_zero);
        return;
      case Op::Sub:
        contribute(x, a.value, a.may_be_zero);
        contribute(y, neg(a.value), a.may_be_zero);
        return;
      case Op::Mul:
        contribute_scaled(x, a, [&](const Expr& v) { return mul(v, y); });
        contribute_scaled(y, a, [&](const Expr& v) { return mul(v, x); });
        return;
      case Op::Div:
        contribute_scaled(x, a, [&](const Expr& v) { return div(v, y); });
        contribute_scaled(y, a, [&](const Expr& v) { return neg(mul(v, div(node, y))); });
        return;
      case Op::Mod:
        // fmod(x, y) = x - trunc(x / y) * y; x - fmod(x, y) is that multiple of y, so round() of its
        // quotient recovers trunc(x / y) without the rounding of x / y itself.
        contribute(x, a.value, a.may_be_zero);
        contribute_scaled(y, a, [&](const Expr& v) { return neg(mul(v, call(Op::Round, div(sub(x, node), y)))); });
        return;
      case Op::Min:
      case Op::Max: {
        // The operand returned gets everything; a tie splits it; a NaN operand is never returned.
        const Op wins = node->op == Op::Min ? Op::Lt : Op::Gt;
        const Expr half = mul(a.value, constant(0.5f));
        const auto share = [&](const Expr& self, const Expr& other) {
          const Expr takes = make_binary(Op::Or, compare(wins, self, other), compare(Op::Ne, other, other));
          return select(takes, a.value, select(compare(Op::Eq, self, other), half, constant(0.0f)));
        };
        contribute(x, share(x, y), true);
        contribute(y, share(y, x), true);
        return;
      }
      default: return;  // comparisons, && and || give bools
    }
  }

  void propagate_call(const Expr& node, const Adjoint& a) {
    const Expr& x = node->operands[0];
    constexpr float kLn2 = std::numbers::ln2_v<float>;
    switch (node->op) {
      case Op::Abs:
        contribute(x,
                   select(compare(Op::Gt, x, constant(0.0f)), a.value,
                          select(compare(Op::Lt, x, constant(0.0f)), neg(a.value), constant(0.0f))),
                   true);
        return;
      case Op::Exp: return contribute_scaled(x, a, [&](const Expr& v) { return mul(v, node); });
      case Op::Exp2: return contribute_scaled(x, a, [&](const Expr& v) { return mul(v, mul(node, constant(kLn2))); });
      case Op::Log: return contribute_scaled(x, a, [&](const Expr& v) { return div(v, x); });
      case Op::Log2: return contribute_scaled(x, a, [&](const Expr& v) { return div(v, mul(x, constant(kLn2))); });
      case Op::Sqrt: return contribute_scaled(x, a, [&](const Expr& v) { return mul(v, div(constant(0.5f), node)); });
      case Op::Rsqrt:
        return contribute_scaled(x, a, [&](const Expr& v) { return mul(v, div(mul(constant(-0.5f), node), x)); });
      case Op::Tanh:
        return contribute_scaled(x, a, [&](const Expr& v) { return mul(v, sub(constant(1.0f), mul(node, node))); });
      case Op::Sigmoid:
        return contribute_scaled(x, a, [&](const Expr& v) { return mul(v, mul(node, sub(constant(1.0f), node))); });
      case Op::Sin: return contribute_scaled(x, a, [&](const Expr& v) { return mul(v, call(Op::Cos, x)); });
      case Op::Cos: return contribute_scaled(x, a, [&](const Expr& v) { return mul(v, neg(call(Op::Sin, x))); });
      case Op::Pow: {
        const Expr& y = node->operands[1];
        const Expr zero = constant(0.0f);
        contribute_scaled(x, a, [&](const Expr& v) {
          const Expr local = mul(y, make_call(Op::Pow, {x, sub(y, constant(1.0f))}));
          return select(compare(Op::Eq, y, zero), zero, mul(v, local));
        });
        contribute_scaled(y, a, [&](const Expr& v) {
          const Expr base_zero = make_binary(Op::And, compare(Op::Eq, x, zero), compare(Op::Ge, y, zero));
          return select(base_zero, zero, mul(v, mul(node, call(Op::Log, x))));
        });
        return;
      }
      default: return;  // floor, ceil, round: piecewise constant
    }
  }

  PostOrder order_;
  std::vector<std::optional<Adjoint>> adjoints_;  // by post-order position
};

ModDef score_mod_with_body(const ModDef& like, std::string name, Expr body) {
  ModDef def;
  def.name = std::move(name);
  def.kind = ModKind::Score;
  def.params = like.params;
  def.body = optimize_expr(body);
  def.range = like.range;
  return def;
}

}  // namespace

ScoreModDerivative differentiate(const Expr& body) { return Differentiator(body).run(); }

DerivativeDefs derivative_defs(const ModDef& optimized_score_mod) {
  ATTNC_ASSERT(optimized_score_mod.kind == ModKind::Score, "derivative_defs needs a score mod");
  const ScoreModDerivative derivative = differentiate(optimized_score_mod.body);
  const std::string& name = optimized_score_mod.name;
  DerivativeDefs defs;
  defs.d_score = score_mod_with_body(optimized_score_mod, name + ".d_score", derivative.d_score);
  for (size_t s = 0; s < derivative.sites.size(); ++s) {
    const TensorGradientSite& site = derivative.sites[s];
    DerivativeDefs::Site out;
    out.param = site.param;
    const std::string prefix = name + ".site" + std::to_string(s);
    out.derivative = score_mod_with_body(optimized_score_mod, prefix + ".derivative", site.derivative);
    for (size_t d = 0; d < site.indices.size(); ++d) {
      out.indices.push_back(score_mod_with_body(optimized_score_mod, prefix + ".index" + std::to_string(d),
                                                make_cast(Type::Float, site.indices[d])));
    }
    defs.sites.push_back(std::move(out));
  }
  return defs;
}

}  // namespace attnc::ir
