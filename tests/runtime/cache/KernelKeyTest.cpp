#include "runtime/cache/KernelKey.h"

#include <catch2/catch.hpp>

#include <functional>
#include <set>

#include "runtime/core/RuntimeError.h"

using namespace attnc;

namespace {

// A key shaped like the flash family's (runtime/families/flash/FlashSource.cpp); the cache itself
// knows no field names.
KernelKey sample_key() {
  KernelKey key;
  key.family = "flash";
  key.add("score_mod", "none");
  key.add("mask_mod", "0123456789abcdeffedcba9876543210");
  key.add("dtype", "bf16").add("head_dim", "128").add("head_dim_v", "128");
  key.add("block_m", "128").add("block_n", "64").add("num_warps", "8").add("check_bounds", "0");
  key.add("arch", "sm_90a").add("nvrtc", "13.0").add("template", "00112233445566778899aabbccddeeff");
  key.add("option", "-lineinfo").add("option", "-DATTNC_X=1");
  return key;
}

}  // namespace

TEST_CASE("a kernel key serialises to a fixed text and hash (golden)", "[runtime][cache][key]") {
  // If this test fails, the on-disk format of keys changed: bump kFormatLine in KernelKey.cpp so
  // old cache entries are never mistaken for new ones, then update the golden values here.
  KernelKey key = sample_key();
  CHECK(key.serialize() ==
        "attnc-kernel-key/2\n"
        "family=flash\n"
        "score_mod=none\n"
        "mask_mod=0123456789abcdeffedcba9876543210\n"
        "dtype=bf16\n"
        "head_dim=128\n"
        "head_dim_v=128\n"
        "block_m=128\n"
        "block_n=64\n"
        "num_warps=8\n"
        "check_bounds=0\n"
        "arch=sm_90a\n"
        "nvrtc=13.0\n"
        "template=00112233445566778899aabbccddeeff\n"
        "option=-lineinfo\n"
        "option=-DATTNC_X=1\n");
  CHECK(key.hash_hex() == "ea53ab9674b09243bc2f168cdae982c8");
  CHECK(key.summary() ==
        "flash score_mod=none mask_mod=01234567 dtype=bf16 head_dim=128 head_dim_v=128 block_m=128 block_n=64 "
        "num_warps=8 check_bounds=0 arch=sm_90a nvrtc=13.0 template=00112233 option=-lineinfo option=-DATTNC_X=1");
}

TEST_CASE("every part of a kernel key changes its serialisation and hash", "[runtime][cache][key]") {
  using Change = std::function<void(KernelKey&)>;
  auto [what, change] = GENERATE(table<std::string, Change>({
      {"family", [](KernelKey& k) { k.family = "decode"; }},
      {"a value", [](KernelKey& k) { k.fields[1].second[0] = '1'; }},
      {"a name", [](KernelKey& k) { k.fields[3].first = "head_dim_q"; }},
      {"arch suffix", [](KernelKey& k) { k = k.with("arch", "sm_90"); }},
      {"nvrtc version", [](KernelKey& k) { k = k.with("nvrtc", "12.4"); }},
      {"field order", [](KernelKey& k) { std::swap(k.fields[3], k.fields[4]); }},
      {"option order", [](KernelKey& k) { std::swap(k.fields[12], k.fields[13]); }},
      {"one field fewer", [](KernelKey& k) { k.fields.pop_back(); }},
      {"one field more", [](KernelKey& k) { k.add("emit", "ptx"); }},
      {"empty value", [](KernelKey& k) { k.fields[0].second.clear(); }},
  }));
  CAPTURE(what);
  KernelKey base = sample_key();
  KernelKey changed = base;
  change(changed);
  CHECK(changed != base);
  CHECK(changed.serialize() != base.serialize());
  CHECK(changed.hash_hex() != base.hash_hex());
  CHECK(changed.hash_hex().size() == 32);
}

