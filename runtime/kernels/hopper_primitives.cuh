#pragma once
// The Hopper (sm_90a) device primitives the warp-specialised templates use, behind wrappers in the
// manner of device_primitives.cuh: inline PTX on the device, the host emulation
// (runtime/emulation/HostEmulation.h, "Hopper") on the CPU, so the same template runs in tests.
//
//   mbarriers        init / arrive / arrive.expect_tx / wait on a phase parity
//   TMA              tiled tensor-map loads into shared memory (completing on an mbarrier) and
//                    stores from it (bulk groups), with the 128-byte swizzle
//   wgmma            m64nNk16, fp32 accumulators, bf16 / fp16 inputs; A from shared memory (SS) or
//                    registers (RS), B from shared memory, through matrix descriptors
//   warpgroups       setmaxnreg, named barriers (bar.sync / bar.arrive with a thread count)
//
// Shared-memory layouts: a tile whose rows are 64 16-bit elements (128 bytes) is stored in
// 8-row atoms of 1024 bytes, row r at byte 128 r of its atom and 16-byte chunk c of the row at chunk
// c ^ (r % 8): the 128-byte swizzle, which a tensor map with CU_TENSOR_MAP_SWIZZLE_128B writes and
// a wgmma descriptor with layout type 1 (128B) reads. Wider rows are split into 64-column
// sub-tiles stored one after another. Every such tile must start at a 1024-byte aligned address.
//
// Requires sm_90a (wgmma, setmaxnreg); the TMA and mbarrier instructions need sm_90.

#include "device_primitives.cuh"

#if ATTNC_ON_DEVICE
// A kernel parameter whose address may be taken (the tensor maps are read from parameter space).
#define ATTNC_GRID_CONSTANT __grid_constant__
// A register cap at entry (threads per block, one block per SM): what setmaxnreg redistributes.
#define ATTNC_LAUNCH_BOUNDS_MIN_BLOCKS(threads, blocks) __launch_bounds__(threads, blocks)
#else
#define ATTNC_GRID_CONSTANT
#define ATTNC_LAUNCH_BOUNDS_MIN_BLOCKS(threads, blocks)
#include <type_traits>
#endif

namespace attnc_dev {

// A CUtensorMap: 128 opaque bytes, 64-byte aligned, made on the host by cuTensorMapEncodeTiled (or
// by host_emulation::encode_tensor_map for the emulation) and passed in the kernel's parameters.
struct alignas(64) TensorMap {
  uint64_t opaque[16];
};

// The grid's extent in x (gridDim.x), for kernels that walk their blocks in another order.
ATTNC_DEVICE_INLINE int grid_dim_x() {
#if ATTNC_ON_DEVICE
  return static_cast<int>(gridDim.x);
#else
  return static_cast<int>(attnc::host_emulation::grid_dim().x);
#endif
}

// The 32-bit shared-window address of a shared-memory pointer (what descriptors, mbarriers and
// bulk copies take).
ATTNC_DEVICE_INLINE uint32_t smem_address(const void* p) {
#if ATTNC_ON_DEVICE
  return shared_address(p);
#else
  return attnc::host_emulation::shared_address(p);
#endif
}

// ---------------------------------------------------------------------------------------------
// mbarriers (8 bytes of shared memory each). A phase completes when its `arrivals` arrivals are in
// and every transaction byte announced with arrive_expect_tx has been written by the copies that
// complete on it; the barrier then starts the next phase. mbarrier_wait(bar, parity) returns once
// the phase with that parity has completed: a consumer waits on parity (round & 1) of its "full"
// barrier; a producer waits on ((round & 1) ^ 1) of an "empty" barrier, which passes at once in
// round 0 (the phase "before" the first counts as completed).

ATTNC_DEVICE_INLINE void mbarrier_init(uint64_t* bar, uint32_t arrivals) {
#if ATTNC_ON_DEVICE
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(smem_address(bar)), "r"(arrivals) : "memory");
#else
  attnc::host_emulation::mbarrier_init(bar, arrivals);
#endif
}

