#pragma once
// KV caches for decoding: the state a model keeps between steps, and the bookkeeping on it. Two
// layouts, after attnax's:
//
// - KVLayerCache: one layer's K (B, Hkv, max_len, D) and V (B, Hkv, max_len, Dv), contiguous, and each
//   sequence's length; sequence b's tokens are rows 0 .. length(b) - 1.
// - PagedKVCache: per layer a K pool (pages, Hkv, page_size, D) and a V pool, one block table
//   (max_sequences, max_pages_per_sequence) of page numbers shared by the layers (a sequence's page i
//   holds its tokens i P .. i P + P - 1 in every layer), a free list of pages, and per layer each
//   sequence's length.
//
// This file only holds the state and its host-side rules: lengths, the free list, the host copy of
// the block table, and what an append or an attention call would read and write (as KvSource and
// rows, runtime/core/KvSource.h), each refusing with a RuntimeError what would go past the cache.
// Creating caches on a device, writing new tokens, reading them back and attention through a cache
// are runtime/Decoding.h's, which run the decode family's kernels over these descriptions.
//
// Positions: a query of q_len rows through a cache is placed at position length - q_len of its
// sequence (the new tokens are the last q_len ones, appended before the call), so the mods see the
// same q_idx as in a prefill of the whole sequence (docs/semantics.md, "Queries through a KV cache").
// Caches are movable, not copyable: a copy would share the tensors but not the lengths.

#include <cstdint>
#include <span>
#include <vector>

#include "compiler/DType.h"
#include "runtime/core/KvSource.h"
#include "runtime/core/Tensor.h"

namespace attnc {

// One row of new tokens to write: `count` of them into KV row (sequence) `kv_row` from position
// `start` on.
struct KvAppendRow {
  int32_t kv_row = 0, start = 0, count = 0;
};

// The position of the first of q_len query rows in a sequence of `length` tokens: length - q_len, or
// 0 when the sequence holds fewer tokens than the query has rows (nothing appended yet).
int32_t query_position(int32_t length, int64_t q_len);

class KVLayerCache {
 public:
  KVLayerCache() = default;
  // Over storage already allocated: k (B, Hkv, max_len, D) and v (B, Hkv, max_len, Dv) of one float
  // dtype on one device. Every length starts at 0. RuntimeError for mismatched tensors.
  KVLayerCache(Tensor k, Tensor v);
  KVLayerCache(KVLayerCache&&) = default;
  KVLayerCache& operator=(KVLayerCache&&) = default;
  KVLayerCache(const KVLayerCache&) = delete;
  KVLayerCache& operator=(const KVLayerCache&) = delete;

  const Tensor& k() const { return k_; }
  const Tensor& v() const { return v_; }
  int64_t batch() const { return k_.defined() ? k_.size(0) : 0; }
  int64_t kv_heads() const { return k_.size(1); }
  int64_t max_len() const { return k_.size(2); }
  int64_t head_dim() const { return k_.size(3); }
  int64_t value_dim() const { return v_.size(3); }
  DType dtype() const { return k_.dtype(); }
  Device device() const { return k_.device(); }
  std::span<const int32_t> lengths() const { return lengths_; }
  int32_t length(int64_t sequence) const;

  // Where new tokens (B, Hkv, T, .) go: `counts[b]` of row b's T tokens (every T when empty) after
  // sequence b's current length. RuntimeError when a count is negative or above T, or a sequence
  // would pass max_len ("appending past capacity"). Changes nothing.
  std::vector<KvAppendRow> plan_append(int64_t new_len, std::span<const int32_t> counts) const;
  // Advances the lengths by a plan's counts (after the tokens were written).
  void commit_append(std::span<const KvAppendRow> rows);
  // Sets sequence b back to `length` tokens (<= its length), e.g. after rejected speculative tokens.
  void truncate(int64_t sequence, int32_t length);

  // The cache as attention reads it, and the rows of a query of q_len rows per sequence (every
  // sequence, in order): kv_len = length, q_offset = query_position(length, q_len).
  KvSource source() const;
  std::vector<KvBatchRow> batch_rows(int64_t q_len) const;

 private:
  Tensor k_, v_;
  std::vector<int32_t> lengths_;
};

struct PagedKVCacheConfig {
  int num_layers = 1;
  int64_t num_pages = 0;   // per layer
  int32_t page_size = 16;  // tokens per page: 16, 32, 64 or 128
  int64_t kv_heads = 0;
  int64_t head_dim = 0;
  int64_t value_dim = 0;  // 0: head_dim
  DType dtype = DType::BF16;
  Device device = Device::Cpu;
  int64_t max_sequences = 0;
  int64_t max_pages_per_sequence = 0;  // the block table's width
};

class PagedKVCache {
 public:
  // The number the block table holds for a page not (yet) allocated.
  static constexpr int32_t kNoPage = -1;

