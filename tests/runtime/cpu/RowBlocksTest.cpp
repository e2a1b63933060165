// The gemm micro-kernels' row blocking (runtime/cpu/RowBlocks.h).

#include "runtime/cpu/RowBlocks.h"

#include <catch2/catch.hpp>

#include <utility>
#include <vector>

using attnc::cpu::for_each_row_block;

namespace {

std::vector<std::pair<int32_t, int32_t>> blocks_of(int32_t m, int32_t block) {
  std::vector<std::pair<int32_t, int32_t>> out;
  for_each_row_block(m, block, [&](int32_t first, int32_t rows) { out.emplace_back(first, rows); });
  return out;
}

}  // namespace

TEST_CASE("row blocks cover every row once, in order, no block under 3 rows once there are 6",
          "[runtime][cpu][kernels]") {
  for (int32_t m = 0; m <= 200; ++m) {
    CAPTURE(m);
    const auto blocks = blocks_of(m, 6);
    int32_t next = 0;
    for (const auto& [first, rows] : blocks) {
      CHECK(first == next);
      CHECK(rows >= 1);
      CHECK(rows <= 6);
      if (m >= 6) CHECK(rows >= 3);  // a remainder of 1 makes 6 + 1 into 4 + 3
      next = first + rows;
    }
    CHECK(next == m);
  }
}

TEST_CASE("64 rows in blocks of 6 are nine blocks of 6 and two of 5", "[runtime][cpu][kernels]") {
  const auto blocks = blocks_of(64, 6);
  REQUIRE(blocks.size() == 11);
  for (int i = 0; i < 9; ++i) CHECK(blocks[size_t(i)].second == 6);
  CHECK(blocks[9] == std::pair<int32_t, int32_t>{54, 5});
  CHECK(blocks[10] == std::pair<int32_t, int32_t>{59, 5});
  CHECK(blocks_of(5, 6) == std::vector<std::pair<int32_t, int32_t>>{{0, 5}});
  CHECK(blocks_of(12, 6) == std::vector<std::pair<int32_t, int32_t>>{{0, 6}, {6, 6}});
}
