#pragma once
// The CUDA execution model on the host, so the hand-written kernel templates (runtime/kernels/
// *.cuh) run as ordinary C++ on a machine without a GPU and their logic is tested there first.
// runtime/kernels/device_primitives.cuh forwards every device primitive to this file when it is not
// compiled for the device; nothing else should need it.
//
// Execution: launch() runs the blocks of a grid one after another. Each CUDA thread of a block is a
// fiber (its own stack, switched cooperatively on the calling host thread), so a block of 256
// threads costs 256 small stacks rather than 256 OS threads, and a rendezvous is a context switch
// instead of a futex round trip. A fiber runs until it reaches a block barrier or a warp-collective
// operation, then the next ready fiber runs; fibers are resumed in FIFO order, so threads of
// different warps interleave at every collective and a missing barrier shows up as stale data.
//
// Instruction semantics follow the PTX ISA (fragment layouts of mma.m16n8k16, ldmatrix .m8n8 with
// and without .trans, shfl.sync), computed from every lane's operands at the rendezvous, exactly as
// the hardware distributes them. cp.async copies are deferred until the cp.async.wait_group that
// must see them complete (the latest moment PTX allows), so a kernel that reads a tile before
// waiting, or before the barrier that publishes other threads' copies, reads the poison that fills
// shared memory at the start of every block.
//
// Misuse that the hardware leaves undefined (a warp whose lanes reach different collectives, a
// barrier some threads never reach) throws InternalError from launch().

#include <cstddef>
#include <cstdint>
#include <functional>

