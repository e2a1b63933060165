#pragma once
// The backward pass of attention with fused score / mask mods, in the FlashAttention-2 manner, for
// sm_80 and newer (mma.sync m16n8k16, ldmatrix, cp.async; runtime/kernels/device_primitives.cuh).
//
//   given q, k, v, out, lse (natural log) of the forward (flash_attention.cuh) and dout = dL/dout:
//   S   = scale * Q K^T, s' = score_mod(S), masked      P  = exp(s' - LSE)      (0 where masked)
//   dV += (P * M * k)^T dO                              dP = (dO V^T) * M * k   (M, k: dropout)
//   dS' = P * (dP - delta),  delta = rowsum(dO * O)     dS = dS' * ds'/ds       (the compiler's derivative)
//   dQ += scale * dS K                                  dK += scale * dS^T Q
//   dparam[element] += dS' * ds'/d(element)             (scatter-add, per site of the score mod)
// Dropout's decisions M come from the same Philox draws as the CPU's (runtime/kernels/dropout.cuh,
// the device copy of runtime/core/Dropout.h's), so no mask is stored and both backends drop the same
// elements; without dropout M = 1 and k = 1.
// (runtime/reference/ReferenceBackward.h derives these; runtime/families/flash_backward/
// FlashBackwardCpu.h is the CPU kernel of the same algorithm.) Three launches:
//
// 1. Preprocess, grid (ceil(S / kRowsPerBlock), H, B): delta_i = rowsum(dO * O) in fp32 for every
//    query row, and the row's fp32 dQ accumulator set to 0.
// 2. Main, grid (ceil(Skv / BLOCK_N), Hkv, B): one CTA per key tile of one KV head. Its NUM_WARPS
//    warps own 16 keys each (BLOCK_N = 16 NUM_WARPS) and keep their rows of dK and dV in fp32
//    registers while the CTA walks the query heads of the KV head's GQA group and, for each, the
//    query tiles of BLOCK_M rows. So dK and dV are summed over the group in registers, in a fixed
//    order: deterministic, with no atomics. Per query tile, each warp computes the transposed scores
//    of its keys, S^T = K Q^T (keys in rows), so that the accumulator layout of P^T and of dS^T is
//    the A-operand layout of the two products that consume them, dV += P^T dO and dK += dS^T Q,
//    without a trip through shared memory:
//      S^T = K Q^T                       K from shared memory (ldmatrix), Q as the col-major B operand
//      P^T = exp2(log2(e) s' - log2(e) LSE)   P recomputed, the mask applied per element on PARTIAL tiles
//      dV += P^T dO                      P^T packed to 16 bits in registers; dO by ldmatrix.trans
//      dP^T = V dO^T                     V from shared memory, dO as the col-major B operand
//      dS^T = P^T * (dP^T - delta) [* ds'/ds]
//      dK += dS^T Q                      dS^T packed in registers; Q by ldmatrix.trans
//    dQ needs dS with queries in rows: the warps write dS^T to shared memory (16-bit, [key][query]),
//    and after a barrier compute dQ_tile = dS K in m16 x kDqCols blocks shared out among the warps
//    (dS by ldmatrix.trans, K by ldmatrix.trans), adding each fp32 result into the global dQ
//    accumulator with red.global.add.f32. Only dQ and the tensor-parameter gradients (scatter-added
//    per element where dS' != 0) are summed by atomics: their bits can change from run to run on a
//    GPU (the order of the adds is not fixed); dK and dV cannot.
// 3. Convert, grid as the preprocess: dQ = scale * accumulator, in the input dtype.
//
// Tile classification, as in the forward: before touching a (query tile, key tile) pair the CTA asks
// Mods::tile_class about its box; EMPTY pairs are skipped with no loads and no math, FULL pairs run
// without evaluating the mask, PARTIAL pairs call mask_mod per element. A causal backward thus does
// about half the work of a non-causal one.
//
// Memory pipeline. K and V of the CTA's key tile are loaded once. The query side (Q, dO, and the
// rows' log2(e) LSE and delta, fp32) is double-buffered: while the warps compute on one stage,
// cp.async fills the other with the next non-EMPTY (head, query tile). Rows of shared memory are
// padded by 16 bytes so the eight row addresses of every ldmatrix fall into distinct bank groups.
//
// Edges. Keys past kv_len and rows past q_len are zero-filled on load and treated as masked, so mods
// are only evaluated at in-range points, and their gradients are never stored. A masked element has
// P = 0 and dS = 0. A fully masked row (forward LSE -inf) gets P = 0 everywhere: its LSE is turned
// into +inf before exp2(x - LSE), so no -inf - -inf NaN appears; its dQ is 0 and it adds nothing to
// dK and dV. The score mod's derivative is applied only where dS' is nonzero (not 0 * inf).
//
// Requirements on the caller (the launcher checks them): q, k, v, out, dout, dq, dk, dv 16-byte
// aligned with the head dim contiguous and every other stride a multiple of 8 elements; H a
// multiple of Hkv; lse (B, H, S) fp32 from the forward with the same mods, scale and q_offset;
// delta (B H S) and dq_accum (B H S D) fp32 scratch buffers, contiguous. Grids and block sizes as
// above; the main kernel takes kSharedBytes of dynamic shared memory (kThreads threads), the other
// two kAuxThreads threads and none.
//
// Mods is the forward's traits type (flash_attention.cuh's header) plus the score mod's derivative:
//   static constexpr bool kHasScoreGrad;    false when ds'/ds is the constant 1 (or no score mod)
//   static float d_score(float s, const attnc_abi::ModPoint&, const Params&, attnc_abi::BoundsReport*);
//   static constexpr int kNumGradSites, kNumGradTensors;   reads of float tensor parameters, and those
//   static float grad_site(int site, float s, const attnc_abi::ModPoint&, const Params&,
//                          attnc_abi::BoundsReport*, int32_t& slot, int64_t& offset);
//     d s' / d(the element site `site` reads), that element's tensor (slot) and row-major offset:
//     the kernel adds dS' * it to dparams[slot][offset] (the CPU kernel's scatter-add).
// attnc_abi::GeneratedBackwardMods (generated_backward_mods.cuh) adapts the generated code; tests
// write their own traits and run this template on the CPU through the host emulation.
//
// Entry points. The translation unit NVRTC compiles is
//   #include "flash_backward.cuh"
//   <the generated code: namespace attnc_gen { ... } with d_score>
//   #include "generated_backward_mods.cuh"
//   ATTNC_INSTANTIATE_FLASH_BACKWARD(attnc_flash_backward, attnc_abi::GeneratedBackwardMods,
//                                    attnc_dev::bf16_t, 128, 128, 16, 64, 4)
// which defines three extern "C" kernels, NAME_preprocess, NAME and NAME_convert_dq, all taking
// FlashBackwardParams<Mods::Params>, for (element type, HEAD_DIM, HEAD_DIM_V, BLOCK_M, BLOCK_N,
// NUM_WARPS); runtime/families/flash_backward/FlashBackwardSource.h chooses the last three.

