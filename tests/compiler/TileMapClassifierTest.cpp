// compiler/TileMapClassifier.h: which tensors get block summaries and with which blocks, the
// parameters it adds, and a rewritten classifier evaluated on summaries against the box-walking one.
// (Maps built from it are checked element by element in tests/runtime/tilemap/.)

#include "compiler/TileMapClassifier.h"

#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "compiler/Frontend.h"
#include "compiler/Pipeline.h"
#include "compiler/Prelude.h"
#include "compiler/TileClassifier.h"

using namespace attnc::ir;

namespace {

ModDef prelude_mask(const char* name) {
  const Module& prelude = prelude_module();
  return optimize(prelude, *prelude.find(name));
}

}  // namespace

TEST_CASE("tile-map classifiers summarise the tensors a mask indexes by tile", "[tile-classifier][tilemap]") {
  SECTION("document ids: by query and by key tile, so blocks of their gcd; one row per batch") {
    const ModDef doc = prelude_mask("document");
    const TileMapClassifier c = build_tile_map_classifier(doc, 128, 128);
    REQUIRE(c.summaries.size() == 1);
    CHECK(c.summaries[0].param == 0);
    CHECK(c.summaries[0].block == std::vector<int64_t>{1, 128});
    CHECK(c.summaries[0].min_param == 1);
    CHECK(c.summaries[0].max_param == 2);
    REQUIRE(c.params.size() == 3);
    CHECK(c.params[1].elem == Type::Int);
    CHECK(c.params[1].rank() == 2);
    CHECK(c.reads_batch);
    CHECK_FALSE(c.reads_head);
    CHECK(build_tile_map_classifier(doc, 128, 80).summaries[0].block == std::vector<int64_t>{1, 16});
  }
  SECTION("masks without tensors, or indexing them by b only, keep the classifier as it is") {
    for (const char* name : {"causal", "sliding_window_causal", "prefix_lm"}) {
      CAPTURE(name);
      const ModDef mask = prelude_mask(name);
      const TileMapClassifier c = build_tile_map_classifier(mask, 64, 32);
      CHECK(c.summaries.empty());
      CHECK(c.params.size() == mask.params.size());
      CHECK(equal(c.expr, build_tile_classifier(mask)));
      CHECK_FALSE(c.reads_head);
    }
  }
}

TEST_CASE("a tile-map classifier on block summaries classifies aligned tiles as the box walk does",
          "[tile-classifier][tilemap]") {
  // ids (1 x 16) in blocks of 4: documents 0 0 0 0 | 0 0 1 1 | 1 1 1 1 | 2 2 2 2.
  const ModDef doc = prelude_mask("document");
  const TileMapClassifier c = build_tile_map_classifier(doc, 4, 4);
  std::vector<int32_t> ids = {0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2};
  std::vector<int32_t> minima = {0, 0, 1, 2}, maxima = {0, 1, 1, 2};
  Environment env;
  env.params = {TensorArg{ids.data(), attnc::DType::I32, {1, 16}, {16, 1}},
                TensorArg{minima.data(), attnc::DType::I32, {1, 4}, {4, 1}},
                TensorArg{maxima.data(), attnc::DType::I32, {1, 4}, {4, 1}}};
  env.set_sizes(16, 16, 1, 1);
  env.set_point(0, 0, 0, 0);
  const CompiledExpr summarised(c.expr);
  const TileClassifier direct(doc);
  for (int qt = 0; qt < 4; ++qt) {
    for (int kt = 0; kt < 4; ++kt) {
      CAPTURE(qt, kt);
      env.set(Builtin::QTileFirst, Value::of_int(4 * qt));
      env.set(Builtin::QTileLast, Value::of_int(4 * qt + 3));
      env.set(Builtin::KvTileFirst, Value::of_int(4 * kt));
      env.set(Builtin::KvTileLast, Value::of_int(4 * kt + 3));
      const auto expected = static_cast<int32_t>(direct.classify(env, 4 * qt, 4 * qt + 3, 4 * kt, 4 * kt + 3));
      CHECK(summarised.evaluate(env).as_int() == expected);
    }
  }
}
