#include "distributed/Sharding.h"

#include <catch2/catch.hpp>

#include <numeric>
#include <vector>

#include "runtime/core/RuntimeError.h"
#include "tests/support/TestTensors.h"

using namespace attnc;
using namespace attnc::distributed;

namespace {

// Every position's owner, checking that the segments cover the sequence exactly once.
std::vector<int> owners(const Sharding& sharding) {
  std::vector<int> owner(static_cast<size_t>(sharding.length()), -1);
  for (int r = 0; r < sharding.ranks(); ++r) {
    int64_t local = 0;
    for (const Sharding::Segment& s : sharding.segments(r)) {
      CHECK(s.local_first == local);
      local += s.length;
      for (int64_t p = s.global_first; p < s.global_first + s.length; ++p) {
        CHECK(owner[size_t(p)] == -1);
        owner[size_t(p)] = r;
      }
    }
    CHECK(local == sharding.shard_length(r));
  }
  for (int o : owner) CHECK(o >= 0);
  return owner;
}

}  // namespace

TEST_CASE("zig-zag sharding gives rank r chunks r and 2P - 1 - r", "[distributed][sharding]") {
  const Sharding s(16, 4);
  CHECK(owners(s) == std::vector<int>{0, 0, 1, 1, 2, 2, 3, 3, 3, 3, 2, 2, 1, 1, 0, 0});
  REQUIRE(s.segments(1).size() == 2);
  CHECK(s.segments(1)[1].global_first == 12);
  CHECK(s.segments(1)[1].local_first == 2);
}

TEST_CASE("uneven lengths give shards that differ by at most two positions", "[distributed][sharding]") {
  const int64_t length = GENERATE(0, 1, 5, 37, 101);
  const int ranks = GENERATE(1, 2, 3, 4, 7);
  const ShardLayout layout = GENERATE(ShardLayout::ZigZag, ShardLayout::Contiguous);
  CAPTURE(length, ranks, shard_layout_name(layout));
  const Sharding s(length, ranks, layout);
  owners(s);
  int64_t shortest = length, longest = 0;
  for (int r = 0; r < ranks; ++r) {
    shortest = std::min(shortest, s.shard_length(r));
    longest = std::max(longest, s.shard_length(r));
  }
  CHECK(longest - shortest <= (layout == ShardLayout::ZigZag ? 2 : 1));
  CHECK(s.max_shard_length() == longest);
}

TEST_CASE("zig-zag sharding balances causal work", "[distributed][sharding]") {
  // Causal work of a position: the keys it sees. Per rank it must be within one chunk's worth.
  const int ranks = GENERATE(2, 3, 4, 8);
  const int64_t length = 64 * ranks;
  const Sharding s(length, ranks);
  const std::vector<int> owner = owners(s);
  std::vector<int64_t> work(size_t(ranks), 0);
  for (int64_t p = 0; p < length; ++p) work[size_t(owner[size_t(p)])] += p + 1;
  const auto [lo, hi] = std::minmax_element(work.begin(), work.end());
  CAPTURE(ranks, *lo, *hi);
  CHECK(double(*hi) / double(*lo) < 1.0 + 1e-9);  // exactly balanced when 2P divides the length
}

TEST_CASE("extract and place move a rank's rows out of and into a whole tensor", "[distributed][sharding]") {
  const Tensor full = test::uniform_tensor(1, DType::BF16, {2, 3, 23, 4});
  const Sharding s(23, 3);
  Tensor rebuilt = Tensor::zeros(DType::F32, {2, 3, 23, 4});
  for (int r = 0; r < 3; ++r) {
    const Tensor shard = s.extract(full, r, 2);
    CHECK(shard.shape() == std::vector<int64_t>{2, 3, s.shard_length(r), 4});
    CHECK(shard.dtype() == DType::BF16);
    s.place(shard, r, rebuilt, 2);
  }
  CHECK(rebuilt.to_float_vector() == full.to_float_vector());
  CHECK_THROWS_WITH(s.extract(Tensor::zeros(DType::F32, {2, 3, 22, 4}), 0, 2),
                    Catch::Contains("expected 23 positions along axis 2"));
  CHECK_THROWS_AS(Sharding(10, 0), RuntimeError);
}