#include "device_primitives.cuh"
#include "dropout.cuh"
#include "mod_abi.cuh"

namespace attnc_flash_bwd {

using attnc_abi::BoundsReport;
using attnc_abi::ModPoint;
using attnc_abi::TileBox;
using attnc_dev::bf16_t;
using attnc_dev::f16_t;

enum TileClass : int { kTileEmpty = 0, kTileFull = 1, kTilePartial = 2 };

// The preprocess and convert kernels: one warp per query row, kRowKernelRows rows per CTA of
// kRowKernelThreads threads; grid (ceil(S / kRowKernelRows), H, B).
constexpr int kRowKernelThreads = 128;
constexpr int kRowKernelRows = 16;

// The most float tensor parameters of a score mod whose gradients the kernel computes.
constexpr int kMaxParamGradients = 4;

// The kernels' only argument. Strides are in elements; the head dim is contiguous.
template <class ModParams>
struct FlashBackwardParams {
  const void* q;
  const void* k;
  const void* v;
  const void* out;
  const void* dout;
  const float* lse;  // (B, H, S) natural-log LSE of the forward
  float* delta;      // (B H S) contiguous scratch: rowsum(dO * O), written by the preprocess
  float* dq_accum;   // (B H S D) contiguous fp32 scratch, zeroed by the preprocess
  void* dq;          // gradients, in the input dtype
  void* dk;
  void* dv;
  int64_t q_batch_stride, q_head_stride, q_row_stride;
  int64_t k_batch_stride, k_head_stride, k_row_stride;
  int64_t v_batch_stride, v_head_stride, v_row_stride;
  int64_t out_batch_stride, out_head_stride, out_row_stride;
  int64_t dout_batch_stride, dout_head_stride, dout_row_stride;
  int64_t dq_batch_stride, dq_head_stride, dq_row_stride;
  int64_t dk_batch_stride, dk_head_stride, dk_row_stride;
  int64_t dv_batch_stride, dv_head_stride, dv_row_stride;
  int64_t lse_batch_stride, lse_head_stride, lse_row_stride;
  int32_t batch, num_heads, num_kv_heads, q_len, kv_len;
  int32_t q_offset;  // the mods see q_idx = q_offset + row
  float scale;       // multiplies q.k before the score mod
  // Attention dropout (runtime/core/Dropout.h): an element is kept when its Philox draw at
  // (kv_idx, q_idx, h, b) with key dropout_seed is >= dropout_threshold, and then scaled by
  // dropout_keep_scale. A threshold of 0 disables dropout (every draw is >= 0).
  uint32_t dropout_threshold;
  float dropout_keep_scale;
  uint64_t dropout_seed;
  // Gradients of the score mod's float tensor parameters (Mods::kNumGradTensors of them, in
  // parameter order): contiguous fp32 buffers shaped like the bound tensors, zeroed by the caller,
  // scatter-added with red.global.add.f32. Unused (may be null) without such parameters.
  float* dparams[kMaxParamGradients];
  ModParams mods;
  BoundsReport* bounds;  // where mods record an out-of-range index (kCheckBounds), or null
};

ATTNC_HOST_DEVICE constexpr int max_int(int a, int b) { return a > b ? a : b; }  // compile-time sizes
ATTNC_HOST_DEVICE constexpr int min_int(int a, int b) { return a < b ? a : b; }

template <class Elem>
ATTNC_DEVICE_INLINE float to_float(Elem e);
template <>
ATTNC_DEVICE_INLINE float to_float<bf16_t>(bf16_t e) {
  return attnc_abi::bf16_bits_to_f32(e.bits);
}
template <>
ATTNC_DEVICE_INLINE float to_float<f16_t>(f16_t e) {
  return attnc_abi::f16_bits_to_f32(e.bits);
}

template <class Elem>
ATTNC_DEVICE_INLINE Elem from_float(float x) {
  Elem e;
  e.bits = static_cast<uint16_t>(attnc_dev::pack2<Elem>(x, 0.0f) & 0xffffu);
  return e;
}

ATTNC_DEVICE_INLINE void store_u32(void* dst, uint32_t value) {
#if ATTNC_ON_DEVICE
  *reinterpret_cast<uint32_t*>(dst) = value;
#else
  std::memcpy(dst, &value, sizeof value);
#endif
}

template <class Mods, class Elem, int HEAD_DIM, int HEAD_DIM_V, int BLOCK_M, int BLOCK_N, int NUM_WARPS>
struct FlashBackward {
  using Params = FlashBackwardParams<typename Mods::Params>;

