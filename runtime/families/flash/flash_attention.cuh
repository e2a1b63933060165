#pragma once
// Forward flash attention with fused score / mask mods, in the FlashAttention-2 manner.
//
//   q (B, H, S, D), k (B, Hkv, Skv, D), v (B, Hkv, Skv, Dv) -> out (B, H, S, Dv), lse (B, H, S)
//   s = scale * q.k;  s' = score_mod(s, point);  keep = mask_mod(point);  out = softmax(s' | keep) V
//   with the query head h reading key/value head h / (H / Hkv) (GQA / MQA).
//
// The algorithm. One CTA computes BLOCK_M query rows of one (b, h); its NUM_WARPS warps own
// BLOCK_M / NUM_WARPS rows each (a multiple of 16: one or more mma row blocks). The CTA walks the
// key tiles of BLOCK_N keys in order and keeps, per query row, the running maximum m and sum l of
// the softmax and an unnormalised fp32 output accumulator O (online softmax):
//   S = Q K^T                         mma.sync m16n8k16, Q fragments held in registers
//   x = log2(e) * score_mod(scale S)  in registers, at each element's (q_idx, kv_idx) =
//                                     (q_offset + row, column): q_offset places the rows in a longer
//                                     sequence (a KV cache, a ring shard); 0 for plain tensors
//   m' = max(m, rowmax x);  P = 2^(x - m');  l = 2^(m - m') l + rowsum P;  O = 2^(m - m') O + P V
// and finally writes O / l in the input dtype and lse = ln(2) (m + log2 l). Kernels instantiated with
// DROPOUT (ATTNC_INSTANTIATE_FLASH_FORWARD_DROPOUT) replace P in O's update, after l took it whole, by
// P M / (1 - rate) with M the Philox decisions of runtime/kernels/dropout.cuh (those of the CPU
// kernels and the reference), drawn per tile before S exists. Working in base 2 lets
// one ex2 instruction replace exp; without a score mod, log2(e) is folded into the scale so each
// score costs one multiply. The scores of P are never written to memory: the mma accumulator
// layout of S is, pair by pair, the A-operand layout of P for P V.
//
// Tile classification. Before touching a key tile the CTA asks Mods::tile_class about the box
// [q_first, q_last] x [kv_first, kv_last] (clipped to the sequence lengths): EMPTY tiles are skipped
// with no loads and no math, FULL tiles run without evaluating the mask, and only PARTIAL tiles call
// mask_mod per element. Causal attention thus does about half the work of non-causal, and a
// sliding window's cost follows the window, not the sequence.
//
// Memory pipeline. K and V tiles are double-buffered in shared memory: while the warps compute on
// one stage, cp.async fills the other with the next non-EMPTY tile. Rows of shared memory are padded
// by 16 bytes, so the eight row addresses of every ldmatrix (and the 16-byte cp.async stores of
// eight consecutive rows) fall into distinct bank groups. Q is staged once through shared memory
// (aliasing the second K/V stage, which is free until the first prefetch) into registers.
//
// Edges. Rows and keys past q_len / kv_len are zero-filled on load, and their scores are set to -inf
// before the mods run, so mods are only ever evaluated at in-range points. A row whose scores are
// all -inf (fully masked) keeps m = -inf: the softmax then subtracts 0 instead of m (so no
// -inf - -inf NaN appears), every P is 0, and the row's output is 0 and its LSE -inf.
//
// Requirements on the caller (the launcher checks them): q, k, v and out 16-byte aligned, their
// head dim contiguous, every other stride a multiple of 8 elements; H a multiple of Hkv; grid
// (ceil(S / BLOCK_M), H, B), NUM_WARPS * 32 threads, kSharedBytes of dynamic shared memory.
//
// Mods is a traits type with the generated code's API (mod_abi.cuh):
//   using Params = ...;                     the bound parameters, passed by value in FlashParams
//   static constexpr bool kHasScoreMod, kHasMaskMod, kCheckBounds;
//   static float score_mod(float, const attnc_abi::ModPoint&, const Params&, attnc_abi::BoundsReport*);
//   static bool mask_mod(const attnc_abi::ModPoint&, const Params&, attnc_abi::BoundsReport*);
//   static int tile_class(const attnc_abi::TileBox&, const attnc_abi::ModPoint&, const Params&);
// attnc_abi::GeneratedMods (generated_mods.cuh) adapts the generated namespace attnc_gen; tests
// write their own traits and run this template on the CPU through the host emulation.
//
// Entry point. The translation unit NVRTC compiles is
//   #include "flash_attention.cuh"
//   <the generated code: namespace attnc_gen { ... }>
//   #include "generated_mods.cuh"
//   ATTNC_INSTANTIATE_FLASH_FORWARD(attnc_flash_forward, attnc_abi::GeneratedMods, attnc_dev::bf16_t,
//                                   128, 128, 128, 64, 8)
// which defines extern "C" __global__ void attnc_flash_forward(FlashParams<GeneratedMods::Params>)
// for (element type, HEAD_DIM, HEAD_DIM_V, BLOCK_M, BLOCK_N, NUM_WARPS); runtime/families/flash/TileConfig.h
// chooses the last three per head dim and architecture.

