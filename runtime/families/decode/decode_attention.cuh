#pragma once
// Split-KV decode attention with fused score / mask mods: few query rows (q_len <= 16), many keys,
// read from a contiguous or a paged KV cache at the speed of memory.
//
//   q (B, H, q_len, D), K/V of batch row b: kv_len(b) keys of its KV source -> out (B, H, q_len, Dv),
//   lse (B, H, q_len); the mods see (b, h, q_idx = q_offset(b) + row, kv_idx) with kv_len(b) keys.
//
// Why a separate family. A decode step reads every cached key and value once and does little math on
// it: the flash template gives each (b, h) its own CTA, so the H / Hkv query heads of a KV head read
// the same K/V again, and with one query row per CTA the grid has too few CTAs to keep the memory
// system busy (11% of the copy rate on an H200 for q (8, 32, 1, 128), kv (8, 8, 32768, 128)). Here
// one CTA computes, for one batch row b, one KV head g and one range of keys (a "split"), every row
// of the GQA group: the rows r = 0 .. G q_len - 1 (G = H / Hkv), row r being query head
// g G + r / q_len at query row r % q_len. Each K/V byte is read once per batch row, and the splits
// give the grid B x Hkv x splits CTAs, enough to fill the GPU at any batch size.
//
// Tensor cores or FMA? Per key, a CTA reads 2 (D + Dv) bytes and does 2 (D + Dv) flops per row,
// so the arithmetic intensity is rows flops/byte: 4 for GQA 4:1 with one query, 128 for GQA 8:1
// with 16 speculative tokens. An H200 streams 4.8 TB/s; its FP32 FMA pipes do ~67 TFLOP/s, 14
// flops/byte, so FMA would be compute bound beyond ~14 rows (and the bf16 -> fp32 conversions and
// the shuffles of a dot product cost as much again), while mma.sync at ~990 TFLOP/s stays memory
// bound up to ~200 rows. So the template uses mma.sync.m16n8k16 for Q K^T and P V whatever the row
// count: rows are padded to 16 per warp with zero queries (never stored), which wastes tensor-core
// throughput that would sit idle anyway, and one code path serves 1 to 16 query rows and any group.
//
// The CTA. WARPS_M x WARPS_N warps: the kRows = 16 WARPS_M rows are cut into m16 blocks (one per
// warp row), and each BLOCK_N = 64-key tile into WARPS_N slices of kWarpKeys keys (one per warp
// column), so each K/V element in shared memory is read by WARPS_M warps only and the S tile of a
// warp is small. The configurations runtime/families/decode/DecodeConfig.h picks: (1, 4) for up to
// 16 rows, (2, 2) for 32, (4, 1) for 64; more rows are cut into chunks of kRows, one per CTA (grid
// y), which then read the K/V of their batch row once per chunk. A warp walks its slice in steps of
// kStepKeys (32 keys, 16 above head dim 128), so its S tile stays small next to the O accumulators.
//   S = Q K^T       mma.sync m16n8k16, Q fragments in registers (up to D = 128; above, reloaded from
//                   shared memory per k16 step, as in flash_attention.cuh)
//   x = log2(e) score_mod(scale S) at (b, h(row), q_offset + q(row), kv_idx), -inf where masked
//   online softmax per warp: m' = max(m, rowmax x), P = 2^(x - m'), l = 2^(m - m') l + rowsum P,
//   O = 2^(m - m') O + P V    (mma.sync, P's accumulators reused as the A operand, as in flash)
// At the end the WARPS_N partial softmax states of a row are merged through shared memory (the max
// of the m, each O and l rescaled by 2^(m_w - m)), and the CTA writes either the final row (one
// split: out = O / l, lse = ln 2 (m + log2 l)) or its split's partial row (O / l and its LSE, fp32)
// into a workspace that the second entry point merges.
//
// Memory pipeline. K and V tiles go through a ring of STAGES shared-memory stages filled by 16-byte
// cp.async copies (cp.async.cg: L2 only, the data is used once): while the warps compute on one
// stage, STAGES - 1 later tiles are in flight. Each thread copies one 16-byte column of every n-th
// row (a warp covers whole consecutive rows: coalesced), in a loop unrolled 4 times so that ptxas
// does not hold every row's address at once. Rows are padded by 16 bytes so ldmatrix and the
// copies of 8 consecutive rows hit distinct bank groups. The tile in each stage and its class are
// recorded by thread 0 in a small ring in shared memory when the copies are issued and read by all
// threads after the barrier that publishes the stage.
//
// Paged KV. With a block table, key j of batch row b lives in page block_table[kv_row(b)][j / P] at
// row j % P (P = 2^page_shift, 16 to 128); each thread looks up the page of the rows it copies (the
// table is tiny and stays in L1), so pages are read in place, never gathered. Without a table, key
// j of batch row b is row j of sequence kv_row(b). Per batch row, `rows` gives the KV row, the
// number of keys and the position of the first query (a batch of sequences of different lengths);
// without it every batch row b reads row b with kv_len keys and the queries start at q_offset.
//
// Tile classification and splits. A key tile's class for the CTA combines Mods::tile_class over
// the query heads of its rows (EMPTY for all: skip; FULL for all: no mask; otherwise PARTIAL) on
// the box [q_offset, q_offset + q_len - 1] x the tile's keys. Before loading anything the CTA finds
// its batch row's first and last non-EMPTY tiles (all threads classify the tiles in parallel), and
// the splits share that live range evenly: a 4096-key sliding window at 32768 keys spends all its
// splits on the last 4096 keys instead of leaving 7 of 8 splits idle. Inside its range a CTA skips
// EMPTY tiles without loading them. The classes are computed redundantly by every thread (as in
// flash_attention.cuh): cheap for masks of positions; a mask reading tensors (documents) walks its
// box once per tile and thread.
//
// Edges. Keys at or past kv_len(b) are zero-filled (no address is formed for them) and their scores
// set to -inf; rows past the group (padding of the last m16 block) have zero queries, their scores
// are -inf and no mod is evaluated for them. A row that keeps nothing has m = -inf, l = 0: the
// softmax subtracts 0 instead of m (no -inf - -inf), the merge gives such a warp or split weight 0,
// and the row's output is 0 and its LSE -inf. A kept NaN score makes l NaN in its warp, which the
// merges carry into the whole row: out and LSE NaN, as docs/semantics.md says.
//
// Requirements on the caller (the launcher checks them): q, K, V, out 16-byte aligned with the head
// dim contiguous and every other stride a multiple of 8 elements; H a multiple of Hkv; block-table
// entries of every page a batch row reads are valid pages; grid (num_splits, Hkv row_chunks, B) of
// kThreads threads with kSharedBytes of dynamic shared memory; with num_splits > 1, the workspace
// partial_out (B, H, q_len, num_splits, Dv) and partial_lse (B, H, q_len, num_splits) fp32, then the
// merge entry point over grid ceil(B H q_len / 4) of 128 threads.
//
// Mods is the traits type of flash_attention.cuh (generated_mods.cuh adapts the generated code).
//
// Entry points. The translation unit NVRTC compiles is
//   #include "decode_attention.cuh"
//   <the generated code: namespace attnc_gen { ... }>
//   #include "generated_mods.cuh"
//   ATTNC_INSTANTIATE_DECODE(attnc_decode_split, attnc_decode_merge, attnc_abi::GeneratedMods,
//                            attnc_dev::bf16_t, 128, 128, 1, 4, 3)
// which defines extern "C" kernels NAME_SPLIT(DecodeParams<Params>) and NAME_MERGE(DecodeParams<Params>)
// for (element type, HEAD_DIM, HEAD_DIM_V, WARPS_M, WARPS_N, STAGES).