  static constexpr int kThreads = NUM_WARPS * 32;
  static constexpr int kQTiles = BLOCK_M / 8;       // n8 tiles of S^T and dP^T (query columns)
  static constexpr int kDTiles = HEAD_DIM / 8;      // n8 tiles of dK
  static constexpr int kDvTiles = HEAD_DIM_V / 8;   // n8 tiles of dV
  static constexpr int kQkSteps = HEAD_DIM / 16;    // k16 steps of K Q^T
  static constexpr int kVdSteps = HEAD_DIM_V / 16;  // k16 steps of V dO^T
  static constexpr int kMSteps = BLOCK_M / 16;      // k16 steps of P^T dO and dS^T Q; m16 blocks of dQ
  static constexpr int kNSteps = BLOCK_N / 16;      // k16 steps of dS K

  static_assert(BLOCK_N == 16 * NUM_WARPS, "each warp owns one m16 block of keys");
  static_assert(BLOCK_M % 16 == 0 && HEAD_DIM % 16 == 0 && HEAD_DIM_V % 16 == 0,
                "tiles are walked in k16 steps and loaded by ldmatrix.x4 in pairs of n8 tiles");
  static_assert(sizeof(Elem) == 2, "16-bit inputs only");
  static_assert(kQTiles * 4 <= 32, "dropout's decisions of a thread's elements fit one 32-bit mask");
  static_assert(Mods::kNumGradTensors <= kMaxParamGradients, "FlashBackwardParams::dparams is large enough");
  // With tensor-parameter gradients the raw scores and P stay in registers until dS' is known.
  static constexpr bool kParamGrads = Mods::kNumGradSites > 0;

  // dQ = dS K is computed in m16 x kDqCols blocks (kDqCols / 4 fp32 accumulators per thread, few
  // enough to sit beside dK and dV without spilling).
  static constexpr int kDqCols = min_int(HEAD_DIM, 32);
  static_assert(HEAD_DIM % kDqCols == 0 && kDqCols % 16 == 0, "dQ column blocks");
  static constexpr int kDqBlocks = kMSteps * (HEAD_DIM / kDqCols);
  static constexpr int kDqRounds = (kDqBlocks + NUM_WARPS - 1) / NUM_WARPS;

  // Shared memory, in bytes: K | V | dS^T | stage 0 | stage 1, each stage Q | dO | lse | delta.
  static constexpr int kKStride = HEAD_DIM + 8;  // padded row strides, in elements
  static constexpr int kVStride = HEAD_DIM_V + 8;
  static constexpr int kDsStride = BLOCK_M + 8;
  static constexpr int kKBytes = BLOCK_N * kKStride * 2;
  static constexpr int kVBytes = BLOCK_N * kVStride * 2;
  static constexpr int kDsBytes = BLOCK_N * kDsStride * 2;
  static constexpr int kQBytes = BLOCK_M * kKStride * 2;
  static constexpr int kDoBytes = BLOCK_M * kVStride * 2;
  static constexpr int kStageBytes = kQBytes + kDoBytes + 2 * BLOCK_M * 4;
  static constexpr int kVOffset = kKBytes;
  static constexpr int kDsOffset = kVOffset + kVBytes;
  static constexpr int kStageOffset = kDsOffset + kDsBytes;
  static constexpr int kSharedBytes = kStageOffset + 2 * kStageBytes;
  static_assert(kKBytes % 16 == 0 && kVBytes % 16 == 0 && kDsBytes % 16 == 0 && kQBytes % 16 == 0 &&
                    kDoBytes % 16 == 0 && kStageBytes % 16 == 0,
                "every region starts 16-byte aligned (cp.async, ldmatrix)");

  static constexpr float kLog2e = 1.4426950408889634f;

  static constexpr int kAuxThreads = kRowKernelThreads;
  static constexpr int kRowsPerBlock = kRowKernelRows;

  struct Stage {
    Elem* q;
    Elem* dout;
    float* lse_log2;  // log2(e) LSE; +inf for rows past q_len and fully masked rows (P = 0)
    float* delta;
  };

  static ATTNC_DEVICE_INLINE Stage stage_at(unsigned char* smem, int index) {
    unsigned char* base = smem + kStageOffset + index * kStageBytes;
    return Stage{reinterpret_cast<Elem*>(base), reinterpret_cast<Elem*>(base + kQBytes),
                 reinterpret_cast<float*>(base + kQBytes + kDoBytes),
                 reinterpret_cast<float*>(base + kQBytes + kDoBytes + BLOCK_M * 4)};
  }

  // Per-thread gradient accumulators of the warp's 16 keys: thread (g = lane / 4, t = lane % 4)
  // holds keys g (elements 0, 1) and g + 8 (elements 2, 3), columns 2 t, 2 t + 1 of every n8 tile.
  struct Accumulators {
    float dk[kDTiles][4];
    float dv[kDvTiles][4];
  };

  // ---- Kernel 1: delta = rowsum(dO * O), dQ accumulator = 0 ----

  static ATTNC_DEVICE_INLINE void preprocess(const Params& p) {
    const int warp = attnc_dev::thread_idx_x() / 32;
    const int lane = attnc_dev::thread_idx_x() % 32;
    const int h = attnc_dev::block_idx_y();
    const int b = attnc_dev::block_idx_z();
    const Elem* out = static_cast<const Elem*>(p.out) + b * p.out_batch_stride + h * p.out_head_stride;
    const Elem* dout = static_cast<const Elem*>(p.dout) + b * p.dout_batch_stride + h * p.dout_head_stride;
    const int64_t bh_row = (static_cast<int64_t>(b) * p.num_heads + h) * p.q_len;
    for (int row = attnc_dev::block_idx_x() * kRowsPerBlock + warp; row < p.q_len; row += kAuxThreads / 32) {
      if (row >= (attnc_dev::block_idx_x() + 1) * kRowsPerBlock) break;
      float sum = 0.0f;
      for (int d = lane; d < HEAD_DIM_V; d += 32) {
        sum += to_float(out[row * p.out_row_stride + d]) * to_float(dout[row * p.dout_row_stride + d]);
      }
      sum += attnc_dev::shfl_xor(sum, 16);
      sum += attnc_dev::shfl_xor(sum, 8);
      sum += attnc_dev::shfl_xor(sum, 4);
      sum += attnc_dev::shfl_xor(sum, 2);
      sum += attnc_dev::shfl_xor(sum, 1);
      if (lane == 0) p.delta[bh_row + row] = sum;
      float* dq = p.dq_accum + (bh_row + row) * HEAD_DIM;
      for (int d = lane; d < HEAD_DIM; d += 32) dq[d] = 0.0f;
    }
  }