#include "device_primitives.cuh"
#include "dropout.cuh"
#include "mod_abi.cuh"

namespace attnc_flash {

using attnc_abi::BoundsReport;
using attnc_abi::ModPoint;
using attnc_abi::TileBox;
using attnc_dev::bf16_t;
using attnc_dev::f16_t;

enum TileClass : int { kTileEmpty = 0, kTileFull = 1, kTilePartial = 2 };

// The kernel's only argument. Strides are in elements; the head dim is contiguous.
template <class ModParams>
struct FlashParams {
  const void* q;
  const void* k;
  const void* v;
  void* out;
  float* lse;  // (B, H, S) fp32 natural-log LSE, or null when not wanted
  int64_t q_batch_stride, q_head_stride, q_row_stride;
  int64_t k_batch_stride, k_head_stride, k_row_stride;
  int64_t v_batch_stride, v_head_stride, v_row_stride;
  int64_t out_batch_stride, out_head_stride, out_row_stride;
  int64_t lse_batch_stride, lse_head_stride, lse_row_stride;
  int32_t batch, num_heads, num_kv_heads, q_len, kv_len;
  int32_t q_offset;  // the mods see q_idx = q_offset + row (0 for plain tensors; a cache position)
  float scale;       // multiplies q.k before the score mod (usually 1 / sqrt(D))
  // Attention dropout (kernels instantiated with DROPOUT only; runtime/core/Dropout.h): P is kept
  // where dropout_keeps(threshold, seed, b, h, q_idx, kv_idx), scaled by keep_scale, else 0.
  uint64_t dropout_seed;
  uint32_t dropout_threshold;
  float dropout_keep_scale;
  ModParams mods;
  BoundsReport* bounds;  // where mods record an out-of-range index (kCheckBounds), or null
};

ATTNC_HOST_DEVICE constexpr int max_int(int a, int b) { return a > b ? a : b; }  // compile-time sizes
ATTNC_DEVICE_INLINE int min_int(int a, int b) { return a < b ? a : b; }

template <class Mods, class Elem, int HEAD_DIM, int HEAD_DIM_V, int BLOCK_M, int BLOCK_N, int NUM_WARPS,
          bool DROPOUT = false>
struct FlashForward {
  using Params = FlashParams<typename Mods::Params>;

  static constexpr int kThreads = NUM_WARPS * 32;
  static constexpr int kWarpRows = BLOCK_M / NUM_WARPS;  // query rows per warp
  static constexpr int kRowBlocks = kWarpRows / 16;      // mma row blocks (m16) per warp
  static constexpr int kScoreTiles = BLOCK_N / 8;        // n8 tiles of S per row block
  static constexpr int kOutTiles = HEAD_DIM_V / 8;       // n8 tiles of O per row block
  static constexpr int kQkSteps = HEAD_DIM / 16;         // k16 steps of Q K^T
  static constexpr int kPvSteps = BLOCK_N / 16;          // k16 steps of P V