// Makes initialised barriers visible to the asynchronous proxy (the copy engine); follow it with a
// block barrier before any other thread uses them.
ATTNC_DEVICE_INLINE void mbarrier_init_fence() {
#if ATTNC_ON_DEVICE
  asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
#endif
}

ATTNC_DEVICE_INLINE void mbarrier_arrive(uint64_t* bar) {
#if ATTNC_ON_DEVICE
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(smem_address(bar)) : "memory");
#else
  attnc::host_emulation::mbarrier_arrive(bar);
#endif
}

ATTNC_DEVICE_INLINE void mbarrier_arrive_expect_tx(uint64_t* bar, uint32_t bytes) {
#if ATTNC_ON_DEVICE
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(smem_address(bar)), "r"(bytes)
               : "memory");
#else
  attnc::host_emulation::mbarrier_arrive_expect_tx(bar, bytes);
#endif
}

ATTNC_DEVICE_INLINE void mbarrier_wait(uint64_t* bar, uint32_t parity) {
#if ATTNC_ON_DEVICE
  const uint32_t address = smem_address(bar);
  uint32_t done = 0;
  do {
    asm volatile("{ .reg .pred p; mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2; selp.u32 %0, 1, 0, p; }"
                 : "=r"(done)
                 : "r"(address), "r"(parity)
                 : "memory");
  } while (done == 0);
#else
  attnc::host_emulation::mbarrier_wait_parity(bar, parity);
#endif
}

// ---------------------------------------------------------------------------------------------
// Tensor-map copies (the tensor memory accelerator). Coordinates are element indices, innermost
// dimension first; boxes reaching outside the tensor are zero-filled on loads and clipped on
// stores, and a load always completes the whole box's bytes on its barrier.

ATTNC_DEVICE_INLINE void tma_load_4d(void* dst, const TensorMap* map, int c0, int c1, int c2, int c3, uint64_t* bar) {
#if ATTNC_ON_DEVICE
  asm volatile(
      "cp.async.bulk.tensor.4d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4, %5}], "
      "[%6];" ::"r"(smem_address(dst)),
      "l"(map), "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(smem_address(bar))
      : "memory");
#else
  const int32_t coords[4] = {c0, c1, c2, c3};
  attnc::host_emulation::tma_load(dst, map, coords, bar);
#endif
}

ATTNC_DEVICE_INLINE void tma_store_4d(const TensorMap* map, int c0, int c1, int c2, int c3, const void* src) {
#if ATTNC_ON_DEVICE
  asm volatile("cp.async.bulk.tensor.4d.global.shared::cta.bulk_group [%0, {%1, %2, %3, %4}], [%5];" ::"l"(map),
               "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(smem_address(src))
               : "memory");
#else
  const int32_t coords[4] = {c0, c1, c2, c3};
  attnc::host_emulation::tma_store(map, coords, src);
#endif
}

ATTNC_DEVICE_INLINE void bulk_commit_group() {
#if ATTNC_ON_DEVICE
  asm volatile("cp.async.bulk.commit_group;" ::: "memory");
#else
  attnc::host_emulation::bulk_commit_group();
#endif
}

// Waits until at most PENDING of this thread's bulk groups may still read shared memory.
template <int PENDING>
ATTNC_DEVICE_INLINE void bulk_wait_group_read() {
#if ATTNC_ON_DEVICE
  asm volatile("cp.async.bulk.wait_group.read %0;" ::"n"(PENDING) : "memory");
#else
  attnc::host_emulation::bulk_wait_group_read(PENDING);
#endif
}

// Orders this thread's ordinary shared-memory writes before later reads by the asynchronous proxy
// (a tensor-map store, a wgmma); each writing thread issues it before the barrier that publishes.
ATTNC_DEVICE_INLINE void fence_proxy_async_shared() {
#if ATTNC_ON_DEVICE
  asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
#else
  attnc::host_emulation::fence_proxy_async();
#endif
}

