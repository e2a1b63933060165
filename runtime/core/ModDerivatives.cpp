#include "runtime/core/ModDerivatives.h"

#include <fmt/format.h>

#include "compiler/Differentiate.h"
#include "runtime/core/RuntimeError.h"

namespace attnc {

namespace {

// `def` bound to the arguments of `like` (same parameters, so the same checks pass).
Mod bound_like(const ir::ModDef& def, const Mod& like) {
  Mod mod = Mod::from_def(def);
  for (size_t i = 0; i < def.params.size(); ++i) {
    if (const auto& argument = like.argument(i)) mod.bind(def.params[i].name, *argument);
  }
  return mod;
}

}  // namespace

ModDerivatives derive_score_mod(const char* function, const Mod& score_mod) {
  if (score_mod.kind() != dsl::ModKind::Score) {
    throw RuntimeError(fmt::format("{}: {} is not a score mod", function, score_mod.describe()));
  }
  const ir::ModDef& def = score_mod.def();
  for (uint32_t p = 0; p < def.params.size(); ++p) {
    if (!def.params[p].is_tensor() || def.params[p].elem != ir::Type::Float) continue;
    if (const auto& argument = score_mod.argument(p); argument && std::holds_alternative<Tensor>(*argument)) {
      for (int64_t extent : std::get<Tensor>(*argument).shape()) {
        if (extent > ir::kMaxExactFloatIndexExtent) {
          throw RuntimeError(fmt::format("{}: {}: parameter '{}' has an extent of {}; gradients support at most {}",
                                         function, score_mod.describe(), def.params[p].name, extent,
                                         ir::kMaxExactFloatIndexExtent));
        }
      }
    }
  }
  const ir::DerivativeDefs defs = ir::derivative_defs(def);
  ModDerivatives out{bound_like(defs.d_score, score_mod), false, {}, {}};
  const ir::Expr& d = defs.d_score.body;
  out.d_score_is_one = d->kind == ir::Kind::Const && d->float_value == 1.0f;
  for (const ir::DerivativeDefs::Site& site : defs.sites) {
    ModDerivatives::Site bound{site.param, {}, bound_like(site.derivative, score_mod)};
    for (const ir::ModDef& index : site.indices) bound.indices.push_back(bound_like(index, score_mod));
    out.sites.push_back(std::move(bound));
  }
  for (uint32_t p = 0; p < def.params.size(); ++p) {
    if (def.params[p].is_tensor() && def.params[p].elem == ir::Type::Float) out.float_tensors.push_back(p);
  }
  return out;
}

}  // namespace attnc