#include "device_primitives.cuh"
#include "mod_abi.cuh"

namespace attnc_decode {

using attnc_abi::BoundsReport;
using attnc_abi::ModPoint;
using attnc_abi::TileBox;

enum TileClass : int { kTileEmpty = 0, kTileFull = 1, kTilePartial = 2 };

// One batch row of a call: which KV row it reads (a sequence of a contiguous cache, a row of the
// block table), how many keys it has, and the mods' q_idx of its first query row.
struct DecodeRow {
  int32_t kv_row, kv_len, q_offset;
};

// The argument of both entry points. Strides are in elements; the head dim is contiguous.
template <class ModParams>
struct DecodeParams {
  const void* q;
  void* out;
  float* lse;  // (B, H, q_len) fp32 natural-log LSE, or null
  int64_t q_batch_stride, q_head_stride, q_row_stride;
  int64_t out_batch_stride, out_head_stride, out_row_stride;
  int64_t lse_batch_stride, lse_head_stride, lse_row_stride;
  // Key j of KV row s and KV head g: k + page * k_page_stride + g * k_head_stride + row * k_row_stride,
  // with (page, row) = (block_table[s][j >> page_shift], j & (2^page_shift - 1)) when paged, else (s, j).
  const void* k;
  const void* v;
  int64_t k_page_stride, k_head_stride, k_row_stride;
  int64_t v_page_stride, v_head_stride, v_row_stride;
  const int32_t* block_table;  // paged: page numbers, block_table_stride per KV row; null: contiguous
  int64_t block_table_stride;
  const DecodeRow* rows;  // per batch row, or null: {b, kv_len, q_offset} for every b
  int32_t batch, num_heads, num_kv_heads, q_len;
  int32_t kv_len, q_offset;  // when rows is null
  int32_t page_shift;        // log2 of the page size (paged)
  int32_t num_splits;        // grid x; 1: the split kernel writes out and lse itself
  int32_t row_chunks;        // grid y = num_kv_heads * row_chunks: ceil(G q_len / kRows)
  float scale;               // multiplies q.k before the score mod
  float* partial_out;        // (B, H, q_len, num_splits, Dv) fp32 when num_splits > 1
  float* partial_lse;        // (B, H, q_len, num_splits) fp32 when num_splits > 1
  ModParams mods;
  BoundsReport* bounds;  // where mods record an out-of-range index (kCheckBounds), or null
};

// A loop kept rolled (the steps of a warp's key slice: unrolling them would only grow the code).
// The split kernel's launch bounds say one CTA per SM is enough, so ptxas may use all 255 registers
// rather than trim to 128 for an occupancy the shared memory does not allow anyway.
#if ATTNC_ON_DEVICE
#define ATTNC_DECODE_NO_UNROLL _Pragma("unroll 1")
#define ATTNC_DECODE_UNROLL_4 _Pragma("unroll 4")
#define ATTNC_DECODE_LAUNCH_BOUNDS(threads) __launch_bounds__(threads, 1)
#else
#define ATTNC_DECODE_NO_UNROLL
#define ATTNC_DECODE_UNROLL_4
#define ATTNC_DECODE_LAUNCH_BOUNDS(threads)
#endif

ATTNC_HOST_DEVICE constexpr int max_int(int a, int b) { return a > b ? a : b; }  // compile-time sizes
ATTNC_DEVICE_INLINE int min_int(int a, int b) { return a < b ? a : b; }

// Two packed 16-bit elements to global memory (4-byte aligned).
ATTNC_DEVICE_INLINE void store_u32(void* dst, uint32_t value) {
#if ATTNC_ON_DEVICE
  *static_cast<uint32_t*>(dst) = value;
#else
  std::memcpy(dst, &value, sizeof value);
#endif
}

template <class Mods, class Elem, int HEAD_DIM, int HEAD_DIM_V, int WARPS_M, int WARPS_N, int STAGES>
struct DecodeSplit {
  using Params = DecodeParams<typename Mods::Params>;