  // ---- Kernel 3: dQ = scale * accumulator, in the input dtype ----

  static ATTNC_DEVICE_INLINE void convert_dq(const Params& p) {
    const int warp = attnc_dev::thread_idx_x() / 32;
    const int lane = attnc_dev::thread_idx_x() % 32;
    const int h = attnc_dev::block_idx_y();
    const int b = attnc_dev::block_idx_z();
    Elem* dq = static_cast<Elem*>(p.dq) + b * p.dq_batch_stride + h * p.dq_head_stride;
    const int64_t bh_row = (static_cast<int64_t>(b) * p.num_heads + h) * p.q_len;
    for (int row = attnc_dev::block_idx_x() * kRowsPerBlock + warp; row < p.q_len; row += kAuxThreads / 32) {
      if (row >= (attnc_dev::block_idx_x() + 1) * kRowsPerBlock) break;
      const float* acc = p.dq_accum + (bh_row + row) * HEAD_DIM;
      for (int d = lane; d < HEAD_DIM; d += 32) dq[row * p.dq_row_stride + d] = from_float<Elem>(acc[d] * p.scale);
    }
  }

  // ---- Kernel 2: dK, dV of one key tile, dQ added into the accumulator ----

  static ATTNC_DEVICE_INLINE void run(const Params& p) {
    const int tid = attnc_dev::thread_idx_x();
    const int warp = tid / 32;
    const int lane = tid % 32;
    const int kv_first = attnc_dev::block_idx_x() * BLOCK_N;
    const int kv_head = attnc_dev::block_idx_y();
    const int b = attnc_dev::block_idx_z();
    if (kv_first >= p.kv_len) return;  // the whole CTA: the grid may be rounded up
    const int group = p.num_heads / p.num_kv_heads;
    const int q_tiles = (p.q_len + BLOCK_M - 1) / BLOCK_M;
    const int items = group * q_tiles;  // (query head of the group, query tile), head-major
    const int kv_rows = min_int(BLOCK_N, p.kv_len - kv_first);

    unsigned char* smem = attnc_dev::dynamic_shared_memory();
    Elem* k_tile = reinterpret_cast<Elem*>(smem);
    Elem* v_tile = reinterpret_cast<Elem*>(smem + kVOffset);
    Elem* ds_tile = reinterpret_cast<Elem*>(smem + kDsOffset);

    Accumulators acc;
    ATTNC_UNROLL
    for (int n = 0; n < kDTiles; ++n) {
      ATTNC_UNROLL
      for (int i = 0; i < 4; ++i) acc.dk[n][i] = 0.0f;
    }
    ATTNC_UNROLL
    for (int n = 0; n < kDvTiles; ++n) {
      ATTNC_UNROLL
      for (int i = 0; i < 4; ++i) acc.dv[n][i] = 0.0f;
    }

    int tile_class = kTileEmpty;
    int item = next_item(0, items, q_tiles, kv_head * group, kv_first, kv_rows, b, p, tile_class);
    if (item < items) {
      // Prologue: K, V and the first query-side stage in one group.
      const Elem* k =
          static_cast<const Elem*>(p.k) + b * p.k_batch_stride + kv_head * p.k_head_stride + kv_first * p.k_row_stride;
      const Elem* v =
          static_cast<const Elem*>(p.v) + b * p.v_batch_stride + kv_head * p.v_head_stride + kv_first * p.v_row_stride;
      load_rows<HEAD_DIM, kKStride, BLOCK_N>(k_tile, k, p.k_row_stride, kv_rows, tid);
      load_rows<HEAD_DIM_V, kVStride, BLOCK_N>(v_tile, v, p.v_row_stride, kv_rows, tid);
      load_stage(stage_at(smem, 0), p, b, kv_head * group + item / q_tiles, item % q_tiles, tid);
      attnc_dev::cp_async_commit();

      int stage = 0;
      while (item < items) {
        int next_class = kTileEmpty;
        const int next = next_item(item + 1, items, q_tiles, kv_head * group, kv_first, kv_rows, b, p, next_class);
        // The group is committed even when empty, so "all but the newest group" is always exactly
        // the current stage.
        if (next < items)
          load_stage(stage_at(smem, stage ^ 1), p, b, kv_head * group + next / q_tiles, next % q_tiles, tid);
        attnc_dev::cp_async_commit();
        attnc_dev::cp_async_wait<1>();
        attnc_dev::block_barrier();  // every thread's copies (and plain stores) of the stage are visible

        const int h = kv_head * group + item / q_tiles;
        const int q_first = item % q_tiles * BLOCK_M;
        const bool on_edge = q_first + BLOCK_M > p.q_len || kv_first + BLOCK_N > p.kv_len;
        const Stage st = stage_at(smem, stage);
        if (tile_class == kTilePartial || on_edge) {
          compute_tile<true>(acc, p, st, k_tile, v_tile, ds_tile, b, h, q_first, kv_first, tile_class == kTilePartial,
                             warp, lane);
        } else {
          compute_tile<false>(acc, p, st, k_tile, v_tile, ds_tile, b, h, q_first, kv_first, false, warp, lane);
        }
        attnc_dev::block_barrier();  // dS^T is complete
        accumulate_dq(p, ds_tile, k_tile, b, h, q_first, warp, lane);
        attnc_dev::block_barrier();  // all warps are done with this stage and dS^T before they are refilled
        stage ^= 1;
        item = next;
        tile_class = next_class;
      }
    }
    store_gradients(acc, p, b, kv_head, kv_first + warp * 16, lane);
  }

