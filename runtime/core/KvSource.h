#pragma once
// Where an attention call reads its keys and values when they live in a KV cache: a contiguous
// tensor of sequences, or pools of pages behind a block table, and for every batch row of the
// query which sequence it reads, how many keys that sequence has and where its queries sit. The
// decode family's kernels (CPU and CUDA) take this description; the KV caches
// (runtime/core/KvCache.h) produce it. It holds views, never copies.
//
// Contiguous: k (N, Hkv, S, D), v (N, Hkv, S, Dv); key j of KV row s is k[s, :, j].
// Paged: k (pages, Hkv, P, D), v (pages, Hkv, P, Dv) with P = page_size tokens per page, and an int32
// block table (rows, max_pages): key j of KV row s is k[table[s, j / P], :, j % P].
// A batch row b of the query reads KV row rows[b].kv_row, its first rows[b].kv_len keys, and the
// mods see q_idx = rows[b].q_offset + (query row) and kv_len = rows[b].kv_len.

#include <cstdint>
#include <span>

#include "runtime/core/Tensor.h"

namespace attnc {

struct KvSource {
  Tensor k, v;
  Tensor block_table;  // paged: int32 (rows, max_pages) on the device of k; undefined: contiguous
  int32_t page_size = 0;
  // The block table's values on the host when the table lives elsewhere (a cache keeps this mirror),
  // so the checks can verify every page a call reads; empty: read block_table itself (CPU only).
  std::span<const int32_t> host_block_table;

  bool paged() const { return block_table.defined(); }
};

// One batch row of a query over a KvSource.
struct KvBatchRow {
  int32_t kv_row = 0;    // the sequence (contiguous) or the block-table row (paged)
  int32_t kv_len = 0;    // keys it attends to, >= 0
  int32_t q_offset = 0;  // the mods' q_idx of its first query row, >= 0
};

}  // namespace attnc