  static constexpr int kWarps = WARPS_M * WARPS_N;
  static constexpr int kThreads = kWarps * 32;
  static constexpr int kRows = 16 * WARPS_M;  // rows of the group per CTA
  static constexpr int BLOCK_N = 64;          // keys per pipeline stage
  static constexpr int kWarpKeys = BLOCK_N / WARPS_N;
  // A warp walks its slice in steps of kStepKeys keys, so its S tile stays small next to the O
  // accumulators (which alone take HEAD_DIM_V / 2 registers per thread): 32 keys up to head dim 128,
  // 16 above.
  static constexpr int kStepKeys = kWarpKeys < (HEAD_DIM_V > 128 ? 16 : 32) ? kWarpKeys : (HEAD_DIM_V > 128 ? 16 : 32);
  static constexpr int kScoreTiles = kStepKeys / 8;  // n8 tiles of a warp's S
  static constexpr int kOutTiles = HEAD_DIM_V / 8;   // n8 tiles of O
  static constexpr int kQkSteps = HEAD_DIM / 16;     // k16 steps of Q K^T
  static constexpr int kPvSteps = kStepKeys / 16;    // k16 steps of P V
  static constexpr bool kQInRegisters = HEAD_DIM <= 128;
  static constexpr int kQSteps = kQInRegisters ? kQkSteps : 1;

  static_assert(kWarpKeys % kStepKeys == 0 && kStepKeys % 16 == 0, "a warp's slice is whole steps of k16 blocks");
  static_assert(HEAD_DIM % 16 == 0 && HEAD_DIM_V % 16 == 0, "head dims are walked in k16 steps");
  static_assert(STAGES >= 2 && STAGES <= 4, "the metadata ring and the wait counts assume 2 to 4 stages");
  static_assert(sizeof(Elem) == 2, "16-bit inputs only");

  // Shared memory, in bytes: [header | Q | STAGES x (K tile | V tile)]. The header holds the stage
  // ring's tile numbers and classes and the live-range reduction; after the last tile the stages
  // hold the epilogue's per-warp m, l and O.
  static constexpr int kKStride = HEAD_DIM + 8;  // padded row strides in elements (16 bytes)
  static constexpr int kVStride = HEAD_DIM_V + 8;
  static constexpr int kKTile = BLOCK_N * kKStride;
  static constexpr int kVTile = BLOCK_N * kVStride;
  static constexpr int kStage = kKTile + kVTile;  // elements
  static constexpr int kHeaderBytes = 128;
  static constexpr int kSlotTile = 0;                    // int[STAGES]
  static constexpr int kSlotClass = STAGES;              // int[STAGES]
  static constexpr int kScanFirst = 2 * STAGES;          // int[kWarps]
  static constexpr int kScanLast = 2 * STAGES + kWarps;  // int[kWarps]
  static_assert((2 * STAGES + 2 * kWarps) * 4 <= kHeaderBytes, "header");
  static constexpr int kQOffsetBytes = kHeaderBytes;
  static constexpr int kQBytes = (kRows * kKStride * 2 + 127) / 128 * 128;
  static constexpr int kRingOffsetBytes = kQOffsetBytes + kQBytes;
  static constexpr int kRingBytes = STAGES * kStage * 2;
  static constexpr int kOStride = HEAD_DIM_V + 4;  // fp32 epilogue rows, 16-byte aligned
  static constexpr int kEpilogueBytes = 2 * WARPS_N * kRows * 4 + WARPS_N * kRows * kOStride * 4;
  static_assert(kEpilogueBytes <= kRingBytes, "the epilogue reuses the stages");
  static constexpr int kSharedBytes = kRingOffsetBytes + kRingBytes;

  static constexpr float kLog2e = 1.4426950408889634f;
  static constexpr float kLn2 = 0.6931471805599453f;

  // What a CTA knows about its work.
  struct Work {
    int b, g, chunk, split;
    DecodeRow row;
    int row_first, rows_here;   // the CTA's rows of the group: [row_first, row_first + rows_here)
    int head_first, head_last;  // the query heads of those rows
    const Elem* k;              // K / V of KV head g at page (or row) 0
    const Elem* v;
    const int32_t* table;  // the batch row's block-table row, or null
  };

  // Per-thread state of the warp's 16 rows: thread (g = lane / 4, t = lane % 4) holds rows g (half 0)
  // and g + 8 (half 1), columns 2 t and 2 t + 1 of every n8 tile.
  struct Accumulators {
    float o[kOutTiles][4];
    float row_max[2];  // running max of x (base 2), -inf until a score is kept
    float row_sum[2];  // this thread's share of l
  };

  // The query head, the mods' q_idx and whether the row exists, for the thread's two rows.
  struct RowInfo {
    int head[2], q_idx[2];
    bool valid[2];
  };