namespace attnc::host_emulation {

struct Dim3 {
  uint32_t x = 1, y = 1, z = 1;
};

// Counters of one launch, for tests that check work skipped (for example EMPTY tiles load nothing).
struct LaunchStats {
  uint64_t blocks = 0;
  uint64_t cp_async_bytes = 0;  // bytes requested by cp.async, zero-filled ones included
  uint64_t mma_ops = 0;         // warp-level mma.sync instructions
  uint64_t wgmma_ops = 0;       // warpgroup-level wgmma.mma_async instructions (sm_90a)
  uint64_t tma_load_bytes = 0;  // bytes requested by tensor-map loads (cp.async.bulk.tensor), zero fill included
};

// Runs `kernel` for every thread of every block of `grid` (blocks in x, then y, then z order), each
// block with `dynamic_shared_bytes` of shared memory. The block size must be a multiple of 32.
// Rethrows the first exception a thread throws. Not re-entrant on one host thread; separate host
// threads may launch concurrently.
LaunchStats launch(Dim3 grid, Dim3 block, size_t dynamic_shared_bytes, const std::function<void()>& kernel);

// What the running CUDA thread sees; valid only inside launch().
Dim3 thread_idx();
Dim3 block_idx();
Dim3 block_dim();
Dim3 grid_dim();
// The block's dynamic shared memory, 128-byte aligned, filled with 0xFF bytes (NaN as fp16, bf16
// and fp32) at the start of every block.
unsigned char* dynamic_shared_memory();

// __syncthreads(): every thread of the block must arrive.
void sync_threads();

// shfl.sync.bfly.b32 / shfl.sync.idx.b32 with a full member mask and width 32.
uint32_t shfl_xor(uint32_t value, int lane_mask);
uint32_t shfl_idx(uint32_t value, int src_lane);

// mma.sync.aligned.m16n8k16.row.col.f32.{bf16,f16}.{bf16,f16}.f32 d, a, b, c. Each lane passes its
// own fragments: a[4] (A 16x16, two 16-bit elements per register, low half first), b[2] (B 16x8),
// c[4] (fp32 accumulators); the lane's d[4] is returned. Products are exact in fp32 and the sum is
// accumulated in fp32.
enum class MmaInput { BF16, F16 };
void mma_m16n8k16(MmaInput input, const uint32_t a[4], const uint32_t b[2], const float c[4], float d[4]);

// ldmatrix.sync.aligned.m8n8.x4{.trans}.shared.b16: lane l gives the address of row l % 8 of
// matrix l / 8; register i of every lane receives its fragment of matrix i.
void ldmatrix_x4(const void* row_address, bool trans, uint32_t r[4]);

// cp.async.cg.shared.global [dst], [src], 16, src_bytes: copies src_bytes (0 or 16) and zero-fills
// the rest. Both addresses must be 16-byte aligned.
void cp_async_16(void* shared_dst, const void* global_src, int src_bytes);
// cp.async.commit_group and cp.async.wait_group n (all but the newest n committed groups complete).
void cp_async_commit_group();
void cp_async_wait_group(int pending);

// ex2.approx.ftz.f32, computed exactly on the host.
float exp2_approx(float x);

// ---------------------------------------------------------------------------------------------
// Hopper (sm_90a): warpgroups, mbarriers, the tensor memory accelerator (TMA) and wgmma, as the
// PTX ISA describes them (runtime/emulation/HostEmulationHopper.cpp). A warpgroup is four
// consecutive warps starting at a warp index divisible by four; its collective instructions
// (.sync.aligned: wgmma.*, setmaxnreg) must be reached by all 128 of its threads.
//
// Asynchronous work completes at the latest moment PTX allows, so a kernel that reads too early
// reads stale data or poison:
// - a tensor-map load is delivered to shared memory when a thread waits on its mbarrier's phase
//   and every expected arrival is in (or when the block ends);
// - a wgmma reads its shared-memory operands and writes its accumulators at the wgmma.wait_group
//   that retires its group; until then the accumulator registers hold a NaN poison, and writing
//   them in between is reported;
// - a tensor-map store reads shared memory at the cp.async.bulk.wait_group.read that retires it.

// When tensor-map loads land in shared memory. Latest (the default) delivers them when a thread
// waits for their barrier's phase, which exposes reads that do not wait; Earliest delivers them as
// they are issued, which exposes buffers released while an earlier reader (a wgmma still in flight)
// needs them. Kernel tests run in both. Per host thread; applies to the launches that follow.
enum class TmaDelivery { Latest, Earliest };
void set_tma_delivery(TmaDelivery delivery);

// The 32-bit shared-window address of `p` (an offset from the start of the block's dynamic shared
// memory, which is what the emulated descriptors, barriers and tensor-map copies take).
uint32_t shared_address(const void* p);

// mbarrier.init.shared::cta.b64 [bar], arrivals: phase 0, `arrivals` pending arrivals, no
// transaction bytes expected.
void mbarrier_init(void* barrier, uint32_t arrivals);
// mbarrier.arrive.shared::cta.b64: one arrival on the current phase.
void mbarrier_arrive(void* barrier);
// mbarrier.arrive.expect_tx.shared::cta.b64: expect `bytes` more transaction bytes, then arrive.
void mbarrier_arrive_expect_tx(void* barrier, uint32_t bytes);
// Blocks until the phase with parity `parity` has completed (the loop around
// mbarrier.try_wait.parity a kernel writes): returns at once when the current phase's parity is
// the other one. A phase completes when all its arrivals are in and its transaction bytes have
// arrived.
void mbarrier_wait_parity(void* barrier, uint32_t parity);

// A tensor map (CUtensorMap, 128 bytes, 64-byte aligned) as this emulation encodes it: what
// cuTensorMapEncodeTiled makes on the device for a tiled, non-interleaved map with zero fill and
// element strides of 1. `dims` and `box` list `rank` (1..5) dimensions innermost first;
// `strides` the byte strides of dimensions 1..rank-1 (dimension 0 is contiguous). With a swizzle
// the box's inner dimension must span exactly the swizzle width (32, 64 or 128 bytes).
enum class TensorMapSwizzle : uint32_t { None = 0, B32 = 1, B64 = 2, B128 = 3 };
void encode_tensor_map(void* map, const void* global, uint32_t element_bytes, uint32_t rank, const uint64_t* dims,
                       const uint64_t* strides, const uint32_t* box, TensorMapSwizzle swizzle);

// cp.async.bulk.tensor.Nd.shared::cluster.global.mbarrier::complete_tx::bytes [dst], [map, coords],
// [bar]: the box at `coords` (rank of the map, innermost first; elements outside the tensor read
// as zero) into shared memory at `shared_dst` (128-byte aligned, 1024 with a swizzle), row after
// row, each 16-byte chunk moved by the map's swizzle of its shared-memory address. Completes
// box-size bytes of transactions on `barrier`.
void tma_load(void* shared_dst, const void* map, const int32_t* coords, void* barrier);
// cp.async.bulk.tensor.Nd.global.shared::cta.bulk_group [map, coords], [src]: the reverse; elements
// outside the tensor are not written. Joins this thread's open bulk group.
void tma_store(const void* map, const int32_t* coords, const void* shared_src);
// cp.async.bulk.commit_group and cp.async.bulk.wait_group.read n (all but the newest n committed
// groups have read their shared memory; the emulation also writes their results then).
void bulk_commit_group();
void bulk_wait_group_read(int pending);
// fence.proxy.async.shared::cta (orders generic-proxy shared-memory writes before later async-proxy
// reads: a tensor-map store or wgmma). The emulation reads shared memory late enough that it needs
// nothing here.
void fence_proxy_async();

// wgmma.mma_async.sync.aligned.m64nNk16.f32.{bf16,f16} on the calling thread's warpgroup:
// D (64 x n, fp32) = A (64 x 16) * B (16 x n) + (accumulate ? D : 0). A is read from shared memory
// through the matrix descriptor `desc_a`, or from registers: `a_regs` is then this thread's four
// registers (two 16-bit elements each, the low half first). B is read through `desc_b`. trans_a /
// trans_b select the M- / N-major layouts (else K-major). `d` is this thread's n / 2 accumulators,
// in the PTX ISA's layout: thread 32 w + 4 g + t holds D[16 w + g + 8 v1][8 j + 2 t + v0] in
// d[4 j + 2 v1 + v0]; the A registers use the same layout for the 64 x 16 A. Descriptors: bits
// 0-13 start address >> 4, 16-29 leading byte offset >> 4, 32-45 stride byte offset >> 4, 49-51
// base offset (must be 0), 62-63 swizzle (0 none, 1 128B, 2 64B, 3 32B).
enum class WgmmaInput { BF16, F16 };
void wgmma_fence();
void wgmma_mma_async(WgmmaInput input, int n, uint64_t desc_a, const uint32_t* a_regs, uint64_t desc_b, bool trans_a,
                     bool trans_b, bool accumulate, float* d);
void wgmma_commit_group();
void wgmma_wait_group(int pending);

// setmaxnreg.{inc,dec}.sync.aligned.u32 registers: checked (a multiple of 8 in [24, 256], the same
// for the whole warpgroup), otherwise nothing to do on the host.
void setmaxnreg(bool increase, uint32_t registers);

// bar.sync id, threads / bar.arrive id, threads: named barriers 1..15 (0 is __syncthreads); a
// barrier completes when `threads` (a multiple of 32) threads have arrived, and bar.sync waits for
// that. A block that ends with arrivals pending on a named barrier is reported.
void named_barrier_sync(uint32_t id, uint32_t threads);
void named_barrier_arrive(uint32_t id, uint32_t threads);
// ld.global.v4.u32 / st.global.v4.u32: 16 bytes between `address` (16-byte aligned, else
// InternalError) and four words. Plain memory accesses; they need no launch.
void global_load_16(const void* address, uint32_t words[4]);
void global_store_16(void* address, const uint32_t words[4]);
// red.global.add.f32 [address], value: an atomic fp32 add to global memory (`address` 4-byte
// aligned, else InternalError). Every emulated block runs on one host thread, so within a launch
// the adds happen in program order; the add itself is atomic so that concurrent launches on other
// host threads sharing a buffer stay correct. Needs no launch.
void atomic_add_f32(float* address, float value);

}  // namespace attnc::host_emulation
