#include "runtime/Decoding.h"

#include <cstring>
#include <string>

#include <fmt/format.h>

#include "runtime/core/AttentionChecks.h"
#include "runtime/core/RuntimeError.h"
#include "runtime/cuda/CudaDriver.h"
#include "runtime/cuda/DeviceTensor.h"
#include "runtime/families/decode/DecodeCpu.h"
#include "runtime/families/decode/DecodeCuda.h"
#include "runtime/families/decode/KvAppend.h"

namespace attnc {

namespace {

Tensor zeros_on(Device device, DType dtype, std::vector<int64_t> shape) {
  if (device == Device::Cpu) return Tensor::zeros(dtype, std::move(shape));
  Tensor t = cuda::empty_device_tensor(dtype, std::move(shape));
  cuda::fill_device_bytes(t, 0);
  return t;
}

void require_rank4(const char* function, const Tensor& t, const char* role) {
  if (!t.defined() || t.rank() != 4) {
    throw RuntimeError(fmt::format("{}: {} must be a rank-4 tensor, got {}", function, role,
                                   t.defined() ? t.describe() : std::string("an undefined tensor")));
  }
}

// Copies the host block table to the device's when it changed.
void sync_block_table(PagedKVCache& cache) {
  if (!cache.table_dirty()) return;
  const std::span<const int32_t> table = cache.host_block_table();
  cuda::CudaDriver::get().copy_to_device(reinterpret_cast<cuda::CuDevicePtr>(cache.block_table().data()), table.data(),
                                         table.size() * sizeof(int32_t));
  cache.mark_synced();
}

// Everything of an attention call through a cache on the cache's device, and the mods' tensors too.
void check_devices(const char* function, Device device, const Tensor& query, const Tensor& out, const Tensor* lse,
                   const AttentionOptions& options) {
  auto check = [&](const Tensor& t, const char* role) {
    if (t.defined() && t.device() != device) {
      throw RuntimeError(fmt::format("{}: the cache is on {} but {} is on {}; move every tensor to one device",
                                     function, device_name(device), role, device_name(t.device())));
    }
  };
  check(query, "the query");
  check(out, "out");
  if (lse != nullptr) check(*lse, "lse");
  check_mods_on_device(function, device, options);
  if (options.q_offset != 0) {
    throw RuntimeError(
        fmt::format("{}: options.q_offset must be 0 (got {}): the cache places each query at its "
                    "sequence's length minus q_len",
                    function, options.q_offset));
  }
}

// Attention over a KvSource on its device, by the decode family.
void attend(const char* function, const Tensor& query, const KvSource& kv, const std::vector<KvBatchRow>& rows,
            const Tensor& out, const AttentionOptions& options, Tensor* lse) {
  if (kv.k.device() == Device::Cpu) {
    decode::decode_attention(query, kv, rows, out, options, lse);
    return;
  }
  if (!decode::decode_cuda_supports(kv.k.dtype(), kv.k.size(3), kv.v.size(3))) {
    throw RuntimeError(
        fmt::format("{}: on CUDA the cache must be bf16 or fp16 with head dims the decode kernel fits on "
                    "this GPU; got k {}, v {}",
                    function, kv.k.describe(), kv.v.describe()));
  }
  decode::decode_attention_cuda(query, kv, rows, out, options, lse);
}

// Sequence rows [0, length) of head g of a (1 or more, Hkv, rows, D) CPU tensor, copied into dst.
void copy_rows(const Tensor& from, int64_t b, int64_t first_row, const Tensor& to, int64_t to_first, int64_t count) {
  const size_t element = dtype_size(to.dtype());
  for (int64_t g = 0; g < to.size(1); ++g) {
    for (int64_t j = 0; j < count; ++j) {
      for (int64_t d = 0; d < to.size(3); ++d) {
        std::memcpy(static_cast<unsigned char*>(to.data()) + to.offset({0, g, to_first + j, d}) * element,
                    static_cast<const unsigned char*>(from.data()) + from.offset({b, g, first_row + j, d}) * element,
                    element);
      }
    }
  }
}

// Page `page` of a contiguous device pool (pages, Hkv, P, D) as a host tensor (1, Hkv, P, D).
Tensor page_on_host(const Tensor& pool, int64_t page) {
  const auto* base = static_cast<const unsigned char*>(pool.data());
  const size_t element = dtype_size(pool.dtype());
  const Tensor view = Tensor::from_data(const_cast<unsigned char*>(base + page * pool.stride(0) * element),
                                        pool.dtype(), {1, pool.size(1), pool.size(2), pool.size(3)}, {}, Device::Cuda);
  return cuda::to_host(view);
}

}  // namespace

KVLayerCache init_kv_layer_cache(int64_t batch, int64_t kv_heads, int64_t max_len, int64_t head_dim, DType dtype,
                                 Device device, int64_t head_dim_v) {
  if (batch < 0 || kv_heads < 1 || max_len < 0 || head_dim < 1 || head_dim_v < 0) {
    throw RuntimeError(
        fmt::format("init_kv_layer_cache: batch {}, KV heads {}, max_len {} and head dims {}/{} must "
                    "not be negative (heads and head dim at least 1)",
                    batch, kv_heads, max_len, head_dim, head_dim_v));
  }
  if (!dtype_is_float(dtype)) {
    throw RuntimeError(fmt::format("init_kv_layer_cache: the dtype must be a float type, got {}", dtype_name(dtype)));
  }
  if (head_dim_v == 0) head_dim_v = head_dim;
  return KVLayerCache(zeros_on(device, dtype, {batch, kv_heads, max_len, head_dim}),
                      zeros_on(device, dtype, {batch, kv_heads, max_len, head_dim_v}));
}

void append_kv(KVLayerCache& cache, const Tensor& k, const Tensor& v, std::span<const int32_t> counts) {
  require_rank4("append_kv", k, "k");
  const std::vector<KvAppendRow> rows = cache.plan_append(k.size(2), counts);
  decode::append_kv(cache.source(), k, v, rows);
  cache.commit_append(rows);
}

PagedKVCache init_paged_kv_cache(const PagedKVCacheConfig& config) {
  PagedKVCache::check_config(config);  // before allocating anything
  std::vector<Tensor> k_pools, v_pools;
  const int64_t value_dim = config.value_dim == 0 ? config.head_dim : config.value_dim;
  for (int layer = 0; layer < config.num_layers; ++layer) {
    k_pools.push_back(
        zeros_on(config.device, config.dtype, {config.num_pages, config.kv_heads, config.page_size, config.head_dim}));
    v_pools.push_back(
        zeros_on(config.device, config.dtype, {config.num_pages, config.kv_heads, config.page_size, value_dim}));
  }
  Tensor table;
  if (config.device != Device::Cpu) {
    table = cuda::empty_device_tensor(DType::I32, {config.max_sequences, config.max_pages_per_sequence});
  }
  PagedKVCache cache(config, std::move(k_pools), std::move(v_pools), std::move(table));
  if (config.device != Device::Cpu) sync_block_table(cache);
  return cache;
}

void allocate_blocks(PagedKVCache& cache, int32_t sequence, int64_t tokens) {
  cache.allocate(sequence, tokens);
  if (cache.config().device != Device::Cpu) sync_block_table(cache);
}

void free_blocks(PagedKVCache& cache, int32_t sequence) {
  cache.release(sequence);
  if (cache.config().device != Device::Cpu) sync_block_table(cache);
}

void append_kv(PagedKVCache& cache, int layer, std::span<const int32_t> sequences, const Tensor& k, const Tensor& v,
               std::span<const int32_t> counts) {
  require_rank4("append_kv", k, "k");
  const std::vector<KvAppendRow> rows = cache.plan_append(layer, sequences, k.size(2), counts);
  decode::append_kv(cache.source(layer), k, v, rows);
  cache.commit_append(layer, rows);
}

std::pair<Tensor, Tensor> gather_kv(const PagedKVCache& cache, int layer, int32_t sequence) {
  const PagedKVCacheConfig& c = cache.config();
  const int32_t length = cache.length(layer, sequence);
  const std::span<const int32_t> pages = cache.pages(sequence);
  std::pair<Tensor, Tensor> out{Tensor::empty(c.dtype, {1, c.kv_heads, length, c.head_dim}),
                                Tensor::empty(c.dtype, {1, c.kv_heads, length, c.value_dim})};
  for (int64_t first = 0, i = 0; first < length; first += c.page_size, ++i) {
    const int64_t count = std::min<int64_t>(c.page_size, length - first);
    const int32_t page = pages[static_cast<size_t>(i)];
    if (c.device == Device::Cpu) {
      copy_rows(cache.k_pool(layer), page, 0, out.first, first, count);
      copy_rows(cache.v_pool(layer), page, 0, out.second, first, count);
    } else {
      copy_rows(page_on_host(cache.k_pool(layer), page), 0, 0, out.first, first, count);
      copy_rows(page_on_host(cache.v_pool(layer), page), 0, 0, out.second, first, count);
    }
  }
  return out;
}

std::pair<Tensor, Tensor> gather_kv(const KVLayerCache& cache, int64_t sequence) {
  const int32_t length = cache.length(sequence);
  std::pair<Tensor, Tensor> out{Tensor::empty(cache.dtype(), {1, cache.kv_heads(), length, cache.head_dim()}),
                                Tensor::empty(cache.dtype(), {1, cache.kv_heads(), length, cache.value_dim()})};
  if (cache.device() == Device::Cpu) {
    copy_rows(cache.k(), sequence, 0, out.first, 0, length);
    copy_rows(cache.v(), sequence, 0, out.second, 0, length);
  } else {
    copy_rows(page_on_host(cache.k(), sequence), 0, 0, out.first, 0, length);
    copy_rows(page_on_host(cache.v(), sequence), 0, 0, out.second, 0, length);
  }
  return out;
}

void paged_attention(const Tensor& query, const PagedKVCache& cache, std::span<const int32_t> sequence_idx, Tensor& out,
                     const AttentionOptions& options, Tensor* lse, int layer) {
  constexpr const char* kFunction = "paged_attention";
  check_devices(kFunction, cache.config().device, query, out, lse, options);
  require_rank4(kFunction, query, "the query");
  if (cache.table_dirty()) throw RuntimeError("paged_attention: the device's block table is stale (a bug)");
  if (lse != nullptr && !lse->defined() && cache.config().device != Device::Cpu) {
    *lse = cuda::empty_device_tensor(DType::F32, {query.size(0), query.size(1), query.size(2)});
  }
  attend(kFunction, query, cache.source(layer), cache.batch_rows(layer, sequence_idx, query.size(2)), out, options,
         lse);
}

Tensor paged_attention(const Tensor& query, const PagedKVCache& cache, std::span<const int32_t> sequence_idx,
                       const AttentionOptions& options, Tensor* lse, int layer) {
  require_rank4("paged_attention", query, "the query");
  const std::vector<int64_t> shape{query.size(0), query.size(1), query.size(2), cache.config().value_dim};
  Tensor out = query.device() == Device::Cpu ? Tensor::empty(query.dtype(), shape)
                                             : cuda::empty_device_tensor(query.dtype(), shape);
  paged_attention(query, cache, sequence_idx, out, options, lse, layer);
  return out;
}

void cached_attention(const Tensor& query, const KVLayerCache& cache, Tensor& out, const AttentionOptions& options,
                      Tensor* lse) {
  constexpr const char* kFunction = "cached_attention";
  check_devices(kFunction, cache.device(), query, out, lse, options);
  require_rank4(kFunction, query, "the query");
  if (query.size(0) != cache.batch()) {
    throw RuntimeError(fmt::format("{}: the query has {} rows but the cache holds {} sequences", kFunction,
                                   query.size(0), cache.batch()));
  }
  if (lse != nullptr && !lse->defined() && cache.device() != Device::Cpu) {
    *lse = cuda::empty_device_tensor(DType::F32, {query.size(0), query.size(1), query.size(2)});
  }
  attend(kFunction, query, cache.source(), cache.batch_rows(query.size(2)), out, options, lse);
}

}  // namespace attnc
