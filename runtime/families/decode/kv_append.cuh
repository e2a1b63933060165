#pragma once
// Appending new keys and values to a KV cache on the GPU (the decode family's second program; see
// runtime/families/decode/KvAppend.h). New tokens k_new (N, Hkv, T, D), v_new (N, Hkv, T, Dv): row n
// writes its first rows[n].count tokens at positions rows[n].start, ... of KV row rows[n].kv_row:
// row position j of a contiguous cache, or, with a block table, row j % P of page
// block_table[kv_row][j / P]. One CTA of 32 threads per (token, KV head, row); each thread moves
// 16-byte chunks of the K and V rows, so the kernel is one program for every dtype and head dim
// (rows are a whole number of 16-byte chunks; the launcher checks alignment and strides). Reads go
// through the read-only path: k_new and v_new must not overlap the cache.

#include "device_primitives.cuh"

namespace attnc_append {

struct AppendRow {
  int32_t kv_row, start, count;
};

// The kernel's only argument. Strides are in bytes.
struct AppendParams {
  const unsigned char* k_src;
  const unsigned char* v_src;
  int64_t k_src_batch_stride, k_src_head_stride, k_src_row_stride;
  int64_t v_src_batch_stride, v_src_head_stride, v_src_row_stride;
  unsigned char* k_dst;
  unsigned char* v_dst;
  int64_t k_dst_page_stride, k_dst_head_stride, k_dst_row_stride;  // page = KV row when contiguous
  int64_t v_dst_page_stride, v_dst_head_stride, v_dst_row_stride;
  const int32_t* block_table;  // null: contiguous
  int64_t block_table_stride;  // in entries
  int32_t page_shift;
  const AppendRow* rows;
  int32_t k_chunks, v_chunks;  // 16-byte chunks per row of K and of V
};

// Grid (T, Hkv, N), 32 threads.
ATTNC_DEVICE_INLINE void append(const AppendParams& p) {
  const int t = attnc_dev::block_idx_x();
  const int g = attnc_dev::block_idx_y();
  const int n = attnc_dev::block_idx_z();
  const int lane = attnc_dev::thread_idx_x();
  const AppendRow row = p.rows[n];
  if (t >= row.count) return;
  const int position = row.start + t;
  int64_t page = row.kv_row;
  int64_t at = position;
  if (p.block_table != nullptr) {
    page = p.block_table[row.kv_row * p.block_table_stride + (position >> p.page_shift)];
    at = position & ((1 << p.page_shift) - 1);
  }
  const unsigned char* k_src = p.k_src + n * p.k_src_batch_stride + g * p.k_src_head_stride + t * p.k_src_row_stride;
  const unsigned char* v_src = p.v_src + n * p.v_src_batch_stride + g * p.v_src_head_stride + t * p.v_src_row_stride;
  unsigned char* k_dst = p.k_dst + page * p.k_dst_page_stride + g * p.k_dst_head_stride + at * p.k_dst_row_stride;
  unsigned char* v_dst = p.v_dst + page * p.v_dst_page_stride + g * p.v_dst_head_stride + at * p.v_dst_row_stride;
  for (int c = lane; c < p.k_chunks; c += 32)
    attnc_dev::store_global_16(k_dst + 16 * c, attnc_dev::load_global_16(k_src + 16 * c));
  for (int c = lane; c < p.v_chunks; c += 32)
    attnc_dev::store_global_16(v_dst + 16 * c, attnc_dev::load_global_16(v_src + 16 * c));
}

}  // namespace attnc_append

// Defines the extern "C" kernel NAME (on the host, an ordinary function run per emulated thread).
#define ATTNC_INSTANTIATE_KV_APPEND(NAME)                                                              \
  extern "C" ATTNC_KERNEL void ATTNC_LAUNCH_BOUNDS(32) NAME(const attnc_append::AppendParams params) { \
    attnc_append::append(params);                                                                      \
  }