  static ATTNC_DEVICE_INLINE void run(const Params& p) {
    const int tid = attnc_dev::thread_idx_x();
    const int warp = tid / 32;
    const int lane = tid % 32;
    const int warp_m = warp % WARPS_M;
    const int warp_n = warp / WARPS_M;
    unsigned char* smem = attnc_dev::dynamic_shared_memory();
    int* header = reinterpret_cast<int*>(smem);
    Elem* q_tile = reinterpret_cast<Elem*>(smem + kQOffsetBytes);
    Elem* ring = reinterpret_cast<Elem*>(smem + kRingOffsetBytes);

    Work w;
    w.split = attnc_dev::block_idx_x();
    w.g = attnc_dev::block_idx_y() / p.row_chunks;
    w.chunk = attnc_dev::block_idx_y() % p.row_chunks;
    w.b = attnc_dev::block_idx_z();
    w.row = p.rows != nullptr ? p.rows[w.b] : DecodeRow{w.b, p.kv_len, p.q_offset};
    const int group = p.num_heads / p.num_kv_heads;
    w.row_first = w.chunk * kRows;
    w.rows_here = min_int(kRows, group * p.q_len - w.row_first);
    w.head_first = w.g * group + w.row_first / p.q_len;
    w.head_last = w.g * group + (w.row_first + w.rows_here - 1) / p.q_len;
    w.k = static_cast<const Elem*>(p.k) + w.g * p.k_head_stride;
    w.v = static_cast<const Elem*>(p.v) + w.g * p.v_head_stride;
    w.table = p.block_table != nullptr ? p.block_table + w.row.kv_row * p.block_table_stride : nullptr;

    // Q first: its copies overlap the classification of the key tiles.
    load_q(q_tile, p, w, tid);
    attnc_dev::cp_async_commit();

    ModPoint point{w.b, w.head_first, 0, 0, p.q_len, w.row.kv_len, p.num_heads, p.num_kv_heads};
    const int kv_tiles = (w.row.kv_len + BLOCK_N - 1) / BLOCK_N;
    int live_first = 0, live_last = kv_tiles - 1;
    if (Mods::kHasMaskMod) find_live_range(p, w, point, kv_tiles, header, tid, lane, warp, live_first, live_last);
    const int64_t live = live_last >= live_first ? live_last - live_first + 1 : 0;
    const int begin = live_first + static_cast<int>(live * w.split / p.num_splits);
    const int end = live_first + static_cast<int>(live * (w.split + 1) / p.num_splits);

    RowInfo rows;
    ATTNC_UNROLL
    for (int half = 0; half < 2; ++half) {
      const int r = warp_m * 16 + lane / 4 + half * 8;
      const int group_row = w.row_first + r;
      rows.valid[half] = r < w.rows_here;
      rows.head[half] = w.g * group + group_row / p.q_len;
      rows.q_idx[half] = w.row.q_offset + group_row % p.q_len;
    }

    Accumulators acc;
    ATTNC_UNROLL
    for (int half = 0; half < 2; ++half) {
      acc.row_max[half] = attnc_dev::negative_infinity();
      acc.row_sum[half] = 0.0f;
    }
    ATTNC_UNROLL
    for (int n = 0; n < kOutTiles; ++n) {
      ATTNC_UNROLL
      for (int i = 0; i < 4; ++i) acc.o[n][i] = 0.0f;
    }

    // Prologue: the first STAGES - 1 live tiles, one group each (committed even when empty, so
    // "all but the newest STAGES - 2 groups" is always Q and the tiles up to the current one).
    int next = begin;  // where the search for the next live tile continues
    ATTNC_UNROLL
    for (int s = 0; s < STAGES - 1; ++s) issue_next(ring, header, s, p, w, point, next, end, tid);

    uint32_t q_frag[kQSteps][4];
    for (int i = 0;; ++i) {
      attnc_dev::cp_async_wait<STAGES - 2>();
      attnc_dev::block_barrier();  // the stage (and at i = 0, Q) landed; stage i - 1 is no longer read
      if (i == 0 && kQInRegisters) load_q_fragments(q_frag, q_tile, warp_m, lane);
      const int slot = i % STAGES;
      const int tile = header[kSlotTile + slot];
      const int tile_class = header[kSlotClass + slot];
      if (tile < 0) break;  // uniform: every thread read the same header after the barrier
      issue_next(ring, header, (i + STAGES - 1) % STAGES, p, w, point, next, end, tid);

      ATTNC_DECODE_NO_UNROLL
      for (int step = 0; step < kWarpKeys; step += kStepKeys) {
        const int kv_first = tile * BLOCK_N + warp_n * kWarpKeys + step;
        if (kv_first >= w.row.kv_len) break;  // the rest of the slice is past the end (warp-uniform)
        const Elem* k_tile = ring + slot * kStage + (warp_n * kWarpKeys + step) * kKStride;
        const Elem* v_tile = ring + slot * kStage + kKTile + (warp_n * kWarpKeys + step) * kVStride;
        float s[kScoreTiles][4];
        compute_scores(s, q_frag, q_tile, k_tile, warp_m, lane);
        if (tile_class == kTilePartial || kv_first + kStepKeys > w.row.kv_len) {
          apply_mods<true>(s, p, point, rows, kv_first, w.row.kv_len, tile_class == kTilePartial, lane);
        } else {
          apply_mods<false>(s, p, point, rows, kv_first, w.row.kv_len, false, lane);
        }
        online_softmax_and_pv(acc, s, v_tile, lane);
      }
    }
    attnc_dev::cp_async_wait<0>();
    attnc_dev::block_barrier();  // every warp is done with the stages: the epilogue reuses them
    store(acc, p, w, reinterpret_cast<float*>(ring), tid, warp_m, warp_n, lane);
  }

  // Issues the copies of the next live tile in [next, end) into stage `slot` (none: an empty group)
  // and records it in the header's ring.
  static ATTNC_DEVICE_INLINE void issue_next(Elem* ring, int* header, int slot, const Params& p, const Work& w,
                                             ModPoint point, int& next, int end, int tid) {
    int tile_class = kTileEmpty;
    int tile = -1;
    for (; next < end; ++next) {
      tile_class = Mods::kHasMaskMod ? classify(p, w, point, next) : kTileFull;
      if (tile_class != kTileEmpty) {
        tile = next++;
        break;
      }
    }
    if (tile >= 0) load_kv_tile(ring + slot * kStage, p, w, tile, tid);
    attnc_dev::cp_async_commit();
    if (tid == 0) {
      header[kSlotTile + slot] = tile;
      header[kSlotClass + slot] = tile_class;
    }
  }

  // The class of key tile `tile` for the CTA's rows: tile_class over their query heads, combined.
  static ATTNC_DEVICE_INLINE int classify(const Params& p, const Work& w, ModPoint point, int tile) {
    const int kv_first = tile * BLOCK_N;
    const TileBox box{w.row.q_offset, w.row.q_offset + p.q_len - 1, kv_first,
                      min_int(kv_first + BLOCK_N, w.row.kv_len) - 1};
    bool any_empty = false, any_full = false;
    for (int h = w.head_first; h <= w.head_last; ++h) {
      point.h = h;
      const int c = Mods::tile_class(box, point, p.mods);
      if (c == kTilePartial) return kTilePartial;
      any_empty = any_empty || c == kTileEmpty;
      any_full = any_full || c == kTileFull;
      if (any_empty && any_full) return kTilePartial;
    }
    return any_full ? kTileFull : kTileEmpty;
  }