TEST_CASE("a kernel key parses back from its serialisation and from nothing else", "[runtime][cache][key]") {
  KernelKey key = sample_key();
  SECTION("round trip") {
    std::optional<KernelKey> parsed = KernelKey::parse(key.serialize());
    REQUIRE(parsed);
    CHECK(*parsed == key);
    KernelKey bare;
    bare.family = "probe";
    parsed = KernelKey::parse(bare.serialize());
    REQUIRE(parsed);
    CHECK(*parsed == bare);
    key.fields[0].second = "";  // an empty value is a value
    parsed = KernelKey::parse(key.serialize());
    REQUIRE(parsed);
    CHECK(*parsed == key);
  }
  SECTION("non-canonical or damaged text") {
    std::string text = key.serialize();
    auto replaced = [&](const std::string& from, const std::string& to) {
      std::string out = text;
      size_t at = out.find(from);
      REQUIRE(at != std::string::npos);
      return out.replace(at, from.size(), to);
    };
    auto [what, bad] = GENERATE_REF(table<std::string, std::string>({
        {"no final newline", text.substr(0, text.size() - 1)},
        {"other format version", replaced("attnc-kernel-key/2", "attnc-kernel-key/1")},
        {"no family line", replaced("family=flash\n", "")},
        {"empty family", replaced("family=flash", "family=")},
        {"upper-case name", replaced("head_dim=", "Head_dim=")},
        {"line without =", replaced("head_dim=128", "head_dim 128")},
        {"empty name", replaced("head_dim=128", "=128")},
        {"carriage return", replaced("dtype=bf16", "dtype=bf16\r")},
        {"empty", ""},
    }));
    CAPTURE(what);
    CHECK_FALSE(KernelKey::parse(bad));
  }
}

TEST_CASE("a kernel key with a bad family, name or value cannot be serialised", "[runtime][cache][key]") {
  KernelKey key = sample_key();
  SECTION("empty family") { key.family = ""; }
  SECTION("family with a space") { key.family = "flash attention"; }
  SECTION("name with '='") { key.add("a=b", "c"); }
  SECTION("newline in a value") { key = key.with("arch", "sm_90\nemit=ptx"); }
  SECTION("newline in an option") { key.add("option", "-a\n-b"); }
  CHECK_THROWS_AS(key.serialize(), RuntimeError);
}

TEST_CASE("with() replaces a field's value everywhere and find() reads the first", "[runtime][cache][key]") {
  KernelKey key = sample_key();
  REQUIRE(key.find("nvrtc") != nullptr);
  CHECK(*key.find("nvrtc") == "13.0");
  CHECK(*key.find("option") == "-lineinfo");
  CHECK(key.find("nothing") == nullptr);
  KernelKey any = key.with("nvrtc", "any");
  CHECK(*any.find("nvrtc") == "any");
  CHECK(any.with("nvrtc", "13.0") == key);
  CHECK(*key.with("option", "-O3").find("option") == "-O3");
  CHECK(key.with("option", "-O3").fields.back().second == "-O3");
  CHECK_THROWS_WITH(key.with("nothing", "1"), Catch::Contains("no field 'nothing'"));
}

TEST_CASE("versions order by their numbers, and text that is not a version first", "[runtime][cache][key]") {
  CHECK(version_less("12.4", "13.0"));
  CHECK(version_less("13.0", "13.10"));
  CHECK(version_less("13.2", "13.10"));
  CHECK(version_less("13", "13.0"));
  CHECK_FALSE(version_less("13.0", "13.0"));
  CHECK_FALSE(version_less("13.1", "13.0"));
  CHECK(version_less("any", "12.0"));
  CHECK(version_less("fake", "1"));
  CHECK_FALSE(version_less("12.0", "any"));
  CHECK_FALSE(version_less("13.x", "13.y"));
}

TEST_CASE("the template hash depends on every source's name, text and order", "[runtime][cache][key]") {
  using Sources = std::vector<std::pair<std::string_view, std::string_view>>;
  std::set<std::string> hashes = {
      hash_template_sources({}),
      hash_template_sources(Sources{{"a.cuh", "x"}}),
      hash_template_sources(Sources{{"b.cuh", "x"}}),
      hash_template_sources(Sources{{"a.cuh", "y"}}),
      hash_template_sources(Sources{{"a.cuh", "x"}, {"b.cuh", "y"}}),
      hash_template_sources(Sources{{"b.cuh", "y"}, {"a.cuh", "x"}}),
      hash_template_sources(Sources{{"a.cuh", "xb.cuh"}, {"", "y"}}),  // boundaries matter
  };
  CHECK(hashes.size() == 7);
  CHECK(hash_template_sources(Sources{{"a.cuh", "x"}}) == hash_template_sources(Sources{{"a.cuh", "x"}}));
}