  static_assert(BLOCK_M % (16 * NUM_WARPS) == 0, "each warp owns whole m16 row blocks");
  static_assert(BLOCK_N % 16 == 0 && HEAD_DIM % 16 == 0 && HEAD_DIM_V % 16 == 0,
                "tiles are walked in k16 steps and loaded by ldmatrix.x4 in pairs of n8 tiles");
  static_assert(sizeof(Elem) == 2, "16-bit inputs only");

  // Q's fragments stay in registers for the whole CTA up to HEAD_DIM 128; beyond that they would
  // crowd out the O accumulators (ptxas spills), so Q stays in shared memory and each k16 step
  // reloads its fragment with ldmatrix.
  static constexpr bool kQInRegisters = HEAD_DIM <= 128;
  static constexpr int kQSteps = kQInRegisters ? kQkSteps : 1;  // fragments held in registers

  // Shared memory, in elements: [K stage 0 | V stage 0 | K stage 1 | V stage 1], with Q aliasing
  // stage 1 when it moves into registers (before the first prefetch into stage 1), else after it.
  static constexpr int kKStride = HEAD_DIM + 8;  // padded row strides (16 bytes of padding)
  static constexpr int kVStride = HEAD_DIM_V + 8;
  static constexpr int kKTile = BLOCK_N * kKStride;
  static constexpr int kVTile = BLOCK_N * kVStride;
  static constexpr int kStage = kKTile + kVTile;
  static constexpr int kQTile = BLOCK_M * kKStride;
  static constexpr int kQOffset = kQInRegisters ? kStage : 2 * kStage;
  static constexpr int kSharedElems = kQInRegisters ? kStage + max_int(kStage, kQTile) : 2 * kStage + kQTile;
  static constexpr int kSharedBytes = kSharedElems * 2;

  // log2(e): scores move to base 2 so the softmax uses ex2.
  static constexpr float kLog2e = 1.4426950408889634f;
  static constexpr float kLn2 = 0.6931471805599453f;

  // Per-thread state of the warp's rows. Thread (g = lane / 4, t = lane % 4) holds, for row block r,
  // rows 16 r + g (half 0) and 16 r + g + 8 (half 1) of the warp, columns 2 t, 2 t + 1 of every n8 tile.
  struct Accumulators {
    float o[kRowBlocks][kOutTiles][4];
    float row_max[kRowBlocks][2];  // running max of x (base 2), -inf until a score is kept
    float row_sum[kRowBlocks][2];  // this thread's share of l; the quad's shares are summed at the end
  };

