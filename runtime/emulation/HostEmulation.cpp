#include "runtime/emulation/HostEmulation.h"

#include <ucontext.h>

#include <atomic>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <deque>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "compiler/DType.h"
#include "dsl/Errors.h"
#include "runtime/emulation/HostEmulationDetail.h"

namespace attnc::host_emulation {
namespace {

constexpr int kWarpSize = 32;
// Kernel frames are small (register arrays of a few hundred floats); the rest is headroom for
// unoptimised builds and sanitizers.
constexpr size_t kStackBytes = 256 * 1024;

// The warp-collective operations. All lanes of a warp must reach the same one.
enum class Collective { MmaBf16, MmaF16, Ldmatrix, LdmatrixTrans, ShflXor, ShflIdx };

const char* collective_name(Collective op) {
  switch (op) {
    case Collective::MmaBf16: return "mma.sync (bf16)";
    case Collective::MmaF16: return "mma.sync (f16)";
    case Collective::Ldmatrix: return "ldmatrix";
    case Collective::LdmatrixTrans: return "ldmatrix.trans";
    case Collective::ShflXor: return "shfl.sync.bfly";
    case Collective::ShflIdx: return "shfl.sync.idx";
  }
  return "?";
}

// One lane's operands and results of a collective, as raw 32-bit registers (addresses aside).
struct LaneSlot {
  uint32_t in[10] = {};
  const void* address = nullptr;
  uint32_t out[4] = {};
};

struct PendingCopy {
  void* dst;
  const void* src;
  int src_bytes;
};

struct Fiber {
  ucontext_t context{};
  unsigned char* stack = nullptr;
  Dim3 thread_idx;
  enum class State { Ready, Waiting, Done } state = State::Ready;
  std::vector<PendingCopy> open_group;
  std::deque<std::vector<PendingCopy>> committed_groups;
};

struct Warp {
  int arrived = 0;
  Collective op = Collective::ShflXor;
  LaneSlot lanes[kWarpSize];
};

// Everything about the block that is running on this host thread.
struct BlockRun {
  const std::function<void()>* kernel = nullptr;
  Dim3 block_idx, block_dim, grid_dim;
  std::vector<Fiber> fibers;
  std::vector<Warp> warps;
  std::deque<int> ready;
  std::vector<int> barrier_waiters;
  unsigned char* shared = nullptr;
  size_t shared_bytes = 0;
  ucontext_t scheduler{};
  int current = -1;
  std::exception_ptr error;
  LaunchStats* stats = nullptr;
};

thread_local BlockRun* t_block = nullptr;

BlockRun& block() {
  ATTNC_ASSERT(t_block != nullptr && t_block->current >= 0, "a device primitive was called outside a host launch");
  return *t_block;
}

Fiber& current_fiber() { return block().fibers[block().current]; }

void complete_copies(std::vector<PendingCopy>& group) {
  for (const PendingCopy& copy : group) {
    std::memset(copy.dst, 0, 16);
    if (copy.src_bytes > 0) std::memcpy(copy.dst, copy.src, static_cast<size_t>(copy.src_bytes));
  }
  group.clear();
}

// Suspends the running fiber until another one makes it ready again.
void wait_here() {
  BlockRun& run = block();
  Fiber& fiber = run.fibers[run.current];
  fiber.state = Fiber::State::Waiting;
  swapcontext(&fiber.context, &run.scheduler);
}

void make_ready(BlockRun& run, int index) {
  run.fibers[index].state = Fiber::State::Ready;
  run.ready.push_back(index);
}

void fiber_main() {
  BlockRun& run = *t_block;
  try {
    (*run.kernel)();
  } catch (...) {
    if (!run.error) run.error = std::current_exception();
  }
  try {
    detail::hopper_thread_exit(run.current);
  } catch (...) {
    if (!run.error) run.error = std::current_exception();
  }
  Fiber& fiber = run.fibers[run.current];
  // The hardware finishes outstanding asynchronous copies even if the thread never waits.
  for (auto& group : fiber.committed_groups) complete_copies(group);
  complete_copies(fiber.open_group);
  fiber.committed_groups.clear();
  fiber.state = Fiber::State::Done;
  // Returning resumes uc_link, the scheduler.
}

uint16_t low_half(uint32_t r) { return static_cast<uint16_t>(r & 0xFFFFu); }
uint16_t high_half(uint32_t r) { return static_cast<uint16_t>(r >> 16); }
uint32_t pack_halves(uint16_t low, uint16_t high) { return uint32_t{low} | (uint32_t{high} << 16); }

// mma.m16n8k16 with the fragment layouts of the PTX ISA ("Matrix Fragments for mma.m16n8k16 with
// floating point type"): groupID = lane >> 2, threadID_in_group = lane % 4.
void combine_mma(Collective op, LaneSlot* lanes) {
  auto to_float = [op](uint16_t bits) {
    return op == Collective::MmaBf16 ? bfloat16_to_float(bits) : half_to_float(bits);
  };
  float a[16][16], b[16][8], c[16][8];
  for (int lane = 0; lane < kWarpSize; ++lane) {
    const int g = lane >> 2, t = lane & 3;
    const uint32_t* in = lanes[lane].in;
    // A (row major): a0..a7 over registers 0..3; rows g / g+8, columns 2t / 2t+8 (+0, +1).
    for (int reg = 0; reg < 4; ++reg) {
      const int row = g + ((reg & 1) ? 8 : 0);
      const int col = 2 * t + ((reg & 2) ? 8 : 0);
      a[row][col] = to_float(low_half(in[reg]));
      a[row][col + 1] = to_float(high_half(in[reg]));
    }
    // B (column major, K x N): b0..b3 over registers 4, 5; rows (k) 2t / 2t+8 (+0, +1), column g.
    for (int reg = 0; reg < 2; ++reg) {
      const int k = 2 * t + (reg ? 8 : 0);
      b[k][g] = to_float(low_half(in[4 + reg]));
      b[k + 1][g] = to_float(high_half(in[4 + reg]));
    }
    // C (fp32): c0..c3 in registers 6..9; rows g / g+8, columns 2t, 2t+1.
    for (int i = 0; i < 4; ++i) {
      float value;
      std::memcpy(&value, &in[6 + i], sizeof value);
      c[g + (i >= 2 ? 8 : 0)][2 * t + (i & 1)] = value;
    }
  }
  for (int lane = 0; lane < kWarpSize; ++lane) {
    const int g = lane >> 2, t = lane & 3;
    for (int i = 0; i < 4; ++i) {
      const int row = g + (i >= 2 ? 8 : 0), col = 2 * t + (i & 1);
      // Products of 16-bit floats are exact in fp32; the hardware sums them in fp32, which the
      // double sum followed by one rounding matches to within the last bit or two.
      double sum = c[row][col];
      for (int k = 0; k < 16; ++k) sum += static_cast<double>(a[row][k]) * b[k][col];
      const float value = static_cast<float>(sum);
      std::memcpy(&lanes[lane].out[i], &value, sizeof value);
    }
  }
}

// ldmatrix .m8n8 .x4 .b16: lane 8 m + r addresses row r of matrix m. Without .trans, lane l receives
// row l / 4, columns 2 (l % 4) and +1 of each matrix; with .trans, the same positions of the
// transposed matrix, i.e. column l / 4 of rows 2 (l % 4) and +1.
void combine_ldmatrix(bool trans, LaneSlot* lanes) {
  auto element = [lanes](int matrix, int row, int col) {
    uint16_t value;
    std::memcpy(&value, static_cast<const unsigned char*>(lanes[8 * matrix + row].address) + 2 * col, sizeof value);
    return value;
  };
  for (int lane = 0; lane < kWarpSize; ++lane) {
    const int g = lane >> 2, t = lane & 3;
    for (int matrix = 0; matrix < 4; ++matrix) {
      lanes[lane].out[matrix] = trans ? pack_halves(element(matrix, 2 * t, g), element(matrix, 2 * t + 1, g))
                                      : pack_halves(element(matrix, g, 2 * t), element(matrix, g, 2 * t + 1));
    }
  }
}

void combine(Collective op, LaneSlot* lanes, LaunchStats& stats) {
  switch (op) {
    case Collective::MmaBf16:
    case Collective::MmaF16:
      ++stats.mma_ops;
      combine_mma(op, lanes);
      return;
    case Collective::Ldmatrix: combine_ldmatrix(false, lanes); return;
    case Collective::LdmatrixTrans: combine_ldmatrix(true, lanes); return;
    case Collective::ShflXor:
      for (int lane = 0; lane < kWarpSize; ++lane) lanes[lane].out[0] = lanes[(lane ^ lanes[lane].in[1]) & 31].in[0];
      return;
    case Collective::ShflIdx:
      for (int lane = 0; lane < kWarpSize; ++lane) lanes[lane].out[0] = lanes[lanes[lane].in[1] & 31].in[0];
      return;
  }
}

// Deposits this lane's operands, waits until the whole warp has arrived at the same collective (the
// last lane to arrive computes every lane's result), and returns this lane's slot.
const LaneSlot& warp_collective(Collective op, const LaneSlot& operands) {
  BlockRun& run = block();
  const int thread = run.current;
  Warp& warp = run.warps[thread / kWarpSize];
  if (warp.arrived == 0) {
    warp.op = op;
  } else if (warp.op != op) {
    throw InternalError(std::string("host emulation: lanes of warp ") + std::to_string(thread / kWarpSize) +
                        " reached different warp-collective operations (" + collective_name(warp.op) + " and " +
                        collective_name(op) + ")");
  }
  LaneSlot& slot = warp.lanes[thread % kWarpSize];
  std::memcpy(slot.in, operands.in, sizeof slot.in);
  slot.address = operands.address;
  if (++warp.arrived == kWarpSize) {
    warp.arrived = 0;
    combine(op, warp.lanes, *run.stats);
    const int first = thread - thread % kWarpSize;
    for (int lane = first; lane < first + kWarpSize; ++lane) {
      if (lane != thread) make_ready(run, lane);
    }
  } else {
    wait_here();
  }
  // The slot stays valid until this lane's next collective: its results are overwritten only when
  // every lane of the warp has arrived there, i.e. after each has read its own.
  return slot;
}

void run_block(BlockRun& run, size_t shared_bytes) {
  std::memset(run.shared, 0xFF, shared_bytes);
  run.shared_bytes = shared_bytes;
  const int threads = static_cast<int>(run.fibers.size());
  detail::hopper_block_begin(threads);
  run.ready.clear();
  run.barrier_waiters.clear();
  for (Warp& warp : run.warps) warp.arrived = 0;
  for (int i = 0; i < threads; ++i) {
    Fiber& fiber = run.fibers[i];
    fiber.thread_idx =
        Dim3{static_cast<uint32_t>(i) % run.block_dim.x, static_cast<uint32_t>(i) / run.block_dim.x % run.block_dim.y,
             static_cast<uint32_t>(i) / (run.block_dim.x * run.block_dim.y)};
    fiber.open_group.clear();
    fiber.committed_groups.clear();
    getcontext(&fiber.context);
    fiber.context.uc_stack.ss_sp = fiber.stack;
    fiber.context.uc_stack.ss_size = kStackBytes;
    fiber.context.uc_link = &run.scheduler;
    makecontext(&fiber.context, fiber_main, 0);
    make_ready(run, i);
  }
  while (!run.ready.empty() && !run.error) {
    run.current = run.ready.front();
    run.ready.pop_front();
    swapcontext(&run.scheduler, &run.fibers[run.current].context);
  }
  run.current = -1;
  if (run.error) std::rethrow_exception(run.error);
  int stuck = 0;
  for (const Fiber& fiber : run.fibers) stuck += fiber.state != Fiber::State::Done;
  if (stuck > 0) {
    throw InternalError("host emulation: " + std::to_string(stuck) + " threads of block (" +
                        std::to_string(run.block_idx.x) + ", " + std::to_string(run.block_idx.y) + ", " +
                        std::to_string(run.block_idx.z) +
                        ") wait at a barrier or warp collective that other threads never reach");
  }
  detail::hopper_block_end();
}

}  // namespace

LaunchStats launch(Dim3 grid, Dim3 block_size, size_t dynamic_shared_bytes, const std::function<void()>& kernel) {
  const uint64_t threads = uint64_t{block_size.x} * block_size.y * block_size.z;
  ATTNC_ASSERT(threads > 0 && threads % kWarpSize == 0 && threads <= 1024,
               "host emulation: the block size must be a multiple of 32, at most 1024");
  ATTNC_ASSERT(t_block == nullptr, "host emulation: launch() is not re-entrant");

  LaunchStats stats;
  BlockRun run;
  run.kernel = &kernel;
  run.block_dim = block_size;
  run.grid_dim = grid;
  run.stats = &stats;
  run.fibers.resize(threads);
  run.warps.resize(threads / kWarpSize);
  std::vector<std::unique_ptr<unsigned char[]>> stacks;
  for (Fiber& fiber : run.fibers) {
    stacks.push_back(std::make_unique<unsigned char[]>(kStackBytes));
    fiber.stack = stacks.back().get();
  }
  // 128-byte alignment, as the device guarantees for dynamic shared memory.
  std::vector<unsigned char> shared_storage(dynamic_shared_bytes + 128);
  run.shared = shared_storage.data() + (128 - reinterpret_cast<uintptr_t>(shared_storage.data()) % 128) % 128;

  struct Reset {
    ~Reset() { t_block = nullptr; }
  } reset;
  t_block = &run;
  for (uint32_t z = 0; z < grid.z; ++z) {
    for (uint32_t y = 0; y < grid.y; ++y) {
      for (uint32_t x = 0; x < grid.x; ++x) {
        run.block_idx = Dim3{x, y, z};
        run_block(run, dynamic_shared_bytes);
        ++stats.blocks;
      }
    }
  }
  return stats;
}

Dim3 thread_idx() { return current_fiber().thread_idx; }
Dim3 block_idx() { return block().block_idx; }
Dim3 block_dim() { return block().block_dim; }
Dim3 grid_dim() { return block().grid_dim; }
unsigned char* dynamic_shared_memory() { return block().shared; }

void sync_threads() {
  BlockRun& run = block();
  const int threads = static_cast<int>(run.fibers.size());
  if (static_cast<int>(run.barrier_waiters.size()) + 1 == threads) {
    for (int waiter : run.barrier_waiters) make_ready(run, waiter);
    run.barrier_waiters.clear();
    return;
  }
  run.barrier_waiters.push_back(run.current);
  wait_here();
}

uint32_t shfl_xor(uint32_t value, int lane_mask) {
  LaneSlot operands;
  operands.in[0] = value;
  operands.in[1] = static_cast<uint32_t>(lane_mask);
  return warp_collective(Collective::ShflXor, operands).out[0];
}

uint32_t shfl_idx(uint32_t value, int src_lane) {
  LaneSlot operands;
  operands.in[0] = value;
  operands.in[1] = static_cast<uint32_t>(src_lane);
  return warp_collective(Collective::ShflIdx, operands).out[0];
}

void mma_m16n8k16(MmaInput input, const uint32_t a[4], const uint32_t b[2], const float c[4], float d[4]) {
  LaneSlot operands;
  std::memcpy(&operands.in[0], a, 4 * sizeof(uint32_t));
  std::memcpy(&operands.in[4], b, 2 * sizeof(uint32_t));
  std::memcpy(&operands.in[6], c, 4 * sizeof(float));
  const LaneSlot& slot = warp_collective(input == MmaInput::BF16 ? Collective::MmaBf16 : Collective::MmaF16, operands);
  std::memcpy(d, slot.out, 4 * sizeof(float));
}

void ldmatrix_x4(const void* row_address, bool trans, uint32_t r[4]) {
  ATTNC_ASSERT(reinterpret_cast<uintptr_t>(row_address) % 16 == 0, "ldmatrix: row address not 16-byte aligned");
  LaneSlot operands;
  operands.address = row_address;
  const LaneSlot& slot = warp_collective(trans ? Collective::LdmatrixTrans : Collective::Ldmatrix, operands);
  std::memcpy(r, slot.out, 4 * sizeof(uint32_t));
}

void cp_async_16(void* shared_dst, const void* global_src, int src_bytes) {
  ATTNC_ASSERT(reinterpret_cast<uintptr_t>(shared_dst) % 16 == 0 && reinterpret_cast<uintptr_t>(global_src) % 16 == 0,
               "cp.async: addresses must be 16-byte aligned");
  ATTNC_ASSERT(src_bytes >= 0 && src_bytes <= 16, "cp.async: src-size out of range");
  current_fiber().open_group.push_back(PendingCopy{shared_dst, global_src, src_bytes});
  block().stats->cp_async_bytes += 16;
}

void cp_async_commit_group() {
  Fiber& fiber = current_fiber();
  fiber.committed_groups.push_back(std::move(fiber.open_group));
  fiber.open_group.clear();
}

void cp_async_wait_group(int pending) {
  Fiber& fiber = current_fiber();
  while (static_cast<int>(fiber.committed_groups.size()) > pending) {
    complete_copies(fiber.committed_groups.front());
    fiber.committed_groups.pop_front();
  }
}

namespace detail {

int current_thread() { return block().current; }
int block_thread_count() { return static_cast<int>(block().fibers.size()); }
void suspend_current() { wait_here(); }
void wake(int thread) { make_ready(block(), thread); }
unsigned char* shared_base() { return block().shared; }
size_t shared_bytes() { return block().shared_bytes; }
LaunchStats& stats() { return *block().stats; }

}  // namespace detail

float exp2_approx(float x) {
  const float result = std::exp2(x);
  return (result != 0.0f && std::fabs(result) < FLT_MIN) ? 0.0f : result;  // .ftz
}

void global_load_16(const void* address, uint32_t words[4]) {
  ATTNC_ASSERT(reinterpret_cast<uintptr_t>(address) % 16 == 0, "ld.global.v4: address not 16-byte aligned");
  std::memcpy(words, address, 16);
}

void global_store_16(void* address, const uint32_t words[4]) {
  ATTNC_ASSERT(reinterpret_cast<uintptr_t>(address) % 16 == 0, "st.global.v4: address not 16-byte aligned");
  std::memcpy(address, words, 16);
}

void atomic_add_f32(float* address, float value) {
  ATTNC_ASSERT(reinterpret_cast<uintptr_t>(address) % alignof(float) == 0,
               "red.global.add.f32: address not 4-byte aligned");
  std::atomic_ref<float>(*address).fetch_add(value, std::memory_order_relaxed);
}

}  // namespace attnc::host_emulation
