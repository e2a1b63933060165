// Tile maps built on the CPU (runtime/tilemap/TileMapCpu.h, from compiler/TileMapClassifier.h):
// - for random masks (tests/support/RandomExpr.h) over tensors of every storage type, every EMPTY
//   and FULL claim is true element by element, and every class is the per-tile classifier's
//   (compiler/TileClassifier.h, walking the box) or PARTIAL;
// - for the built-in masks at tile-aligned positions the map equals the per-tile classification,
//   and is what the mask means element by element where that classification is exact;
// - block summaries equal a direct min / max; maps that do not depend on b or h store one row;
//   a map refuses calls it was not built for.

#include "runtime/tilemap/TileMapCpu.h"

#include <algorithm>
#include <cstring>
#include <random>
#include <string>
#include <variant>
#include <vector>

#include <catch2/catch.hpp>

#include "compiler/Interpreter.h"
#include "compiler/Pipeline.h"
#include "compiler/Printer.h"
#include "compiler/TileClassifier.h"
#include "compiler/TileMapClassifier.h"
#include "runtime/core/Mods.h"
#include "runtime/core/RuntimeError.h"
#include "tests/support/RandomExpr.h"

using namespace attnc;
using ir::TileClass;

namespace {

struct Truth {
  bool any = false, all = true;
  int tile_class() const { return !any ? 0 : all ? 1 : 2; }
};

// Element by element: which of the tile's elements the mask keeps.
Truth brute_force(const Mod& mask, ir::Environment& env, const TileMapShape& s, int b, int h, int qt, int kt) {
  const ir::CompiledExpr body(mask.def().body);
  Truth truth;
  for (int q = qt * s.block_m; q < std::min(s.q_len, (qt + 1) * s.block_m); ++q) {
    for (int kv = kt * s.block_n; kv < std::min(s.kv_len, (kt + 1) * s.block_n); ++kv) {
      env.set_point(b, h, s.q_offset + q, kv);
      const bool kept = body.evaluate(env).as_bool();
      truth.any = truth.any || kept;
      truth.all = truth.all && kept;
    }
  }
  return truth;
}

// The per-tile classifier walking each box: what the map must equal at aligned positions.
int direct_class(const ir::TileClassifier& classifier, ir::Environment& env, const TileMapShape& s, int b, int h,
                 int qt, int kt) {
  env.set(ir::Builtin::Batch, ir::Value::of_int(b));
  env.set(ir::Builtin::Head, ir::Value::of_int(h));
  const int32_t q_first = s.q_offset + qt * s.block_m;
  const int32_t q_last = s.q_offset + std::min(s.q_len, (qt + 1) * s.block_m) - 1;
  const int32_t kv_first = kt * s.block_n, kv_last = std::min(s.kv_len, (kt + 1) * s.block_n) - 1;
  return static_cast<int>(classifier.classify(env, q_first, q_last, kv_first, kv_last));
}

// Compares a map with the element truth (always) and with the per-tile classifier (`exact`: equal;
// otherwise equal or PARTIAL). Returns the number of decided (EMPTY or FULL) tiles.
int check_map(const Mod& mask, const TileMapShape& s, bool exact) {
  CAPTURE(s.describe(), ir::print_expr(mask.def().body));
  const TileMap map = build_tile_map_cpu(mask, s);
  const ir::TileClassifier classifier(mask.def());
  ir::Environment env = mask.environment(s.q_len, s.kv_len, s.heads, s.kv_heads);
  int decided = 0;
  for (int b = 0; b < s.batch; ++b) {
    for (int h = 0; h < s.heads; ++h) {
      for (int qt = 0; qt < s.q_tiles(); ++qt) {
        int previous = -1;
        const attnc_abi::TileMapView view = map.view();
        const int64_t row = int64_t(b) * view.batch_stride + int64_t(h) * view.head_stride + qt;
        REQUIRE(view.counts[row] <= s.kv_tiles());
        for (int i = 0; i < view.counts[row]; ++i) {  // increasing key tiles
          const int kt = attnc_abi::tile_map_kv_tile(view.entries[row * view.capacity + i]);
          REQUIRE(kt > previous);
          previous = kt;
        }
        for (int kt = 0; kt < s.kv_tiles(); ++kt) {
          CAPTURE(b, h, qt, kt);
          const int claimed = map.tile_class(b, h, qt, kt);
          const int truth = brute_force(mask, env, s, b, h, qt, kt).tile_class();
          if (claimed != 2) {
            REQUIRE(claimed == truth);
            ++decided;
          }
          const int direct = direct_class(classifier, env, s, b, h, qt, kt);
          if (exact) {
            REQUIRE(claimed == direct);
          } else {
            REQUIRE((claimed == direct || claimed == 2));
          }
        }
      }
    }
  }
  return decided;
}

std::vector<int32_t> documents(std::mt19937& rng, int batch, int len) {
  std::vector<int32_t> ids;
  for (int b = 0; b < batch; ++b) {
    int32_t id = 0;
    for (int i = 0; i < len; ++i) {
      if (i > 0 && std::uniform_int_distribution<int>(0, 9)(rng) == 0) ++id;
      ids.push_back(id);
    }
  }
  return ids;
}

}  // namespace