// Starts fetching a tensor map into the copy engine's cache (a hint; nothing on the host).
ATTNC_DEVICE_INLINE void prefetch_tensor_map(const TensorMap* map) {
#if ATTNC_ON_DEVICE
  asm volatile("prefetch.tensormap [%0];" ::"l"(map) : "memory");
#else
  (void)map;
#endif
}

// ---------------------------------------------------------------------------------------------
// wgmma. A shared-memory matrix descriptor (PTX ISA, "Matrix Descriptor Format"): bits 0-13 the
// start address >> 4, 16-29 the leading dimension byte offset >> 4, 32-45 the stride dimension
// byte offset >> 4, 62-63 the swizzle (1: 128B). For the 128B-swizzled layouts used here:
//   K-major (A = Q, B = K: rows along M or N, 64 elements of K per 128-byte row): 8-row atoms
//     `stride` bytes apart (1024 when atoms are packed); the leading offset is unused (1 by
//     convention); a k16 step inside a 64-column sub-tile adds 32 bytes to the start address.
//   MN-major (B = V: rows along K, 64 elements of N per row, imm-trans-b = 1): the leading offset
//     is the distance between 64-column sub-tiles along N, the stride the distance between 8-row
//     groups along K (1024); a k16 step adds 2048 bytes.
constexpr int kSwizzle128B = 1;

ATTNC_HOST_DEVICE constexpr uint64_t make_smem_descriptor(uint32_t address, uint32_t leading_bytes,
                                                          uint32_t stride_bytes, int swizzle) {
  return uint64_t((address >> 4) & 0x3fff) | (uint64_t((leading_bytes >> 4) & 0x3fff) << 16) |
         (uint64_t((stride_bytes >> 4) & 0x3fff) << 32) | (uint64_t(swizzle & 3) << 62);
}

// Orders register accesses before the wgmmas that follow (wgmma.fence): before the first wgmma of
// a batch, and whenever accumulators or A registers were touched since the last one.
ATTNC_DEVICE_INLINE void wgmma_fence() {
#if ATTNC_ON_DEVICE
  asm volatile("wgmma.fence.sync.aligned;" ::: "memory");
#else
  attnc::host_emulation::wgmma_fence();
#endif
}

ATTNC_DEVICE_INLINE void wgmma_commit() {
#if ATTNC_ON_DEVICE
  asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory");
#else
  attnc::host_emulation::wgmma_commit_group();
#endif
}

// Waits until at most PENDING of the warpgroup's committed wgmma groups are in flight; only then
// may their accumulators be read or their shared-memory operands be overwritten.
template <int PENDING>
ATTNC_DEVICE_INLINE void wgmma_wait() {
#if ATTNC_ON_DEVICE
  asm volatile("wgmma.wait_group.sync.aligned %0;" ::"n"(PENDING) : "memory");
#else
  attnc::host_emulation::wgmma_wait_group(PENDING);
#endif
}

// Register operands of wgmma are read and written asynchronously, which the compiler does not
// know: after the asm that issues a wgmma it could move a later read of the accumulators above the
// wait, or give the A registers of an RS wgmma to other values while the tensor cores still read
// them. An empty asm that reads and writes every register of the array pins them: call it on the
// accumulators before issuing and after the wait that retires them, and on RS A registers after
// that wait.
template <int N>
ATTNC_DEVICE_INLINE void fence_operands(float (&r)[N]) {
#if ATTNC_ON_DEVICE
  ATTNC_UNROLL
  for (int i = 0; i < N; ++i) asm volatile("" : "+f"(r[i])::"memory");
#else
  (void)r;
#endif
}

template <int N>
ATTNC_DEVICE_INLINE void fence_operands(uint32_t (&r)[N]) {
#if ATTNC_ON_DEVICE
  ATTNC_UNROLL
  for (int i = 0; i < N; ++i) asm volatile("" : "+r"(r[i])::"memory");
#else
  (void)r;
#endif
}

