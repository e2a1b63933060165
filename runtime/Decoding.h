#pragma once
// Decoding with KV caches, wherever the cache lives: creating the caches of runtime/core/KvCache.h
// on the CPU or a GPU, allocating and freeing pages, appending new tokens, reading a sequence back,
// and attention through a cache. Attention runs the decode family (runtime/families/decode/): each
// K/V row is read once per GQA group, pages in place through the block table (never gathered), a
// batch of sequences of different lengths in one call.
//
// Positions. A query through a cache is placed where its tokens are in their sequence: with the new
// tokens appended first, its q_len rows are the sequence's last q_len positions, so the mods see
// q_idx = length - q_len + row and kv_len = length, exactly as in a prefill of the whole sequence (a
// causal, sliding-window or document mask means the same in prefill and in every decode step;
// docs/semantics.md). A sequence holding fewer tokens than the query has rows places it at 0.
//
// Every function checks its arguments and raises RuntimeError, before writing anything, for
// appends past a sequence's capacity, pages that run out, block tables pointing outside the pool,
// negative or overlong lengths, tensors of another dtype, device or shape than the cache.

#include <span>
#include <utility>

#include "runtime/core/AttentionOptions.h"
#include "runtime/core/KvCache.h"
#include "runtime/core/Tensor.h"

namespace attnc {

// A contiguous cache of `batch` sequences of up to max_len tokens, zero-filled, on `device` (CUDA:
// device 0). head_dim_v 0: head_dim.
KVLayerCache init_kv_layer_cache(int64_t batch, int64_t kv_heads, int64_t max_len, int64_t head_dim, DType dtype,
                                 Device device = Device::Cpu, int64_t head_dim_v = 0);

// Appends new tokens k (B, Hkv, T, D), v (B, Hkv, T, Dv) of the cache's dtype and device: counts[b]
// of row b's tokens (all T when empty) after sequence b's length, which then grows by them.
void append_kv(KVLayerCache& cache, const Tensor& k, const Tensor& v, std::span<const int32_t> counts = {});

// A paged cache with every page free, its pools zero-filled, on config.device.
PagedKVCache init_paged_kv_cache(const PagedKVCacheConfig& config);

// Makes sequence `sequence` hold at least `tokens` tokens, taking pages from the free list (and
// refreshing the device's block table). RuntimeError, changing nothing, when pages or the
// sequence's block-table row run out.
void allocate_blocks(PagedKVCache& cache, int32_t sequence, int64_t tokens);
// Returns a sequence's pages to the free list; its length becomes 0 in every layer.
void free_blocks(PagedKVCache& cache, int32_t sequence);

// Appends new tokens k (N, Hkv, T, D), v (N, Hkv, T, Dv) to layer `layer`: row n to sequence
// sequences[n] (distinct), counts[n] of its tokens (all T when empty), within the pages allocated.
void append_kv(PagedKVCache& cache, int layer, std::span<const int32_t> sequences, const Tensor& k, const Tensor& v,
               std::span<const int32_t> counts = {});

// A sequence's keys and values of one layer as contiguous CPU tensors (1, Hkv, length, D / Dv), for
// tests and debugging.
std::pair<Tensor, Tensor> gather_kv(const PagedKVCache& cache, int layer, int32_t sequence);
std::pair<Tensor, Tensor> gather_kv(const KVLayerCache& cache, int64_t sequence);

// Attention of query (N, H, q_len, D) over layer `layer` of the cache: batch row n attends to the
// keys of sequence sequence_idx[n] (any sequences, any order) at its position (header comment), into
// out (N, H, q_len, Dv) and, when given, lse (N, H, q_len) (allocated as fp32 on the cache's device
// when undefined). The contract per row is standard_attention's over that sequence's keys with
// q_offset = its position; options.q_offset must be 0 (the cache decides). On CUDA the cache is
// bf16 or fp16 with head dims the decode template supports on the device.
void paged_attention(const Tensor& query, const PagedKVCache& cache, std::span<const int32_t> sequence_idx, Tensor& out,
                     const AttentionOptions& options = {}, Tensor* lse = nullptr, int layer = 0);
// The same, returning a newly allocated output of the query's dtype on its device.
Tensor paged_attention(const Tensor& query, const PagedKVCache& cache, std::span<const int32_t> sequence_idx,
                       const AttentionOptions& options = {}, Tensor* lse = nullptr, int layer = 0);

// Attention of query (B, H, q_len, D) over a contiguous cache: row b attends to sequence b's keys.
void cached_attention(const Tensor& query, const KVLayerCache& cache, Tensor& out, const AttentionOptions& options = {},
                      Tensor* lse = nullptr);

}  // namespace attnc
