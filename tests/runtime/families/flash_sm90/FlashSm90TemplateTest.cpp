// The Hopper template (runtime/families/flash_sm90/flash_attention_sm90.cuh) compiled as host C++ and
// run through the host emulation of the sm_90a execution model, with hand-written mods traits and
// a tile map built by brute force, against the reference attention. The generated mods are tested in
// GeneratedFlashSm90TemplateTest.cpp; this file covers the template's own logic: the pipeline over
// several stage rounds, ping-pong with one and many key tiles, edges, empty tile lists, GQA and
// q_offset.

#include <catch2/catch.hpp>

#include "tests/support/AttentionComparison.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "compiler/DType.h"
#include "runtime/core/Mods.h"
#include "runtime/reference/ReferenceAttention.h"
#include "tests/runtime/families/flash_sm90/Sm90Emulation.h"
#include "tests/support/TestTensors.h"

using namespace attnc;
using namespace attnc::test;
using attnc_abi::BoundsReport;
using attnc_abi::ModPoint;
using attnc_abi::TileBox;
using attnc_dev::bf16_t;
using attnc_dev::f16_t;

namespace {

struct NoMods {
  struct Params {};
  static constexpr bool kHasScoreMod = false, kHasMaskMod = false, kCheckBounds = false;
  static float score_mod(float s, const ModPoint&, const Params&, BoundsReport*) { return s; }
  static bool mask_mod(const ModPoint&, const Params&, BoundsReport*) { return true; }
  static int tile_class(const TileBox&, const ModPoint&, const Params&) { return 1; }
};

struct CausalMods {
  struct Params {};
  static constexpr bool kHasScoreMod = false, kHasMaskMod = true, kCheckBounds = false;
  static float score_mod(float s, const ModPoint&, const Params&, BoundsReport*) { return s; }
  static bool mask_mod(const ModPoint& p, const Params&, BoundsReport*) { return p.kv_idx <= p.q_idx; }
  static int tile_class(const TileBox&, const ModPoint&, const Params&) { return 2; }
};

// q_idx + kv_len - q_len >= kv_idx: with q_len > kv_len the first rows keep nothing.
struct CausalBottomRightMods {
  struct Params {
    int32_t q_len, kv_len;
  };
  static constexpr bool kHasScoreMod = false, kHasMaskMod = true, kCheckBounds = false;
  static float score_mod(float s, const ModPoint&, const Params&, BoundsReport*) { return s; }
  static bool mask_mod(const ModPoint& p, const Params&, BoundsReport*) {
    return p.q_idx + p.kv_len - p.q_len >= p.kv_idx;
  }
  static int tile_class(const TileBox&, const ModPoint&, const Params&) { return 2; }
};

// softcap(score - slope * |q_idx - kv_idx|) under a causal mask.
struct CausalAlibiSoftcapMods {
  struct Params {
    float slope, cap;
  };
  static constexpr bool kHasScoreMod = true, kHasMaskMod = true, kCheckBounds = false;
  static float score_mod(float s, const ModPoint& p, const Params& params, BoundsReport*) {
    const float biased = s - params.slope * float(std::abs(p.q_idx - p.kv_idx));
    return params.cap * std::tanh(biased / params.cap);
  }
  static bool mask_mod(const ModPoint& p, const Params&, BoundsReport*) { return p.kv_idx <= p.q_idx; }
  static int tile_class(const TileBox&, const ModPoint&, const Params&) { return 2; }
};

struct Shape {
  int batch = 1, heads = 2, kv_heads = 2, q_len = 64, kv_len = 64;
};

template <class Elem>
constexpr DType dtype_of() {
  return std::is_same_v<Elem, bf16_t> ? DType::BF16 : DType::F16;
}

template <class Mods>
bool keeps(const typename Mods::Params& mods, int b, int h, int q, int kv, int q_len, int kv_len, int heads,
           int kv_heads) {
  const ModPoint point{b, h, q, kv, q_len, kv_len, heads, kv_heads};
  return Mods::mask_mod(point, mods, nullptr);
}

// Runs the template (tile map by brute force from Mods::mask_mod) and compares it with the
// reference evaluating `score` / `mask` (the prelude's mods with the same meaning).
template <class Mods, class Elem, int D, int DV, int BN, int STAGES>
void check(const Shape& s, const typename Mods::Params& mods, const Mod* score, const Mod* mask, int q_offset = 0,
           uint32_t seed = 3) {
  const DType dtype = dtype_of<Elem>();
  CAPTURE(dtype_name(dtype), D, DV, BN, STAGES, s.batch, s.heads, s.kv_heads, s.q_len, s.kv_len, q_offset);
  const Tensor q = normal_tensor(seed, dtype, {s.batch, s.heads, s.q_len, D});
  const Tensor k = normal_tensor(seed + 1, dtype, {s.batch, s.kv_heads, s.kv_len, D});
  const Tensor v = normal_tensor(seed + 2, dtype, {s.batch, s.kv_heads, s.kv_len, DV});
  HostTileMap map;
  if (Mods::kHasMaskMod) {
    map =
        brute_force_tile_map(s.batch, s.heads, s.q_len, s.kv_len, q_offset, 128, BN, [&](int b, int h, int qi, int kv) {
          return keeps<Mods>(mods, b, h, qi, kv, s.q_len, s.kv_len, s.heads, s.kv_heads);
        });
  }
  AttentionOptions options;
  options.score_mod = score;
  options.mask_mod = mask;
  options.q_offset = q_offset;
  Tensor ref_lse;
  const Tensor ref = standard_attention(q, k, v, options, &ref_lse);

  // Loads landing as late and as early as PTX allows expose reads before the wait and releases
  // before the last reader, respectively.
  for (host_emulation::TmaDelivery delivery :
       {host_emulation::TmaDelivery::Latest, host_emulation::TmaDelivery::Earliest}) {
    CAPTURE(delivery == host_emulation::TmaDelivery::Latest ? "latest" : "earliest");
    host_emulation::set_tma_delivery(delivery);
    Tensor out = Tensor::empty(dtype, {s.batch, s.heads, s.q_len, DV});
    Tensor lse = Tensor::empty(DType::F32, {s.batch, s.heads, s.q_len});
    std::memset(out.data(), 0xFF, size_t(out.numel()) * 2);  // NaN: unwritten elements fail
    std::memset(lse.data(), 0xFF, size_t(lse.numel()) * 4);
    const host_emulation::LaunchStats stats = run_sm90<Mods, Elem, D, DV, BN, STAGES>(
        q, k, v, out, &lse, mods, Mods::kHasMaskMod ? &map : nullptr, q_offset, 1.0f / std::sqrt(float(D)));
    host_emulation::set_tma_delivery(host_emulation::TmaDelivery::Latest);
    CHECK(stats.wgmma_ops > 0);
    const double error = attnc_test::relative_error(out, ref);
    CAPTURE(error);
    CHECK(error < (dtype == DType::BF16 ? 1e-2 : 1e-3));
    CHECK(attnc_test::lse_mismatches(lse, ref_lse) == 0);
  }
}

}  // namespace

