// The KV caches' bookkeeping (runtime/core/KvCache.h): lengths, the free list of pages, the host
// block table, append plans and the rows attention reads, with the errors for everything that would
// go past a cache.

#include "runtime/core/KvCache.h"

#include <catch2/catch.hpp>

#include <string>
#include <utility>
#include <vector>

#include "runtime/core/RuntimeError.h"

using namespace attnc;

namespace {

PagedKVCacheConfig small_config() {
  PagedKVCacheConfig c;
  c.num_layers = 2;
  c.num_pages = 5;
  c.page_size = 16;
  c.kv_heads = 2;
  c.head_dim = 8;
  c.dtype = DType::F32;
  c.max_sequences = 3;
  c.max_pages_per_sequence = 3;
  return c;
}

PagedKVCache make_paged(const PagedKVCacheConfig& c) {
  std::vector<Tensor> k, v;
  for (int layer = 0; layer < c.num_layers; ++layer) {
    k.push_back(Tensor::zeros(c.dtype, {c.num_pages, c.kv_heads, c.page_size, c.head_dim}));
    v.push_back(Tensor::zeros(c.dtype, {c.num_pages, c.kv_heads, c.page_size, c.head_dim}));
  }
  return PagedKVCache(c, std::move(k), std::move(v));
}

}  // namespace

TEST_CASE("a query through a cache sits at the end of its sequence", "[runtime][cache]") {
  CHECK(query_position(100, 1) == 99);
  CHECK(query_position(100, 4) == 96);
  CHECK(query_position(3, 4) == 0);  // fewer tokens than query rows
  CHECK(query_position(0, 1) == 0);
}

TEST_CASE("paged caches hand out pages from a free list and take them back", "[runtime][cache]") {
  PagedKVCache cache = make_paged(small_config());
  CHECK(cache.free_pages() == 5);
  CHECK(cache.allocate(0, 20));        // 2 pages
  CHECK_FALSE(cache.allocate(0, 32));  // still 2 pages
  CHECK(cache.allocate(1, 1));
  CHECK(cache.pages(0).size() == 2);
  CHECK(cache.pages(1).size() == 1);
  CHECK(cache.capacity(0) == 32);
  CHECK(cache.free_pages() == 2);
  CHECK(cache.pages(0)[0] == 0);
  CHECK(cache.pages(0)[1] == 1);
  CHECK(cache.pages(1)[0] == 2);
  // The host table holds the pages, -1 elsewhere; CPU caches read it in place.
  CHECK(cache.host_block_table()[3] == 2);
  CHECK(cache.host_block_table()[2] == PagedKVCache::kNoPage);
  CHECK(cache.block_table().get_int({1, 0}) == 2);
  CHECK_FALSE(cache.table_dirty());  // nothing to copy on the CPU

  SECTION("running out of pages or of block-table width changes nothing") {
    CHECK_THROWS_WITH(cache.allocate(2, 49), Catch::Contains("needs 4 pages for 49 tokens, more than the 3 pages"));
    CHECK_THROWS_WITH(cache.allocate(2, 48), Catch::Contains("needs 3 more pages for 48 tokens, but only 2 of the 5"));
    CHECK(cache.free_pages() == 2);
    CHECK(cache.pages(2).empty());
    CHECK_THROWS_WITH(cache.allocate(3, 1), Catch::Contains("sequence 3 is outside the cache's 3 sequences"));
    CHECK_THROWS_WITH(cache.allocate(0, -1), Catch::Contains("-1 tokens is a negative length"));
  }
  SECTION("freed pages are reused, first page first") {
    std::vector<KvAppendRow> rows = cache.plan_append(1, std::vector<int32_t>{0}, 20, {});
    cache.commit_append(1, rows);
    CHECK(cache.length(1, 0) == 20);
    CHECK(cache.length(0, 0) == 0);  // lengths are per layer
    cache.release(0);
    CHECK(cache.length(1, 0) == 0);
    CHECK(cache.free_pages() == 4);
    CHECK(cache.allocate(2, 16));
    CHECK(cache.pages(2)[0] == 0);
  }
}

TEST_CASE("the free pages can be handed out in any order the caller names", "[runtime][cache]") {
  PagedKVCache cache = make_paged(small_config());
  REQUIRE(cache.allocate(0, 16));  // page 0
  SECTION("a permutation of the free pages decides the next allocations") {
    const std::vector<int32_t> order{3, 1, 4, 2};
    cache.reorder_free_pages(order);
    CHECK(cache.allocate(1, 40));  // 3 pages
    CHECK(std::vector<int32_t>(cache.pages(1).begin(), cache.pages(1).end()) == std::vector<int32_t>{3, 1, 4});
    CHECK(cache.allocate(2, 1));
    CHECK(cache.pages(2)[0] == 2);
  }
  SECTION("anything but each free page once changes nothing") {
    const std::vector<std::pair<std::vector<int32_t>, std::string>> bad{
        {{1, 2, 3}, "the order names 3 pages but 4 are free"},
        {{0, 1, 2, 3}, "page 0 is not a free page"},
        {{1, 2, 3, 5}, "page 5 is not a free page"},
        {{1, 2, 3, -1}, "page -1 is not a free page"},
        {{1, 2, 3, 3}, "page 3 is named twice"},
    };
    for (const auto& [order, message] : bad) {
      CAPTURE(order);
      CHECK_THROWS_WITH(cache.reorder_free_pages(order), Catch::Contains(message));
    }
    CHECK(cache.allocate(1, 16));
    CHECK(cache.pages(1)[0] == 1);  // the original order: the lowest free page first
  }
}

