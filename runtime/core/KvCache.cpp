#include "runtime/core/KvCache.h"

#include <algorithm>
#include <limits>

#include <fmt/format.h>

#include "runtime/core/RuntimeError.h"

namespace attnc {

namespace {

// counts[n] for a row of T new tokens (T when no counts are given), checked.
int32_t count_of(const char* function, std::span<const int32_t> counts, size_t n, int64_t new_len) {
  const int64_t count = counts.empty() ? new_len : counts[n];
  if (count < 0 || count > new_len) {
    throw RuntimeError(fmt::format("{}: row {} appends {} tokens; it must be between 0 and the {} new tokens given",
                                   function, n, count, new_len));
  }
  return static_cast<int32_t>(count);
}

void check_counts_size(const char* function, std::span<const int32_t> counts, size_t rows) {
  if (!counts.empty() && counts.size() != rows) {
    throw RuntimeError(
        fmt::format("{}: {} counts were given for {} rows of new tokens", function, counts.size(), rows));
  }
}

void check_pool(const Tensor& t, const char* role, int layer, const PagedKVCacheConfig& c, int64_t dim) {
  const std::vector<int64_t> shape{c.num_pages, c.kv_heads, c.page_size, dim};
  if (!t.defined() || t.shape() != shape || t.dtype() != c.dtype || t.device() != c.device) {
    throw RuntimeError(fmt::format("paged KV cache: the {} pool of layer {} must be {} {} on {}, got {}", role, layer,
                                   dtype_name(c.dtype), shape_to_string(shape), device_name(c.device),
                                   t.defined() ? t.describe() : std::string("an undefined tensor")));
  }
}

}  // namespace

int32_t query_position(int32_t length, int64_t q_len) {
  return length > q_len ? static_cast<int32_t>(length - q_len) : 0;
}

// ---------------------------------------------------------------------------------------------
// KVLayerCache

KVLayerCache::KVLayerCache(Tensor k, Tensor v) : k_(std::move(k)), v_(std::move(v)) {
  if (!k_.defined() || !v_.defined() || k_.rank() != 4 || v_.rank() != 4) {
    throw RuntimeError("KV layer cache: k and v must be defined tensors of rank 4 (B, Hkv, max_len, D)");
  }
  if (k_.size(0) != v_.size(0) || k_.size(1) != v_.size(1) || k_.size(2) != v_.size(2) || k_.dtype() != v_.dtype() ||
      k_.device() != v_.device() || !dtype_is_float(k_.dtype())) {
    throw RuntimeError(
        fmt::format("KV layer cache: k {} and v {} must agree in batch, heads, length, dtype (a float "
                    "type) and device",
                    k_.describe(), v_.describe()));
  }
  if (k_.size(2) > std::numeric_limits<int32_t>::max()) {
    throw RuntimeError(fmt::format("KV layer cache: max_len {} exceeds the int range of positions", k_.size(2)));
  }
  lengths_.assign(static_cast<size_t>(k_.size(0)), 0);
}

int32_t KVLayerCache::length(int64_t sequence) const {
  if (sequence < 0 || sequence >= batch()) {
    throw RuntimeError(fmt::format("KV layer cache: sequence {} is outside the batch of {}", sequence, batch()));
  }
  return lengths_[static_cast<size_t>(sequence)];
}

std::vector<KvAppendRow> KVLayerCache::plan_append(int64_t new_len, std::span<const int32_t> counts) const {
  constexpr const char* kFunction = "append_kv";
  check_counts_size(kFunction, counts, lengths_.size());
  std::vector<KvAppendRow> rows;
  for (size_t b = 0; b < lengths_.size(); ++b) {
    const int32_t count = count_of(kFunction, counts, b, new_len);
    if (int64_t{lengths_[b]} + count > max_len()) {
      throw RuntimeError(
          fmt::format("{}: appending {} tokens to sequence {} of length {} goes past the cache's "
                      "capacity of {} tokens",
                      kFunction, count, b, lengths_[b], max_len()));
    }
    rows.push_back({static_cast<int32_t>(b), lengths_[b], count});
  }
  return rows;
}

void KVLayerCache::commit_append(std::span<const KvAppendRow> rows) {
  for (const KvAppendRow& row : rows) lengths_[static_cast<size_t>(row.kv_row)] = row.start + row.count;
}

void KVLayerCache::truncate(int64_t sequence, int32_t length) {
  const int32_t current = this->length(sequence);
  if (length < 0 || length > current) {
    throw RuntimeError(fmt::format("KV layer cache: sequence {} has {} tokens and cannot be truncated to {}", sequence,
                                   current, length));
  }
  lengths_[static_cast<size_t>(sequence)] = length;
}

KvSource KVLayerCache::source() const {
  KvSource kv;
  kv.k = k_;
  kv.v = v_;
  return kv;
}

std::vector<KvBatchRow> KVLayerCache::batch_rows(int64_t q_len) const {
  std::vector<KvBatchRow> rows;
  for (size_t b = 0; b < lengths_.size(); ++b) {
    rows.push_back({static_cast<int32_t>(b), lengths_[b], query_position(lengths_[b], q_len)});
  }
  return rows;
}

// ---------------------------------------------------------------------------------------------
// PagedKVCache

void PagedKVCache::check_config(const PagedKVCacheConfig& config) {
  PagedKVCacheConfig c = config;
  if (c.value_dim == 0) c.value_dim = c.head_dim;
  if (c.page_size != 16 && c.page_size != 32 && c.page_size != 64 && c.page_size != 128) {
    throw RuntimeError(
        fmt::format("paged KV cache: the page size must be 16, 32, 64 or 128 tokens, got {}", c.page_size));
  }
  if (c.num_layers < 1 || c.num_pages < 1 || c.kv_heads < 1 || c.head_dim < 1 || c.value_dim < 1 ||
      c.max_sequences < 1 || c.max_pages_per_sequence < 1) {
    throw RuntimeError(fmt::format(
        "paged KV cache: layers ({}), pages ({}), KV heads ({}), head dims ({}, {}), sequences ({}) and pages per "
        "sequence ({}) must all be at least 1",
        c.num_layers, c.num_pages, c.kv_heads, c.head_dim, c.value_dim, c.max_sequences, c.max_pages_per_sequence));
  }
  if (c.num_pages > std::numeric_limits<int32_t>::max() ||
      c.max_pages_per_sequence > std::numeric_limits<int32_t>::max() / c.page_size ||
      c.max_sequences > std::numeric_limits<int32_t>::max() / c.max_pages_per_sequence) {
    throw RuntimeError("paged KV cache: pages, sequences and positions must fit the int32 block table");
  }
  if (!dtype_is_float(c.dtype)) {
    throw RuntimeError(fmt::format("paged KV cache: the dtype must be a float type, got {}", dtype_name(c.dtype)));
  }
}

PagedKVCache::PagedKVCache(PagedKVCacheConfig config, std::vector<Tensor> k_pools, std::vector<Tensor> v_pools,
                           Tensor device_block_table)
    : config_(config), k_pools_(std::move(k_pools)), v_pools_(std::move(v_pools)) {
  check_config(config_);
  PagedKVCacheConfig& c = config_;
  if (c.value_dim == 0) c.value_dim = c.head_dim;
  if (static_cast<int>(k_pools_.size()) != c.num_layers || static_cast<int>(v_pools_.size()) != c.num_layers) {
    throw RuntimeError(fmt::format("paged KV cache: {} layers need {} K and V pools, got {} and {}", c.num_layers,
                                   c.num_layers, k_pools_.size(), v_pools_.size()));
  }
  for (int layer = 0; layer < c.num_layers; ++layer) {
    check_pool(k_pools_[static_cast<size_t>(layer)], "K", layer, c, c.head_dim);
    check_pool(v_pools_[static_cast<size_t>(layer)], "V", layer, c, c.value_dim);
  }
  table_.assign(static_cast<size_t>(c.max_sequences * c.max_pages_per_sequence), kNoPage);
  page_count_.assign(static_cast<size_t>(c.max_sequences), 0);
  lengths_.assign(static_cast<size_t>(c.num_layers * c.max_sequences), 0);
  // Pages are handed out from the back: page 0 first.
  for (int64_t page = c.num_pages - 1; page >= 0; --page) free_.push_back(static_cast<int32_t>(page));
  const std::vector<int64_t> table_shape{c.max_sequences, c.max_pages_per_sequence};
  if (c.device == Device::Cpu) {
    block_table_ = Tensor::from_data(table_.data(), DType::I32, table_shape);
  } else {
    if (!device_block_table.defined() || device_block_table.shape() != table_shape ||
        device_block_table.dtype() != DType::I32 || device_block_table.device() != c.device ||
        !device_block_table.is_contiguous()) {
      throw RuntimeError(
          fmt::format("paged KV cache: the device block table must be a contiguous int32 {} tensor "
                      "on {}",
                      shape_to_string(table_shape), device_name(c.device)));
    }
    block_table_ = std::move(device_block_table);
    dirty_ = true;
  }
}

void PagedKVCache::check_layer(int layer, const char* function) const {
  if (layer < 0 || layer >= config_.num_layers) {
    throw RuntimeError(
        fmt::format("{}: layer {} is outside the cache's {} layers", function, layer, config_.num_layers));
  }
}

void PagedKVCache::check_sequence(int32_t sequence, const char* function) const {
  if (sequence < 0 || sequence >= config_.max_sequences) {
    throw RuntimeError(
        fmt::format("{}: sequence {} is outside the cache's {} sequences", function, sequence, config_.max_sequences));
  }
}

const Tensor& PagedKVCache::k_pool(int layer) const {
  check_layer(layer, "paged KV cache");
  return k_pools_[static_cast<size_t>(layer)];
}

const Tensor& PagedKVCache::v_pool(int layer) const {
  check_layer(layer, "paged KV cache");
  return v_pools_[static_cast<size_t>(layer)];
}

std::span<const int32_t> PagedKVCache::pages(int32_t sequence) const {
  check_sequence(sequence, "paged KV cache");
  return std::span<const int32_t>(table_).subspan(static_cast<size_t>(sequence * config_.max_pages_per_sequence),
                                                  static_cast<size_t>(page_count_[static_cast<size_t>(sequence)]));
}

int64_t PagedKVCache::capacity(int32_t sequence) const {
  return static_cast<int64_t>(pages(sequence).size()) * config_.page_size;
}

int32_t PagedKVCache::length(int layer, int32_t sequence) const {
  check_layer(layer, "paged KV cache");
  check_sequence(sequence, "paged KV cache");
  return lengths_[static_cast<size_t>(layer * config_.max_sequences + sequence)];
}

bool PagedKVCache::allocate(int32_t sequence, int64_t tokens) {
  constexpr const char* kFunction = "allocate_blocks";
  check_sequence(sequence, kFunction);
  if (tokens < 0) throw RuntimeError(fmt::format("{}: {} tokens is a negative length", kFunction, tokens));
  const int64_t needed = (tokens + config_.page_size - 1) / config_.page_size;
  int32_t& have = page_count_[static_cast<size_t>(sequence)];
  if (needed <= have) return false;
  if (needed > config_.max_pages_per_sequence) {
    throw RuntimeError(fmt::format(
        "{}: sequence {} needs {} pages for {} tokens, more than the {} pages a block-table row holds ({} tokens)",
        kFunction, sequence, needed, tokens, config_.max_pages_per_sequence,
        config_.max_pages_per_sequence * config_.page_size));
  }
  if (needed - have > free_pages()) {
    throw RuntimeError(
        fmt::format("{}: sequence {} needs {} more pages for {} tokens, but only {} of the {} pages "
                    "are free",
                    kFunction, sequence, needed - have, tokens, free_pages(), config_.num_pages));
  }
  int32_t* row = table_.data() + sequence * config_.max_pages_per_sequence;
  for (; have < needed; ++have) {
    row[have] = free_.back();
    free_.pop_back();
  }
  dirty_ = config_.device != Device::Cpu;
  return true;
}

void PagedKVCache::release(int32_t sequence) {
  check_sequence(sequence, "free_blocks");
  int32_t& have = page_count_[static_cast<size_t>(sequence)];
  int32_t* row = table_.data() + sequence * config_.max_pages_per_sequence;
  // Pushed back in reverse, so the sequence's first page is the next one handed out again.
  for (int32_t i = have - 1; i >= 0; --i) {
    free_.push_back(row[i]);
    row[i] = kNoPage;
  }
  dirty_ = dirty_ || (have > 0 && config_.device != Device::Cpu);
  have = 0;
  for (int layer = 0; layer < config_.num_layers; ++layer) {
    lengths_[static_cast<size_t>(layer * config_.max_sequences + sequence)] = 0;
  }
}

void PagedKVCache::reorder_free_pages(std::span<const int32_t> order) {
  constexpr const char* kFunction = "paged KV cache: reorder_free_pages";
  if (order.size() != free_.size()) {
    throw RuntimeError(
        fmt::format("{}: the order names {} pages but {} are free", kFunction, order.size(), free_.size()));
  }
  std::vector<bool> is_free(static_cast<size_t>(config_.num_pages), false), seen(is_free.size(), false);
  for (int32_t page : free_) is_free[static_cast<size_t>(page)] = true;
  for (int32_t page : order) {
    if (page < 0 || page >= config_.num_pages || !is_free[static_cast<size_t>(page)]) {
      throw RuntimeError(fmt::format("{}: page {} is not a free page of the {}", kFunction, page, config_.num_pages));
    }
    if (seen[static_cast<size_t>(page)]) throw RuntimeError(fmt::format("{}: page {} is named twice", kFunction, page));
    seen[static_cast<size_t>(page)] = true;
  }
  // The free list is a stack handed out from the back.
  free_.assign(order.rbegin(), order.rend());
}

void PagedKVCache::truncate(int32_t sequence, int32_t length) {
  check_sequence(sequence, "paged KV cache");
  if (length < 0) {
    throw RuntimeError(fmt::format("paged KV cache: sequence {} cannot be truncated to {} tokens", sequence, length));
  }
  for (int layer = 0; layer < config_.num_layers; ++layer) {
    int32_t& current = lengths_[static_cast<size_t>(layer * config_.max_sequences + sequence)];
    current = std::min(current, length);
  }
}

std::vector<KvAppendRow> PagedKVCache::plan_append(int layer, std::span<const int32_t> sequences, int64_t new_len,
                                                   std::span<const int32_t> counts) const {
  constexpr const char* kFunction = "append_kv";
  check_layer(layer, kFunction);
  check_counts_size(kFunction, counts, sequences.size());
  std::vector<KvAppendRow> rows;
  for (size_t n = 0; n < sequences.size(); ++n) {
    const int32_t sequence = sequences[n];
    check_sequence(sequence, kFunction);
    for (size_t m = 0; m < n; ++m) {
      if (sequences[m] == sequence) {
        throw RuntimeError(
            fmt::format("{}: sequence {} appears twice (rows {} and {}) in one append", kFunction, sequence, m, n));
      }
    }
    const int32_t count = count_of(kFunction, counts, n, new_len);
    const int32_t start = length(layer, sequence);
    if (int64_t{start} + count > capacity(sequence)) {
      throw RuntimeError(
          fmt::format("{}: appending {} tokens to sequence {} of length {} goes past its capacity of {} "
                      "tokens ({} pages allocated; call allocate_blocks first)",
                      kFunction, count, sequence, start, capacity(sequence), pages(sequence).size()));
    }
    rows.push_back({sequence, start, count});
  }
  return rows;
}

void PagedKVCache::commit_append(int layer, std::span<const KvAppendRow> rows) {
  check_layer(layer, "append_kv");
  for (const KvAppendRow& row : rows) {
    lengths_[static_cast<size_t>(layer * config_.max_sequences + row.kv_row)] = row.start + row.count;
  }
}

KvSource PagedKVCache::source(int layer) const {
  KvSource kv;
  kv.k = k_pool(layer);
  kv.v = v_pool(layer);
  kv.block_table = block_table_;
  kv.page_size = config_.page_size;
  kv.host_block_table = table_;
  return kv;
}

std::vector<KvBatchRow> PagedKVCache::batch_rows(int layer, std::span<const int32_t> sequences, int64_t q_len) const {
  std::vector<KvBatchRow> rows;
  for (int32_t sequence : sequences) {
    const int32_t len = length(layer, sequence);
    rows.push_back({sequence, len, query_position(len, q_len)});
  }
  return rows;
}

}  // namespace attnc