  // The first item at or after `from` whose (query tile, key tile) box is not EMPTY (items when
  // none), and its class.
  static ATTNC_DEVICE_INLINE int next_item(int from, int items, int q_tiles, int first_head, int kv_first, int kv_rows,
                                           int b, const Params& p, int& tile_class) {
    for (int item = from; item < items; ++item) {
      if (!Mods::kHasMaskMod) {
        tile_class = kTileFull;
        return item;
      }
      const int h = first_head + item / q_tiles;
      const int q_first = item % q_tiles * BLOCK_M;
      const int q_rows = min_int(BLOCK_M, p.q_len - q_first);
      const ModPoint point{b, h, 0, 0, p.q_len, p.kv_len, p.num_heads, p.num_kv_heads};
      const TileBox box{p.q_offset + q_first, p.q_offset + q_first + q_rows - 1, kv_first, kv_first + kv_rows - 1};
      tile_class = Mods::tile_class(box, point, p.mods);
      if (tile_class != kTileEmpty) return item;
    }
    return items;
  }

  // Issues cp.async copies of ROWS rows of COLS elements; rows at or past `valid_rows` are zero-filled.
  template <int COLS, int SMEM_STRIDE, int ROWS>
  static ATTNC_DEVICE_INLINE void load_rows(Elem* dst, const Elem* src, int64_t row_stride, int valid_rows, int tid) {
    constexpr int kChunksPerRow = COLS / 8;  // 16-byte chunks
    constexpr int kChunks = ROWS * kChunksPerRow;
    ATTNC_UNROLL
    for (int i = 0; i < (kChunks + kThreads - 1) / kThreads; ++i) {
      const int chunk = tid + i * kThreads;
      if (kChunks % kThreads == 0 || chunk < kChunks) {
        const int row = chunk / kChunksPerRow;
        const int col = chunk % kChunksPerRow * 8;
        const bool valid = row < valid_rows;
        // A zero-filled chunk reads nothing, but its address must still be a valid one.
        attnc_dev::cp_async_16(dst + row * SMEM_STRIDE + col, src + (valid ? row * row_stride : 0) + col, valid);
      }
    }
  }

  // Q and dO rows by cp.async; the rows' LSE (times log2(e)) and delta by plain loads and stores,
  // published by the barrier that precedes the stage's use.
  static ATTNC_DEVICE_INLINE void load_stage(const Stage& st, const Params& p, int b, int h, int q_tile, int tid) {
    const int q_first = q_tile * BLOCK_M;
    const int rows = min_int(BLOCK_M, p.q_len - q_first);
    const Elem* q =
        static_cast<const Elem*>(p.q) + b * p.q_batch_stride + h * p.q_head_stride + q_first * p.q_row_stride;
    const Elem* dout = static_cast<const Elem*>(p.dout) + b * p.dout_batch_stride + h * p.dout_head_stride +
                       q_first * p.dout_row_stride;
    load_rows<HEAD_DIM, kKStride, BLOCK_M>(st.q, q, p.q_row_stride, rows, tid);
    load_rows<HEAD_DIM_V, kVStride, BLOCK_M>(st.dout, dout, p.dout_row_stride, rows, tid);
    const float plus_inf = -attnc_dev::negative_infinity();
    for (int r = tid; r < BLOCK_M; r += kThreads) {
      float lse_log2 = plus_inf, delta = 0.0f;
      if (r < rows) {
        const float lse = p.lse[b * p.lse_batch_stride + h * p.lse_head_stride + (q_first + r) * p.lse_row_stride];
        // A fully masked row has LSE -inf; +inf makes every exp2(x - LSE) 0 instead of NaN.
        if (lse != attnc_dev::negative_infinity()) lse_log2 = lse * kLog2e;
        delta = p.delta[(static_cast<int64_t>(b) * p.num_heads + h) * p.q_len + q_first + r];
      }
      st.lse_log2[r] = lse_log2;
      st.delta[r] = delta;
    }
  }

  // The A fragment of rows [row0, row0 + 16) and columns [col0, col0 + 16) of a row-major tile at
  // shared address `tile` (shared_u32) with STRIDE elements per row.
  template <int STRIDE>
  static ATTNC_DEVICE_INLINE void load_a(uint32_t (&a)[4], uint32_t tile, int row0, int col0, int lane) {
    const int m = lane / 8;
    attnc_dev::ldmatrix_x4_at(a, tile + 2 * ((row0 + (m & 1) * 8 + lane % 8) * STRIDE + col0 + (m >> 1) * 8));
  }

  // B fragments of two n8 tiles from a tile stored [n][k] (the col-major B operand): columns
  // [n0, n0 + 8) in {b[0], b[1]}, [n0 + 8, n0 + 16) in {b[2], b[3]}, for k in [k0, k0 + 16).
  template <int STRIDE>
  static ATTNC_DEVICE_INLINE void load_b_nk(uint32_t (&b)[4], uint32_t tile, int n0, int k0, int lane) {
    const int m = lane / 8;
    attnc_dev::ldmatrix_x4_at(b, tile + 2 * ((n0 + (m >> 1) * 8 + lane % 8) * STRIDE + k0 + (m & 1) * 8));
  }

  // The same from a tile stored [k][n] (the row-major B operand), by ldmatrix.trans.
  template <int STRIDE>
  static ATTNC_DEVICE_INLINE void load_b_kn(uint32_t (&b)[4], uint32_t tile, int n0, int k0, int lane) {
    const int m = lane / 8;
    attnc_dev::ldmatrix_x4_trans_at(b, tile + 2 * ((k0 + (m & 1) * 8 + lane % 8) * STRIDE + n0 + (m >> 1) * 8));
  }

