#pragma once
// Linear attention, chunkwise, on the GPU (the CUDA counterpart of runtime/families/linear/
// LinearCpu.h; the contract is linear_attention_reference's, runtime/reference/LinearReference.h):
//
//   phi(x) = elu(x) + 1;  out[b, h, i] = phi(q_i) S_i / (phi(q_i) z_i + 1e-6)
//   S_i = sum over visible kept keys j of phi(k_j) v_j^T (D x Dv),  z_i = sum of phi(k_j) (D)
//
// The algorithm. One CTA owns one (b, h) and a slice of DV_TILE columns of the value dim: the
// columns of S (and of the output) are independent, so the (D x Dv) state is split across CTAs and
// each holds only its D x DV_TILE slice (and the whole normaliser z, which every CTA of the (b, h)
// computes alike) in shared memory. The CTA walks the sequence in chunks of CHUNK positions:
//   causal:      for each chunk c:  load phi(Q_c), phi(K_c), V_c[:, slice]            (fp32, smem)
//                                   A = tril(phi(Q_c) phi(K_c)^T); den = phi(Q_c) z + rowsum A + eps
//                                   out_c = (phi(Q_c) S + A V_c) / den     (S, z: chunks before c)
//                                   S += phi(K_c)^T V_c;  z += colsum phi(K_c)
//   non-causal:  for each key chunk: S += phi(K_c)^T V_c, z += colsum phi(K_c); then for each
//                query chunk: out_c = phi(Q_c) S / (phi(Q_c) z + eps)
// Inside a chunk it is a masked matmul, across chunks the state is carried forward: the chunkwise
// form, computed with fp32 FMA by THREADS threads striding over each product's outputs (no tensor
// cores: the products are D-, C- and DV_TILE-sized and the state must stay fp32). A dropped key's
// phi(k) and v are zeroed on load; rows and keys past q_len / kv_len are zero too, and only in-range
// rows and columns are written. exp is ex2.approx of x log2(e).
//
// Requirements on the caller (the launcher checks them): q, k, v and out of one element type, head
// dim contiguous; the mask one byte per element (bool or uint8) or null; H a multiple of Hkv; grid
// (ceil(Dv / DV_TILE), H, B), THREADS threads, kSharedBytes of dynamic shared memory.
//
// Entry point: ATTNC_INSTANTIATE_LINEAR_FORWARD(attnc_linear_forward, float, 64, 64, 64, 32, 128,
// true) defines extern "C" __global__ void attnc_linear_forward(LinearParams) for (element type,
// HEAD_DIM, HEAD_DIM_V, DV_TILE, CHUNK, THREADS, CAUSAL); runtime/families/linear/LinearSource.h
// chooses DV_TILE and CHUNK so the shared memory fits every supported architecture.

#include "device_primitives.cuh"

