#pragma once
// `attnc run --paged PAGE_SIZE`: the same inputs through a paged KV cache (runtime/Decoding.h).
// Sequence b of the cache holds k[b] and v[b], appended into pages handed out in a random order
// (a seeded permutation of the pool, PagedKVCache::reorder_free_pages), so that a block table that
// is not the identity is what the decode family reads through. Queries keep --q-offset's
// positions, as on the contiguous path, whose output this must equal.

#include <cstdint>
#include <cstdio>
#include <vector>

#include "runtime/core/AttentionOptions.h"
#include "runtime/core/Tensor.h"

namespace attnc::cli {

// The order in which a pool of `num_pages` pages is handed out: a permutation drawn from `seed` by
// a Fisher-Yates shuffle over std::mt19937 (whose output the standard fixes, so a seed gives the
// same table everywhere).
std::vector<int32_t> random_page_order(int64_t num_pages, uint32_t seed);

// Attention of q over k and v through a paged cache of `page_size`-token pages on q's device (the
// CPU, or CUDA tensors that the caller copied there), into out (and lse). options.q_offset places
// the queries. Prints the seed and a summary of the block table on `log`.
void run_paged(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out, const AttentionOptions& options,
               Tensor* lse, int page_size, uint32_t seed, std::FILE* log);

}  // namespace attnc::cli
