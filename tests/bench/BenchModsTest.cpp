#include "bench/suite/BenchMods.h"

#include <catch2/catch.hpp>

using namespace attnc;
using namespace attnc::bench;

TEST_CASE("every suite mod has a name that parses back to it, and builds the mods it says", "[bench]") {
  for (BenchMod mod : kAllMods) {
    CAPTURE(mod_name(mod));
    CHECK(parse_mod_name(mod_name(mod)) == mod);
    CHECK_THAT(mod_name_list(), Catch::Contains(mod_name(mod)));
  }
  CHECK_FALSE(parse_mod_name("all").has_value());
  CHECK_FALSE(parse_mod_name("causal ").has_value());

  CaseMods none = make_mods(BenchMod::None, 1, 2, 64);
  CHECK_FALSE(none.score);
  CHECK_FALSE(none.mask);
  CaseMods alibi = make_mods(BenchMod::AlibiCausal, 1, 2, 64);
  CHECK(alibi.score);
  CHECK(alibi.mask);
  CaseMods document = make_mods(BenchMod::Document, 2, 2, 64);
  REQUIRE(document.document_ids);
  CHECK(document.document_ids->shape() == std::vector<int64_t>{2, 64});
  CHECK(document.mask->fully_bound());
}