  // The A fragment of accumulator tiles 2 kk and 2 kk + 1 (one m16 x k16 block), rounded to 16 bits.
  static ATTNC_DEVICE_INLINE void pack_a(uint32_t (&a)[4], const float (&x)[kQTiles][4], int kk) {
    a[0] = attnc_dev::pack2<Elem>(x[2 * kk][0], x[2 * kk][1]);
    a[1] = attnc_dev::pack2<Elem>(x[2 * kk][2], x[2 * kk][3]);
    a[2] = attnc_dev::pack2<Elem>(x[2 * kk + 1][0], x[2 * kk + 1][1]);
    a[3] = attnc_dev::pack2<Elem>(x[2 * kk + 1][2], x[2 * kk + 1][3]);
  }

  // pack_a of P^T * M * k (dropout's decisions M, its scale k) for dV.
  static ATTNC_DEVICE_INLINE void pack_a_dropped(uint32_t (&a)[4], const float (&x)[kQTiles][4], int kk, uint32_t kept,
                                                 float keep_scale) {
    float d[2][4];
    ATTNC_UNROLL
    for (int h = 0; h < 2; ++h) {
      ATTNC_UNROLL
      for (int i = 0; i < 4; ++i) {
        const int n = 2 * kk + h;
        d[h][i] = (kept >> (4 * n + i) & 1u) != 0 ? x[n][i] * keep_scale : 0.0f;
      }
    }
    a[0] = attnc_dev::pack2<Elem>(d[0][0], d[0][1]);
    a[1] = attnc_dev::pack2<Elem>(d[0][2], d[0][3]);
    a[2] = attnc_dev::pack2<Elem>(d[1][0], d[1][1]);
    a[3] = attnc_dev::pack2<Elem>(d[1][2], d[1][3]);
  }