  static ATTNC_DEVICE_INLINE void run(const Params& p) {
    const int tid = attnc_dev::thread_idx_x();
    const int warp = tid / 32;
    const int lane = tid % 32;
    const int q_first = attnc_dev::block_idx_x() * BLOCK_M;
    const int h = attnc_dev::block_idx_y();
    const int b = attnc_dev::block_idx_z();
    if (q_first >= p.q_len) return;  // the whole CTA: the grid may be rounded up
    const int kv_head = h / (p.num_heads / p.num_kv_heads);

    const Elem* q = static_cast<const Elem*>(p.q) + b * p.q_batch_stride + h * p.q_head_stride;
    const Elem* k = static_cast<const Elem*>(p.k) + b * p.k_batch_stride + kv_head * p.k_head_stride;
    const Elem* v = static_cast<const Elem*>(p.v) + b * p.v_batch_stride + kv_head * p.v_head_stride;
    Elem* smem = reinterpret_cast<Elem*>(attnc_dev::dynamic_shared_memory());

    const int q_rows = min_int(BLOCK_M, p.q_len - q_first);
    const int kv_tiles = (p.kv_len + BLOCK_N - 1) / BLOCK_N;
    ModPoint point{b, h, 0, 0, p.q_len, p.kv_len, p.num_heads, p.num_kv_heads};

    Accumulators acc;
    ATTNC_UNROLL
    for (int r = 0; r < kRowBlocks; ++r) {
      ATTNC_UNROLL
      for (int half = 0; half < 2; ++half) {
        acc.row_max[r][half] = attnc_dev::negative_infinity();
        acc.row_sum[r][half] = 0.0f;
      }
      ATTNC_UNROLL
      for (int n = 0; n < kOutTiles; ++n) {
        ATTNC_UNROLL
        for (int i = 0; i < 4; ++i) acc.o[r][n][i] = 0.0f;
      }
    }

    int tile_class = kTileEmpty;
    int tile = next_tile(0, kv_tiles, q_first, q_rows, point, p, tile_class);
    if (tile < kv_tiles) {
      // Prologue: Q and the first K/V tile in one group; Q then moves into registers.
      const Elem* q_tile = smem + kQOffset;
      load_rows<HEAD_DIM, kKStride, BLOCK_M>(smem + kQOffset, q + q_first * p.q_row_stride, p.q_row_stride, q_rows,
                                             tid);
      load_kv_tile(smem, k, v, p, tile, tid);
      attnc_dev::cp_async_commit();
      attnc_dev::cp_async_wait<0>();
      attnc_dev::block_barrier();
      uint32_t q_frag[kRowBlocks][kQSteps][4];
      if (kQInRegisters) {
        load_q_fragments(q_frag, q_tile, warp, lane);
        attnc_dev::block_barrier();  // stage 1 (where Q was) may now be overwritten
      }

      int stage = 0;
      while (tile < kv_tiles) {
        int next_class = kTileEmpty;
        const int next = next_tile(tile + 1, kv_tiles, q_first, q_rows, point, p, next_class);
        // Prefetch the next live tile into the other stage. The group is committed even when empty,
        // so "all but the newest group" is always exactly the current tile.
        if (next < kv_tiles) load_kv_tile(smem + (stage ^ 1) * kStage, k, v, p, next, tid);
        attnc_dev::cp_async_commit();
        attnc_dev::cp_async_wait<1>();
        attnc_dev::block_barrier();  // every thread's copies of the current tile have landed

        const Elem* k_tile = smem + stage * kStage;
        const Elem* v_tile = k_tile + kKTile;
        const int kv_first = tile * BLOCK_N;
        uint32_t keep[kRowBlocks] = {};
        if (DROPOUT) draw_dropout(keep, p, b, h, p.q_offset + q_first + warp * kWarpRows, kv_first, lane);
        float s[kRowBlocks][kScoreTiles][4];
        compute_scores(s, q_frag, q_tile, k_tile, warp, lane);

        const bool on_edge = kv_first + BLOCK_N > p.kv_len || q_first + BLOCK_M > p.q_len;
        if (tile_class == kTilePartial || on_edge) {
          apply_mods<true>(s, p, point, p.q_offset + q_first + warp * kWarpRows, kv_first,
                           tile_class == kTilePartial, lane);
        } else {
          apply_mods<false>(s, p, point, p.q_offset + q_first + warp * kWarpRows, kv_first, false, lane);
        }
        online_softmax_and_pv(acc, s, v_tile, lane, p, keep);

        attnc_dev::block_barrier();  // all warps are done with this stage before it is refilled
        stage ^= 1;
        tile = next;
        tile_class = next_class;
      }
    }
    store_output(acc, p, b, h, q_first + warp * kWarpRows, lane);
  }

  // The first tile at or after `from` that is not EMPTY (kv_tiles when none), and its class.
  static ATTNC_DEVICE_INLINE int next_tile(int from, int kv_tiles, int q_first, int q_rows, const ModPoint& point,
                                           const Params& p, int& tile_class) {
    for (int tile = from; tile < kv_tiles; ++tile) {
      if (!Mods::kHasMaskMod) {
        tile_class = kTileFull;
        return tile;
      }
      const int kv_first = tile * BLOCK_N;
      const TileBox box{p.q_offset + q_first, p.q_offset + q_first + q_rows - 1, kv_first,
                        min_int(kv_first + BLOCK_N, p.kv_len) - 1};
      tile_class = Mods::tile_class(box, point, p.mods);
      if (tile_class != kTileEmpty) return tile;
    }
    return kv_tiles;
  }