  // The first and last non-EMPTY tiles of the batch row for the CTA's rows (first > last when none):
  // the threads classify tiles tid, tid + kThreads, ... and reduce through shuffles and the header.
  static ATTNC_DEVICE_INLINE void find_live_range(const Params& p, const Work& w, const ModPoint& point, int kv_tiles,
                                                  int* header, int tid, int lane, int warp, int& first, int& last) {
    // Tile numbers + 1 as unsigned, so that 0 means "none" for the last and 0xffffffff for the first.
    uint32_t lo = 0xffffffffu, hi = 0;
    for (int tile = tid; tile < kv_tiles; tile += kThreads) {
      if (classify(p, w, point, tile) == kTileEmpty) continue;
      const uint32_t t = static_cast<uint32_t>(tile) + 1;
      lo = lo < t ? lo : t;
      hi = hi > t ? hi : t;
    }
    ATTNC_UNROLL
    for (int offset = 16; offset > 0; offset /= 2) {
      const uint32_t other_lo = attnc_dev::shfl_xor_u32(lo, offset);
      const uint32_t other_hi = attnc_dev::shfl_xor_u32(hi, offset);
      lo = lo < other_lo ? lo : other_lo;
      hi = hi > other_hi ? hi : other_hi;
    }
    if (lane == 0) {
      header[kScanFirst + warp] = static_cast<int>(lo);  // 0xffffffff reads back as -1
      header[kScanLast + warp] = static_cast<int>(hi);
    }
    attnc_dev::block_barrier();
    lo = 0xffffffffu;
    hi = 0;
    for (int i = 0; i < kWarps; ++i) {
      const uint32_t warp_lo = static_cast<uint32_t>(header[kScanFirst + i]);
      const uint32_t warp_hi = static_cast<uint32_t>(header[kScanLast + i]);
      lo = lo < warp_lo ? lo : warp_lo;
      hi = hi > warp_hi ? hi : warp_hi;
    }
    if (hi == 0) {
      first = 0;
      last = -1;
    } else {
      first = static_cast<int>(lo) - 1;
      last = static_cast<int>(hi) - 1;
    }
  }

  // Q rows of the CTA into shared memory (kRows x HEAD_DIM, padded), rows past the group zero-filled.
  static ATTNC_DEVICE_INLINE void load_q(Elem* q_tile, const Params& p, const Work& w, int tid) {
    constexpr int kChunksPerRow = HEAD_DIM / 8;
    constexpr int kChunks = kRows * kChunksPerRow;
    const Elem* q = static_cast<const Elem*>(p.q) + w.b * p.q_batch_stride;
    const int group = p.num_heads / p.num_kv_heads;
    ATTNC_UNROLL
    for (int i = 0; i < (kChunks + kThreads - 1) / kThreads; ++i) {
      const int chunk = tid + i * kThreads;
      if (kChunks % kThreads != 0 && chunk >= kChunks) continue;
      const int r = chunk / kChunksPerRow;
      const int col = chunk % kChunksPerRow * 8;
      const bool valid = r < w.rows_here;
      const int group_row = w.row_first + r;
      const Elem* src = q;  // a valid address for the zero-filled rows
      if (valid) {
        src = q + (w.g * group + group_row / p.q_len) * p.q_head_stride + (group_row % p.q_len) * p.q_row_stride;
      }
      attnc_dev::cp_async_16(q_tile + r * kKStride + col, src + col, valid);
    }
  }

  // Issues the copies of key tile `tile` (K and V) into one stage; keys past kv_len are zero-filled.
  static ATTNC_DEVICE_INLINE void load_kv_tile(Elem* stage, const Params& p, const Work& w, int tile, int tid) {
    const int kv_first = tile * BLOCK_N;
    const int page_mask = (1 << p.page_shift) - 1;
    copy_rows<HEAD_DIM, kKStride>(stage, w.k, p.k_page_stride, p.k_row_stride, p, w, kv_first, page_mask, tid);
    copy_rows<HEAD_DIM_V, kVStride>(stage + kKTile, w.v, p.v_page_stride, p.v_row_stride, p, w, kv_first, page_mask,
                                    tid);
  }

  // Each thread copies one 16-byte column of every (kThreads / chunks-per-row)-th row, so a warp's
  // copies are consecutive chunks of a few rows (coalesced) and each row's page is looked up once
  // per thread (head dims whose rows do not divide the CTA's threads walk the chunks instead). The
  // loops are unrolled by 4 only: fully unrolled, ptxas computes every row's address up front and
  // the wide head dims run out of registers next to the O accumulators.
  template <int COLS, int SMEM_STRIDE>
  static ATTNC_DEVICE_INLINE void copy_rows(Elem* dst, const Elem* base, int64_t page_stride, int64_t row_stride,
                                            const Params& p, const Work& w, int kv_first, int page_mask, int tid) {
    constexpr int kChunksPerRow = COLS / 8;  // 16-byte chunks
    if constexpr (kThreads % kChunksPerRow == 0) {
      const int col = tid % kChunksPerRow * 8;
      ATTNC_DECODE_UNROLL_4
      for (int r = tid / kChunksPerRow; r < BLOCK_N; r += kThreads / kChunksPerRow) {
        copy_chunk<SMEM_STRIDE>(dst, base, page_stride, row_stride, p, w, kv_first, page_mask, r, col);
      }
    } else {
      ATTNC_DECODE_UNROLL_4
      for (int chunk = tid; chunk < BLOCK_N * kChunksPerRow; chunk += kThreads) {
        copy_chunk<SMEM_STRIDE>(dst, base, page_stride, row_stride, p, w, kv_first, page_mask, chunk / kChunksPerRow,
                                chunk % kChunksPerRow * 8);
      }
    }
  }

  // The 16 bytes at column `col` of tile row r (key kv_first + r), zero-filled past kv_len.
  template <int SMEM_STRIDE>
  static ATTNC_DEVICE_INLINE void copy_chunk(Elem* dst, const Elem* base, int64_t page_stride, int64_t row_stride,
                                             const Params& p, const Work& w, int kv_first, int page_mask, int r,
                                             int col) {
    const int key = kv_first + r;
    const bool valid = key < w.row.kv_len;
    const Elem* src = base;  // no page is looked up for keys past the end
    if (valid) {
      if (w.table != nullptr) {
        src = base + static_cast<int64_t>(w.table[key >> p.page_shift]) * page_stride + (key & page_mask) * row_stride;
      } else {
        src = base + static_cast<int64_t>(w.row.kv_row) * page_stride + static_cast<int64_t>(key) * row_stride;
      }
    }
    attnc_dev::cp_async_16(dst + r * SMEM_STRIDE + col, src + col, valid);
  }

