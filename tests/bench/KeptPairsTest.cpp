#include "bench/suite/KeptPairs.h"

#include <catch2/catch.hpp>

#include "runtime/core/Mods.h"

using namespace attnc;
using namespace attnc::bench;

TEST_CASE("kept pairs counted from the compiled mask equal the closed form and a brute-force count", "[bench]") {
  // 100 and 1100: smaller and larger than the window and the tile size, not multiples of either.
  int seq = GENERATE(1, 64, 100, 1100);
  BenchMod mod = GENERATE(BenchMod::Causal, BenchMod::AlibiCausal, BenchMod::SlidingWindow, BenchMod::Document);
  CAPTURE(seq, mod_name(mod));
  const int batch = 2, heads = 2;
  CaseMods mods = make_mods(mod, batch, heads, seq);
  REQUIRE(mods.mask);
  int64_t formula = kept_pairs_formula(mod, mods, batch, heads, seq);
  CHECK(kept_pairs_counted(*mods.mask, batch, heads, seq) == formula);
  if (seq <= 100) {
    Tensor mask = mask_mod_to_boolean_mask(*mods.mask, batch, heads, seq, seq);
    int64_t brute = 0;
    for (float x : mask.to_float_vector()) brute += x != 0.0f;
    CHECK(brute == formula);
  }
}

TEST_CASE("unmasked cases keep every pair", "[bench]") {
  for (BenchMod mod : {BenchMod::None, BenchMod::Softcap}) {
    CaseMods mods = make_mods(mod, 1, 3, 50);
    CHECK(kept_pairs_formula(mod, mods, 1, 3, 50) == 3 * 50 * 50);
  }
}