TEST_CASE("tile maps of random masks are sound and never finer than the per-tile classifier",
          "[runtime][tilemap][random]") {
  // Tensors of every storage type the classifier summarises (int32, int64, bf16, fp32), a bool one
  // (never summarised: bool loads classify as anything), and scalars.
  ir::test::RandomExprOptions options;
  options.use_score = false;
  options.params = {
      {ir::Type::Int, {}, DType::I32},   {ir::Type::Int, {2, 70}, DType::I32},   {ir::Type::Float, {70}, DType::BF16},
      {ir::Type::Int, {70}, DType::I64}, {ir::Type::Float, {3, 70}, DType::F32}, {ir::Type::Bool, {70}, DType::Bool},
  };
  const std::vector<ir::ParamDecl> decls = ir::test::random_param_decls(options);
  std::mt19937 rng(11);
  int decided = 0, tiles = 0;
  for (int m = 0; m < 120; ++m) {
    ir::ModDef def;
    def.name = "random" + std::to_string(m);
    def.kind = dsl::ModKind::Mask;
    def.params = decls;
    def.body = ir::optimize_expr(ir::test::random_expr(rng, ir::Type::Bool, 4, options));
    ir::test::RandomEnvironment random = ir::test::random_environment(rng, options);
    // Document-like ids in the rank-2 int tensor, so summaries decide tiles.
    std::vector<int32_t> ids = documents(rng, 2, 70);
    std::memcpy(const_cast<void*>(std::get<ir::TensorArg>(random.env.params[1]).data), ids.data(), ids.size() * 4);
    Mod mask = Mod::from_def(def);
    for (size_t i = 0; i < decls.size(); ++i) {
      if (const auto* value = std::get_if<ir::Value>(&random.env.params[i])) {
        mask.bind(decls[i].name, Mod::Argument(*value));
      } else {
        const auto& arg = std::get<ir::TensorArg>(random.env.params[i]);
        mask.bind(decls[i].name, Tensor::from_data(const_cast<void*>(arg.data), arg.dtype, arg.shape, arg.strides));
      }
    }
    TileMapShape s;
    s.batch = 2, s.heads = 2, s.kv_heads = 1;
    s.q_len = std::uniform_int_distribution<int>(1, 70)(rng);
    s.kv_len = std::uniform_int_distribution<int>(1, 70)(rng);
    s.block_m = std::vector<int>{4, 8, 16, 32}[m % 4];
    s.block_n = std::vector<int>{8, 16, 5}[m % 3];
    s.q_offset = m % 5 == 0 ? 3 : m % 5 == 1 ? s.block_m : 0;
    decided += check_map(mask, s, false);
    tiles += 4 * s.q_tiles() * s.kv_tiles();
  }
  CAPTURE(decided, tiles);
  CHECK(decided > tiles / 10);  // the maps decide a fair share, not PARTIAL everywhere
}

TEST_CASE("tile maps of the built-in masks equal the per-tile classification at aligned positions",
          "[runtime][tilemap]") {
  std::mt19937 rng(5);
  // Sequences as long as their document ids (q_offset + q_len == kv_len), tiles of several shapes.
  for (const TileMapShape& s :
       {TileMapShape{2, 2, 1, 300, 300, 0, 64, 32}, TileMapShape{2, 1, 1, 256, 320, 64, 64, 64},
        TileMapShape{2, 2, 2, 100, 228, 128, 64, 16}, TileMapShape{1, 1, 1, 7, 199, 192, 64, 80},
        TileMapShape{1, 2, 1, 200, 200, 0, 128, 80}}) {
    const Tensor ids = Tensor::from_vector(documents(rng, 2, s.kv_len), {2, s.kv_len});
    const Tensor prefix = Tensor::from_vector(std::vector<int32_t>{37, 3});
    const std::vector<std::pair<std::string, Mod>> masks = {
        {"causal", causal_mod()},
        {"causal_bottom_right", causal_bottom_right_mod()},
        {"sliding_window causal", sliding_window_mod(40, true)},
        {"sliding_window symmetric", sliding_window_mod(25, false)},
        {"prefix_lm", prefix_lm_mod(prefix)},
        {"document", document_mask_mod(ids)},
        {"document & causal", and_masks({document_mask_mod(ids), causal_mod()})},
    };
    for (const auto& [name, mask] : masks) {
      CAPTURE(name);
      check_map(mask, s, true);
    }
  }
}