  // Q's A fragment of the warp's row block at k16 step kk (the ldmatrix.x4 layout of flash_attention.cuh).
  static ATTNC_DEVICE_INLINE void load_q_fragment(uint32_t (&a)[4], const Elem* q_tile, int warp_m, int lane, int kk) {
    const int m = lane / 8;
    const int row = warp_m * 16 + (m & 1) * 8 + lane % 8;
    attnc_dev::ldmatrix_x4(a, q_tile + row * kKStride + kk * 16 + (m >> 1) * 8);
  }

  static ATTNC_DEVICE_INLINE void load_q_fragments(uint32_t (&q_frag)[kQSteps][4], const Elem* q_tile, int warp_m,
                                                   int lane) {
    ATTNC_UNROLL
    for (int kk = 0; kk < kQSteps; ++kk) load_q_fragment(q_frag[kk], q_tile, warp_m, lane, kk);
  }

  // S = Q K^T for the warp's 16 rows and kStepKeys keys (K stored [key][d]: the column-major B operand).
  static ATTNC_DEVICE_INLINE void compute_scores(float (&s)[kScoreTiles][4], uint32_t (&q_frag)[kQSteps][4],
                                                 const Elem* q_tile, const Elem* k_tile, int warp_m, int lane) {
    ATTNC_UNROLL
    for (int n = 0; n < kScoreTiles; ++n) {
      ATTNC_UNROLL
      for (int i = 0; i < 4; ++i) s[n][i] = 0.0f;
    }
    const int m = lane / 8;
    ATTNC_UNROLL
    for (int kk = 0; kk < kQkSteps; ++kk) {
      if (!kQInRegisters) load_q_fragment(q_frag[0], q_tile, warp_m, lane, kk);
      const int q_step = kQInRegisters ? kk : 0;
      ATTNC_UNROLL
      for (int j = 0; j < kScoreTiles / 2; ++j) {
        uint32_t kf[4];
        attnc_dev::ldmatrix_x4(kf, k_tile + (j * 16 + (m >> 1) * 8 + lane % 8) * kKStride + kk * 16 + (m & 1) * 8);
        const uint32_t b0[2] = {kf[0], kf[1]};
        const uint32_t b1[2] = {kf[2], kf[3]};
        attnc_dev::mma_m16n8k16<Elem>(s[2 * j], q_frag[q_step], b0);
        attnc_dev::mma_m16n8k16<Elem>(s[2 * j + 1], q_frag[q_step], b1);
      }
    }
  }

  // Raw dot products -> base-2 logits: scale, score mod, mask, -inf for padding rows and for keys
  // past kv_len (CHECK_KEYS: only the last tile of a batch row has such keys).
  template <bool CHECK_KEYS>
  static ATTNC_DEVICE_INLINE void apply_mods(float (&s)[kScoreTiles][4], const Params& p, ModPoint point,
                                             const RowInfo& rows, int kv_first, int kv_len, bool evaluate_mask,
                                             int lane) {
    const float scale_log2 = p.scale * kLog2e;
    const float minus_inf = attnc_dev::negative_infinity();
    ATTNC_UNROLL
    for (int n = 0; n < kScoreTiles; ++n) {
      ATTNC_UNROLL
      for (int i = 0; i < 4; ++i) {
        const int half = i >= 2 ? 1 : 0;
        if (!rows.valid[half]) {
          s[n][i] = minus_inf;
          continue;
        }
        point.h = rows.head[half];
        point.q_idx = rows.q_idx[half];
        point.kv_idx = kv_first + n * 8 + 2 * (lane % 4) + (i & 1);
        if (CHECK_KEYS && point.kv_idx >= kv_len) {
          s[n][i] = minus_inf;
          continue;
        }
        if (Mods::kHasMaskMod && evaluate_mask && !Mods::mask_mod(point, p.mods, p.bounds)) {
          s[n][i] = minus_inf;
          continue;
        }
        if (Mods::kHasScoreMod) {
          s[n][i] = Mods::score_mod(s[n][i] * p.scale, point, p.mods, p.bounds) * kLog2e;
        } else {
          s[n][i] *= scale_log2;
        }
      }
    }
  }