  // Issues cp.async copies of ROWS rows of COLS elements (row stride `row_stride` in global memory,
  // SMEM_STRIDE in shared memory); rows at or past `valid_rows` are zero-filled.
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

  static ATTNC_DEVICE_INLINE void load_kv_tile(Elem* stage, const Elem* k, const Elem* v, const Params& p, int tile,
                                               int tid) {
    const int kv_first = tile * BLOCK_N;
    const int rows = min_int(BLOCK_N, p.kv_len - kv_first);
    load_rows<HEAD_DIM, kKStride, BLOCK_N>(stage, k + kv_first * p.k_row_stride, p.k_row_stride, rows, tid);
    load_rows<HEAD_DIM_V, kVStride, BLOCK_N>(stage + kKTile, v + kv_first * p.v_row_stride, p.v_row_stride, rows, tid);
  }

  // Q's A fragment of row block r, k16 step kk. ldmatrix.x4 matrix m = lane / 8 covers rows
  // +8 (m & 1) and columns +8 (m >> 1) of the 16x16 block: a[0..3] in the order mma wants.
  static ATTNC_DEVICE_INLINE void load_q_fragment(uint32_t (&a)[4], const Elem* q_tile, int warp, int lane, int r,
                                                  int kk) {
    const int m = lane / 8;
    const int row = warp * kWarpRows + r * 16 + (m & 1) * 8 + lane % 8;
    attnc_dev::ldmatrix_x4(a, q_tile + row * kKStride + kk * 16 + (m >> 1) * 8);
  }

  static ATTNC_DEVICE_INLINE void load_q_fragments(uint32_t (&q_frag)[kRowBlocks][kQSteps][4], const Elem* q_tile,
                                                   int warp, int lane) {
    ATTNC_UNROLL
    for (int r = 0; r < kRowBlocks; ++r) {
      ATTNC_UNROLL
      for (int kk = 0; kk < kQSteps; ++kk) load_q_fragment(q_frag[r][kk], q_tile, warp, lane, r, kk);
    }
  }

  // S = Q K^T for the warp's rows. K is stored [key][d], i.e. as the column-major B operand, so a
  // plain ldmatrix gives B fragments: matrix m covers keys +8 (m >> 1) and d +8 (m & 1), so
  // registers {0, 1} feed key tile 2j and {2, 3} key tile 2j + 1.
  static ATTNC_DEVICE_INLINE void compute_scores(float (&s)[kRowBlocks][kScoreTiles][4],
                                                 uint32_t (&q_frag)[kRowBlocks][kQSteps][4], const Elem* q_tile,
                                                 const Elem* k_tile, int warp, int lane) {
    ATTNC_UNROLL
    for (int r = 0; r < kRowBlocks; ++r) {
      ATTNC_UNROLL
      for (int n = 0; n < kScoreTiles; ++n) {
        ATTNC_UNROLL
        for (int i = 0; i < 4; ++i) s[r][n][i] = 0.0f;
      }
    }
    const int m = lane / 8;
    ATTNC_UNROLL
    for (int kk = 0; kk < kQkSteps; ++kk) {
      if (!kQInRegisters) {
        ATTNC_UNROLL
        for (int r = 0; r < kRowBlocks; ++r) load_q_fragment(q_frag[r][0], q_tile, warp, lane, r, kk);
      }
      const int q_step = kQInRegisters ? kk : 0;
      ATTNC_UNROLL
      for (int j = 0; j < kScoreTiles / 2; ++j) {
        uint32_t kf[4];
        attnc_dev::ldmatrix_x4(kf, k_tile + (j * 16 + (m >> 1) * 8 + lane % 8) * kKStride + kk * 16 + (m & 1) * 8);
        const uint32_t b0[2] = {kf[0], kf[1]};
        const uint32_t b1[2] = {kf[2], kf[3]};
        ATTNC_UNROLL
        for (int r = 0; r < kRowBlocks; ++r) {
          attnc_dev::mma_m16n8k16<Elem>(s[r][2 * j], q_frag[r][q_step], b0);
          attnc_dev::mma_m16n8k16<Elem>(s[r][2 * j + 1], q_frag[r][q_step], b1);
        }
      }
    }
  }

