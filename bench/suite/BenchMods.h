#pragma once
// The suite's six mods, built from the runtime's built-in mods (runtime/core/Mods.h), and their
// names on the command line and in the JSON.

#include <optional>
#include <string_view>

#include "runtime/core/Mod.h"
#include "runtime/core/Tensor.h"

namespace attnc::bench {

enum class BenchMod { None, Causal, AlibiCausal, SlidingWindow, Document, Softcap };

inline constexpr BenchMod kAllMods[] = {BenchMod::None,          BenchMod::Causal,   BenchMod::AlibiCausal,
                                        BenchMod::SlidingWindow, BenchMod::Document, BenchMod::Softcap};
inline constexpr int kWindow = 1024;      // sliding-window: keys i - 1023 .. i
inline constexpr int kDocuments = 8;      // document: 8 equal documents
inline constexpr float kSoftcap = 50.0f;  // softcap: 50 * tanh(score / 50)

// "none", "causal", "alibi-causal", "sliding-window", "document", "softcap".
const char* mod_name(BenchMod mod);
// The inverse of mod_name; nullopt for any other text.
std::optional<BenchMod> parse_mod_name(std::string_view name);
// "none, causal, alibi-causal, sliding-window, document, softcap", for messages.
const char* mod_name_list();

// The mods of one case: score and mask (either may be absent), and the document ids the document
// mask holds.
struct CaseMods {
  std::optional<Mod> score, mask;
  std::optional<Tensor> document_ids;  // [B, S] int32
};

CaseMods make_mods(BenchMod which, int batch, int heads, int seq);

}  // namespace attnc::bench
