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

// ld.global.v4.u32 / st.global.v4.u32: 16 bytes between `address` (16-byte aligned, else
// InternalError) and four words. Plain memory accesses; they need no launch.
void global_load_16(const void* address, uint32_t words[4]);
void global_store_16(void* address, const uint32_t words[4]);

}  // namespace attnc::host_emulation