  // Turns raw dot products into base-2 logits x in place: scale, score mod, mask, -inf for keys
  // and rows past the lengths. CHECKED is false for interior FULL tiles, where every element is in
  // range and kept, so the mask and the bounds tests are compiled out of the hot loop.
  template <bool CHECKED>
  // `warp_q_pos` is the mods' q_idx of the warp's first row (q_offset + its row), so positions are
  // compared with q_end = q_offset + q_len instead of converting each element's row.
  static ATTNC_DEVICE_INLINE void apply_mods(float (&s)[kRowBlocks][kScoreTiles][4], const Params& p, ModPoint point,
                                             int warp_q_pos, int kv_first, bool evaluate_mask, int lane) {
    const int q_end = p.q_offset + p.q_len;
    const float scale_log2 = p.scale * kLog2e;
    const float minus_inf = attnc_dev::negative_infinity();
    ATTNC_UNROLL
    for (int r = 0; r < kRowBlocks; ++r) {
      ATTNC_UNROLL
      for (int n = 0; n < kScoreTiles; ++n) {
        ATTNC_UNROLL
        for (int i = 0; i < 4; ++i) {
          // Element i of the accumulator fragment: row g (+8 for i >= 2), column 2 t + (i & 1).
          point.q_idx = warp_q_pos + r * 16 + lane / 4 + (i >= 2 ? 8 : 0);
          point.kv_idx = kv_first + n * 8 + 2 * (lane % 4) + (i & 1);
          if (CHECKED) {
            if (point.q_idx >= q_end || point.kv_idx >= p.kv_len) {
              s[r][n][i] = minus_inf;
              continue;
            }
            if (Mods::kHasMaskMod && evaluate_mask && !Mods::mask_mod(point, p.mods, p.bounds)) {
              s[r][n][i] = minus_inf;
              continue;
            }
          }
          if (Mods::kHasScoreMod) {
            s[r][n][i] = Mods::score_mod(s[r][n][i] * p.scale, point, p.mods, p.bounds) * kLog2e;
          } else {
            s[r][n][i] *= scale_log2;
          }
        }
      }
    }
  }

  // Attention dropout's decisions for this thread's elements of a key tile, drawn before the scores
  // exist: Philox's ten rounds need a dozen registers, which the kernel at head dim 128 has only
  // while S is not live (drawn beside S, ptxas spilled 56-92 bytes). Bit 4 n + i of keep[r] is
  // element i of score tile n in row block r, at (q_idx, kv_idx) as apply_mods places it.
  static_assert(kScoreTiles * 4 <= 32, "a row block's decisions fit one 32-bit mask");
  static ATTNC_DEVICE_INLINE void draw_dropout(uint32_t (&keep)[kRowBlocks], const Params& p, int b, int h,
                                               int warp_q_pos, int kv_first, int lane) {
    ATTNC_UNROLL
    for (int r = 0; r < kRowBlocks; ++r) {
      uint32_t bits = 0;
      // One draw at a time (not unrolled): unrolled, the compiler interleaves the 32 draws for
      // parallelism and spills hundreds of bytes.
      ATTNC_NO_UNROLL
      for (int j = 0; j < kScoreTiles * 4; ++j) {
        const int n = j / 4, i = j % 4;
        const int q_idx = warp_q_pos + r * 16 + lane / 4 + (i >= 2 ? 8 : 0);
        const int kv_idx = kv_first + n * 8 + 2 * (lane % 4) + (i & 1);
        if (attnc_dev::dropout_keeps(p.dropout_threshold, p.dropout_seed, b, h, q_idx, kv_idx)) bits |= 1u << j;
      }
      keep[r] = bits;
    }
  }

