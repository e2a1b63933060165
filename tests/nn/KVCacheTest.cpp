#include "nn/KVCache.h"

#include <catch2/catch.hpp>

#include "runtime/core/RuntimeError.h"
#include "tests/support/TestTensors.h"

using namespace attnc;
using namespace attnc::nn;

TEST_CASE("a contiguous KV cache appends positions in order and hands out views", "[nn][cache]") {
  ContiguousKVCache cache(2, 3, 10, 4, 5);
  CHECK(cache.length() == 0);
  CHECK(cache.capacity() == 10);
  const Tensor k1 = test::uniform_tensor(1, DType::F32, {2, 3, 6, 4}),
               v1 = test::uniform_tensor(2, DType::F32, {2, 3, 6, 5});
  const Tensor k2 = test::uniform_tensor(3, DType::BF16, {2, 3, 1, 4}),
               v2 = test::uniform_tensor(4, DType::F32, {2, 3, 1, 5});
  cache.append(k1, v1);
  cache.append(k2, v2);
  CHECK(cache.length() == 7);
  const Tensor keys = cache.keys(), values = cache.values();
  CHECK(keys.shape() == std::vector<int64_t>{2, 3, 7, 4});
  CHECK(values.shape() == std::vector<int64_t>{2, 3, 7, 5});
  CHECK(keys.get_float({1, 2, 3, 1}) == k1.get_float({1, 2, 3, 1}));
  CHECK(keys.get_float({0, 1, 6, 3}) == k2.get_float({0, 1, 0, 3}));
  CHECK(values.get_float({1, 0, 6, 4}) == v2.get_float({1, 0, 0, 4}));
  CHECK_THROWS_WITH(cache.append(k1, v1), Catch::Contains("6 more positions do not fit: 7 of 10 are used"));
  CHECK_THROWS_WITH(cache.append(k2, k2), Catch::Contains("KV cache: k and v must be"));
  cache.reset();
  CHECK(cache.length() == 0);
}
