// attnc explain, as a process: the printed tile grid of causal, sliding-window and document masks
// equals a brute-force classification through the interpreter (tests/support/BruteForceTiles.h),
// the numbers printed are the grid's, the element mask of a small call is the interpreter's, the SVG
// is well-formed XML with one rect per tile, and wrong command lines are usage errors.

#include <algorithm>
#include <filesystem>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include <fmt/format.h>

#include "tests/tools/AttncProcess.h"

#include "compiler/Frontend.h"
#include "runtime/core/Mod.h"
#include "runtime/core/Npy.h"
#include "tests/support/BruteForceTiles.h"

#ifdef ATTNC_HAVE_LIBXML2
#include <libxml/parser.h>
#endif

namespace fs = std::filesystem;

namespace {

using attnc_test::quoted;
using attnc_test::run_attnc;
using attnc_test::slurp;
using Result = attnc_test::AttncResult;

struct TempDirectory : attnc_test::TempDirectory {
  TempDirectory() : attnc_test::TempDirectory("attnc-explain-cli") {}
};

const fs::path kSeed = fs::path(ATTNC_SOURCE_DIR) / "examples" / "seed.attn";

// The grid printed after `heading`: the two-space-indented lines up to the next blank line, as
// 0 EMPTY / 1 FULL / 2 PARTIAL, row-major; `rows` and `cols` receive its size.
std::vector<int> printed_grid(const std::string& out, const std::string& heading, int& rows, int& cols) {
  std::istringstream in(out.substr(out.find(heading + ":\n") + heading.size() + 2));
  std::vector<int> classes;
  rows = cols = 0;
  for (std::string line; std::getline(in, line) && line.starts_with("  ");) {
    cols = int(line.size()) - 2;
    ++rows;
    for (char c : line.substr(2)) classes.push_back(c == '.' ? 0 : c == '#' ? 1 : c == '+' ? 2 : -1);
  }
  return classes;
}

attnc::Mod seed_mask(const std::string& name) {
  return attnc::Mod::from_module(attnc::ir::load_module_file(kSeed.string()), name);
}

}  // namespace

TEST_CASE("attnc explain prints the brute-force tile classes of causal, window and document masks", "[cli][explain]") {
  TempDirectory scratch;
  // Five documents of uneven lengths over 300 positions, for one batch row.
  std::vector<int32_t> ids;
  for (int i = 0; i < 300; ++i) ids.push_back(i < 70 ? 0 : i < 75 ? 1 : i < 190 ? 2 : i < 191 ? 3 : 4);
  const fs::path ids_path = scratch.path() / "ids.npy";
  attnc::write_npy(ids_path.string(), attnc::Tensor::from_vector(ids, {1, 300}));

  struct Case {
    std::string mask, args;
    int q_len, kv_len, q_offset, tile_q, tile_kv;
  };
  const std::vector<Case> cases = {
      {"causal", "", 300, 300, 0, 64, 64},
      {"causal", "", 100, 300, 200, 32, 48},
      {"sliding_window", "--arg window=40", 300, 300, 0, 32, 16},
      {"sliding_window", "--arg window=100", 257, 257, 0, 128, 128},
      {"document", "--arg ids=" + quoted(ids_path), 300, 300, 0, 16, 32},
  };
  for (const Case& c : cases) {
    CAPTURE(c.mask, c.args, c.q_len, c.kv_len, c.q_offset, c.tile_q, c.tile_kv);
    const std::string args = "explain " + quoted(kSeed) + " --mask-mod " + c.mask + " " + c.args + " --q-len " +
                             std::to_string(c.q_len) + " --kv-len " + std::to_string(c.kv_len) + " --q-offset " +
                             std::to_string(c.q_offset) + " --tile-q " + std::to_string(c.tile_q) + " --tile-kv " +
                             std::to_string(c.tile_kv);
    Result r = run_attnc(args, scratch.path());
    CAPTURE(r.out, r.err);
    REQUIRE(r.status == 0);

    attnc::Mod mask = seed_mask(c.mask);
    if (c.mask == "sliding_window") mask.bind("window", int32_t(std::stoi(c.args.substr(c.args.find('=') + 1))));
    if (c.mask == "document") mask.bind("ids", attnc::read_npy(ids_path.string()));
    const attnc::TileMapShape shape{1, 1, 1, c.q_len, c.kv_len, c.q_offset, c.tile_q, c.tile_kv};
    const std::vector<int> truth = attnc::test::classify_tiles_by_elements(mask, shape, 0, 0);
    // The document mask reads b, so its map is per batch row (one here).
    const std::string heading =
        c.mask == "document" ? "tile map for b=0, every h" : "tile map (the same for every b and h)";
    int rows = 0, cols = 0;
    const std::vector<int> printed = printed_grid(r.out, heading, rows, cols);
    CHECK(rows == shape.q_tiles());
    CHECK(cols == shape.kv_tiles());
    CHECK(printed == truth);

    const auto count = [&](int value) { return std::count(truth.begin(), truth.end(), value); };
    CHECK_THAT(r.out, Catch::Contains(fmt::format("tiles: {} EMPTY, {} FULL, {} PARTIAL of {}\n", count(0), count(1),
                                                  count(2), truth.size())));
    const int64_t kept = attnc::test::count_kept_elements(mask, shape, 0, 0);
    CHECK_THAT(r.out, Catch::Contains(fmt::format("elements the mask keeps: {:.2f}% (every element evaluated)",
                                                  100.0 * double(kept) / (double(c.q_len) * c.kv_len))));
  }
}