  // The online-softmax update for one key tile, then O += P V. With DROPOUT, P is dropped (by
  // `keep`, from draw_dropout) after the row sum took it whole: the normaliser is the undropped
  // softmax's.
  static ATTNC_DEVICE_INLINE void online_softmax_and_pv(Accumulators& acc, float (&s)[kRowBlocks][kScoreTiles][4],
                                                        const Elem* v_tile, int lane, const Params& p,
                                                        const uint32_t (&keep)[kRowBlocks]) {
    ATTNC_UNROLL
    for (int r = 0; r < kRowBlocks; ++r) {
      ATTNC_UNROLL
      for (int half = 0; half < 2; ++half) {
        float tile_max = attnc_dev::negative_infinity();
        ATTNC_UNROLL
        for (int n = 0; n < kScoreTiles; ++n) {
          tile_max = attnc_dev::max_f32(tile_max, attnc_dev::max_f32(s[r][n][2 * half], s[r][n][2 * half + 1]));
        }
        // The four threads of a quad hold the same row.
        tile_max = attnc_dev::max_f32(tile_max, attnc_dev::shfl_xor(tile_max, 1));
        tile_max = attnc_dev::max_f32(tile_max, attnc_dev::shfl_xor(tile_max, 2));
        const float new_max = attnc_dev::max_f32(acc.row_max[r][half], tile_max);
        // While a row has seen only -inf, subtract 0 instead: exp2(-inf - 0) = 0 for every P and the
        // (zero) accumulators, where exp2(-inf - -inf) would be NaN.
        const float base = new_max == attnc_dev::negative_infinity() ? 0.0f : new_max;
        const float correction = attnc_dev::fast_exp2(acc.row_max[r][half] - base);
        acc.row_max[r][half] = new_max;
        float sum = 0.0f;
        ATTNC_UNROLL
        for (int n = 0; n < kScoreTiles; ++n) {
          ATTNC_UNROLL
          for (int e = 0; e < 2; ++e) {
            const float prob = attnc_dev::fast_exp2(s[r][n][2 * half + e] - base);
            s[r][n][2 * half + e] = prob;
            sum += prob;
            if (DROPOUT) {
              s[r][n][2 * half + e] = (keep[r] >> (4 * n + 2 * half + e) & 1u) != 0 ? prob * p.dropout_keep_scale : 0.0f;
            }
          }
        }
        acc.row_sum[r][half] = acc.row_sum[r][half] * correction + sum;
        ATTNC_UNROLL
        for (int n = 0; n < kOutTiles; ++n) {
          acc.o[r][n][2 * half] *= correction;
          acc.o[r][n][2 * half + 1] *= correction;
        }
      }
    }

    // O += P V. The accumulators of key tiles 2 kk and 2 kk + 1, rounded to 16 bits in pairs, are
    // the A fragment of P's k16 step kk. V is stored [key][dv], the row-major B operand, so
    // ldmatrix.trans gives B fragments: matrix m covers keys +8 (m & 1) and dv +8 (m >> 1).
    const int m = lane / 8;
    ATTNC_UNROLL
    for (int kk = 0; kk < kPvSteps; ++kk) {
      uint32_t p_frag[kRowBlocks][4];
      ATTNC_UNROLL
      for (int r = 0; r < kRowBlocks; ++r) {
        p_frag[r][0] = attnc_dev::pack2<Elem>(s[r][2 * kk][0], s[r][2 * kk][1]);
        p_frag[r][1] = attnc_dev::pack2<Elem>(s[r][2 * kk][2], s[r][2 * kk][3]);
        p_frag[r][2] = attnc_dev::pack2<Elem>(s[r][2 * kk + 1][0], s[r][2 * kk + 1][1]);
        p_frag[r][3] = attnc_dev::pack2<Elem>(s[r][2 * kk + 1][2], s[r][2 * kk + 1][3]);
      }
      ATTNC_UNROLL
      for (int j = 0; j < kOutTiles / 2; ++j) {
        uint32_t vf[4];
        attnc_dev::ldmatrix_x4_trans(vf,
                                     v_tile + (kk * 16 + (m & 1) * 8 + lane % 8) * kVStride + j * 16 + (m >> 1) * 8);
        const uint32_t b0[2] = {vf[0], vf[1]};
        const uint32_t b1[2] = {vf[2], vf[3]};
        ATTNC_UNROLL
        for (int r = 0; r < kRowBlocks; ++r) {
          attnc_dev::mma_m16n8k16<Elem>(acc.o[r][2 * j], p_frag[r], b0);
          attnc_dev::mma_m16n8k16<Elem>(acc.o[r][2 * j + 1], p_frag[r], b1);
        }
      }
    }
  }