namespace attnc_linear {

using attnc_dev::bf16_t;
using attnc_dev::f16_t;

// The kernel's only argument. Strides are in elements; the head dim is contiguous.
struct LinearParams {
  const void* q;
  const void* k;
  const void* v;
  void* out;
  const uint8_t* mask;  // key mask (nonzero keeps) at (b, h, kv) strides, or null for every key
  int64_t q_batch_stride, q_head_stride, q_row_stride;
  int64_t k_batch_stride, k_head_stride, k_row_stride;
  int64_t v_batch_stride, v_head_stride, v_row_stride;
  int64_t out_batch_stride, out_head_stride, out_row_stride;
  int64_t mask_batch_stride, mask_head_stride, mask_kv_stride;
  int32_t batch, num_heads, num_kv_heads, q_len, kv_len;
};

// Element conversions: fp32 in the kernel, the inputs' type in memory.
ATTNC_DEVICE_INLINE float to_float(float x) { return x; }
ATTNC_DEVICE_INLINE float to_float(bf16_t x) { return attnc_dev::float_from_bits(static_cast<uint32_t>(x.bits) << 16); }
ATTNC_DEVICE_INLINE float to_float(f16_t x) {
#if ATTNC_ON_DEVICE
  float r;
  asm("cvt.f32.f16 %0, %1;" : "=f"(r) : "h"(x.bits));
  return r;
#else
  return attnc::half_to_float(x.bits);
#endif
}

template <class Elem>
struct FromFloat;
template <>
struct FromFloat<float> {
  static ATTNC_DEVICE_INLINE float convert(float x) { return x; }
};
template <>
struct FromFloat<bf16_t> {
  static ATTNC_DEVICE_INLINE bf16_t convert(float x) {
    return bf16_t{static_cast<uint16_t>(attnc_dev::pack2<bf16_t>(x, 0.0f) & 0xffffu)};
  }
};
template <>
struct FromFloat<f16_t> {
  static ATTNC_DEVICE_INLINE f16_t convert(float x) {
    return f16_t{static_cast<uint16_t>(attnc_dev::pack2<f16_t>(x, 0.0f) & 0xffffu)};
  }
};

// The dynamic shared memory of LinearForward in floats, for the host's launch too.
ATTNC_HOST_DEVICE constexpr int linear_shared_floats(int head_dim, int dv_tile, int chunk, bool causal) {
  return head_dim * dv_tile + head_dim + 2 * chunk * (head_dim + 1) + chunk * dv_tile + (causal ? chunk * chunk : 0) +
         chunk;
}

// elu(x) + 1: x + 1 above 0, exp(x) otherwise (2^(x log2 e); exp(-inf) = 0).
ATTNC_DEVICE_INLINE float phi(float x) { return x > 0.0f ? x + 1.0f : attnc_dev::fast_exp2(x * 1.4426950408889634f); }

template <class Elem, int HEAD_DIM, int HEAD_DIM_V, int DV_TILE, int CHUNK, int THREADS, bool CAUSAL>
struct LinearForward {
  static_assert(THREADS % 32 == 0, "whole warps");
  static_assert(DV_TILE <= HEAD_DIM_V, "a slice of the value dim");

  // Shared memory, in floats: the state slice, the normaliser, then one chunk's operands. Rows of
  // the D-long operands are padded by one float so threads striding over rows hit different banks.
  static constexpr int kDStride = HEAD_DIM + 1;
  static constexpr int kState = 0;                                     // S: HEAD_DIM x DV_TILE
  static constexpr int kNorm = kState + HEAD_DIM * DV_TILE;            // z: HEAD_DIM
  static constexpr int kPhiQ = kNorm + HEAD_DIM;                       // phi(Q_c): CHUNK x kDStride
  static constexpr int kPhiK = kPhiQ + CHUNK * kDStride;               // phi(K_c): CHUNK x kDStride
  static constexpr int kValue = kPhiK + CHUNK * kDStride;              // V_c[:, slice]: CHUNK x DV_TILE
  static constexpr int kScores = kValue + CHUNK * DV_TILE;             // A: CHUNK x CHUNK
  static constexpr int kDen = kScores + (CAUSAL ? CHUNK * CHUNK : 0);  // den: CHUNK
  static constexpr int kSharedFloats = kDen + CHUNK;
  static constexpr int kSharedBytes = kSharedFloats * 4;
  static_assert(kSharedFloats == linear_shared_floats(HEAD_DIM, DV_TILE, CHUNK, CAUSAL), "one layout");

