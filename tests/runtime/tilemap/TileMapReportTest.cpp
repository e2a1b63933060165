// Tile map reports (runtime/tilemap/TileMapReport.h) and their SVG pictures (TileMapSvg.h):
// - for causal, sliding-window and document masks, with tail tiles and several tile shapes, every
//   slice's classes equal a brute-force classification through the interpreter, and the counts,
//   the kept work and the exact kept elements are what the classes and the elements say;
// - the element-level mask is the interpreter's, and is left out above the size limit;
// - the SVG is well-formed XML (libxml2, where the build found it) with one rect per tile, each
//   of its tile's class.

#include "runtime/tilemap/TileMapReport.h"

#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "runtime/core/Mods.h"
#include "runtime/tilemap/TileMapSvg.h"
#include "tests/support/BruteForceTiles.h"

#ifdef ATTNC_HAVE_LIBXML2
#include <libxml/parser.h>
#include <libxml/tree.h>
#endif

using namespace attnc;

namespace {

// Documents of random lengths (a new one with probability 1/8 per position), per batch row.
Tensor random_documents(std::mt19937& rng, int batch, int len) {
  std::vector<int32_t> ids;
  for (int b = 0; b < batch; ++b) {
    int32_t id = 0;
    for (int i = 0; i < len; ++i) {
      if (i > 0 && std::uniform_int_distribution<int>(0, 7)(rng) == 0) ++id;
      ids.push_back(id);
    }
  }
  return Tensor::from_vector(ids, {batch, len});
}

}  // namespace

TEST_CASE("a tile map report's grid is the brute-force classification of causal, window and document masks",
          "[runtime][tilemap][explain]") {
  std::mt19937 rng(11);
  const Tensor ids = random_documents(rng, 2, 300);
  const std::vector<std::pair<std::string, Mod>> masks = {
      {"causal", causal_mod()},
      {"sliding_window 40", sliding_window_mod(40, true)},
      {"document", document_mask_mod(ids)},
  };
  // batch, heads, kv_heads, q_len, kv_len, q_offset, block_m, block_n: tails in both directions,
  // q_offset a multiple of the document ids' summary blocks (gcd of the tiles; see the next test).
  const std::vector<TileMapShape> shapes = {{1, 1, 1, 300, 300, 0, 128, 128},
                                            {2, 2, 2, 300, 300, 0, 64, 32},
                                            {2, 1, 1, 100, 300, 192, 16, 48},
                                            {1, 1, 1, 37, 53, 0, 8, 8}};
  for (const TileMapShape& s : shapes) {
    for (const auto& [name, mask] : masks) {
      CAPTURE(name, s.describe());
      const TileMapReport report = explain_tile_map(mask, s);
      const bool per_batch = name == "document";  // the only one that reads b
      REQUIRE(report.slices.size() == size_t(per_batch ? s.batch : 1));
      int64_t total_kept = 0;
      for (const TileMapSlice& slice : report.slices) {
        CAPTURE(slice.b, slice.h);
        CHECK(slice.h == -1);  // none of these reads h
        CHECK((per_batch ? slice.b >= 0 : slice.b == -1));
        const int b = std::max(slice.b, 0);
        const std::vector<int> truth = test::classify_tiles_by_elements(mask, s, b, 0);
        REQUIRE(slice.classes.size() == truth.size());
        int64_t empty = 0, full = 0, partial = 0, kept_tile_elements = 0;
        for (size_t i = 0; i < truth.size(); ++i) {
          CAPTURE(i / s.kv_tiles(), i % s.kv_tiles());
          CHECK(static_cast<int>(slice.classes[i]) == truth[i]);
          (truth[i] == 0 ? empty : truth[i] == 1 ? full : partial) += 1;
          if (truth[i] != 0) {
            const int qt = int(i) / s.kv_tiles(), kt = int(i) % s.kv_tiles();
            kept_tile_elements += int64_t(std::min(s.q_len, (qt + 1) * s.block_m) - qt * s.block_m) *
                                  (std::min(s.kv_len, (kt + 1) * s.block_n) - kt * s.block_n);
          }
        }
        CHECK(slice.empty == empty);
        CHECK(slice.full == full);
        CHECK(slice.partial == partial);
        CHECK(slice.kept_tile_elements == kept_tile_elements);
        REQUIRE(slice.kept_elements.has_value());
        CHECK(*slice.kept_elements == test::count_kept_elements(mask, s, b, 0));
        CHECK(*slice.kept_elements <= slice.kept_tile_elements);
        total_kept += *slice.kept_elements;
      }
      const double all = double(s.q_len) * s.kv_len * double(report.slices.size());
      CHECK(report.kept_element_fraction().value() == Approx(double(total_kept) / all));
      CHECK(report.kept_work_fraction() >= report.kept_element_fraction().value());
    }
  }
}

