#include "runtime/cache/KernelKey.h"

#include <catch2/catch.hpp>

#include <functional>
#include <set>

#include "runtime/RuntimeError.h"

using namespace attnc;

namespace {

KernelKey sample_key() {
  KernelKey key;
  key.score_mod = std::nullopt;
  key.mask_mod = ir::Signature{0x0123456789abcdefull, 0xfedcba9876543210ull};
  key.dtype = DType::BF16;
  key.head_dim = 128;
  key.head_dim_v = 128;
  key.tile = KernelKey::Tile{128, 64, 8};
  key.arch = "sm_90a";
  key.nvrtc_version = "13.0";
  key.template_hash = "00112233445566778899aabbccddeeff";
  key.check_bounds = false;
  key.emit = "cubin";
  key.compile_options = {"-lineinfo", "-DATTNC_X=1"};
  return key;
}

}  // namespace

TEST_CASE("a kernel key serialises to a fixed text and hash (golden)", "[runtime][cache][key]") {
  // If this test fails, the on-disk format of keys changed: bump kFormatLine in KernelKey.cpp so
  // old cache entries are never mistaken for new ones, then update the golden values here.
  KernelKey key = sample_key();
  CHECK(key.serialize() ==
        "attnc-kernel-key/1\n"
        "score_mod=none\n"
        "mask_mod=0123456789abcdeffedcba9876543210\n"
        "dtype=bf16\n"
        "head_dim=128\n"
        "head_dim_v=128\n"
        "block_m=128\n"
        "block_n=64\n"
        "num_warps=8\n"
        "arch=sm_90a\n"
        "nvrtc=13.0\n"
        "template=00112233445566778899aabbccddeeff\n"
        "check_bounds=0\n"
        "emit=cubin\n"
        "option=-lineinfo\n"
        "option=-DATTNC_X=1\n");
  CHECK(key.hash_hex() == "99e259156143dfca63c75634f6429b55");
  CHECK(key.summary() ==
        "score=none mask=01234567 bf16 d128/128 128x64w8 sm_90a nvrtc13.0 tmpl=00112233 cubin -lineinfo -DATTNC_X=1");
}

TEST_CASE("every field of a kernel key changes its serialisation and hash", "[runtime][cache][key]") {
  using Change = std::function<void(KernelKey&)>;
  auto [field, change] = GENERATE(table<std::string, Change>({
      {"score_mod",
       [](KernelKey& k) {
         k.score_mod = ir::Signature{1, 2};
       }},
      {"mask_mod", [](KernelKey& k) { k.mask_mod = std::nullopt; }},
      {"mask_mod value", [](KernelKey& k) { k.mask_mod->low ^= 1; }},
      {"dtype", [](KernelKey& k) { k.dtype = DType::F16; }},
      {"head_dim", [](KernelKey& k) { k.head_dim = 64; }},
      {"head_dim_v", [](KernelKey& k) { k.head_dim_v = 64; }},
      {"block_m", [](KernelKey& k) { k.tile.block_m = 64; }},
      {"block_n", [](KernelKey& k) { k.tile.block_n = 128; }},
      {"num_warps", [](KernelKey& k) { k.tile.num_warps = 4; }},
      {"arch suffix", [](KernelKey& k) { k.arch = "sm_90"; }},
      {"nvrtc_version", [](KernelKey& k) { k.nvrtc_version = "12.4"; }},
      {"template_hash", [](KernelKey& k) { k.template_hash[0] = 'f'; }},
      {"check_bounds", [](KernelKey& k) { k.check_bounds = true; }},
      {"emit", [](KernelKey& k) { k.emit = "ptx"; }},
      {"option order", [](KernelKey& k) { std::swap(k.compile_options[0], k.compile_options[1]); }},
      {"one option fewer", [](KernelKey& k) { k.compile_options.pop_back(); }},
      {"score and mask swapped", [](KernelKey& k) { std::swap(k.score_mod, k.mask_mod); }},
  }));
  CAPTURE(field);
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
    key.score_mod = ir::Signature{~0ull, 0};
    key.compile_options.clear();
    key.check_bounds = true;
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
        {"other format version", replaced("attnc-kernel-key/1", "attnc-kernel-key/2")},
        {"fields reordered", replaced("head_dim=128\nhead_dim_v=128\n", "head_dim_v=128\nhead_dim=128\n")},
        {"leading plus", replaced("head_dim=128", "head_dim=+128")},
        {"leading zero", replaced("block_n=64", "block_n=064")},
        {"upper-case hex", replaced("0123456789abcdef", "0123456789ABCDEF")},
        {"short signature", replaced("fedcba9876543210\n", "fedcba987654321\n")},
        {"unknown dtype", replaced("dtype=bf16", "dtype=bf17")},
        {"dtype alias", replaced("dtype=bf16", "dtype=bfloat16")},
        {"bool as word", replaced("check_bounds=0", "check_bounds=false")},
        {"unknown trailing field", text + "extra=1\n"},
        {"empty arch", replaced("arch=sm_90a", "arch=")},
        {"empty", ""},
    }));
    CAPTURE(what);
    CHECK_FALSE(KernelKey::parse(bad));
  }
}

TEST_CASE("a kernel key with an empty or multi-line field cannot be serialised", "[runtime][cache][key]") {
  KernelKey key = sample_key();
  SECTION("newline in arch") { key.arch = "sm_90\nemit=ptx"; }
  SECTION("empty nvrtc version") { key.nvrtc_version = ""; }
  SECTION("newline in an option") { key.compile_options.push_back("-a\n-b"); }
  CHECK_THROWS_AS(key.serialize(), RuntimeError);
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
