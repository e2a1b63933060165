// The sm_90a part of the host emulation (HostEmulation.h, "Hopper"): mbarriers with phases and
// transaction counts, tensor-map (TMA) loads and stores with their swizzles, wgmma with its matrix
// descriptors and fragment layouts, named barriers and setmaxnreg, all following the PTX ISA.
// Asynchronous work is completed as late as PTX allows (see the header), so kernels that read
// early or release buffers early compute wrong results here instead of by chance on a GPU.

#include <cmath>
#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "compiler/DType.h"
#include "dsl/Errors.h"
#include "runtime/emulation/HostEmulation.h"
#include "runtime/emulation/HostEmulationDetail.h"

namespace attnc::host_emulation {
namespace {

constexpr int kWarpgroupThreads = 128;
constexpr uint64_t kTensorMapMagic = 0x61746e6354656e73ull;  // "attncTens"-ish: marks an emulated map
constexpr uint32_t kPoisonBits = 0x7fc0dead;                 // a quiet NaN left in in-flight accumulators

[[noreturn]] void fail(const std::string& what) { throw InternalError("host emulation: " + what); }

// ---- Tensor maps ----

struct TensorMapData {
  uint64_t magic;
  const unsigned char* global;
  uint32_t element_bytes, rank;
  uint64_t dims[5];
  uint64_t strides[5];  // bytes; strides[0] is the element size
  uint32_t box[5];
  uint32_t swizzle;  // TensorMapSwizzle
};
static_assert(sizeof(TensorMapData) <= 128, "an emulated tensor map fits CUtensorMap's 128 bytes");

const TensorMapData& tensor_map(const void* map) {
  const auto* data = static_cast<const TensorMapData*>(map);
  if (reinterpret_cast<uintptr_t>(map) % 64 != 0) fail("a tensor map must be 64-byte aligned");
  if (data->magic != kTensorMapMagic) fail("the tensor map was not made by encode_tensor_map");
  return *data;
}

// The swizzle of a shared-memory byte address (CuTe's Swizzle<B, 4, 3>): the 16-byte chunk index
// (address bits 4..) is XORed with the address bits 7.. of the row of the swizzle pattern, over
// B = 1, 2, 3 bits for the 32, 64 and 128-byte modes. TMA and wgmma apply the same function.
uint32_t swizzle_address(uint32_t address, uint32_t mode_bits) {
  if (mode_bits == 0) return address;
  const uint32_t mask = (1u << mode_bits) - 1;
  return address ^ (((address >> 7) & mask) << 4);
}

uint32_t tma_swizzle_bits(uint32_t swizzle) { return swizzle == 3 ? 3 : swizzle == 2 ? 2 : swizzle == 1 ? 1 : 0; }

uint64_t box_elements(const TensorMapData& map) {
  uint64_t n = 1;
  for (uint32_t d = 0; d < map.rank; ++d) n *= map.box[d];
  return n;
}

// Calls visit(shared byte offset from the box start, before swizzling, global element pointer or
// null when outside the tensor) for each element of the box at `coords`.
template <class Visit>
void for_each_box_element(const TensorMapData& map, const int32_t* coords, Visit&& visit) {
  uint32_t at[5] = {0, 0, 0, 0, 0};
  const uint64_t count = box_elements(map);
  for (uint64_t linear = 0; linear < count; ++linear) {
    bool inside = true;
    int64_t offset = 0;
    for (uint32_t d = 0; d < map.rank; ++d) {
      const int64_t c = int64_t{coords[d]} + at[d];
      if (c < 0 || c >= static_cast<int64_t>(map.dims[d])) inside = false;
      offset += c * static_cast<int64_t>(map.strides[d]);
    }
    visit(static_cast<uint32_t>(linear * map.element_bytes), inside ? map.global + offset : nullptr);
    for (uint32_t d = 0; d < map.rank; ++d) {
      if (++at[d] < map.box[d]) break;
      at[d] = 0;
    }
  }
}

struct TmaLoad {
  uint32_t shared_dst;  // shared-window address
  TensorMapData map;
  int32_t coords[5];
};

// ---- mbarriers ----

struct Mbarrier {
  uint32_t expected = 0, pending = 0;
  int64_t tx = 0;  // transaction bytes still expected in the current phase
  uint32_t phase = 0;
  std::vector<TmaLoad> loads;  // issued, not yet delivered
  std::vector<int> waiters;
};

// ---- wgmma ----

struct WgmmaOp {
  WgmmaInput input;
  int n;
  uint64_t desc_a, desc_b;
  bool a_in_registers, trans_a, trans_b, accumulate;
  uint32_t a_regs[kWarpgroupThreads][4];
  float* d[kWarpgroupThreads];
};

// What one thread brings to a warpgroup collective.
struct WarpgroupSlot {
  int kind = 0;
  uint32_t value = 0;  // setmaxnreg registers / wait_group pending
  bool flag = false;   // setmaxnreg increase
  WgmmaInput input = WgmmaInput::BF16;
  int n = 0;
  uint64_t desc_a = 0, desc_b = 0;
  bool a_in_registers = false, trans_a = false, trans_b = false, accumulate = false;
  uint32_t a_regs[4] = {};
  float* d = nullptr;
};

enum SlotKind { kFence = 1, kMma, kCommit, kWait, kSetmaxnreg };

const char* slot_kind_name(int kind) {
  switch (kind) {
    case kFence: return "wgmma.fence";
    case kMma: return "wgmma.mma_async";
    case kCommit: return "wgmma.commit_group";
    case kWait: return "wgmma.wait_group";
    case kSetmaxnreg: return "setmaxnreg";
  }
  return "?";
}

struct Warpgroup {
  int arrived = 0;
  int kind = 0;
  WarpgroupSlot slots[kWarpgroupThreads];
  bool fenced = false;
  uint32_t registers = 0;  // the last setmaxnreg value, 0 before any
  std::vector<std::shared_ptr<WgmmaOp>> open;
  std::deque<std::vector<std::shared_ptr<WgmmaOp>>> committed;
  // Per thread: accumulators of in-flight wgmmas, by register-array address: the values a chain of
  // wgmmas on the same registers has produced so far (the registers themselves hold poison).
  std::vector<std::unordered_map<float*, std::vector<float>>> shadow =
      std::vector<std::unordered_map<float*, std::vector<float>>>(kWarpgroupThreads);
};

// ---- named barriers and bulk stores ----

struct NamedBarrier {
  uint32_t threads = 0, arrived = 0;
  std::vector<int> waiters;
};

struct TmaStore {
  uint32_t shared_src;
  TensorMapData map;
  int32_t coords[5];
};

struct ThreadState {
  std::vector<TmaStore> open_stores;
  std::deque<std::vector<TmaStore>> committed_stores;
};

struct HopperBlock {
  std::unordered_map<uint32_t, Mbarrier> barriers;  // by shared-window address (lookup only)
  std::vector<Warpgroup> warpgroups;
  NamedBarrier named[16];
  std::vector<ThreadState> threads;
};

thread_local std::unique_ptr<HopperBlock> t_hopper;
thread_local TmaDelivery t_tma_delivery = TmaDelivery::Latest;

HopperBlock& hopper() {
  ATTNC_ASSERT(t_hopper != nullptr, "a Hopper primitive was called outside a host launch");
  return *t_hopper;
}

unsigned char* shared_pointer(uint32_t address, size_t bytes, const char* what) {
  if (address + bytes > detail::shared_bytes()) {
    fail(std::string(what) + " reaches past the end of shared memory (address " + std::to_string(address) + ", " +
         std::to_string(bytes) + " bytes, " + std::to_string(detail::shared_bytes()) + " allocated)");
  }
  return detail::shared_base() + address;
}

Mbarrier& barrier_at(void* barrier) {
  const uint32_t address = shared_address(barrier);
  if (address % 8 != 0) fail("an mbarrier must be 8-byte aligned");
  auto found = hopper().barriers.find(address);
  if (found == hopper().barriers.end()) {
    fail("mbarrier at shared address " + std::to_string(address) + " used before mbarrier.init");
  }
  return found->second;
}

void deliver(const TmaLoad& load, Mbarrier& barrier) {
  const TensorMapData& map = load.map;
  const uint32_t bits = tma_swizzle_bits(map.swizzle);
  const uint64_t bytes = box_elements(map) * map.element_bytes;
  for_each_box_element(map, load.coords, [&](uint32_t offset, const unsigned char* global) {
    unsigned char* dst =
        shared_pointer(swizzle_address(load.shared_dst + offset, bits), map.element_bytes, "a tensor-map load");
    if (global != nullptr) {
      std::memcpy(dst, global, map.element_bytes);
    } else {
      std::memset(dst, 0, map.element_bytes);
    }
  });
  barrier.tx -= static_cast<int64_t>(bytes);
}

// Completes the current phase when nothing holds it back. Loads are delivered only when a thread
// waits for the phase (the latest moment), all of them at once; `caller_waits` says the calling
// thread is about to wait (it is not in the waiter list, so completing does not wake it).
void progress(Mbarrier& barrier, bool caller_waits = false) {
  if (barrier.pending != 0) return;
  if ((caller_waits || !barrier.waiters.empty()) && !barrier.loads.empty()) {
    std::vector<TmaLoad> loads = std::move(barrier.loads);
    barrier.loads.clear();
    for (const TmaLoad& load : loads) deliver(load, barrier);
  }
  if (barrier.tx < 0) fail("an mbarrier phase received more transaction bytes than it expected");
  if (barrier.tx != 0 || !barrier.loads.empty()) return;  // bytes still to come, or loads nobody waits for yet
  ++barrier.phase;
  barrier.pending = barrier.expected;
  std::vector<int> waiters = std::move(barrier.waiters);
  barrier.waiters.clear();
  for (int thread : waiters) detail::wake(thread);
}

// ---- wgmma operands ----

struct Descriptor {
  uint32_t start, leading, stride, swizzle_bits;
};

Descriptor decode_descriptor(uint64_t desc) {
  Descriptor d;
  d.start = static_cast<uint32_t>(desc & 0x3fff) << 4;
  d.leading = static_cast<uint32_t>((desc >> 16) & 0x3fff) << 4;
  d.stride = static_cast<uint32_t>((desc >> 32) & 0x3fff) << 4;
  if (((desc >> 49) & 0x7) != 0) fail("wgmma descriptors with a nonzero base offset are not emulated");
  switch ((desc >> 62) & 0x3) {
    case 0: d.swizzle_bits = 0; break;
    case 1: d.swizzle_bits = 3; break;   // 128B
    case 2: d.swizzle_bits = 2; break;   // 64B
    default: d.swizzle_bits = 1; break;  // 32B
  }
  return d;
}

// The shared address of element (mn, k), k in [0, 16), of a wgmma operand in the canonical layouts
// of the PTX ISA ("Shared Memory Matrix Layout"), in units of T = 8 16-bit elements (16 bytes) and
// W = 1, 2, 4, 8 such units per swizzle row (none, 32B, 64B, 128B):
//   K-major:  none  ((8,m),(T,2)):((1T,SBO),(1,LBO))      swizzled ((8,m),(T,2)):((WT,SBO),(1,T))
//   MN-major: none  ((T,1,m),(8,k)):((1,T,SBO),(1T,LBO))  swizzled ((T,W,m),(8,k)):((1,T,LBO),(WT,SBO))
// with the swizzle of the resulting byte address applied last.
uint32_t operand_address(const Descriptor& desc, bool mn_major, int mn, int k) {
  const uint32_t w = desc.swizzle_bits == 0 ? 1 : 1u << desc.swizzle_bits;  // 16-byte units per row
  uint32_t address = desc.start;
  if (!mn_major) {
    address += (mn % 8) * (desc.swizzle_bits == 0 ? 16 : 16 * w) + (mn / 8) * desc.stride + (k % 8) * 2;
    address += desc.swizzle_bits == 0 ? (k / 8) * desc.leading : (k / 8) * 16;
  } else if (desc.swizzle_bits == 0) {
    address += (mn % 8) * 2 + (mn / 8) * desc.stride + (k % 8) * 16 + (k / 8) * desc.leading;
  } else {
    const uint32_t span = 8 * w;  // elements per swizzle row
    address += (mn % span) * 2 + (mn / span) * desc.leading + (k % 8) * 16 * w + (k / 8) * desc.stride;
  }
  return swizzle_address(address, desc.swizzle_bits);
}

float element_value(WgmmaInput input, uint16_t bits) {
  return input == WgmmaInput::BF16 ? bfloat16_to_float(bits) : half_to_float(bits);
}

uint16_t shared_element(uint32_t address) {
  uint16_t bits;
  std::memcpy(&bits, shared_pointer(address, 2, "a wgmma operand"), sizeof bits);
  return bits;
}

// The accumulator / register-A layout: element `i` of thread `thread` (of the warpgroup) is at
// (row, column) of the 64 x n tile.
void fragment_position(int thread, int i, int& row, int& column) {
  const int warp = thread / 32, lane = thread % 32, g = lane / 4, t = lane % 4;
  row = 16 * warp + g + 8 * ((i / 2) % 2);
  column = 8 * (i / 4) + 2 * t + (i % 2);
}

bool is_poison(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  return bits == kPoisonBits;
}

float poison() {
  float value;
  std::memcpy(&value, &kPoisonBits, sizeof value);
  return value;
}

void execute(const WgmmaOp& op, Warpgroup& wg) {
  // A (64 x 16) and B (16 x n) as floats.
  float a[64][16];
  std::vector<float> b(static_cast<size_t>(16 * op.n));
  if (op.a_in_registers) {
    for (int thread = 0; thread < kWarpgroupThreads; ++thread) {
      for (int i = 0; i < 8; ++i) {
        int row, column;
        fragment_position(thread, i, row, column);
        const uint32_t reg = op.a_regs[thread][i / 2];
        a[row][column] = element_value(op.input, static_cast<uint16_t>(i % 2 == 0 ? reg & 0xffff : reg >> 16));
      }
    }
  } else {
    const Descriptor desc = decode_descriptor(op.desc_a);
    for (int m = 0; m < 64; ++m) {
      for (int k = 0; k < 16; ++k)
        a[m][k] = element_value(op.input, shared_element(operand_address(desc, op.trans_a, m, k)));
    }
  }
  const Descriptor desc_b = decode_descriptor(op.desc_b);
  for (int n = 0; n < op.n; ++n) {
    for (int k = 0; k < 16; ++k) {
      b[static_cast<size_t>(k * op.n + n)] =
          element_value(op.input, shared_element(operand_address(desc_b, op.trans_b, n, k)));
    }
  }
  for (int thread = 0; thread < kWarpgroupThreads; ++thread) {
    std::vector<float>& acc = wg.shadow[static_cast<size_t>(thread)].at(op.d[thread]);
    for (int i = 0; i < op.n / 2; ++i) {
      int row, column;
      fragment_position(thread, i, row, column);
      // Products of 16-bit floats are exact; the sum is rounded once to fp32 (the hardware sums in
      // fp32, which this matches to within the last bit or two).
      double sum = op.accumulate ? acc[static_cast<size_t>(i)] : 0.0;
      for (int k = 0; k < 16; ++k) sum += static_cast<double>(a[row][k]) * b[static_cast<size_t>(k * op.n + column)];
      acc[static_cast<size_t>(i)] = static_cast<float>(sum);
    }
  }
  ++detail::stats().wgmma_ops;
}

bool pending_on(const Warpgroup& wg, int thread, float* d) {
  auto uses = [&](const std::vector<std::shared_ptr<WgmmaOp>>& ops) {
    for (const auto& op : ops) {
      if (op->d[thread] == d) return true;
    }
    return false;
  };
  if (uses(wg.open)) return true;
  for (const auto& group : wg.committed) {
    if (uses(group)) return true;
  }
  return false;
}

void retire_groups(Warpgroup& wg, size_t keep) {
  while (wg.committed.size() > keep) {
    std::vector<std::shared_ptr<WgmmaOp>> group = std::move(wg.committed.front());
    wg.committed.pop_front();
    for (const auto& op : group) execute(*op, wg);
  }
  // Accumulators no in-flight wgmma writes any more get their values.
  for (int thread = 0; thread < kWarpgroupThreads; ++thread) {
    auto& shadow = wg.shadow[static_cast<size_t>(thread)];
    for (auto it = shadow.begin(); it != shadow.end();) {
      if (pending_on(wg, thread, it->first)) {
        ++it;
        continue;
      }
      std::memcpy(it->first, it->second.data(), it->second.size() * sizeof(float));
      it = shadow.erase(it);
    }
  }
}

void issue_mma(Warpgroup& wg) {
  const WarpgroupSlot& first = wg.slots[0];
  auto op = std::make_shared<WgmmaOp>();
  op->input = first.input;
  op->n = first.n;
  op->desc_a = first.desc_a;
  op->desc_b = first.desc_b;
  op->a_in_registers = first.a_in_registers;
  op->trans_a = first.trans_a;
  op->trans_b = first.trans_b;
  op->accumulate = first.accumulate;
  if (first.n < 8 || first.n > 256 || first.n % 8 != 0) fail("wgmma: n must be a multiple of 8 in [8, 256]");
  if (!wg.fenced) fail("wgmma.mma_async issued without a wgmma.fence since the warpgroup's last wait");
  for (int thread = 0; thread < kWarpgroupThreads; ++thread) {
    const WarpgroupSlot& s = wg.slots[thread];
    if (s.input != first.input || s.n != first.n || s.desc_b != first.desc_b ||
        s.a_in_registers != first.a_in_registers || (!s.a_in_registers && s.desc_a != first.desc_a) ||
        s.trans_a != first.trans_a || s.trans_b != first.trans_b || s.accumulate != first.accumulate) {
      fail("wgmma: the threads of a warpgroup passed different shapes, descriptors or flags");
    }
    std::memcpy(op->a_regs[thread], s.a_regs, sizeof s.a_regs);
    op->d[thread] = s.d;
    auto& shadow = wg.shadow[static_cast<size_t>(thread)];
    auto found = shadow.find(s.d);
    const size_t count = static_cast<size_t>(first.n / 2);
    if (found == shadow.end()) {
      // The first in-flight wgmma on these registers: keep their values, poison the registers.
      shadow.emplace(s.d, std::vector<float>(s.d, s.d + count));
      for (size_t i = 0; i < count; ++i) s.d[i] = poison();
    } else {
      if (found->second.size() != count) fail("wgmma: chained wgmmas on one accumulator with different n");
      for (size_t i = 0; i < count; ++i) {
        if (!is_poison(s.d[i]))
          fail("the accumulator registers of an in-flight wgmma were written before wgmma.wait_group");
      }
    }
  }
  wg.open.push_back(std::move(op));
}

void complete_collective(Warpgroup& wg) {
  const WarpgroupSlot& first = wg.slots[0];
  for (int thread = 1; thread < kWarpgroupThreads; ++thread) {
    const WarpgroupSlot& s = wg.slots[thread];
    if ((wg.kind == kWait || wg.kind == kSetmaxnreg) && (s.value != first.value || s.flag != first.flag)) {
      fail(std::string(slot_kind_name(wg.kind)) + ": the threads of a warpgroup passed different values");
    }
  }
  switch (wg.kind) {
    case kFence: wg.fenced = true; break;
    case kMma: issue_mma(wg); break;
    case kCommit:
      wg.committed.push_back(std::move(wg.open));
      wg.open.clear();
      break;
    case kWait:
      retire_groups(wg, first.value);
      wg.fenced = false;
      break;
    case kSetmaxnreg:
      if (first.value < 24 || first.value > 256 || first.value % 8 != 0) {
        fail("setmaxnreg: the register count must be a multiple of 8 in [24, 256], got " + std::to_string(first.value));
      }
      if (wg.registers != 0 && (first.flag ? first.value < wg.registers : first.value > wg.registers)) {
        fail("setmaxnreg." + std::string(first.flag ? "inc" : "dec") + " to " + std::to_string(first.value) +
             " registers from " + std::to_string(wg.registers));
      }
      wg.registers = first.value;
      break;
  }
}

// Every thread of the calling thread's warpgroup deposits its slot; the last to arrive performs the
// instruction for all of them.
void warpgroup_collective(int kind, const WarpgroupSlot& slot) {
  HopperBlock& block = hopper();
  const int thread = detail::current_thread();
  if (detail::block_thread_count() % kWarpgroupThreads != 0) {
    fail(std::string(slot_kind_name(kind)) + " needs whole warpgroups: the block has " +
         std::to_string(detail::block_thread_count()) + " threads");
  }
  Warpgroup& wg = block.warpgroups[static_cast<size_t>(thread / kWarpgroupThreads)];
  if (wg.arrived == 0) {
    wg.kind = kind;
  } else if (wg.kind != kind) {
    fail("threads of warpgroup " + std::to_string(thread / kWarpgroupThreads) + " reached different instructions (" +
         slot_kind_name(wg.kind) + " and " + slot_kind_name(kind) + ")");
  }
  wg.slots[thread % kWarpgroupThreads] = slot;
  wg.slots[thread % kWarpgroupThreads].kind = kind;
  if (++wg.arrived == kWarpgroupThreads) {
    wg.arrived = 0;
    complete_collective(wg);
    const int first = thread - thread % kWarpgroupThreads;
    for (int other = first; other < first + kWarpgroupThreads; ++other) {
      if (other != thread) detail::wake(other);
    }
  } else {
    detail::suspend_current();
  }
}

void perform_stores(std::vector<TmaStore>& stores) {
  for (const TmaStore& store : stores) {
    const TensorMapData& map = store.map;
    const uint32_t bits = tma_swizzle_bits(map.swizzle);
    shared_pointer(store.shared_src, box_elements(map) * map.element_bytes, "a tensor-map store");
    for_each_box_element(map, store.coords, [&](uint32_t offset, const unsigned char* global) {
      if (global == nullptr) return;
      const unsigned char* src =
          shared_pointer(swizzle_address(store.shared_src + offset, bits), map.element_bytes, "a tensor-map store");
      std::memcpy(const_cast<unsigned char*>(global), src, map.element_bytes);
    });
  }
  stores.clear();
}

void named_barrier(uint32_t id, uint32_t threads, bool wait) {
  if (id == 0 || id >= 16) fail("named barriers are 1..15 (0 is __syncthreads), got " + std::to_string(id));
  if (threads == 0 || threads % 32 != 0 || threads > static_cast<uint32_t>(detail::block_thread_count())) {
    fail("bar.sync / bar.arrive: the thread count must be a multiple of 32 up to the block size, got " +
         std::to_string(threads));
  }
  NamedBarrier& barrier = hopper().named[id];
  if (barrier.arrived == 0) {
    barrier.threads = threads;
  } else if (barrier.threads != threads) {
    fail("named barrier " + std::to_string(id) + " used with " + std::to_string(threads) + " and " +
         std::to_string(barrier.threads) + " threads at once");
  }
  if (++barrier.arrived == barrier.threads) {
    barrier.arrived = 0;
    std::vector<int> waiters = std::move(barrier.waiters);
    barrier.waiters.clear();
    for (int thread : waiters) detail::wake(thread);
    return;
  }
  if (wait) {
    barrier.waiters.push_back(detail::current_thread());
    detail::suspend_current();
  }
}

}  // namespace

namespace detail {

void hopper_block_begin(int threads) {
  t_hopper = std::make_unique<HopperBlock>();
  t_hopper->warpgroups.resize(static_cast<size_t>((threads + kWarpgroupThreads - 1) / kWarpgroupThreads));
  t_hopper->threads.resize(static_cast<size_t>(threads));
}

void hopper_thread_exit(int thread) {
  ThreadState& state = hopper().threads[static_cast<size_t>(thread)];
  if (!state.open_stores.empty() || !state.committed_stores.empty()) {
    fail("thread " + std::to_string(thread) +
         " exited while its tensor-map stores may still read shared memory (cp.async.bulk.wait_group.read first)");
  }
}

void hopper_block_end() {
  std::unique_ptr<HopperBlock> block = std::move(t_hopper);
  for (size_t i = 0; i < block->warpgroups.size(); ++i) {
    const Warpgroup& wg = block->warpgroups[i];
    if (!wg.open.empty() || !wg.committed.empty()) {
      fail("warpgroup " + std::to_string(i) + " ended with wgmma operations that no wgmma.wait_group retired");
    }
  }
  for (uint32_t id = 1; id < 16; ++id) {
    if (block->named[id].arrived != 0) {
      fail("named barrier " + std::to_string(id) + " ended the block with " + std::to_string(block->named[id].arrived) +
           " of " + std::to_string(block->named[id].threads) + " arrivals");
    }
  }
}

}  // namespace detail

void set_tma_delivery(TmaDelivery delivery) { t_tma_delivery = delivery; }

uint32_t shared_address(const void* p) {
  const auto* byte = static_cast<const unsigned char*>(p);
  const unsigned char* base = detail::shared_base();
  if (byte < base || byte >= base + detail::shared_bytes())
    fail("a shared-memory address outside the block's shared memory");
  return static_cast<uint32_t>(byte - base);
}

void mbarrier_init(void* barrier, uint32_t arrivals) {
  const uint32_t address = shared_address(barrier);
  if (address % 8 != 0) fail("an mbarrier must be 8-byte aligned");
  if (arrivals == 0) fail("mbarrier.init with no arrivals");
  Mbarrier& m = hopper().barriers[address];
  m = Mbarrier{};
  m.expected = m.pending = arrivals;
}

void mbarrier_arrive(void* barrier) {
  Mbarrier& m = barrier_at(barrier);
  if (m.pending == 0) fail("mbarrier.arrive on a phase whose arrivals are all in");
  --m.pending;
  progress(m);
}

void mbarrier_arrive_expect_tx(void* barrier, uint32_t bytes) {
  Mbarrier& m = barrier_at(barrier);
  m.tx += bytes;
  mbarrier_arrive(barrier);
}

void mbarrier_wait_parity(void* barrier, uint32_t parity) {
  Mbarrier& m = barrier_at(barrier);
  while ((m.phase & 1) == (parity & 1)) {
    progress(m, true);
    if ((m.phase & 1) != (parity & 1)) break;
    m.waiters.push_back(detail::current_thread());
    detail::suspend_current();
  }
}

void encode_tensor_map(void* map, const void* global, uint32_t element_bytes, uint32_t rank, const uint64_t* dims,
                       const uint64_t* strides, const uint32_t* box, TensorMapSwizzle swizzle) {
  if (reinterpret_cast<uintptr_t>(map) % 64 != 0) fail("a tensor map must be 64-byte aligned");
  if (rank < 1 || rank > 5) fail("tensor maps have 1 to 5 dimensions");
  if (reinterpret_cast<uintptr_t>(global) % 16 != 0) fail("a tensor map's global address must be 16-byte aligned");
  TensorMapData data{};
  data.magic = kTensorMapMagic;
  data.global = static_cast<const unsigned char*>(global);
  data.element_bytes = element_bytes;
  data.rank = rank;
  data.swizzle = static_cast<uint32_t>(swizzle);
  data.strides[0] = element_bytes;
  for (uint32_t d = 0; d < rank; ++d) {
    data.dims[d] = dims[d];
    data.box[d] = box[d];
    if (box[d] == 0 || box[d] > 256) fail("tensor map box extents are 1..256");
    if (d > 0) {
      data.strides[d] = strides[d - 1];
      if (strides[d - 1] % 16 != 0) fail("tensor map strides must be multiples of 16 bytes");
    }
  }
  if (swizzle != TensorMapSwizzle::None) {
    const uint32_t span = 16u << tma_swizzle_bits(static_cast<uint32_t>(swizzle));
    if (box[0] * element_bytes != span) {
      fail("with a swizzle, the emulated box's inner dimension must span the swizzle width (" + std::to_string(span) +
           " bytes)");
    }
  } else if (box[0] * element_bytes % 16 != 0) {
    fail("a tensor map box's inner dimension must be a multiple of 16 bytes");
  }
  std::memset(map, 0, 128);
  std::memcpy(map, &data, sizeof data);
}

void tma_load(void* shared_dst, const void* map, const int32_t* coords, void* barrier) {
  const TensorMapData& data = tensor_map(map);
  TmaLoad load;
  load.shared_dst = shared_address(shared_dst);
  const uint32_t alignment = data.swizzle != 0 ? 1024 : 128;
  if (load.shared_dst % alignment != 0) {
    fail("a tensor-map load's shared destination must be " + std::to_string(alignment) + "-byte aligned");
  }
  load.map = data;
  for (uint32_t d = 0; d < 5; ++d) load.coords[d] = d < data.rank ? coords[d] : 0;
  shared_pointer(load.shared_dst, box_elements(data) * data.element_bytes, "a tensor-map load");
  detail::stats().tma_load_bytes += box_elements(data) * data.element_bytes;
  Mbarrier& m = barrier_at(barrier);
  if (t_tma_delivery == TmaDelivery::Earliest) {
    deliver(load, m);
  } else {
    m.loads.push_back(load);
  }
  progress(m);
}

void tma_store(const void* map, const int32_t* coords, const void* shared_src) {
  const TensorMapData& data = tensor_map(map);
  TmaStore store;
  store.shared_src = shared_address(shared_src);
  const uint32_t alignment = data.swizzle != 0 ? 1024 : 128;
  if (store.shared_src % alignment != 0) {
    fail("a tensor-map store's shared source must be " + std::to_string(alignment) + "-byte aligned");
  }
  store.map = data;
  for (uint32_t d = 0; d < 5; ++d) store.coords[d] = d < data.rank ? coords[d] : 0;
  hopper().threads[static_cast<size_t>(detail::current_thread())].open_stores.push_back(store);
}

void bulk_commit_group() {
  ThreadState& state = hopper().threads[static_cast<size_t>(detail::current_thread())];
  state.committed_stores.push_back(std::move(state.open_stores));
  state.open_stores.clear();
}

void bulk_wait_group_read(int pending) {
  ThreadState& state = hopper().threads[static_cast<size_t>(detail::current_thread())];
  while (static_cast<int>(state.committed_stores.size()) > pending) {
    perform_stores(state.committed_stores.front());
    state.committed_stores.pop_front();
  }
}

void fence_proxy_async() {}

void wgmma_fence() { warpgroup_collective(kFence, WarpgroupSlot{}); }

void wgmma_mma_async(WgmmaInput input, int n, uint64_t desc_a, const uint32_t* a_regs, uint64_t desc_b, bool trans_a,
                     bool trans_b, bool accumulate, float* d) {
  WarpgroupSlot slot;
  slot.input = input;
  slot.n = n;
  slot.desc_a = desc_a;
  slot.desc_b = desc_b;
  slot.a_in_registers = a_regs != nullptr;
  if (a_regs != nullptr) std::memcpy(slot.a_regs, a_regs, sizeof slot.a_regs);
  slot.trans_a = trans_a;
  slot.trans_b = trans_b;
  slot.accumulate = accumulate;
  slot.d = d;
  warpgroup_collective(kMma, slot);
}

void wgmma_commit_group() { warpgroup_collective(kCommit, WarpgroupSlot{}); }

void wgmma_wait_group(int pending) {
  WarpgroupSlot slot;
  slot.value = static_cast<uint32_t>(pending);
  warpgroup_collective(kWait, slot);
}

void setmaxnreg(bool increase, uint32_t registers) {
  WarpgroupSlot slot;
  slot.value = registers;
  slot.flag = increase;
  warpgroup_collective(kSetmaxnreg, slot);
}

void named_barrier_sync(uint32_t id, uint32_t threads) { named_barrier(id, threads, true); }
void named_barrier_arrive(uint32_t id, uint32_t threads) { named_barrier(id, threads, false); }

}  // namespace attnc::host_emulation
