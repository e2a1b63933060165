#pragma once
// Every device primitive the kernel templates use, behind small wrappers, so the same template
// source compiles for the GPU (NVRTC or nvcc: inline PTX, no CUDA or system headers) and as host
// C++ for the CPU emulation (runtime/emulation/HostEmulation.h, which follows the PTX ISA's semantics
// and fragment layouts). Kernel code calls only what is here; it never names threadIdx, asm or
// __syncthreads directly, so nothing in the template can bypass the emulation.
//
// Requires sm_80 or newer (cp.async, cvt.rn.bf16x2.f32, mma.m16n8k16 with bf16).

#include "fixed_width_types.cuh"

// ATTNC_ON_DEVICE and ATTNC_UNROLL are also defined, identically, by mod_abi.cuh.
#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#ifndef ATTNC_ON_DEVICE
#define ATTNC_ON_DEVICE 1
#define ATTNC_UNROLL _Pragma("unroll")
#endif
#ifndef ATTNC_NO_UNROLL
#define ATTNC_NO_UNROLL _Pragma("unroll 1")  // a loop kept rolled
#endif
#define ATTNC_DEVICE_INLINE __device__ __forceinline__
// For constexpr helpers used in both compile-time sizes and device code: NVRTC rejects plain
// (host-only) functions in JIT mode.
#define ATTNC_HOST_DEVICE __host__ __device__
#define ATTNC_KERNEL __global__
#define ATTNC_LAUNCH_BOUNDS(threads) __launch_bounds__(threads)
#define ATTNC_RESTRICT __restrict__
#else
#ifndef ATTNC_ON_DEVICE
#define ATTNC_ON_DEVICE 0
#define ATTNC_UNROLL
#endif
#ifndef ATTNC_NO_UNROLL
#define ATTNC_NO_UNROLL
#endif
#define ATTNC_DEVICE_INLINE inline
#define ATTNC_HOST_DEVICE
#define ATTNC_KERNEL
#define ATTNC_LAUNCH_BOUNDS(threads)
#define ATTNC_RESTRICT
#include <cmath>
#include <cstring>

#include "compiler/DType.h"
#include "runtime/emulation/HostEmulation.h"
#endif

namespace attnc_dev {

// ---------------------------------------------------------------------------------------------
// Element types. Plain 16-bit storage (no cuda_fp16.h / cuda_bf16.h on the device path); the kernel
// converts to fp32 right after loading and packs pairs back for the tensor cores and the output.

struct bf16_t {
  uint16_t bits;
};
struct f16_t {
  uint16_t bits;
};

// Two fp32 values rounded (to nearest even) into one 32-bit register, `low` in bits 0..15: the
// order in which mma fragments and memory hold consecutive elements.
template <class Elem>
ATTNC_DEVICE_INLINE uint32_t pack2(float low, float high);

template <>
ATTNC_DEVICE_INLINE uint32_t pack2<bf16_t>(float low, float high) {
#if ATTNC_ON_DEVICE
  uint32_t r;
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(high), "f"(low));
  return r;
#else
  return uint32_t{attnc::float_to_bfloat16(low)} | (uint32_t{attnc::float_to_bfloat16(high)} << 16);
#endif
}

template <>
ATTNC_DEVICE_INLINE uint32_t pack2<f16_t>(float low, float high) {
#if ATTNC_ON_DEVICE
  uint32_t r;
  asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(high), "f"(low));
  return r;
#else
  return uint32_t{attnc::float_to_half(low)} | (uint32_t{attnc::float_to_half(high)} << 16);
#endif
}

// ---------------------------------------------------------------------------------------------
// Thread and block indices (x, y, z as in CUDA).

#if ATTNC_ON_DEVICE
ATTNC_DEVICE_INLINE int thread_idx_x() { return static_cast<int>(threadIdx.x); }
ATTNC_DEVICE_INLINE int block_idx_x() { return static_cast<int>(blockIdx.x); }
ATTNC_DEVICE_INLINE int block_idx_y() { return static_cast<int>(blockIdx.y); }
ATTNC_DEVICE_INLINE int block_idx_z() { return static_cast<int>(blockIdx.z); }
#else
inline int thread_idx_x() { return static_cast<int>(attnc::host_emulation::thread_idx().x); }
inline int block_idx_x() { return static_cast<int>(attnc::host_emulation::block_idx().x); }
inline int block_idx_y() { return static_cast<int>(attnc::host_emulation::block_idx().y); }
inline int block_idx_z() { return static_cast<int>(attnc::host_emulation::block_idx().z); }
#endif

