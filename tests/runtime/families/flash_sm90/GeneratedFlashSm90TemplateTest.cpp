// The Hopper template (runtime/families/flash_sm90/flash_attention_sm90.cuh) under the host emulation
// with GENERATED mod code (compiler/CudaCodegen's output for every built-in mod and a composition,
// written at build time by tests/generators/GenerateTestMods.cpp), arguments packed as a launch packs
// them and tile maps from the CPU builder (runtime/tilemap/TileMapCpu.h), against the reference:
// both dtypes, head dims 64, 128 and 256 (with the production tiles), GQA and MQA, odd lengths,
// q_len != kv_len, rows that keep nothing, LSE, q_offset, NaN rows.

#include <catch2/catch.hpp>

#include "tests/support/AttentionComparison.h"

#include <cmath>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "attnc_test_mods.cuh"
#include "compiler/DType.h"
#include "runtime/core/Mods.h"
#include "runtime/cuda/PackModParams.h"
#include "runtime/families/flash_sm90/FlashSm90Source.h"
#include "runtime/reference/ReferenceAttention.h"
#include "runtime/tilemap/TileMapCpu.h"
#include "tests/runtime/families/flash_sm90/Sm90Emulation.h"
#include "tests/support/TestTensors.h"

using namespace attnc;
using namespace attnc::test;
using attnc_dev::bf16_t;
using attnc_dev::f16_t;

namespace {

struct Shape {
  int batch = 1, heads = 4, kv_heads = 2, q_len = 150, kv_len = 203;
};

std::vector<ir::ParamBinding> host_bindings(const Mod* mod) {
  if (mod == nullptr) return {};
  ir::Environment env;
  mod->bind_into(env);
  return env.params;
}

// A host tile map in the layout of the CPU builder's.
HostTileMap host_map(const TileMap& map) {
  HostTileMap out;
  const attnc_abi::TileMapView view = map.view();
  out.counts.assign(view.counts, view.counts + map.counts().numel());
  out.entries.assign(view.entries, view.entries + map.entries().numel());
  out.batch_stride = view.batch_stride, out.head_stride = view.head_stride;
  out.capacity = view.capacity, out.q_tiles = view.q_tiles;
  return out;
}

struct Inputs {
  Tensor q, k, v;
};

template <class Elem>
Inputs random_inputs(const Shape& s, int d, uint32_t seed) {
  const DType dtype = std::is_same_v<Elem, bf16_t> ? DType::BF16 : DType::F16;
  return {normal_tensor(seed, dtype, {s.batch, s.heads, s.q_len, d}),
          normal_tensor(seed + 1, dtype, {s.batch, s.kv_heads, s.kv_len, d}),
          normal_tensor(seed + 2, dtype, {s.batch, s.kv_heads, s.kv_len, d})};
}

// Runs the template with the generated traits `Gen` and compares it with the reference evaluating
// the same bound mods from their IR. NaN in the reference must be NaN here, element for element.
template <class Gen, class Elem, int D, int BN, int STAGES>
void check_generated(const Shape& s, const Mod* score, const Mod* mask, int q_offset = 0, uint32_t seed = 7,
                     const Inputs* given = nullptr) {
  const DType dtype = std::is_same_v<Elem, bf16_t> ? DType::BF16 : DType::F16;
  CAPTURE(dtype_name(dtype), D, BN, STAGES, s.batch, s.heads, s.kv_heads, s.q_len, s.kv_len, q_offset);
  REQUIRE(std::string(Gen::kScoreSignature) == (score ? score->signature().hex() : "none"));
  REQUIRE(std::string(Gen::kMaskSignature) == (mask ? mask->signature().hex() : "none"));
  const Inputs in = given != nullptr ? *given : random_inputs<Elem>(s, D, seed);
  Tensor out = Tensor::empty(dtype, {s.batch, s.heads, s.q_len, D});
  Tensor lse = Tensor::empty(DType::F32, {s.batch, s.heads, s.q_len});
  std::memset(out.data(), 0xFF, size_t(out.numel()) * 2);
  std::memset(lse.data(), 0xFF, size_t(lse.numel()) * 4);

  const ir::CudaModSource layout =
      ir::generate_cuda_mods(score ? &score->def() : nullptr, score ? score->storage_types() : std::vector<DType>{},
                             mask ? &mask->def() : nullptr, mask ? mask->storage_types() : std::vector<DType>{});
  REQUIRE(layout.params_size == sizeof(typename Gen::Params));
  const std::vector<unsigned char> bytes = cuda::pack_mod_params(layout, host_bindings(score), host_bindings(mask));
  typename Gen::Params params;
  std::memcpy(static_cast<void*>(&params), bytes.data(), bytes.size());

  HostTileMap map;
  if (mask != nullptr) {
    const TileMapShape shape{s.batch, s.heads, s.kv_heads, s.q_len, s.kv_len, q_offset, flash_sm90::kBlockM, BN};
    map = host_map(build_tile_map_cpu(*mask, shape));
  }
  run_sm90<Gen, Elem, D, D, BN, STAGES>(in.q, in.k, in.v, out, &lse, params, mask ? &map : nullptr, q_offset,
                                        1.0f / std::sqrt(float(D)));

  AttentionOptions options;
  options.score_mod = score;
  options.mask_mod = mask;
  options.q_offset = q_offset;
  Tensor ref_lse;
  const Tensor ref = standard_attention(in.q, in.k, in.v, options, &ref_lse);
  CHECK(attnc_test::nan_mismatches(out, ref) == 0);
  const double error = attnc_test::relative_error_where_defined(out, ref);
  CAPTURE(error);
  CHECK(error < (dtype == DType::BF16 ? 1e-2 : 1e-3));
  CHECK(attnc_test::lse_mismatches(lse, ref_lse) == 0);
}

// Small key tiles (32) so the lengths cross several of them and the stage ring wraps.
template <class Gen>
void check_both_dtypes(const Shape& s, const Mod* score, const Mod* mask, int q_offset = 0) {
  check_generated<Gen, bf16_t, 64, 32, 2>(s, score, mask, q_offset);
  check_generated<Gen, f16_t, 64, 32, 2>(s, score, mask, q_offset);
}

Tensor document_ids(int batch, int len) {
  std::vector<int32_t> ids;
  for (int b = 0; b < batch; ++b) {
    for (int i = 0; i < len; ++i) ids.push_back(i < 13 + 40 * b ? 0 : i < 140 ? 1 : 2);
  }
  return Tensor::from_vector(ids, {batch, len});
}

}  // namespace