TEST_CASE("append plans stay inside the allocated pages and refuse bad counts", "[runtime][cache]") {
  PagedKVCache cache = make_paged(small_config());
  cache.allocate(0, 20);
  cache.allocate(1, 5);
  const std::vector<int32_t> both = {1, 0};
  const std::vector<KvAppendRow> rows = cache.plan_append(0, both, 4, std::vector<int32_t>{3, 4});
  REQUIRE(rows.size() == 2);
  CHECK(rows[0].kv_row == 1);
  CHECK(rows[0].start == 0);
  CHECK(rows[0].count == 3);
  cache.commit_append(0, rows);
  CHECK(cache.length(0, 1) == 3);
  CHECK(cache.length(0, 0) == 4);

  // Sequence 1 holds 16 tokens (one page): 3 + 14 goes past it.
  CHECK_THROWS_WITH(
      cache.plan_append(0, std::vector<int32_t>{1}, 14, {}),
      Catch::Contains("appending 14 tokens to sequence 1 of length 3 goes past its capacity of 16 tokens"));
  CHECK_THROWS_WITH(cache.plan_append(0, std::vector<int32_t>{1}, 4, std::vector<int32_t>{5}),
                    Catch::Contains("row 0 appends 5 tokens; it must be between 0 and the 4 new tokens"));
  CHECK_THROWS_WITH(cache.plan_append(0, std::vector<int32_t>{1}, 4, std::vector<int32_t>{-1}),
                    Catch::Contains("row 0 appends -1 tokens"));
  CHECK_THROWS_WITH(cache.plan_append(0, std::vector<int32_t>{1, 1}, 1, {}),
                    Catch::Contains("sequence 1 appears twice"));
  CHECK_THROWS_WITH(cache.plan_append(2, both, 1, {}), Catch::Contains("layer 2 is outside the cache's 2 layers"));
  CHECK_THROWS_WITH(cache.plan_append(0, both, 1, std::vector<int32_t>{1}),
                    Catch::Contains("1 counts were given for 2 rows"));

  // Attention rows: kv_len is the length, the query sits at its end.
  const std::vector<KvBatchRow> attend = cache.batch_rows(0, std::vector<int32_t>{0, 1, 2}, 2);
  CHECK(attend[0].kv_len == 4);
  CHECK(attend[0].q_offset == 2);
  CHECK(attend[1].q_offset == 1);
  CHECK(attend[2].kv_len == 0);
  CHECK(attend[2].q_offset == 0);

  cache.truncate(0, 2);
  CHECK(cache.length(0, 0) == 2);
  CHECK(cache.length(1, 0) == 0);
  cache.truncate(1, 5);  // no layer had more: nothing changes
  CHECK(cache.length(0, 1) == 3);
  CHECK_THROWS_WITH(cache.truncate(1, -1), Catch::Contains("cannot be truncated to -1 tokens"));
}

TEST_CASE("paged cache configurations outside the supported ranges are refused", "[runtime][cache]") {
  PagedKVCacheConfig c = small_config();
  c.page_size = 24;
  CHECK_THROWS_WITH(PagedKVCache::check_config(c), Catch::Contains("page size must be 16, 32, 64 or 128"));
  c = small_config();
  c.num_pages = 0;
  CHECK_THROWS_WITH(PagedKVCache::check_config(c), Catch::Contains("must all be at least 1"));
  c = small_config();
  c.dtype = DType::I32;
  CHECK_THROWS_WITH(PagedKVCache::check_config(c), Catch::Contains("must be a float type"));
  c = small_config();
  std::vector<Tensor> k = {Tensor::zeros(DType::F32, {5, 2, 16, 8})}, v = k;
  CHECK_THROWS_WITH(PagedKVCache(c, k, v), Catch::Contains("2 layers need 2 K and V pools, got 1 and 1"));
  k.push_back(Tensor::zeros(DType::F32, {5, 2, 32, 8}));
  v.push_back(Tensor::zeros(DType::F32, {5, 2, 16, 8}));
  CHECK_THROWS_WITH(PagedKVCache(c, k, v), Catch::Contains("the K pool of layer 1 must be fp32 [5, 2, 16, 8]"));
}

TEST_CASE("contiguous caches track each sequence's length", "[runtime][cache]") {
  KVLayerCache cache(Tensor::zeros(DType::BF16, {2, 1, 6, 8}), Tensor::zeros(DType::BF16, {2, 1, 6, 4}));
  CHECK(cache.max_len() == 6);
  CHECK(cache.value_dim() == 4);
  std::vector<KvAppendRow> rows = cache.plan_append(4, std::vector<int32_t>{4, 1});
  cache.commit_append(rows);
  CHECK(cache.length(0) == 4);
  CHECK(cache.length(1) == 1);
  CHECK_THROWS_WITH(
      cache.plan_append(3, {}),
      Catch::Contains("appending 3 tokens to sequence 0 of length 4 goes past the cache's capacity of 6"));
  CHECK_THROWS_WITH(cache.plan_append(3, std::vector<int32_t>{1}), Catch::Contains("1 counts were given for 2 rows"));
  CHECK_THROWS_WITH(cache.length(2), Catch::Contains("sequence 2 is outside the batch of 2"));
  const std::vector<KvBatchRow> attend = cache.batch_rows(1);
  CHECK(attend[0].q_offset == 3);
  CHECK(attend[1].q_offset == 0);
  CHECK_THROWS_WITH(KVLayerCache(Tensor::zeros(DType::BF16, {2, 1, 6, 8}), Tensor::zeros(DType::F16, {2, 1, 6, 8})),
                    Catch::Contains("must agree in batch, heads, length, dtype"));
}