// ---------------------------------------------------------------------------------------------
// Block barrier (__syncthreads: bar.sync 0, which also orders shared-memory accesses).

ATTNC_DEVICE_INLINE void block_barrier() {
#if ATTNC_ON_DEVICE
  __syncthreads();
#else
  attnc::host_emulation::sync_threads();
#endif
}

// ---------------------------------------------------------------------------------------------
// Shared memory: the kernels use only dynamic shared memory, carved up by the template. The base
// is 128-byte aligned on both paths.

ATTNC_DEVICE_INLINE unsigned char* dynamic_shared_memory() {
#if ATTNC_ON_DEVICE
  extern __shared__ __attribute__((aligned(128))) unsigned char attnc_dynamic_smem[];
  return attnc_dynamic_smem;
#else
  return attnc::host_emulation::dynamic_shared_memory();
#endif
}

#if ATTNC_ON_DEVICE
// The 32-bit shared-window address that ldmatrix and cp.async take.
ATTNC_DEVICE_INLINE uint32_t shared_address(const void* p) {
  uint32_t address;
  asm("{ .reg .u64 a; cvta.to.shared.u64 a, %1; cvt.u32.u64 %0, a; }" : "=r"(address) : "l"(p));
  return address;
}
#endif

// ---------------------------------------------------------------------------------------------
// Warp shuffles over the full warp (member mask 0xffffffff, width 32).

ATTNC_DEVICE_INLINE float shfl_xor(float value, int lane_mask) {
#if ATTNC_ON_DEVICE
  float r;
  asm volatile("shfl.sync.bfly.b32 %0, %1, %2, 0x1f, 0xffffffff;" : "=f"(r) : "f"(value), "r"(lane_mask));
  return r;
#else
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  bits = attnc::host_emulation::shfl_xor(bits, lane_mask);
  float r;
  std::memcpy(&r, &bits, sizeof r);
  return r;
#endif
}

ATTNC_DEVICE_INLINE uint32_t shfl_idx(uint32_t value, int src_lane) {
#if ATTNC_ON_DEVICE
  uint32_t r;
  asm volatile("shfl.sync.idx.b32 %0, %1, %2, 0x1f, 0xffffffff;" : "=r"(r) : "r"(value), "r"(src_lane));
  return r;
#else
  return attnc::host_emulation::shfl_idx(value, src_lane);
#endif
}

// ---------------------------------------------------------------------------------------------
// Tensor cores: D = A * B + C with mma.sync.aligned.m16n8k16.row.col.f32.{bf16,f16}, fp32
// accumulation. Fragment layouts (PTX ISA, "Matrix Fragments for mma.m16n8k16"), with
// g = lane / 4 and t = lane % 4, each 32-bit register holding two consecutive 16-bit elements
// (the lower column / row index in the low half):
//   A 16x16 (row major): a[0] = A[g][2t..2t+1]   a[1] = A[g+8][2t..2t+1]
//                        a[2] = A[g][2t+8..2t+9] a[3] = A[g+8][2t+8..2t+9]
//   B 16x8 (K x N):      b[0] = B[2t..2t+1][g]   b[1] = B[2t+8..2t+9][g]
//   C, D 16x8 (fp32):    c[0] = C[g][2t]   c[1] = C[g][2t+1]   c[2] = C[g+8][2t]   c[3] = C[g+8][2t+1]
// So the C/D fragments of two horizontally adjacent 16x8 results, converted to 16-bit pairs, are
// exactly the A fragment of the 16x16 block they form: that is how P feeds P * V without a trip
// through shared memory.

template <class Elem>
ATTNC_DEVICE_INLINE void mma_m16n8k16(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]);

template <>
ATTNC_DEVICE_INLINE void mma_m16n8k16<bf16_t>(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
#if ATTNC_ON_DEVICE
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#else
  attnc::host_emulation::mma_m16n8k16(attnc::host_emulation::MmaInput::BF16, a, b, d, d);
#endif
}