  // The online-softmax update for the warp's slice of one key tile, then O += P V.
  static ATTNC_DEVICE_INLINE void online_softmax_and_pv(Accumulators& acc, float (&s)[kScoreTiles][4],
                                                        const Elem* v_tile, int lane) {
    ATTNC_UNROLL
    for (int half = 0; half < 2; ++half) {
      float tile_max = attnc_dev::negative_infinity();
      ATTNC_UNROLL
      for (int n = 0; n < kScoreTiles; ++n) {
        tile_max = attnc_dev::max_f32(tile_max, attnc_dev::max_f32(s[n][2 * half], s[n][2 * half + 1]));
      }
      tile_max = attnc_dev::max_f32(tile_max, attnc_dev::shfl_xor(tile_max, 1));  // the quad holds one row
      tile_max = attnc_dev::max_f32(tile_max, attnc_dev::shfl_xor(tile_max, 2));
      const float new_max = attnc_dev::max_f32(acc.row_max[half], tile_max);
      // While a row has seen only -inf, subtract 0: exp2(-inf - 0) = 0, where -inf - -inf is NaN.
      const float base = new_max == attnc_dev::negative_infinity() ? 0.0f : new_max;
      const float correction = attnc_dev::fast_exp2(acc.row_max[half] - base);
      acc.row_max[half] = new_max;
      float sum = 0.0f;
      ATTNC_UNROLL
      for (int n = 0; n < kScoreTiles; ++n) {
        ATTNC_UNROLL
        for (int e = 0; e < 2; ++e) {
          const float prob = attnc_dev::fast_exp2(s[n][2 * half + e] - base);
          s[n][2 * half + e] = prob;
          sum += prob;
        }
      }
      acc.row_sum[half] = acc.row_sum[half] * correction + sum;
      ATTNC_UNROLL
      for (int n = 0; n < kOutTiles; ++n) {
        acc.o[n][2 * half] *= correction;
        acc.o[n][2 * half + 1] *= correction;
      }
    }
    // O += P V: V stored [key][dv] (the row-major B operand), fragments by ldmatrix.trans.
    const int m = lane / 8;
    ATTNC_UNROLL
    for (int kk = 0; kk < kPvSteps; ++kk) {
      uint32_t p_frag[4];
      p_frag[0] = attnc_dev::pack2<Elem>(s[2 * kk][0], s[2 * kk][1]);
      p_frag[1] = attnc_dev::pack2<Elem>(s[2 * kk][2], s[2 * kk][3]);
      p_frag[2] = attnc_dev::pack2<Elem>(s[2 * kk + 1][0], s[2 * kk + 1][1]);
      p_frag[3] = attnc_dev::pack2<Elem>(s[2 * kk + 1][2], s[2 * kk + 1][3]);
      ATTNC_UNROLL
      for (int j = 0; j < kOutTiles / 2; ++j) {
        uint32_t vf[4];
        attnc_dev::ldmatrix_x4_trans(vf,
                                     v_tile + (kk * 16 + (m & 1) * 8 + lane % 8) * kVStride + j * 16 + (m >> 1) * 8);
        const uint32_t b0[2] = {vf[0], vf[1]};
        const uint32_t b1[2] = {vf[2], vf[3]};
        attnc_dev::mma_m16n8k16<Elem>(acc.o[2 * j], p_frag, b0);
        attnc_dev::mma_m16n8k16<Elem>(acc.o[2 * j + 1], p_frag, b1);
      }
    }
  }

  // The weight 2^(m_w - m) of a warp's softmax state in a row whose merged max is m: 0 for a warp
  // that kept nothing (m_w = -inf, also when m is -inf).
  static ATTNC_DEVICE_INLINE float rescale(float warp_max, float max) {
    return warp_max == attnc_dev::negative_infinity() ? 0.0f : attnc_dev::fast_exp2(warp_max - max);
  }

  // Merges the WARPS_N softmax states of each row through shared memory and writes the rows: the
  // final out and lse with one split, the split's normalised partial row and LSE otherwise.
  static ATTNC_DEVICE_INLINE void store(Accumulators& acc, const Params& p, const Work& w, float* scratch, int tid,
                                        int warp_m, int warp_n, int lane) {
    float* max_of = scratch;                      // [WARPS_N][kRows]
    float* sum_of = scratch + WARPS_N * kRows;    // [WARPS_N][kRows]
    float* o_of = scratch + 2 * WARPS_N * kRows;  // [WARPS_N][kRows][kOStride]
    ATTNC_UNROLL
    for (int half = 0; half < 2; ++half) {
      float sum = acc.row_sum[half];
      sum += attnc_dev::shfl_xor(sum, 1);
      sum += attnc_dev::shfl_xor(sum, 2);
      if (lane % 4 == 0) {
        const int r = warp_m * 16 + lane / 4 + half * 8;
        max_of[warp_n * kRows + r] = acc.row_max[half];
        sum_of[warp_n * kRows + r] = sum;
      }
    }
    attnc_dev::block_barrier();
    ATTNC_UNROLL
    for (int half = 0; half < 2; ++half) {
      const int r = warp_m * 16 + lane / 4 + half * 8;
      float max = attnc_dev::negative_infinity();
      ATTNC_UNROLL
      for (int n = 0; n < WARPS_N; ++n) max = attnc_dev::max_f32(max, max_of[n * kRows + r]);
      const float weight = rescale(acc.row_max[half], max);
      float* o_row = o_of + (warp_n * kRows + r) * kOStride + 2 * (lane % 4);
      ATTNC_UNROLL
      for (int n = 0; n < kOutTiles; ++n) {
        o_row[n * 8] = acc.o[n][2 * half] * weight;
        o_row[n * 8 + 1] = acc.o[n][2 * half + 1] * weight;
      }
    }
    attnc_dev::block_barrier();

    // Four consecutive output columns per thread and step.
    constexpr int kQuads = HEAD_DIM_V / 4;
    const int group = p.num_heads / p.num_kv_heads;
    for (int e = tid; e < kRows * kQuads; e += kThreads) {
      const int r = e / kQuads;
      const int col = e % kQuads * 4;
      if (r >= w.rows_here) continue;
      float max = attnc_dev::negative_infinity();
      ATTNC_UNROLL
      for (int n = 0; n < WARPS_N; ++n) max = attnc_dev::max_f32(max, max_of[n * kRows + r]);
      float sum = 0.0f;
      float o[4] = {0.0f, 0.0f, 0.0f, 0.0f};
      ATTNC_UNROLL
      for (int n = 0; n < WARPS_N; ++n) {
        sum += sum_of[n * kRows + r] * rescale(max_of[n * kRows + r], max);
        const float* o_row = o_of + (n * kRows + r) * kOStride + col;
        ATTNC_UNROLL
        for (int c = 0; c < 4; ++c) o[c] += o_row[c];
      }
      // l is 0 exactly when the row kept no finite score: out 0 and LSE -inf. NaN stays NaN.
      const bool empty = sum == 0.0f;
      const float inv_sum = empty ? 0.0f : 1.0f / sum;
      const float lse = empty ? attnc_dev::negative_infinity() : (max + attnc_dev::fast_log2(sum)) * kLn2;
      const int group_row = w.row_first + r;
      const int h = w.g * group + group_row / p.q_len;
      const int q_row = group_row % p.q_len;
      if (p.num_splits == 1) {
        Elem* out = static_cast<Elem*>(p.out) + w.b * p.out_batch_stride + h * p.out_head_stride +
                    q_row * p.out_row_stride + col;
        store_u32(out, attnc_dev::pack2<Elem>(o[0] * inv_sum, o[1] * inv_sum));
        store_u32(out + 2, attnc_dev::pack2<Elem>(o[2] * inv_sum, o[3] * inv_sum));
        if (col == 0 && p.lse != nullptr) {
          p.lse[w.b * p.lse_batch_stride + h * p.lse_head_stride + q_row * p.lse_row_stride] = lse;
        }
      } else {
        const int64_t partial_row =
            ((static_cast<int64_t>(w.b) * p.num_heads + h) * p.q_len + q_row) * p.num_splits + w.split;
        attnc_dev::U32x4 bits;
        ATTNC_UNROLL
        for (int c = 0; c < 4; ++c) bits.w[c] = attnc_abi::float_bits(o[c] * inv_sum);
        attnc_dev::store_global_16(p.partial_out + partial_row * HEAD_DIM_V + col, bits);
        if (col == 0) p.partial_lse[partial_row] = lse;
      }
    }
  }
};

// The second pass: merges the num_splits partial rows of each (b, h, q_row) by their LSE,
//   lse = ln sum_s exp(lse_s),  out = sum_s exp(lse_s - lse) O_s,
// one warp per row, four rows per 128-thread CTA. Splits that kept nothing (lse_s = -inf) weigh 0;
// a row whose splits all kept nothing gives 0 and -inf; a NaN partial LSE makes the row NaN.
template <class Mods, class Elem, int HEAD_DIM_V>
struct DecodeMerge {
  using Params = DecodeParams<typename Mods::Params>;
  static constexpr int kThreads = 128;
  static constexpr int kRowsPerCta = kThreads / 32;
  static constexpr float kLog2e = 1.4426950408889634f;