TEST_CASE("attnc explain prints the element mask of a small call and draws the map as SVG", "[cli][explain]") {
  TempDirectory scratch;
  const fs::path svg = scratch.path() / "map.svg";
  Result r = run_attnc("explain " + quoted(kSeed) +
                           " --mask-mod sliding_window --arg window=3 --q-len 6 --kv-len 7 "
                           "--tile-q 4 --tile-kv 4 --svg " +
                           quoted(svg),
                       scratch.path());
  CAPTURE(r.out, r.err);
  REQUIRE(r.status == 0);
  CHECK_THAT(r.out, Catch::Contains("element mask: q rows down, kv columns across, '#' kept:\n"
                                    "  #......\n  ##.....\n  ###....\n  .###...\n  ..###..\n  ...###.\n"));
  CHECK_THAT(r.out, Catch::Contains("tiles: 1 EMPTY, 0 FULL, 3 PARTIAL of 4"));
  CHECK_THAT(r.out, Catch::Contains("elements the mask keeps: 35.71%"));  // 15 of 42
  const std::string text = slurp(svg);
  size_t rects = 0;
  for (size_t at = text.find("<rect"); at != std::string::npos; at = text.find("<rect", at + 1)) ++rects;
  CHECK(rects == 4);
#ifdef ATTNC_HAVE_LIBXML2
  xmlDocPtr doc = xmlReadMemory(text.data(), int(text.size()), "map.svg", nullptr, XML_PARSE_NONET);
  CHECK(doc != nullptr);
  xmlFreeDoc(doc);
#else
  WARN("libxml2 was not found at build time: the SVG was not parsed");
#endif
}

TEST_CASE("attnc explain refuses wrong command lines and mods before doing any work", "[cli][explain]") {
  TempDirectory scratch;
  auto [args, status, message] = GENERATE(table<std::string, int, std::string>({
      {"--mask-mod causal --q-len 10", 2, "--q-len and --kv-len are required"},
      {"--q-len 10 --kv-len 10", 2, "--mask-mod NAME is required"},
      {"--mask-mod causal --q-len 0 --kv-len 10", 2, "--q-len takes an integer of at least 1"},
      {"--mask-mod causal --q-len 8 --kv-len 8 --tile-q x", 2, "--tile-q takes an integer"},
      {"--mask-mod causal --q-len 8 --kv-len 8 --arg w=1", 2, "has no parameter named 'w'"},
      {"--mask-mod sliding_window --q-len 8 --kv-len 8", 3, "not bound; pass --arg window=..."},
      {"--mask-mod alibi --q-len 8 --kv-len 8", 3, "explain takes a mask_mod"},
      {"--mask-mod nothing --q-len 8 --kv-len 8", 3, "no mod named 'nothing'"},
      {"--mask-mod causal --q-len 8 --kv-len 8 --svg /nonexistent/x.svg", 3, "does not exist"},
  }));
  CAPTURE(args);
  Result r = run_attnc("explain " + quoted(kSeed) + " " + args, scratch.path());
  CAPTURE(r.out, r.err);
  CHECK(r.status == status);
  CHECK_THAT(r.err, Catch::Contains(message));
  CHECK(r.out.empty());
}