template <>
ATTNC_DEVICE_INLINE void mma_m16n8k16<f16_t>(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
#if ATTNC_ON_DEVICE
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#else
  attnc::host_emulation::mma_m16n8k16(attnc::host_emulation::MmaInput::F16, a, b, d, d);
#endif
}

// ---------------------------------------------------------------------------------------------
// ldmatrix.sync.aligned.m8n8.x4{.trans}.shared.b16: four 8x8 matrices of 16-bit elements from
// shared memory. Lane 8 m + r passes the (16-byte aligned) address of row r of matrix m; register
// m of lane l receives, without .trans, row l / 4, columns 2 (l % 4) and +1 of matrix m (the A/B
// fragment layout above); with .trans, rows 2 (l % 4) and +1 of column l / 4 (the fragment of the
// transposed matrix, used for V, which is stored with the reduction dimension in rows).

ATTNC_DEVICE_INLINE void ldmatrix_x4(uint32_t (&r)[4], const void* row_address) {
#if ATTNC_ON_DEVICE
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(shared_address(row_address)));
#else
  attnc::host_emulation::ldmatrix_x4(row_address, false, r);
#endif
}

ATTNC_DEVICE_INLINE void ldmatrix_x4_trans(uint32_t (&r)[4], const void* row_address) {
#if ATTNC_ON_DEVICE
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(shared_address(row_address)));
#else
  attnc::host_emulation::ldmatrix_x4(row_address, true, r);
#endif
}

// ---------------------------------------------------------------------------------------------
// Asynchronous global -> shared copies (cp.async.cg: 16 bytes, bypassing L1). When `valid` is
// false nothing is read and the 16 bytes are zero-filled (src-size 0); `global_src` must still be a
// 16-byte aligned address. A thread's copies become visible to itself after cp_async_wait<N>() has
// retired their group, and to the other threads of the block after a block_barrier() that follows.

ATTNC_DEVICE_INLINE void cp_async_16(void* shared_dst, const void* global_src, bool valid) {
#if ATTNC_ON_DEVICE
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(shared_address(shared_dst)), "l"(global_src),
               "r"(valid ? 16 : 0)
               : "memory");
#else
  attnc::host_emulation::cp_async_16(shared_dst, global_src, valid ? 16 : 0);
#endif
}

ATTNC_DEVICE_INLINE void cp_async_commit() {
#if ATTNC_ON_DEVICE
  asm volatile("cp.async.commit_group;" ::: "memory");
#else
  attnc::host_emulation::cp_async_commit_group();
#endif
}

// Waits until at most PENDING of this thread's committed groups are still in flight.
template <int PENDING>
ATTNC_DEVICE_INLINE void cp_async_wait() {
#if ATTNC_ON_DEVICE
  asm volatile("cp.async.wait_group %0;" ::"n"(PENDING) : "memory");
#else
  attnc::host_emulation::cp_async_wait_group(PENDING);
#endif
}

// ---------------------------------------------------------------------------------------------
// Arithmetic.

// 2^x with ex2.approx.ftz (2 ulp; exp2(-inf) = 0, which the online softmax relies on).
ATTNC_DEVICE_INLINE float fast_exp2(float x) {
#if ATTNC_ON_DEVICE
  float r;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(x));
  return r;
#else
  return attnc::host_emulation::exp2_approx(x);
#endif
}