  static ATTNC_DEVICE_INLINE void run(const LinearParams& p) {
    const int tid = attnc_dev::thread_idx_x();
    const int col0 = attnc_dev::block_idx_x() * DV_TILE;
    const int h = attnc_dev::block_idx_y();
    const int b = attnc_dev::block_idx_z();
    const int kv_head = h / (p.num_heads / p.num_kv_heads);
    const int cols = HEAD_DIM_V - col0 < DV_TILE ? HEAD_DIM_V - col0 : DV_TILE;

    float* smem = reinterpret_cast<float*>(attnc_dev::dynamic_shared_memory());
    for (int i = tid; i < kNorm + HEAD_DIM; i += THREADS) smem[i] = 0.0f;  // S and z start at 0

    const Elem* q = static_cast<const Elem*>(p.q) + b * p.q_batch_stride + h * p.q_head_stride;
    const Elem* k = static_cast<const Elem*>(p.k) + b * p.k_batch_stride + kv_head * p.k_head_stride;
    const Elem* v = static_cast<const Elem*>(p.v) + b * p.v_batch_stride + kv_head * p.v_head_stride;
    Elem* out = static_cast<Elem*>(p.out) + b * p.out_batch_stride + h * p.out_head_stride;
    const uint8_t* mask = p.mask != nullptr ? p.mask + b * p.mask_batch_stride + h * p.mask_head_stride : nullptr;
    attnc_dev::block_barrier();

    if (CAUSAL) {
      const int chunks = (p.q_len + CHUNK - 1) / CHUNK;
      for (int c = 0; c < chunks; ++c) {
        const int first = c * CHUNK;
        load_queries(smem, q, p, first, tid);
        load_keys(smem, k, v, mask, p, first, col0, cols, tid);
        attnc_dev::block_barrier();
        // A = tril(phi(Q_c) phi(K_c)^T): key j of the chunk is visible to query i when j <= i.
        for (int idx = tid; idx < CHUNK * CHUNK; idx += THREADS) {
          const int i = idx / CHUNK, j = idx % CHUNK;
          smem[kScores + idx] = j <= i ? dot(smem + kPhiQ + i * kDStride, smem + kPhiK + j * kDStride) : 0.0f;
        }
        attnc_dev::block_barrier();
        denominators(smem, tid);
        attnc_dev::block_barrier();
        write_outputs(smem, out, p, first, col0, cols, tid);
        attnc_dev::block_barrier();  // the outputs read S before this chunk's keys join it
        accumulate_state(smem, tid);
        attnc_dev::block_barrier();
      }
      return;
    }

    const int key_chunks = (p.kv_len + CHUNK - 1) / CHUNK;
    for (int c = 0; c < key_chunks; ++c) {
      load_keys(smem, k, v, mask, p, c * CHUNK, col0, cols, tid);
      attnc_dev::block_barrier();
      accumulate_state(smem, tid);
      attnc_dev::block_barrier();
    }
    const int query_chunks = (p.q_len + CHUNK - 1) / CHUNK;
    for (int c = 0; c < query_chunks; ++c) {
      const int first = c * CHUNK;
      load_queries(smem, q, p, first, tid);
      attnc_dev::block_barrier();
      denominators(smem, tid);
      attnc_dev::block_barrier();
      write_outputs(smem, out, p, first, col0, cols, tid);
      attnc_dev::block_barrier();  // before the next chunk's queries overwrite phi(Q_c)
    }
  }

  // den_i = phi(q_i) . z + 1e-6, plus (causal) the row sum of A: the chunk's own visible keys.
  static ATTNC_DEVICE_INLINE void denominators(float* smem, int tid) {
    for (int i = tid; i < CHUNK; i += THREADS) {
      float den = 1e-6f + dot(smem + kPhiQ + i * kDStride, smem + kNorm);
      if (CAUSAL) {
        for (int j = 0; j <= i; ++j) den += smem[kScores + i * CHUNK + j];
      }
      smem[kDen + i] = den;
    }
  }

  // out_i = (phi(q_i) S (+ A_i V_c, causal)) / den_i for the chunk's in-range rows and the slice's
  // in-range columns.
  static ATTNC_DEVICE_INLINE void write_outputs(const float* smem, Elem* out, const LinearParams& p, int first,
                                                int col0, int cols, int tid) {
    for (int idx = tid; idx < CHUNK * DV_TILE; idx += THREADS) {
      const int i = idx / DV_TILE, e = idx % DV_TILE;
      if (first + i >= p.q_len || e >= cols) continue;
      float num = 0.0f;
      const float* phi_q = smem + kPhiQ + i * kDStride;
      for (int d = 0; d < HEAD_DIM; ++d) num += phi_q[d] * smem[kState + d * DV_TILE + e];
      if (CAUSAL) {
        for (int j = 0; j <= i; ++j) num += smem[kScores + i * CHUNK + j] * smem[kValue + j * DV_TILE + e];
      }
      out[(first + i) * p.out_row_stride + col0 + e] = FromFloat<Elem>::convert(num / smem[kDen + i]);
    }
  }