  PagedKVCache() = default;
  // Over pools already allocated, one K and one V pool per layer, each (num_pages, kv_heads,
  // page_size, head_dim / value_dim) of the config's dtype on its device, and `device_block_table`:
  // an int32 (max_sequences, max_pages_per_sequence) tensor on the device (undefined for CPU caches,
  // which read the host table in place). Every page starts free. RuntimeError for a config outside
  // the ranges above or pools that do not match it.
  PagedKVCache(PagedKVCacheConfig config, std::vector<Tensor> k_pools, std::vector<Tensor> v_pools,
               Tensor device_block_table = {});
  // RuntimeError for a config outside the ranges of PagedKVCacheConfig (before anything is allocated).
  static void check_config(const PagedKVCacheConfig& config);

  PagedKVCache(PagedKVCache&&) = default;
  PagedKVCache& operator=(PagedKVCache&&) = default;
  PagedKVCache(const PagedKVCache&) = delete;
  PagedKVCache& operator=(const PagedKVCache&) = delete;

  const PagedKVCacheConfig& config() const { return config_; }
  const Tensor& k_pool(int layer) const;
  const Tensor& v_pool(int layer) const;
  // The block table as the kernels read it (on the cache's device) and its host copy, row-major.
  const Tensor& block_table() const { return block_table_; }
  std::span<const int32_t> host_block_table() const { return table_; }
  // The pages of a sequence, in token order, and its capacity (pages x page size).
  std::span<const int32_t> pages(int32_t sequence) const;
  int64_t capacity(int32_t sequence) const;
  int32_t length(int layer, int32_t sequence) const;
  int64_t free_pages() const { return static_cast<int64_t>(free_.size()); }

  // Grows sequence's pages from the free list until it holds `tokens` tokens (never shrinks).
  // RuntimeError, changing nothing, when the free list or the sequence's block-table row runs out.
  // Returns whether the block table changed (a device copy must then be refreshed).
  bool allocate(int32_t sequence, int64_t tokens);
  // Returns the sequence's pages to the free list and sets its length to 0 in every layer.
  void release(int32_t sequence);
  // Makes the free pages be handed out in `order` (order[0] first), which must name every free page
  // exactly once: a scattered block table on purpose, so that callers (`attnc run --paged`, tests)
  // can show that nothing depends on where a sequence's pages lie. RuntimeError, changing nothing,
  // for any other list.
  void reorder_free_pages(std::span<const int32_t> order);
  // Cuts the sequence to at most `length` tokens (>= 0) in every layer, e.g. after rejected
  // speculative tokens; its pages stay allocated.
  void truncate(int32_t sequence, int32_t length);

  // Where new tokens (N, Hkv, T, .) of layer `layer` go: counts[n] (every T when empty) of row n's
  // tokens after sequence sequences[n]'s length, within its allocated pages. RuntimeError for a bad
  // layer or sequence, a repeated sequence, a count below 0 or above T, or an append past the
  // sequence's allocated capacity. Changes nothing.
  std::vector<KvAppendRow> plan_append(int layer, std::span<const int32_t> sequences, int64_t new_len,
                                       std::span<const int32_t> counts) const;
  void commit_append(int layer, std::span<const KvAppendRow> rows);

  // Layer `layer` as attention reads it (the block table with its host copy), and the rows of a
  // query of q_len rows for the given sequences: kv_len = length, q_offset = query_position.
  KvSource source(int layer) const;
  std::vector<KvBatchRow> batch_rows(int layer, std::span<const int32_t> sequences, int64_t q_len) const;

  // Whether the block table changed since the device copy was last refreshed (mark_synced).
  bool table_dirty() const { return dirty_; }
  void mark_synced() { dirty_ = false; }

 private:
  void check_layer(int layer, const char* function) const;
  void check_sequence(int32_t sequence, const char* function) const;

  PagedKVCacheConfig config_;
  std::vector<Tensor> k_pools_, v_pools_;
  std::vector<int32_t> table_;       // max_sequences x max_pages_per_sequence, kNoPage when unused
  std::vector<int32_t> page_count_;  // pages per sequence
  std::vector<int32_t> lengths_;     // num_layers x max_sequences
  std::vector<int32_t> free_;        // a stack: the next page handed out is at the back
  Tensor block_table_;
  bool dirty_ = false;
};

}  // namespace attnc
