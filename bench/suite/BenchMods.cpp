#include "bench/suite/BenchMods.h"

#include "bench/suite/BenchInputs.h"
#include "runtime/core/Mods.h"

namespace attnc::bench {

const char* mod_name(BenchMod mod) {
  switch (mod) {
    case BenchMod::None: return "none";
    case BenchMod::Causal: return "causal";
    case BenchMod::AlibiCausal: return "alibi-causal";
    case BenchMod::SlidingWindow: return "sliding-window";
    case BenchMod::Document: return "document";
    case BenchMod::Softcap: return "softcap";
  }
  return "?";
}

std::optional<BenchMod> parse_mod_name(std::string_view name) {
  for (BenchMod mod : kAllMods) {
    if (name == mod_name(mod)) return mod;
  }
  return std::nullopt;
}

const char* mod_name_list() { return "none, causal, alibi-causal, sliding-window, document, softcap"; }

CaseMods make_mods(BenchMod which, int batch, int heads, int seq) {
  CaseMods m;
  switch (which) {
    case BenchMod::None: break;
    case BenchMod::Causal: m.mask = causal_mod(); break;
    case BenchMod::AlibiCausal:
      m.score = alibi_mod(heads);
      m.mask = causal_mod();
      break;
    case BenchMod::SlidingWindow: m.mask = sliding_window_mod(kWindow, /*causal=*/true); break;
    case BenchMod::Document:
      m.document_ids = make_document_ids(batch, seq, kDocuments);
      m.mask = document_mask_mod(*m.document_ids);
      break;
    case BenchMod::Softcap: m.score = softcap_mod(kSoftcap); break;
  }
  return m;
}

}  // namespace attnc::bench