  static ATTNC_DEVICE_INLINE float dot(const float* a, const float* b) {
    float sum = 0.0f;
    for (int d = 0; d < HEAD_DIM; ++d) sum += a[d] * b[d];
    return sum;
  }

  // phi(Q_c) of rows [first, first + CHUNK), zero past q_len.
  static ATTNC_DEVICE_INLINE void load_queries(float* smem, const Elem* q, const LinearParams& p, int first, int tid) {
    for (int idx = tid; idx < CHUNK * HEAD_DIM; idx += THREADS) {
      const int i = idx / HEAD_DIM, d = idx % HEAD_DIM;
      smem[kPhiQ + i * kDStride + d] = first + i < p.q_len ? phi(to_float(q[(first + i) * p.q_row_stride + d])) : 0.0f;
    }
  }

  // phi(K_c) and the slice of V_c of keys [first, first + CHUNK), zero past kv_len and where the
  // mask drops the key.
  static ATTNC_DEVICE_INLINE void load_keys(float* smem, const Elem* k, const Elem* v, const uint8_t* mask,
                                            const LinearParams& p, int first, int col0, int cols, int tid) {
    for (int idx = tid; idx < CHUNK * HEAD_DIM; idx += THREADS) {
      const int j = idx / HEAD_DIM, d = idx % HEAD_DIM;
      smem[kPhiK + j * kDStride + d] =
          kept(mask, p, first + j) ? phi(to_float(k[(first + j) * p.k_row_stride + d])) : 0.0f;
    }
    for (int idx = tid; idx < CHUNK * DV_TILE; idx += THREADS) {
      const int j = idx / DV_TILE, e = idx % DV_TILE;
      smem[kValue + idx] =
          e < cols && kept(mask, p, first + j) ? to_float(v[(first + j) * p.v_row_stride + col0 + e]) : 0.0f;
    }
  }

  static ATTNC_DEVICE_INLINE bool kept(const uint8_t* mask, const LinearParams& p, int j) {
    return j < p.kv_len && (mask == nullptr || mask[j * p.mask_kv_stride] != 0);
  }

  // S += phi(K_c)^T V_c and z += colsum phi(K_c) over the chunk in shared memory.
  static ATTNC_DEVICE_INLINE void accumulate_state(float* smem, int tid) {
    for (int idx = tid; idx < HEAD_DIM * DV_TILE; idx += THREADS) {
      const int d = idx / DV_TILE, e = idx % DV_TILE;
      float sum = 0.0f;
      for (int j = 0; j < CHUNK; ++j) sum += smem[kPhiK + j * kDStride + d] * smem[kValue + j * DV_TILE + e];
      smem[kState + idx] += sum;
    }
    for (int d = tid; d < HEAD_DIM; d += THREADS) {
      float sum = 0.0f;
      for (int j = 0; j < CHUNK; ++j) sum += smem[kPhiK + j * kDStride + d];
      smem[kNorm + d] += sum;
    }
  }
};

}  // namespace attnc_linear

#define ATTNC_INSTANTIATE_LINEAR_FORWARD(NAME, ELEM, HEAD_DIM, HEAD_DIM_V, DV_TILE, CHUNK, THREADS, CAUSAL) \
  extern "C" ATTNC_KERNEL void ATTNC_LAUNCH_BOUNDS(THREADS) NAME(const attnc_linear::LinearParams params) { \
    attnc_linear::LinearForward<ELEM, HEAD_DIM, HEAD_DIM_V, DV_TILE, CHUNK, THREADS, CAUSAL>::run(params);  \
  }
