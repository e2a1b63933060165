#pragma once
// How the CPU flash kernel (FlashCpu.cpp) multiplies: K and V packed once per call in the layout
// its micro-kernels read, the query rows of one work item, and the two products of one tile,
//   S = alpha * Q K_tile^T      and      O += P V_tile,
// in one of two precisions:
//   fp32   Q, K, V converted to fp32 on load; fp32 FMA products (exact inputs, fp32 sums).
//   bf16   bf16 inputs (fp16 rounded to bf16) multiplied with the bf16 dot product (vdpbf16ps,
//          AVX512-BF16): twice the multiply-adds per instruction. P is rounded to bf16 before P V,
//          as GPU kernels do; the softmax, its row sums and O stay fp32.
// The run picks bf16 when q, k and v are all bf16 or fp16 and the micro-kernels have it.

#include <cstdint>
#include <memory>

#include "runtime/core/AttentionChecks.h"
#include "runtime/core/Tensor.h"
#include "runtime/cpu/CpuMicroKernels.h"
#include "runtime/cpu/CpuThreadPool.h"

namespace attnc::flash_cpu {

// Scratch one worker owns: its query rows and (bf16) its rounded P tile.
struct OperandScratch {
  virtual ~OperandScratch() = default;
};

class FlashOperands {
 public:
  virtual ~FlashOperands() = default;

  // "fp32" or "bf16".
  virtual const char* precision() const = 0;

  // Packs K and V for the whole call, on up to `threads` workers of `pool`.
  virtual void pack(cpu::CpuThreadPool& pool, int threads) = 0;

  virtual std::unique_ptr<OperandScratch> make_scratch() const = 0;

  // Loads rows [q_first, q_first + rows) of q at (b, h) into the scratch.
  virtual void load_q(OperandScratch& scratch, int64_t b, int64_t h, int32_t q_first, int32_t rows) const = 0;

  // A band of a tile: rows [row0, row0 + rows) of the work item's query tile, and the tile's key
  // columns [lo, hi). lo is even (bf16 pairs keys).
  struct Band {
    int32_t row0, rows, lo, hi;
  };

  // s[r][lo, hi) = alpha * Q K^T for the band's rows r of key tile `tile` of KV group (b, g); s is
  // the tile, row stride block_n. Columns past the keys come out 0.
  virtual void scores(const OperandScratch& scratch, int64_t b, int64_t g, int64_t tile, Band band, float* s) const = 0;

  // o[r] += sum over keys j in [lo, hi) of P[r][j] V[j] for the band's rows r, P in s (row stride
  // block_n), o's row stride Dv. hi must not pass the keys of the tile.
  virtual void accumulate(OperandScratch& scratch, int64_t b, int64_t g, int64_t tile, Band band, const float* s,
                          float* o) const = 0;
};

struct OperandShape {
  AttentionShape shape;
  int32_t block_m = 0, block_n = 0;
  float alpha = 1;  // multiplies Q K^T: the scale, with log2(e) folded in when there is no score mod
};

// Whether a call with these inputs multiplies in bf16: the kernels have gemm_bf16, q, k and v are
// all bf16 or fp16, and `allow_bf16`.
bool uses_bf16_products(const Tensor& q, const Tensor& k, const Tensor& v, const cpu::CpuMicroKernels& kernels,
                        bool allow_bf16);

// The operands for a call: bf16 when the kernels have gemm_bf16 and q, k, v are all bf16 or fp16
// (and `allow_bf16`), fp32 otherwise.
std::unique_ptr<FlashOperands> make_flash_operands(const Tensor& q, const Tensor& k, const Tensor& v,
                                                   const OperandShape& shape, const cpu::CpuMicroKernels& kernels,
                                                   bool allow_bf16);

}  // namespace attnc::flash_cpu