  // out = O / l in the input dtype, and the LSE; rows past q_len are not written.
  static ATTNC_DEVICE_INLINE void store_output(Accumulators& acc, const Params& p, int b, int h, int warp_q_first,
                                               int lane) {
    Elem* out = static_cast<Elem*>(p.out) + b * p.out_batch_stride + h * p.out_head_stride;
    ATTNC_UNROLL
    for (int r = 0; r < kRowBlocks; ++r) {
      ATTNC_UNROLL
      for (int half = 0; half < 2; ++half) {
        float sum = acc.row_sum[r][half];
        sum += attnc_dev::shfl_xor(sum, 1);
        sum += attnc_dev::shfl_xor(sum, 2);
        // l is 0 exactly when the row kept no finite score: its output is 0 and its LSE -inf. A
        // kept NaN score makes l NaN (every later P, or the correction, is NaN), and the row NaN.
        const bool empty = sum == 0.0f;
        const float inv_sum = empty ? 0.0f : 1.0f / sum;
        const int q_idx = warp_q_first + r * 16 + lane / 4 + half * 8;
        if (q_idx >= p.q_len) continue;
        Elem* row = out + q_idx * p.out_row_stride + 2 * (lane % 4);
        ATTNC_UNROLL
        for (int n = 0; n < kOutTiles; ++n) {
          const uint32_t packed =
              attnc_dev::pack2<Elem>(acc.o[r][n][2 * half] * inv_sum, acc.o[r][n][2 * half + 1] * inv_sum);
          store_u32(row + n * 8, packed);
        }
        if (p.lse != nullptr && lane % 4 == 0) {
          p.lse[b * p.lse_batch_stride + h * p.lse_head_stride + q_idx * p.lse_row_stride] =
              empty ? attnc_dev::negative_infinity() : (acc.row_max[r][half] + attnc_dev::fast_log2(sum)) * kLn2;
        }
      }
    }
  }

  static ATTNC_DEVICE_INLINE void store_u32(Elem* dst, uint32_t value) {
#if ATTNC_ON_DEVICE
    *reinterpret_cast<uint32_t*>(dst) = value;
#else
    std::memcpy(dst, &value, sizeof value);
#endif
  }
};

}  // namespace attnc_flash

// Defines the extern "C" kernel NAME for one configuration (see the header comment). On the host
// it is an ordinary function, called once per CUDA thread inside a host_emulation::launch.
#define ATTNC_INSTANTIATE_FLASH_FORWARD(NAME, MODS, ELEM, HEAD_DIM, HEAD_DIM_V, BLOCK_M, BLOCK_N, NUM_WARPS) \
  extern "C" ATTNC_KERNEL void ATTNC_LAUNCH_BOUNDS(NUM_WARPS * 32)                                           \
      NAME(const attnc_flash::FlashParams<MODS::Params> params) {                                            \
    attnc_flash::FlashForward<MODS, ELEM, HEAD_DIM, HEAD_DIM_V, BLOCK_M, BLOCK_N, NUM_WARPS>::run(params);   \
  }

// The same with attention dropout (FlashParams' dropout fields).
#define ATTNC_INSTANTIATE_FLASH_FORWARD_DROPOUT(NAME, MODS, ELEM, HEAD_DIM, HEAD_DIM_V, BLOCK_M, BLOCK_N, NUM_WARPS) \
  extern "C" ATTNC_KERNEL void ATTNC_LAUNCH_BOUNDS(NUM_WARPS * 32)                                                   \
      NAME(const attnc_flash::FlashParams<MODS::Params> params) {                                                    \
    attnc_flash::FlashForward<MODS, ELEM, HEAD_DIM, HEAD_DIM_V, BLOCK_M, BLOCK_N, NUM_WARPS, true>::run(params);     \
  }