TEST_CASE("the Hopper template without mods matches the reference", "[runtime][flash_sm90][emulation]") {
  SECTION("one key tile per query tile, whole tiles") {
    check<NoMods, bf16_t, 64, 64, 64, 2>(Shape{1, 1, 1, 128, 64}, {}, nullptr, nullptr);
  }
  SECTION("many key tiles: the stage ring wraps several times, odd lengths, GQA") {
    check<NoMods, bf16_t, 64, 64, 32, 2>(Shape{1, 4, 2, 150, 203}, {}, nullptr, nullptr);
    check<NoMods, f16_t, 64, 64, 16, 3>(Shape{1, 2, 1, 77, 133}, {}, nullptr, nullptr);
  }
  SECTION("head dims 128, 192 and 256, and Dv != D") {
    check<NoMods, bf16_t, 128, 128, 64, 2>(Shape{1, 2, 2, 100, 90}, {}, nullptr, nullptr);
    check<NoMods, bf16_t, 192, 192, 80, 2>(Shape{1, 1, 1, 70, 170}, {}, nullptr, nullptr);
    check<NoMods, f16_t, 256, 256, 80, 2>(Shape{1, 1, 1, 70, 170}, {}, nullptr, nullptr);
    check<NoMods, bf16_t, 128, 64, 32, 2>(Shape{2, 2, 1, 45, 83}, {}, nullptr, nullptr);
  }
}

TEST_CASE("the Hopper template applies masks and score mods on the wgmma accumulators",
          "[runtime][flash_sm90][emulation]") {
  const Mod causal = causal_mod();
  SECTION("causal: FULL, PARTIAL and EMPTY key tiles") {
    check<CausalMods, bf16_t, 64, 64, 32, 2>(Shape{1, 2, 2, 200, 200}, {}, nullptr, &causal);
    check<CausalMods, f16_t, 128, 128, 64, 2>(Shape{1, 2, 1, 150, 170}, {}, nullptr, &causal);
  }
  SECTION("causal with q_offset: the mods see q_offset + row") {
    check<CausalMods, bf16_t, 64, 64, 32, 2>(Shape{1, 2, 2, 70, 200}, {}, nullptr, &causal, 90);
  }
  SECTION("bottom-right causal with q_len > kv_len: rows and whole query tiles that keep nothing") {
    const Mod br = causal_bottom_right_mod();
    check<CausalBottomRightMods, bf16_t, 64, 64, 32, 2>(Shape{1, 2, 2, 300, 40}, {300, 40}, nullptr, &br);
  }
  SECTION("a composed score mod under a causal mask") {
    const Mod score = compose_score_mods({alibi_mod(1), softcap_mod(3.0f)});

    const float slope = alibi_slopes(1)[0];
    check<CausalAlibiSoftcapMods, bf16_t, 64, 64, 32, 2>(Shape{1, 1, 1, 130, 130}, {slope, 3.0f}, &score, &causal);
  }
}