template <int N, int M>
ATTNC_DEVICE_INLINE void fence_operands(uint32_t (&r)[N][M]) {
  ATTNC_UNROLL
  for (int i = 0; i < N; ++i) fence_operands(r[i]);
}

}  // namespace attnc_dev

#include "wgmma_ops.cuh"

namespace attnc_dev {

// D (64 x N fp32, N / 2 per thread) = A (64 x 16) * B (16 x N) [+ D]: A and B from shared memory.
// TRANS_A / TRANS_B: 0 K-major, 1 M- / N-major. `accumulate` false overwrites D.
template <class Elem, int N, int TRANS_A, int TRANS_B>
ATTNC_DEVICE_INLINE void wgmma_ss(float (&d)[N / 2], uint64_t desc_a, uint64_t desc_b, bool accumulate) {
#if ATTNC_ON_DEVICE
  wgmma_detail::Ops<Elem, N>::template ss<TRANS_A, TRANS_B>(d, desc_a, desc_b, accumulate ? 1 : 0);
#else
  attnc::host_emulation::wgmma_mma_async(std::is_same<Elem, bf16_t>::value ? attnc::host_emulation::WgmmaInput::BF16
                                                                           : attnc::host_emulation::WgmmaInput::F16,
                                         N, desc_a, nullptr, desc_b, TRANS_A != 0, TRANS_B != 0, accumulate, d);
#endif
}

// The same with A from registers: `a` holds this thread's four registers of the 64 x 16 A in the
// accumulator layout (so the fp32 accumulators of S, packed in pairs, are P's A fragment).
template <class Elem, int N, int TRANS_B>
ATTNC_DEVICE_INLINE void wgmma_rs(float (&d)[N / 2], const uint32_t (&a)[4], uint64_t desc_b, bool accumulate) {
#if ATTNC_ON_DEVICE
  wgmma_detail::Ops<Elem, N>::template rs<TRANS_B>(d, a, desc_b, accumulate ? 1 : 0);
#else
  attnc::host_emulation::wgmma_mma_async(std::is_same<Elem, bf16_t>::value ? attnc::host_emulation::WgmmaInput::BF16
                                                                           : attnc::host_emulation::WgmmaInput::F16,
                                         N, 0, a, desc_b, false, TRANS_B != 0, accumulate, d);
#endif
}

// ---------------------------------------------------------------------------------------------
// Warpgroups. setmaxnreg moves registers between warpgroups (every thread of the warpgroup executes
// it; it takes effect only with a register cap at entry, ATTNC_LAUNCH_BOUNDS_MIN_BLOCKS(..., 1)).

template <int REGS>
ATTNC_DEVICE_INLINE void setmaxnreg_inc() {
#if ATTNC_ON_DEVICE
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;" ::"n"(REGS));
#else
  attnc::host_emulation::setmaxnreg(true, REGS);
#endif
}

template <int REGS>
ATTNC_DEVICE_INLINE void setmaxnreg_dec() {
#if ATTNC_ON_DEVICE
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;" ::"n"(REGS));
#else
  attnc::host_emulation::setmaxnreg(false, REGS);
#endif
}

// Named barriers 1..15 over `threads` threads (a multiple of 32): sync waits for all of them,
// arrive counts the caller in without waiting (a producer-consumer handshake between warpgroups).
ATTNC_DEVICE_INLINE void named_barrier_sync(int id, int threads) {
#if ATTNC_ON_DEVICE
  asm volatile("bar.sync %0, %1;" ::"r"(id), "r"(threads) : "memory");
#else
  attnc::host_emulation::named_barrier_sync(static_cast<uint32_t>(id), static_cast<uint32_t>(threads));
#endif
}

ATTNC_DEVICE_INLINE void named_barrier_arrive(int id, int threads) {
#if ATTNC_ON_DEVICE
  asm volatile("bar.arrive %0, %1;" ::"r"(id), "r"(threads) : "memory");
#else
  attnc::host_emulation::named_barrier_arrive(static_cast<uint32_t>(id), static_cast<uint32_t>(threads));
#endif
}

}  // namespace attnc_dev