TEST_CASE("generated mask mods run in the emulated Hopper template and match the reference",
          "[runtime][flash_sm90][generated]") {
  const Shape s;
  SECTION("causal") {
    const Mod m = causal_mod();
    check_both_dtypes<Gen_causal>(s, nullptr, &m);
  }
  SECTION("causal aligned to the bottom right, with rows and query tiles that keep nothing") {
    const Mod m = causal_bottom_right_mod();
    check_both_dtypes<Gen_causal_bottom_right>(Shape{1, 2, 1, 300, 50}, nullptr, &m);
    check_both_dtypes<Gen_causal_bottom_right>(s, nullptr, &m);
  }
  SECTION("causal sliding window") {
    const Mod m = sliding_window_mod(19, true);
    check_both_dtypes<Gen_window_causal>(s, nullptr, &m);
  }
  SECTION("symmetric sliding window") {
    const Mod m = sliding_window_mod(11, false);
    check_both_dtypes<Gen_window_symmetric>(s, nullptr, &m);
  }
  SECTION("prefix LM") {
    const Mod m = prefix_lm_mod(Tensor::from_vector(std::vector<int32_t>{17, 3}));
    check_both_dtypes<Gen_prefix_lm>(Shape{2, 2, 1, 145, 145}, nullptr, &m);
  }
  SECTION("document mask") {
    const Mod m = document_mask_mod(document_ids(2, 161));
    check_both_dtypes<Gen_document>(Shape{2, 2, 2, 161, 161}, nullptr, &m);
  }
}