  // One (query tile, key tile) pair: dK and dV of the warp's keys, and dS^T into shared memory.
  // CHECKED is false for interior FULL pairs, where every element is in range and kept, so the mask
  // and the bounds tests are compiled out.
  template <bool CHECKED>
  static ATTNC_DEVICE_INLINE void compute_tile(Accumulators& acc, const Params& p, const Stage& st, const Elem* k_tile,
                                               const Elem* v_tile, Elem* ds_tile, int b, int h, int q_first,
                                               int kv_first, bool evaluate_mask, int warp, int lane) {
    const int key0 = warp * 16;  // the warp's first key in the tile
    const uint32_t k_smem = attnc_dev::shared_u32(k_tile), v_smem = attnc_dev::shared_u32(v_tile);
    const uint32_t q_smem = attnc_dev::shared_u32(st.q), do_smem = attnc_dev::shared_u32(st.dout);

    // S^T = K Q^T: A = the warp's keys, B = Q stored [query][d].
    float s[kQTiles][4];
    ATTNC_UNROLL
    for (int n = 0; n < kQTiles; ++n) {
      ATTNC_UNROLL
      for (int i = 0; i < 4; ++i) s[n][i] = 0.0f;
    }
    ATTNC_UNROLL
    for (int kk = 0; kk < kQkSteps; ++kk) {
      uint32_t a[4];
      load_a<kKStride>(a, k_smem, key0, kk * 16, lane);
      ATTNC_UNROLL
      for (int j = 0; j < kQTiles / 2; ++j) {
        uint32_t bf[4];
        load_b_nk<kKStride>(bf, q_smem, j * 16, kk * 16, lane);
        const uint32_t b0[2] = {bf[0], bf[1]};
        const uint32_t b1[2] = {bf[2], bf[3]};
        attnc_dev::mma_m16n8k16<Elem>(s[2 * j], a, b0);
        attnc_dev::mma_m16n8k16<Elem>(s[2 * j + 1], a, b1);
      }
    }

    // P^T in place of S^T, and ds'/ds where the score mod has a derivative. Element i of tile n is
    // key g (+8 for i >= 2), query column 8 n + 2 t + (i & 1). Bit 4 n + i of `kept` is 0 where
    // dropout drops the element (all bits 1 without dropout).
    float grad[kQTiles][4];
    float raw[kParamGrads ? kQTiles : 1][4];
    uint32_t kept = ~0u;
    const bool dropout = p.dropout_threshold != 0;
    const float keep_scale = dropout ? p.dropout_keep_scale : 1.0f;
    ModPoint point{b, h, 0, 0, p.q_len, p.kv_len, p.num_heads, p.num_kv_heads};
    const int q_end = p.q_offset + p.q_len;
    ATTNC_UNROLL
    for (int n = 0; n < kQTiles; ++n) {
      ATTNC_UNROLL
      for (int i = 0; i < 4; ++i) {
        const int col = n * 8 + 2 * (lane % 4) + (i & 1);
        point.q_idx = p.q_offset + q_first + col;
        point.kv_idx = kv_first + key0 + lane / 4 + (i >= 2 ? 8 : 0);
        grad[n][i] = 1.0f;
        if (CHECKED) {
          if (point.q_idx >= q_end || point.kv_idx >= p.kv_len ||
              (Mods::kHasMaskMod && evaluate_mask && !Mods::mask_mod(point, p.mods, p.bounds))) {
            s[n][i] = 0.0f;
            continue;
          }
        }
        const float score = s[n][i] * p.scale;
        const float x = Mods::kHasScoreMod ? Mods::score_mod(score, point, p.mods, p.bounds) : score;
        if (Mods::kHasScoreGrad) grad[n][i] = Mods::d_score(score, point, p.mods, p.bounds);
        if (kParamGrads) raw[kParamGrads ? n : 0][i] = score;
        // exp(x - LSE) = 2^(log2(e) x - log2(e) LSE); -inf (a score mod's own masking) gives 0.
        s[n][i] = attnc_dev::fast_exp2(x * kLog2e - st.lse_log2[col]);
        if (dropout && !attnc_dev::dropout_keeps(p.dropout_threshold, p.dropout_seed, b, h, point.q_idx, point.kv_idx)) {
          kept &= ~(1u << (4 * n + i));
        }
      }
    }

    // dV += P^T dO: B = dO stored [query][dv], the row-major operand.
    ATTNC_UNROLL
    for (int kk = 0; kk < kMSteps; ++kk) {
      uint32_t a[4];
      pack_a_dropped(a, s, kk, kept, keep_scale);
      ATTNC_UNROLL
      for (int j = 0; j < kDvTiles / 2; ++j) {
        uint32_t bf[4];
        load_b_kn<kVStride>(bf, do_smem, j * 16, kk * 16, lane);
        const uint32_t b0[2] = {bf[0], bf[1]};
        const uint32_t b1[2] = {bf[2], bf[3]};
        attnc_dev::mma_m16n8k16<Elem>(acc.dv[2 * j], a, b0);
        attnc_dev::mma_m16n8k16<Elem>(acc.dv[2 * j + 1], a, b1);
      }
    }

    // P^T * ds'/ds from here on: the derivative's registers are free before dP^T needs its own.
    if (Mods::kHasScoreGrad && !kParamGrads) {
      ATTNC_UNROLL
      for (int n = 0; n < kQTiles; ++n) {
        ATTNC_UNROLL
        for (int i = 0; i < 4; ++i) s[n][i] = s[n][i] == 0.0f ? 0.0f : s[n][i] * grad[n][i];  // not 0 * inf
      }
    }

    // dP^T = V dO^T: A = the warp's keys of V, B = dO stored [query][dv].
    float dp[kQTiles][4];
    ATTNC_UNROLL
    for (int n = 0; n < kQTiles; ++n) {
      ATTNC_UNROLL
      for (int i = 0; i < 4; ++i) dp[n][i] = 0.0f;
    }
    ATTNC_UNROLL
    for (int kk = 0; kk < kVdSteps; ++kk) {
      uint32_t a[4];
      load_a<kVStride>(a, v_smem, key0, kk * 16, lane);
      ATTNC_UNROLL
      for (int j = 0; j < kQTiles / 2; ++j) {
        uint32_t bf[4];
        load_b_nk<kVStride>(bf, do_smem, j * 16, kk * 16, lane);
        const uint32_t b0[2] = {bf[0], bf[1]};
        const uint32_t b1[2] = {bf[2], bf[3]};
        attnc_dev::mma_m16n8k16<Elem>(dp[2 * j], a, b0);
        attnc_dev::mma_m16n8k16<Elem>(dp[2 * j + 1], a, b1);
      }
    }

    // dS^T = P^T [* ds'/ds] * (dP^T - delta), exactly 0 where P or dP^T - delta is (so an infinite
    // derivative never meets a zero), into dp; then to shared memory as [key][query] pairs.
    ATTNC_UNROLL
    for (int n = 0; n < kQTiles; ++n) {
      ATTNC_UNROLL
      for (int i = 0; i < 4; ++i) {
        const int col = n * 8 + 2 * (lane % 4) + (i & 1);
        const float dropped = (kept >> (4 * n + i) & 1u) != 0 ? dp[n][i] * keep_scale : 0.0f;
        const float upstream = dropped - st.delta[col];
        float ds = s[n][i] == 0.0f || upstream == 0.0f ? 0.0f : s[n][i] * upstream;
        if (kParamGrads) {
          // s holds P, so ds is dS': scatter it into the parameters' gradients, then apply ds'/ds.
          if (ds != 0.0f) {
            ModPoint at{b,
                        h,
                        p.q_offset + q_first + col,
                        kv_first + key0 + lane / 4 + (i >= 2 ? 8 : 0),
                        p.q_len,
                        p.kv_len,
                        p.num_heads,
                        p.num_kv_heads};
            ATTNC_UNROLL
            for (int site = 0; site < Mods::kNumGradSites; ++site) {
              int32_t slot = 0;
              int64_t offset = 0;
              const float g = Mods::grad_site(site, raw[kParamGrads ? n : 0][i], at, p.mods, p.bounds, slot, offset);
              attnc_dev::atomic_add_f32(p.dparams[slot] + offset, ds * g);
            }
          }
          if (Mods::kHasScoreGrad) ds = ds == 0.0f ? 0.0f : ds * grad[n][i];
        }
        dp[n][i] = ds;
      }
      const int key = key0 + lane / 4;
      const int col = n * 8 + 2 * (lane % 4);
      store_u32(ds_tile + key * kDsStride + col, attnc_dev::pack2<Elem>(dp[n][0], dp[n][1]));
      store_u32(ds_tile + (key + 8) * kDsStride + col, attnc_dev::pack2<Elem>(dp[n][2], dp[n][3]));
    }

    // dK += dS^T Q: B = Q stored [query][d], the row-major operand.
    ATTNC_UNROLL
    for (int kk = 0; kk < kMSteps; ++kk) {
      uint32_t a[4];
      pack_a(a, dp, kk);
      ATTNC_UNROLL
      for (int j = 0; j < kDTiles / 2; ++j) {
        uint32_t bf[4];
        load_b_kn<kKStride>(bf, q_smem, j * 16, kk * 16, lane);
        const uint32_t b0[2] = {bf[0], bf[1]};
        const uint32_t b1[2] = {bf[2], bf[3]};
        attnc_dev::mma_m16n8k16<Elem>(acc.dk[2 * j], a, b0);
        attnc_dev::mma_m16n8k16<Elem>(acc.dk[2 * j + 1], a, b1);
      }
    }
  }

