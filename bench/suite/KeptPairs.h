#pragma once
// How many (b, h, q, kv) a case's mask keeps: the work its GFLOP/s count. Counted from the compiled
// mask the kernel runs, and by a closed form for the suite's mods, so that a classifier or mask
// bug shows up as a disagreement instead of as a wrong speed.

#include <cstdint>

#include "bench/suite/BenchMods.h"
#include "runtime/core/Mod.h"

namespace attnc::bench {

// The kept pairs of `which` by closed form, summed over every (b, h); the document mask is summed
// from its ids (`mods` from make_mods).
int64_t kept_pairs_formula(BenchMod which, const CaseMods& mods, int batch, int heads, int seq);

// The kept pairs counted from the compiled `mask` (seq x seq per (b, h)): tiles it classifies
// EMPTY count 0, FULL count every pair, and PARTIAL tiles are masked element by element.
int64_t kept_pairs_counted(const Mod& mask, int batch, int heads, int seq);

}  // namespace attnc::bench
