#pragma once
// How the gemm micro-kernels cut m rows into register blocks (runtime/cpu/CpuMicroKernels*.cpp):
// blocks of `block` rows, except that a short last block of r < block - 1 rows is merged with the
// one before and those block + r rows are split into two nearly equal blocks (64 rows in blocks of 6:
// 9 x 6 + 2 x 5 instead of 10 x 6 + 4). A block of 4 or fewer rows spends about twice the loads per
// FMA of a full one; two blocks of 5 cost little more than one of 6.

#include <cstdint>

namespace attnc::cpu {

// Calls f(first_row, rows) for each block, in order.
template <class F>
void for_each_row_block(int32_t m, int32_t block, F&& f) {
  const int32_t tail = m % block;
  const int32_t even_end = m >= block && tail > 0 && tail < block - 1 ? m - block - tail : m - tail;
  int32_t i0 = 0;
  for (; i0 < even_end; i0 += block) f(i0, block);
  while (i0 < m) {
    const int32_t left = m - i0, rows = left > block ? (left + 1) / 2 : left;
    f(i0, rows);
    i0 += rows;
  }
}

}  // namespace attnc::cpu
