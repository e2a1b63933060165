#include "tests/support/TestMods.h"

#include <memory>

#include <catch2/catch.hpp>

#include "compiler/Frontend.h"
#include "compiler/Pipeline.h"
#include "compiler/Prelude.h"
#include "compiler/Signature.h"

namespace attnc::test {

const ir::Module& composition_mods() {
  static const ir::Module module = ir::load_module_text("compositions.attn", R"(
score_mod softcap_alibi(cap: float, slopes: float[H]) = cap * tanh((score - slopes[h] * abs(q_idx - kv_idx)) / cap);
mask_mod document_causal(ids: int[B, S]) = ids[b, q_idx] == ids[b, kv_idx] && kv_idx <= q_idx;
mask_mod window_or_sink(window: int, sinks: int) = (kv_idx <= q_idx && q_idx - kv_idx < window) || kv_idx < sinks;
score_mod everything(t: float[A, B], k: bool[N], x: int) =
  where(k[kv_idx], exp2(score) + t[h, q_idx % 7] + pow(score, 2.0) + float(x / (q_idx - kv_idx)), -inf);
)");
  return module;
}

ModSpec mod_spec_named(const char* name) {
  if (*name == '\0') return {};
  const ir::Module* module = ir::prelude_module().find(name) ? &ir::prelude_module() : &composition_mods();
  const ir::ModDef* def = module->find(name);
  REQUIRE(def != nullptr);
  ModSpec spec;
  spec.def = std::make_shared<const ir::ModDef>(ir::optimize(*module, *def));
  for (const ir::ParamDecl& param : spec.def->params) spec.storage.push_back(ir::default_storage(param.elem));
  return spec;
}

}  // namespace attnc::test