TEST_CASE("a tile map report at a misaligned q_offset is sound: what it decides is true, the rest PARTIAL",
          "[runtime][tilemap][explain]") {
  // A q_offset of 200 is not a multiple of the 16-position blocks the document ids are summarised
  // in (gcd of 16 and 48), so a query tile's box of ids is covered by blocks reaching beyond it:
  // the map may say PARTIAL where the elements are all masked (compiler/TileMapClassifier.h). That
  // is what the kernels walk, so it is what the report shows.
  std::mt19937 rng(11);
  const Mod mask = document_mask_mod(random_documents(rng, 2, 300));
  const TileMapShape s{2, 1, 1, 100, 300, 200, 16, 48};
  const TileMapReport report = explain_tile_map(mask, s);
  REQUIRE(report.slices.size() == 2);
  int coarser = 0;
  for (const TileMapSlice& slice : report.slices) {
    const std::vector<int> truth = test::classify_tiles_by_elements(mask, s, slice.b, 0);
    for (size_t i = 0; i < truth.size(); ++i) {
      CAPTURE(slice.b, i / s.kv_tiles(), i % s.kv_tiles());
      const int claimed = static_cast<int>(slice.classes[i]);
      CHECK((claimed == truth[i] || claimed == 2));
      coarser += claimed != truth[i];
    }
    CHECK(*slice.kept_elements == test::count_kept_elements(mask, s, slice.b, 0));
  }
  CHECK(coarser > 0);  // this shape does show the effect
}

TEST_CASE("a tile map report keeps the element mask of small calls only", "[runtime][tilemap][explain]") {
  const Mod mask = sliding_window_mod(3, true);
  const TileMapReport small = explain_tile_map(mask, TileMapShape{1, 1, 1, 6, 7, 0, 4, 4});
  REQUIRE(small.slices.size() == 1);
  CHECK(element_grid_text(small, small.slices[0]) ==
        "#......\n"
        "##.....\n"
        "###....\n"
        ".###...\n"
        "..###..\n"
        "...###.\n");
  // 2 x 2 tiles of 4 (tails of 2 rows and 3 keys): no tile is kept whole by a 3-key window.
  CHECK(tile_grid_text(small, small.slices[0]) == "+.\n++\n");
  CHECK(*small.slices[0].kept_elements == 15);

  TileMapReportLimits limits;
  limits.max_element_grid = 5;
  limits.max_exact_elements = 41;
  const TileMapReport larger = explain_tile_map(mask, TileMapShape{1, 1, 1, 6, 7, 0, 4, 4}, limits);
  CHECK(larger.slices[0].element_mask.empty());
  CHECK_FALSE(larger.slices[0].kept_elements.has_value());
  CHECK_FALSE(larger.kept_element_fraction().has_value());
  CHECK_THROWS_WITH(element_grid_text(larger, larger.slices[0]), Catch::Contains("no element-level mask"));
}

TEST_CASE("a tile map's SVG picture is well-formed XML with one rect per tile of its class",
          "[runtime][tilemap][explain]") {
  std::mt19937 rng(3);
  const Tensor ids = random_documents(rng, 2, 200);
  const TileMapShape s{2, 1, 1, 200, 200, 0, 32, 16};
  const TileMapReport report = explain_tile_map(document_mask_mod(ids), s);
  REQUIRE(report.slices.size() == 2);
  const std::string svg = tile_map_svg(report, "mask 'document' <of> \"test\" & more");
  // The title's markup characters are escaped.
  CHECK(svg.find("&lt;of&gt; &quot;test&quot; &amp; more") != std::string::npos);
#ifdef ATTNC_HAVE_LIBXML2
  xmlDocPtr doc = xmlReadMemory(svg.data(), int(svg.size()), "tile_map.svg", nullptr, XML_PARSE_NONET);
  REQUIRE(doc != nullptr);  // libxml2 refuses documents that are not well-formed
  xmlNodePtr root = xmlDocGetRootElement(doc);
  REQUIRE(root != nullptr);
  CHECK(std::string(reinterpret_cast<const char*>(root->name)) == "svg");
  // Every rect in document order, with its class attribute.
  std::vector<std::string> rect_classes;
  std::vector<xmlNodePtr> stack = {root};
  while (!stack.empty()) {
    xmlNodePtr node = stack.back();
    stack.pop_back();
    if (node->type != XML_ELEMENT_NODE) continue;
    if (std::string(reinterpret_cast<const char*>(node->name)) == "rect") {
      xmlChar* value = xmlGetProp(node, reinterpret_cast<const xmlChar*>("class"));
      rect_classes.push_back(value ? reinterpret_cast<const char*>(value) : "");
      xmlFree(value);
    }
    std::vector<xmlNodePtr> children;
    for (xmlNodePtr child = node->children; child != nullptr; child = child->next) children.push_back(child);
    stack.insert(stack.end(), children.rbegin(), children.rend());
  }
  xmlFreeDoc(doc);
  REQUIRE(rect_classes.size() == size_t(report.tiles_per_slice()) * report.slices.size());
  size_t i = 0;
  for (const TileMapSlice& slice : report.slices) {
    for (TileClass c : slice.classes) {
      const char* expected = c == TileClass::Empty ? "tile empty" : c == TileClass::Full ? "tile full" : "tile partial";
      CHECK(rect_classes[i++] == expected);
    }
  }
#else
  WARN("libxml2 was not found at build time: the SVG was not parsed");
#endif
  // The legend's counts.
  int64_t full = 0;
  for (const TileMapSlice& slice : report.slices) full += slice.full;
  CHECK(svg.find("FULL " + std::to_string(full) + "<") != std::string::npos);

  TileMapShape huge{1, 1, 1, 1 << 20, 1 << 20, 0, 16, 16};
  CHECK_THROWS_WITH(tile_map_svg(TileMapReport{huge, {TileMapSlice{}}}, "x"), Catch::Contains("too large to draw"));
}
