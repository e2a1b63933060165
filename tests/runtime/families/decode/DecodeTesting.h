#pragma once
// What the decode family's tests share: a decode problem (a batch of sequences of different lengths,
// each with its own query position), its inputs laid out as a contiguous cache or as pages behind a
// randomly permuted block table (with NaN everywhere a kernel must not read), and the reference
// output of each batch row computed by standard_attention on that row's keys alone.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include <catch2/catch.hpp>

#include "runtime/core/AttentionOptions.h"
#include "runtime/core/Tensor.h"
#include "runtime/reference/ReferenceAttention.h"
#include "tests/support/TestTensors.h"

namespace attnc::decode_test {

struct DecodeCase {
  int batch = 2, heads = 4, kv_heads = 1, q_len = 1, head_dim = 64;
  std::vector<int32_t> kv_lens;    // per batch row
  std::vector<int32_t> q_offsets;  // per batch row: the mods' q_idx of its first query row
  int page_size = 0;               // 0: contiguous
  DType dtype = DType::BF16;
  uint32_t seed = 1;
};

struct DecodeInputs {
  Tensor q;                            // (B, H, q_len, D)
  std::vector<Tensor> k_rows, v_rows;  // per batch row: (1, Hkv, kv_len, D)
  Tensor k, v;                         // contiguous: (B, Hkv, max_len + 5, D), row b at KV row B - 1 - b;
                                       // paged: pools (pages, Hkv, page_size, D)
  Tensor block_table;                  // paged: (B, max pages) int32
  std::vector<int32_t> kv_row;         // the KV row (contiguous) or block-table row of each batch row
};

// NaN in any 16-bit or 32-bit float dtype: every byte 0xFF.
inline void poison(const Tensor& t) {
  std::memset(t.data(), 0xFF, static_cast<size_t>(t.numel()) * dtype_size(t.dtype()));
}

inline DecodeInputs make_inputs(const DecodeCase& c) {
  REQUIRE(static_cast<int>(c.kv_lens.size()) == c.batch);
  REQUIRE(static_cast<int>(c.q_offsets.size()) == c.batch);
  DecodeInputs in;
  in.q = test::normal_tensor(c.seed, c.dtype, {c.batch, c.heads, c.q_len, c.head_dim});
  int max_len = 0;
  for (int b = 0; b < c.batch; ++b) {
    in.k_rows.push_back(test::normal_tensor(c.seed + 100 + b, c.dtype, {1, c.kv_heads, c.kv_lens[b], c.head_dim}));
    in.v_rows.push_back(test::normal_tensor(c.seed + 200 + b, c.dtype, {1, c.kv_heads, c.kv_lens[b], c.head_dim}));
    max_len = std::max(max_len, c.kv_lens[b]);
  }
  auto copy_row = [&](const Tensor& from, const Tensor& to, int64_t g, int64_t j, int64_t page, int64_t row) {
    for (int64_t d = 0; d < c.head_dim; ++d) to.set_float({page, g, row, d}, from.get_float({0, g, j, d}));
  };
  if (c.page_size == 0) {
    in.k = Tensor::empty(c.dtype, {c.batch, c.kv_heads, max_len + 5, c.head_dim});
    in.v = Tensor::empty(c.dtype, {c.batch, c.kv_heads, max_len + 5, c.head_dim});
    poison(in.k);
    poison(in.v);
    for (int b = 0; b < c.batch; ++b) {
      const int row = c.batch - 1 - b;
      in.kv_row.push_back(row);
      for (int64_t g = 0; g < c.kv_heads; ++g) {
        for (int64_t j = 0; j < c.kv_lens[b]; ++j) {
          copy_row(in.k_rows[b], in.k, g, j, row, j);
          copy_row(in.v_rows[b], in.v, g, j, row, j);
        }
      }
    }
    return in;
  }
  // Pages: every row's pages drawn from a shuffled pool with three spare (NaN) pages.
  int total = 0, widest = 1;
  for (int b = 0; b < c.batch; ++b) {
    const int pages = (c.kv_lens[b] + c.page_size - 1) / c.page_size;
    total += pages;
    widest = std::max(widest, pages + 1);
  }
  const int num_pages = total + 3;
  std::vector<int32_t> order(static_cast<size_t>(num_pages));
  std::iota(order.begin(), order.end(), 0);
  std::mt19937 rng(c.seed + 7);
  std::shuffle(order.begin(), order.end(), rng);
  in.k = Tensor::empty(c.dtype, {num_pages, c.kv_heads, c.page_size, c.head_dim});
  in.v = Tensor::empty(c.dtype, {num_pages, c.kv_heads, c.page_size, c.head_dim});
  poison(in.k);
  poison(in.v);
  // Entries past a row's pages point far outside the pool: reading one would be caught (ASan).
  std::vector<int32_t> table(static_cast<size_t>(c.batch * widest), 1 << 28);
  size_t next = 0;
  for (int b = 0; b < c.batch; ++b) {
    in.kv_row.push_back(b);
    const int pages = (c.kv_lens[b] + c.page_size - 1) / c.page_size;
    for (int i = 0; i < pages; ++i) table[static_cast<size_t>(b * widest + i)] = order[next++];
    for (int64_t g = 0; g < c.kv_heads; ++g) {
      for (int64_t j = 0; j < c.kv_lens[b]; ++j) {
        const int64_t page = table[static_cast<size_t>(b * widest + j / c.page_size)];
        copy_row(in.k_rows[b], in.k, g, j, page, j % c.page_size);
        copy_row(in.v_rows[b], in.v, g, j, page, j % c.page_size);
      }
    }
  }
  in.block_table = Tensor::from_vector(table, {c.batch, widest});
  return in;
}

// The reference for every batch row: row b alone with its keys and q_offset, with the mods seeing
// batch index b (a (b + 1)-row batch whose earlier rows are zeros), so b-indexed mod tensors mean the
// same as in the batched call.
inline void reference(const DecodeCase& c, const DecodeInputs& in, const AttentionOptions& base, Tensor& out,
                      Tensor& lse) {
  out = Tensor::zeros(DType::F32, {c.batch, c.heads, c.q_len, c.head_dim});
  lse = Tensor::zeros(DType::F32, {c.batch, c.heads, c.q_len});
  for (int b = 0; b < c.batch; ++b) {
    const int len = c.kv_lens[b];
    Tensor q = Tensor::zeros(DType::F32, {b + 1, c.heads, c.q_len, c.head_dim});
    Tensor k = Tensor::zeros(DType::F32, {b + 1, c.kv_heads, len, c.head_dim});
    Tensor v = Tensor::zeros(DType::F32, {b + 1, c.kv_heads, len, c.head_dim});
    for (int64_t h = 0; h < c.heads; ++h) {
      for (int64_t i = 0; i < c.q_len; ++i) {
        for (int64_t d = 0; d < c.head_dim; ++d) q.set_float({b, h, i, d}, in.q.get_float({b, h, i, d}));
      }
    }
    for (int64_t g = 0; g < c.kv_heads; ++g) {
      for (int64_t j = 0; j < len; ++j) {
        for (int64_t d = 0; d < c.head_dim; ++d) {
          k.set_float({b, g, j, d}, in.k_rows[b].get_float({0, g, j, d}));
          v.set_float({b, g, j, d}, in.v_rows[b].get_float({0, g, j, d}));
        }
      }
    }
    AttentionOptions options = base;
    options.q_offset = c.q_offsets[b];
    Tensor row_lse;
    const Tensor row_out = standard_attention(q, k, v, options, &row_lse);
    for (int64_t h = 0; h < c.heads; ++h) {
      for (int64_t i = 0; i < c.q_len; ++i) {
        lse.set_float({b, h, i}, row_lse.get_float({b, h, i}));
        for (int64_t d = 0; d < c.head_dim; ++d) out.set_float({b, h, i, d}, row_out.get_float({b, h, i, d}));
      }
    }
  }
}

}  // namespace attnc::decode_test