ATTNC_DEVICE_INLINE float fast_log2(float x) {
#if ATTNC_ON_DEVICE
  float r;
  asm("lg2.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(x));
  return r;
#else
  return std::log2(x);
#endif
}

ATTNC_DEVICE_INLINE float max_f32(float a, float b) { return a > b ? a : b; }

ATTNC_DEVICE_INLINE float float_from_bits(uint32_t bits) {
#if ATTNC_ON_DEVICE
  float r;
  asm("mov.b32 %0, %1;" : "=f"(r) : "r"(bits));
  return r;
#else
  float r;
  std::memcpy(&r, &bits, sizeof r);
  return r;
#endif
}

// -infinity without <cmath> / <limits>.
ATTNC_DEVICE_INLINE float negative_infinity() { return float_from_bits(0xff800000u); }

// ---------------------------------------------------------------------------------------------
// Added for the decode family (runtime/families/decode/): integer warp shuffles and 16-byte
// global loads and stores. Appended here so that other families' additions do not collide.

ATTNC_DEVICE_INLINE uint32_t shfl_xor_u32(uint32_t value, int lane_mask) {
#if ATTNC_ON_DEVICE
  uint32_t r;
  asm volatile("shfl.sync.bfly.b32 %0, %1, %2, 0x1f, 0xffffffff;" : "=r"(r) : "r"(value), "r"(lane_mask));
  return r;
#else
  return attnc::host_emulation::shfl_xor(value, lane_mask);
#endif
}

// Sixteen bytes, as four 32-bit words in memory order.
struct alignas(16) U32x4 {
  uint32_t w[4];
};

// ld.global.v4.u32 / st.global.v4.u32: one 16-byte access, `address` 16-byte aligned (the host
// emulation checks it). The load goes through the non-coherent read-only path (ld.global.nc), so
// it may only read memory that no thread of the launch writes.
ATTNC_DEVICE_INLINE U32x4 load_global_16(const void* address) {
  U32x4 r;
#if ATTNC_ON_DEVICE
  asm volatile("ld.global.nc.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(r.w[0]), "=r"(r.w[1]), "=r"(r.w[2]), "=r"(r.w[3])
               : "l"(address));
#else
  attnc::host_emulation::global_load_16(address, r.w);
#endif
  return r;
}

ATTNC_DEVICE_INLINE void store_global_16(void* address, const U32x4& value) {
#if ATTNC_ON_DEVICE
  asm volatile("st.global.v4.u32 [%0], {%1, %2, %3, %4};" ::"l"(address), "r"(value.w[0]), "r"(value.w[1]),
               "r"(value.w[2]), "r"(value.w[3])
               : "memory");
#else
  attnc::host_emulation::global_store_16(address, value.w);
#endif
}

// ---------------------------------------------------------------------------------------------
// Added for the backward family (runtime/families/flash_backward/): ldmatrix at 32-bit shared
// addresses, and an atomic fp32 add to global memory whose result is not needed (red.global.add.f32; `address` 4-byte
// aligned). The order in which concurrent adds land is unspecified on the GPU, so sums built with it are not
// bit-for-bit reproducible there.

// ldmatrix from a 32-bit shared-memory address: shared_u32 converts a pointer into the block's
// dynamic shared memory once (the shared window address on the device, the offset from the start
// of dynamic shared memory in the emulation), and byte offsets are then added as plain integers.
// Unlike the pointer forms above, whose per-call address conversion is opaque to the compiler,
// base + constant offsets fold into the instructions' immediates instead of occupying a register
// each for the life of a loop.
ATTNC_DEVICE_INLINE uint32_t shared_u32(const void* p) {
#if ATTNC_ON_DEVICE
  return shared_address(p);
#else
  return attnc::host_emulation::shared_address(p);
#endif
}

ATTNC_DEVICE_INLINE void ldmatrix_x4_at(uint32_t (&r)[4], uint32_t shared_address_u32) {
#if ATTNC_ON_DEVICE
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(shared_address_u32));
#else
  attnc::host_emulation::ldmatrix_x4(attnc::host_emulation::dynamic_shared_memory() + shared_address_u32, false, r);
#endif
}

ATTNC_DEVICE_INLINE void ldmatrix_x4_trans_at(uint32_t (&r)[4], uint32_t shared_address_u32) {
#if ATTNC_ON_DEVICE
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(shared_address_u32));
#else
  attnc::host_emulation::ldmatrix_x4(attnc::host_emulation::dynamic_shared_memory() + shared_address_u32, true, r);
#endif
}

ATTNC_DEVICE_INLINE void atomic_add_f32(float* address, float value) {
#if ATTNC_ON_DEVICE
  asm volatile("red.global.add.f32 [%0], %1;" ::"l"(address), "f"(value) : "memory");
#else
  attnc::host_emulation::atomic_add_f32(address, value);
#endif
}

}  // namespace attnc_dev