TEST_CASE("generated score mods run in the emulated Hopper template and match the reference",
          "[runtime][flash_sm90][generated]") {
  const Shape s;
  SECTION("ALiBi") {
    const Mod m = alibi_mod(4);
    check_both_dtypes<Gen_alibi>(s, &m, nullptr);
  }
  SECTION("additive bias, broadcast over batch and heads") {
    const Mod m = additive_bias_mod(normal_tensor(99, DType::F32, {1, 1, s.q_len, s.kv_len}));
    check_both_dtypes<Gen_additive_bias>(s, &m, nullptr);
  }
  SECTION("softcap") {
    const Mod m = softcap_mod(5.0f);
    check_both_dtypes<Gen_softcap>(s, &m, nullptr);
  }
}

TEST_CASE("a generated composition runs in the emulated Hopper template at each head dim's production tiles",
          "[runtime][flash_sm90][generated]") {
  const Mod score = compose_score_mods({alibi_mod(4), softcap_mod(5.0f)});
  const Mod mask = and_masks({causal_mod(), document_mask_mod(document_ids(1, 300))});
  // The tiles FlashSm90Source chooses, checked here so the test follows them.
  REQUIRE(flash_sm90::choose_sm90_tiles(64, 64) == flash_sm90::Sm90Tiles{128, 3});
  REQUIRE(flash_sm90::choose_sm90_tiles(128, 128) == flash_sm90::Sm90Tiles{128, 2});
  REQUIRE(flash_sm90::choose_sm90_tiles(256, 256) == flash_sm90::Sm90Tiles{80, 2});
  check_generated<Gen_composition, bf16_t, 64, 128, 3>(Shape{1, 4, 2, 300, 300}, &score, &mask);
  check_generated<Gen_composition, f16_t, 64, 128, 3>(Shape{1, 4, 1, 170, 300}, &score, &mask);  // MQA
  check_generated<Gen_composition, bf16_t, 128, 128, 2>(Shape{1, 2, 2, 200, 290}, &score, &mask);
  check_generated<Gen_composition, f16_t, 128, 128, 2>(Shape{1, 4, 2, 131, 131}, &score, &mask);
  check_generated<Gen_composition, bf16_t, 256, 80, 2>(Shape{1, 2, 1, 150, 250}, &score, &mask);
  check_generated<Gen_composition, f16_t, 256, 80, 2>(Shape{1, 1, 1, 90, 170}, &score, &mask);
}

TEST_CASE("the emulated Hopper template gives the mods q_offset + row", "[runtime][flash_sm90][generated]") {
  // A suffix of 70 queries at positions 130.. of a 200-key sequence (a KV cache): causal and
  // document masks must mean the same as for the whole sequence.
  const Mod causal = causal_mod();
  check_generated<Gen_causal, bf16_t, 64, 32, 2>(Shape{1, 2, 2, 70, 200}, nullptr, &causal, 130);
  const Mod doc = document_mask_mod(document_ids(1, 200));
  check_generated<Gen_document, f16_t, 64, 32, 2>(Shape{1, 2, 1, 70, 200}, nullptr, &doc, 130);
  // q_offset not a multiple of the query tile: the map's tiles straddle summary blocks.
  check_generated<Gen_document, bf16_t, 64, 32, 2>(Shape{1, 2, 1, 100, 200}, nullptr, &doc, 37);
}

TEST_CASE("NaN scores make their rows NaN in the emulated Hopper template, masked ones do not",
          "[runtime][flash_sm90][generated]") {
  const Shape s{1, 2, 2, 140, 140};
  Inputs in = random_inputs<bf16_t>(s, 64, 5);
  in.q.set_float({0, 1, 77, 3}, NAN);   // row 77 of head 1: NaN everywhere it looks
  in.k.set_float({0, 0, 100, 5}, NAN);  // key 100: NaN for the rows that see it
  const Mod causal = causal_mod();
  check_generated<Gen_causal, bf16_t, 64, 32, 2>(s, nullptr, &causal, 0, 0, &in);
  const Mod window = sliding_window_mod(20, true);  // rows 120.. see key 100; the others never
  check_generated<Gen_window_causal, bf16_t, 64, 32, 2>(s, nullptr, &window, 0, 0, &in);
}