  // dQ_accum[q_first + ...] += dS K for the tile: m16 x kDqCols blocks dealt round-robin to the
  // warps. dS is stored transposed ([key][query]), so its A fragments come from ldmatrix.trans:
  // matrix m covers keys +8 (m >> 1) and queries +8 (m & 1), which is A's (rows +8 (m & 1),
  // columns +8 (m >> 1)). K is stored [key][d], the row-major B operand.
  static ATTNC_DEVICE_INLINE void accumulate_dq(const Params& p, const Elem* ds_tile, const Elem* k_tile, int b, int h,
                                                int q_first, int warp, int lane) {
    float* dq = p.dq_accum + ((static_cast<int64_t>(b) * p.num_heads + h) * p.q_len + q_first) * HEAD_DIM;
    const uint32_t ds_smem = attnc_dev::shared_u32(ds_tile), k_smem = attnc_dev::shared_u32(k_tile);
    const int m = lane / 8;
    ATTNC_UNROLL
    for (int round = 0; round < kDqRounds; ++round) {
      const int block = warp + round * NUM_WARPS;
      if (kDqBlocks % NUM_WARPS != 0 && block >= kDqBlocks) break;
      const int row0 = block % kMSteps * 16;
      const int col0 = block / kMSteps * kDqCols;
      if (q_first + row0 >= p.q_len) continue;  // the whole block is past the last row
      float d[kDqCols / 8][4];
      ATTNC_UNROLL
      for (int n = 0; n < kDqCols / 8; ++n) {
        ATTNC_UNROLL
        for (int i = 0; i < 4; ++i) d[n][i] = 0.0f;
      }
      ATTNC_UNROLL
      for (int kk = 0; kk < kNSteps; ++kk) {
        uint32_t a[4];
        attnc_dev::ldmatrix_x4_trans_at(
            a, ds_smem + 2 * ((kk * 16 + (m >> 1) * 8 + lane % 8) * kDsStride + row0 + (m & 1) * 8));
        ATTNC_UNROLL
        for (int j = 0; j < kDqCols / 16; ++j) {
          uint32_t bf[4];
          load_b_kn<kKStride>(bf, k_smem, col0 + j * 16, kk * 16, lane);
          const uint32_t b0[2] = {bf[0], bf[1]};
          const uint32_t b1[2] = {bf[2], bf[3]};
          attnc_dev::mma_m16n8k16<Elem>(d[2 * j], a, b0);
          attnc_dev::mma_m16n8k16<Elem>(d[2 * j + 1], a, b1);
        }
      }
      ATTNC_UNROLL
      for (int half = 0; half < 2; ++half) {
        const int row = row0 + lane / 4 + half * 8;
        if (q_first + row >= p.q_len) continue;
        float* dst = dq + row * HEAD_DIM + col0 + 2 * (lane % 4);
        ATTNC_UNROLL
        for (int n = 0; n < kDqCols / 8; ++n) {
          attnc_dev::atomic_add_f32(dst + n * 8, d[n][2 * half]);
          attnc_dev::atomic_add_f32(dst + n * 8 + 1, d[n][2 * half + 1]);
        }
      }
    }
  }

  // dK (times the scale) and dV of the warp's keys, in the input dtype; keys past kv_len are not
  // written. A key tile whose every pair was EMPTY writes zeros.
  static ATTNC_DEVICE_INLINE void store_gradients(Accumulators& acc, const Params& p, int b, int kv_head, int key0,
                                                  int lane) {
    Elem* dk = static_cast<Elem*>(p.dk) + b * p.dk_batch_stride + kv_head * p.dk_head_stride;
    Elem* dv = static_cast<Elem*>(p.dv) + b * p.dv_batch_stride + kv_head * p.dv_head_stride;
    ATTNC_UNROLL
    for (int half = 0; half < 2; ++half) {
      const int key = key0 + lane / 4 + half * 8;
      if (key >= p.kv_len) continue;
      Elem* dk_row = dk + key * p.dk_row_stride + 2 * (lane % 4);
      Elem* dv_row = dv + key * p.dv_row_stride + 2 * (lane % 4);
      ATTNC_UNROLL
      for (int n = 0; n < kDTiles; ++n) {
        store_u32(dk_row + n * 8,
                  attnc_dev::pack2<Elem>(acc.dk[n][2 * half] * p.scale, acc.dk[n][2 * half + 1] * p.scale));
      }
      ATTNC_UNROLL
      for (int n = 0; n < kDvTiles; ++n) {
        store_u32(dv_row + n * 8, attnc_dev::pack2<Elem>(acc.dv[n][2 * half], acc.dv[n][2 * half + 1]));
      }
    }
  }
};

}  // namespace attnc_flash_bwd

// Defines the three extern "C" kernels NAME_preprocess, NAME and NAME_convert_dq for one
// configuration (see the header comment). On the host they are ordinary functions, called once per
// CUDA thread inside a host_emulation::launch.
#define ATTNC_INSTANTIATE_FLASH_BACKWARD(NAME, MODS, ELEM, HEAD_DIM, HEAD_DIM_V, BLOCK_M, BLOCK_N, NUM_WARPS)          \
  using NAME##_config = attnc_flash_bwd::FlashBackward<MODS, ELEM, HEAD_DIM, HEAD_DIM_V, BLOCK_M, BLOCK_N, NUM_WARPS>; \
  extern "C" ATTNC_KERNEL void ATTNC_LAUNCH_BOUNDS(NAME##_config::kAuxThreads)                                         \
      NAME##_preprocess(const attnc_flash_bwd::FlashBackwardParams<MODS::Params> params) {                             \
    NAME##_config::preprocess(params);                                                                                 \
  }                                                                                                                    \
  extern "C" ATTNC_KERNEL void ATTNC_LAUNCH_BOUNDS(NUM_WARPS * 32)                                                     \
      NAME(const attnc_flash_bwd::FlashBackwardParams<MODS::Params> params) {                                          \
    NAME##_config::run(params);                                                                                        \
  }                                                                                                                    \
  extern "C" ATTNC_KERNEL void ATTNC_LAUNCH_BOUNDS(NAME##_config::kAuxThreads)                                         \
      NAME##_convert_dq(const attnc_flash_bwd::FlashBackwardParams<MODS::Params> params) {                             \
    NAME##_config::convert_dq(params);                                                                                 \
  }