TEST_CASE("a document mask's map lists only the key tiles of the query tile's documents", "[runtime][tilemap]") {
  // Four documents of 256 in 1024 positions, tiles of 128 x 128: each query tile sees its own
  // document's two key tiles, FULL (the ids are constant in every tile).
  std::vector<int32_t> ids;
  for (int i = 0; i < 1024; ++i) ids.push_back(i / 256);
  const Mod mask = document_mask_mod(Tensor::from_vector(ids, {1, 1024}));
  const TileMapShape s{1, 16, 16, 1024, 1024, 0, 128, 128};
  const TileMap map = build_tile_map_cpu(mask, s);
  CHECK(map.head_stride() == 0);  // the document mask does not read h: one row per query tile
  CHECK(map.counts().numel() == 8);
  CHECK(map.live_tiles() == 16);
  for (int qt = 0; qt < 8; ++qt) {
    for (int kt = 0; kt < 8; ++kt) CHECK(map.tile_class(0, 7, qt, kt) == (qt / 2 == kt / 2 ? 1 : 0));
  }
  // Its summaries: the ids' minima and maxima over blocks of 128 positions.
  const ir::TileMapClassifier classifier = ir::build_tile_map_classifier(mask.def(), 128, 128);
  REQUIRE(classifier.summaries.size() == 1);
  CHECK(classifier.summaries[0].block == std::vector<int64_t>{1, 128});
  CHECK_FALSE(classifier.reads_head);
  CHECK(classifier.reads_batch);
  // Causal reads no tensor and neither b nor h: one row per query tile, no summaries.
  const ir::TileMapClassifier causal = ir::build_tile_map_classifier(causal_mod().def(), 128, 128);
  CHECK(causal.summaries.empty());
  CHECK_FALSE(causal.reads_batch);
  CHECK(build_tile_map_cpu(causal_mod(), s).counts().numel() == 8);
}

TEST_CASE("block summaries are the minima and maxima of each block", "[runtime][tilemap]") {
  std::mt19937 rng(3);
  std::uniform_int_distribution<int> value(-50, 50);
  std::vector<float> values(3 * 37);
  for (float& v : values) v = float(value(rng));
  values[5] = NAN;  // skipped, as fminf / fmaxf skip it
  const Tensor source = Tensor::from_vector(values, {3, 37}, DType::BF16);
  const int64_t block[2] = {2, 8};
  const Tensor minima = summarize_blocks(source, ir::Type::Float, block, true);
  const Tensor maxima = summarize_blocks(source, ir::Type::Float, block, false);
  REQUIRE(minima.shape() == std::vector<int64_t>{2, 5});
  for (int64_t i = 0; i < 2; ++i) {
    for (int64_t j = 0; j < 5; ++j) {
      float lo = INFINITY, hi = -INFINITY;
      for (int64_t r = 2 * i; r < std::min<int64_t>(3, 2 * i + 2); ++r) {
        for (int64_t c = 8 * j; c < std::min<int64_t>(37, 8 * j + 8); ++c) {
          const float v = source.get_float({r, c});
          if (std::isnan(v)) continue;
          lo = std::min(lo, v);
          hi = std::max(hi, v);
        }
      }
      CHECK(minima.get_float({i, j}) == lo);
      CHECK(maxima.get_float({i, j}) == hi);
    }
  }
}

TEST_CASE("a tile map refuses calls it was not built for", "[runtime][tilemap]") {
  const Tensor ids = Tensor::from_vector(std::vector<int32_t>(2 * 64, 0), {2, 64});
  const Mod doc = document_mask_mod(ids);
  const TileMapShape s{2, 2, 2, 64, 64, 0, 128, 128};
  const TileMap map = build_tile_map_cpu(doc, s);
  CHECK_NOTHROW(map.check_matches("attention", doc, s));
  TileMapShape other = s;
  other.q_offset = 5;
  CHECK_THROWS_WITH(map.check_matches("attention", doc, other),
                    Catch::Contains("q_offset=0") && Catch::Contains("q_offset=5"));
  const Mod doc2 = document_mask_mod(Tensor::from_vector(std::vector<int32_t>(2 * 64, 1), {2, 64}));
  CHECK_THROWS_WITH(map.check_matches("attention", doc2, s), Catch::Contains("another argument for parameter 'ids'"));
  CHECK_THROWS_WITH(map.check_matches("attention", causal_mod(), s), Catch::Contains("not for the call's"));
  const TileMap window = build_tile_map_cpu(sliding_window_mod(8, true), s);
  CHECK_THROWS_WITH(window.check_matches("attention", sliding_window_mod(9, true), s),
                    Catch::Contains("parameter 'window'"));
}