  static ATTNC_DEVICE_INLINE void run(const Params& p) {
    const int tid = attnc_dev::thread_idx_x();
    const int lane = tid % 32;
    const int64_t row = static_cast<int64_t>(attnc_dev::block_idx_x()) * kRowsPerCta + tid / 32;
    if (row >= static_cast<int64_t>(p.batch) * p.num_heads * p.q_len) return;  // the whole warp
    const int q_row = static_cast<int>(row % p.q_len);
    const int h = static_cast<int>(row / p.q_len % p.num_heads);
    const int b = static_cast<int>(row / p.q_len / p.num_heads);
    const float* lse_of = p.partial_lse + row * p.num_splits;
    const float minus_inf = attnc_dev::negative_infinity();

    float max = minus_inf;
    uint32_t nan = 0;
    for (int s = lane; s < p.num_splits; s += 32) {
      const float value = lse_of[s];
      nan |= value != value ? 1u : 0u;
      max = attnc_dev::max_f32(max, value);
    }
    ATTNC_UNROLL
    for (int offset = 16; offset > 0; offset /= 2) {
      max = attnc_dev::max_f32(max, attnc_dev::shfl_xor(max, offset));
      nan |= attnc_dev::shfl_xor_u32(nan, offset);
    }
    float sum = 0.0f;
    if (max != minus_inf) {
      for (int s = lane; s < p.num_splits; s += 32) {
        const float value = lse_of[s];
        sum += value == minus_inf ? 0.0f : attnc_dev::fast_exp2((value - max) * kLog2e);
      }
    }
    ATTNC_UNROLL
    for (int offset = 16; offset > 0; offset /= 2) sum += attnc_dev::shfl_xor(sum, offset);
    const bool empty = sum == 0.0f && nan == 0;
    const float quiet_nan = attnc_dev::float_from_bits(0x7fc00000u);
    const float lse = nan != 0 ? quiet_nan : empty ? minus_inf : max + attnc_dev::fast_log2(sum) / kLog2e;

    Elem* out = static_cast<Elem*>(p.out) + b * p.out_batch_stride + h * p.out_head_stride + q_row * p.out_row_stride;
    for (int col = lane * 4; col < HEAD_DIM_V; col += 128) {
      float o[4] = {0.0f, 0.0f, 0.0f, 0.0f};
      if (nan != 0) {
        ATTNC_UNROLL
        for (int c = 0; c < 4; ++c) o[c] = quiet_nan;
      } else if (!empty) {
        for (int s = 0; s < p.num_splits; ++s) {
          const float value = lse_of[s];
          if (value == minus_inf) continue;
          const float weight = attnc_dev::fast_exp2((value - lse) * kLog2e);
          const attnc_dev::U32x4 bits =
              attnc_dev::load_global_16(p.partial_out + (row * p.num_splits + s) * HEAD_DIM_V + col);
          ATTNC_UNROLL
          for (int c = 0; c < 4; ++c) o[c] += weight * attnc_dev::float_from_bits(bits.w[c]);
        }
      }
      store_u32(out + col, attnc_dev::pack2<Elem>(o[0], o[1]));
      store_u32(out + col + 2, attnc_dev::pack2<Elem>(o[2], o[3]));
    }
    if (lane == 0 && p.lse != nullptr)
      p.lse[b * p.lse_batch_stride + h * p.lse_head_stride + q_row * p.lse_row_stride] = lse;
  }
};

}  // namespace attnc_decode

// Defines the two extern "C" kernels for one configuration (see the header comment). On the host
// they are ordinary functions, called once per CUDA thread inside a host_emulation::launch.
#define ATTNC_INSTANTIATE_DECODE(SPLIT, MERGE, MODS, ELEM, HEAD_DIM, HEAD_DIM_V, WARPS_M, WARPS_N, STAGES)             \
  extern "C" ATTNC_KERNEL void ATTNC_DECODE_LAUNCH_BOUNDS((WARPS_M) * (WARPS_N)*32)                                    \
      SPLIT(const attnc_decode::DecodeParams<MODS::Params> params) {                                                   \
    attnc_decode::DecodeSplit<MODS, ELEM, HEAD_DIM, HEAD_DIM_V, WARPS_M, WARPS_N, STAGES>::run(params);                \
  }                                                                                                                    \
  extern "C" ATTNC_KERNEL void ATTNC_LAUNCH_BOUNDS(128) MERGE(const attnc_decode::DecodeParams<MODS::Params> params) { \
    attnc_decode::DecodeMerge<MODS, ELEM, HEAD_DIM_V>::run(params);                                                    \
  }
