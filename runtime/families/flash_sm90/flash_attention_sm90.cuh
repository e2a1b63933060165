#pragma once
// Forward flash attention with fused score / mask mods for Hopper (sm_90a): warp-specialised, with
// TMA loads, wgmma and a tile map, in the FlashAttention-3 manner.
//
//   q (B, H, S, D), k (B, Hkv, Skv, D), v (B, Hkv, Skv, Dv) -> out (B, H, S, Dv), lse (B, H, S)
//   s = scale * q.k;  s' = score_mod(s, point);  keep = mask_mod(point);  out = softmax(s' | keep) V
//   with the query head h reading key/value head h / (H / Hkv) (GQA / MQA).
//
// Warp roles. One CTA of three warpgroups (384 threads) computes BLOCK_M = 128 query rows of one
// (b, h). Warpgroup 0 is the producer: after `setmaxnreg.dec` to 24 registers, one thread walks the
// CTA's list of live key tiles and issues TMA loads of Q and of each K and V tile into shared
// memory. Warpgroups 1 and 2 are consumers (`setmaxnreg.inc` to 240 registers; 24 * 128 +
// 240 * 256 <= 64 K registers): each owns 64 query rows and computes, per key tile of BLOCK_N keys,
//   S = Q K^T                  wgmma m64nBLOCK_Nk16, Q and K from shared memory (both K-major)
//   x = log2(e) * score_mod(scale S), masked  on the accumulators, at (q_offset + row, column)
//   m' = max(m, rowmax x);  P = 2^(x - m');  l = 2^(m - m') l + rowsum P;  O = 2^(m - m') O + P V
//   O += P V                   wgmma m64nDvk16, P from registers (the S accumulators packed in
//                              pairs are P's A fragment), V from shared memory (N-major)
// and finally writes O / l through shared memory with a TMA store, and lse = ln(2) (m + log2 l).
// Base 2 lets one ex2 replace exp; without a score mod, log2(e) is folded into the scale.
//
// Pipeline. K and V tiles go through rings of STAGES shared-memory buffers, each guarded by a
// "full" mbarrier (the producer's expect_tx plus the TMA bytes) and an "empty" one (one arrival
// per consumer warpgroup, after the wgmma that read the buffer has retired). The producer loads
// K_0 and a V tile of zeros, then K_i and V_(i-1) for each next tile, then the last V: the order
// the consumers use them (the zero tile lets tile 0 run the loop body of every other tile).
// Each consumer overlaps within itself (intra-warpgroup): it issues S_i = Q K_i^T and then
// O += P_(i-1) V_(i-1), waits for S_i only, runs the mods and the softmax of tile i while P V is
// still on the tensor cores, then waits for P V, rescales O and packs P_i. And the two consumers
// take turns (ping-pong): named barriers 1 and 2 make each warpgroup issue its pair of wgmmas only
// after the other issued its own, so one warpgroup's softmax runs while the other's matrix
// products do. Consumer 1 starts by arriving on its own barrier; consumer 2 skips its last
// arrival, so no named barrier is left with arrivals when the CTA ends.
//
// Tile map. Which key tiles a query tile visits comes from a tile map built before the launch
// (tile_map_abi.cuh; runtime/tilemap/): EMPTY tiles are never listed, so they cost no loads and no
// math; FULL tiles run without evaluating the mask; only PARTIAL tiles call mask_mod per element.
// Without a mask mod there is no map and every key tile is FULL.
//
// Shared memory (each region 1024-byte aligned; the 128-byte swizzle of hopper_primitives.cuh):
//   Q / O   two 64-row halves, one per consumer, each [D / 64][64 rows][64 columns] for Q, reused
//           as [Dv / 64][64][64] for the consumer's bf16 / fp16 output once its last wgmma retired
//   K       STAGES x [D / 64][BLOCK_N rows][64 columns]
//   V       STAGES x [Dv / 64][BLOCK_N rows][64 columns]
//   barriers, and 1 KiB of slack to align the dynamic shared memory's start to 1024.
//
// Edges. TMA zero-fills rows past q_len / kv_len and clips the output store at q_len. Tiles that
// reach past kv_len, and every tile of a CTA that reaches past q_len, run the checked path: scores
// of keys and rows out of range become -inf before the mods run, so mods are only evaluated at
// in-range points. A row whose scores are all -inf keeps m = -inf: the softmax then subtracts 0
// instead of m (no -inf - -inf NaN), every P is 0, and the row's output is 0 and its LSE -inf. A
// kept NaN score makes its row NaN.
//
// Requirements on the caller (runtime/families/flash_sm90/FlashSm90Cuda.cpp checks them): the
// tensor maps describe q, k, v and out as (d, row, head, batch) with boxes of (64, 64) rows for Q
// and out and (64, BLOCK_N) rows for K and V and the 128-byte swizzle; the tile map, when given, was
// built for this call's sizes, q_offset, BLOCK_M = 128 and BLOCK_N; H a multiple of Hkv; grid
// (ceil(S / 128), H, B), 384 threads, kSharedBytes of dynamic shared memory.
//
// Mods is the traits type of flash_attention.cuh (mod_abi.cuh, generated_mods.cuh): Params,
// kHasScoreMod, kHasMaskMod, kCheckBounds, score_mod and mask_mod (tile_class is not used: the tile
// map carries the classification).
//
// Entry point. The translation unit NVRTC compiles is
//   #include "flash_attention_sm90.cuh"
//   <the generated code>  #include "generated_mods.cuh"
//   ATTNC_INSTANTIATE_FLASH_SM90_FORWARD(attnc_flash_sm90_forward, attnc_abi::GeneratedMods,
//                                        attnc_dev::bf16_t, 128, 128, 128, 2)
// for (element type, HEAD_DIM, HEAD_DIM_V, BLOCK_N, STAGES); runtime/families/flash_sm90/
// FlashSm90Source.h chooses the last two per head dim.

#include "hopper_primitives.cuh"
#include "mod_abi.cuh"
#include "tile_map_abi.cuh"

namespace attnc_flash_sm90 {

using attnc_abi::BoundsReport;
using attnc_abi::ModPoint;
using attnc_abi::TileMapView;
using attnc_dev::TensorMap;

// The kernel's only argument (passed as a __grid_constant__, so the tensor maps can be addressed).
template <class ModParams>
struct FlashSm90Params {
  TensorMap q_map, k_map, v_map, out_map;  // 4-D (d, row, head, batch), 128-byte swizzle
  float* lse;                              // (B, H, S) fp32 natural-log LSE, or null
  int64_t lse_batch_stride, lse_head_stride, lse_row_stride;
  TileMapView tile_map;  // counts null without a mask mod
  int32_t batch, num_heads, num_kv_heads, q_len, kv_len;
  int32_t q_offset;  // the mods see q_idx = q_offset + row
  float scale;       // multiplies q.k before the score mod
  ModParams mods;
  BoundsReport* bounds;  // where mods record an out-of-range index (kCheckBounds), or null
};

ATTNC_HOST_DEVICE constexpr int max_int(int a, int b) { return a > b ? a : b; }

template <class Mods, class Elem, int HEAD_DIM, int HEAD_DIM_V, int BLOCK_N, int STAGES>
struct FlashForwardSm90 {
  using Params = FlashSm90Params<typename Mods::Params>;

  static constexpr int BLOCK_M = 128;
  static constexpr int kThreads = 384;
  static constexpr int kWgRows = 64;
  static constexpr int kProducerRegisters = 24;
  static constexpr int kConsumerRegisters = 240;
  static constexpr int kScores = BLOCK_N / 2;   // S accumulators per thread
  static constexpr int kOuts = HEAD_DIM_V / 2;  // O accumulators per thread
  static constexpr int kQkSteps = HEAD_DIM / 16;
  static constexpr int kPvSteps = BLOCK_N / 16;

  static_assert(HEAD_DIM % 64 == 0 && HEAD_DIM_V % 64 == 0 && HEAD_DIM <= 256 && HEAD_DIM_V <= 256,
                "head dims are whole 64-column sub-tiles (128-byte swizzled rows), at most 256");
  static_assert(BLOCK_N % 16 == 0 && BLOCK_N >= 16 && BLOCK_N <= 256, "key tiles are walked in k16 steps of P V");
  static_assert(STAGES >= 2, "the K / V rings need two stages to overlap loads with math");
  static_assert(sizeof(Elem) == 2, "16-bit inputs only");

  // Shared memory, in bytes from the 1024-aligned base.
  static constexpr int kSubTile = 64 * 128;  // one 64 x 64 sub-tile of Q or O
  static constexpr int kQoHalf = max_int(HEAD_DIM, HEAD_DIM_V) / 64 * kSubTile;
  static constexpr int kKStage = HEAD_DIM / 64 * BLOCK_N * 128;
  static constexpr int kVStage = HEAD_DIM_V / 64 * BLOCK_N * 128;
  static constexpr int kQoOffset = 0;
  static constexpr int kKOffset = 2 * kQoHalf;
  static constexpr int kVOffset = kKOffset + STAGES * kKStage;
  static constexpr int kBarrierOffset = kVOffset + STAGES * kVStage;
  static constexpr int kBarriers = 1 + 4 * STAGES;  // q_full, k_full, v_full, k_empty, v_empty
  static constexpr int kSharedBytes = 1024 + kBarrierOffset + 8 * kBarriers;

  static constexpr float kLog2e = 1.4426950408889634f;
  static constexpr float kLn2 = 0.6931471805599453f;

  struct Shared {
    unsigned char* base;  // 1024-aligned
    ATTNC_DEVICE_INLINE unsigned char* qo(int consumer) const { return base + kQoOffset + consumer * kQoHalf; }
    ATTNC_DEVICE_INLINE unsigned char* k(int stage) const { return base + kKOffset + stage * kKStage; }
    ATTNC_DEVICE_INLINE unsigned char* v(int stage) const { return base + kVOffset + stage * kVStage; }
    ATTNC_DEVICE_INLINE uint64_t* barrier(int i) const {
      return reinterpret_cast<uint64_t*>(base + kBarrierOffset) + i;
    }
    ATTNC_DEVICE_INLINE uint64_t* q_full() const { return barrier(0); }
    ATTNC_DEVICE_INLINE uint64_t* k_full(int s) const { return barrier(1 + s); }
    ATTNC_DEVICE_INLINE uint64_t* v_full(int s) const { return barrier(1 + STAGES + s); }
    ATTNC_DEVICE_INLINE uint64_t* k_empty(int s) const { return barrier(1 + 2 * STAGES + s); }
    ATTNC_DEVICE_INLINE uint64_t* v_empty(int s) const { return barrier(1 + 3 * STAGES + s); }
  };

  // The live key tiles of the CTA's query tile: from the tile map, or all of them, FULL.
  struct TileList {
    const int32_t* entries;  // null: tile i is key tile i, FULL
    int count;
    ATTNC_DEVICE_INLINE int32_t entry(int i) const {
      return entries != nullptr ? entries[i] : attnc_abi::tile_map_entry(i, false);
    }
  };

  // Where the CTA works.
  struct Work {
    int b, h, kv_head, q_first;
  };

  static ATTNC_DEVICE_INLINE void run(const Params& p) {
    const int tid = attnc_dev::thread_idx_x();
    // Longest query tiles first: under a causal mask the last rows have the most key tiles.
    const int q_tile = attnc_dev::grid_dim_x() - 1 - attnc_dev::block_idx_x();
    Work work;
    work.h = attnc_dev::block_idx_y();
    work.b = attnc_dev::block_idx_z();
    work.kv_head = work.h / (p.num_heads / p.num_kv_heads);
    work.q_first = q_tile * BLOCK_M;
    if (work.q_first >= p.q_len) return;  // the whole CTA

    Shared smem;
    {
      unsigned char* raw = attnc_dev::dynamic_shared_memory();
      const uint32_t misalignment = attnc_dev::smem_address(raw) % 1024;
      smem.base = raw + (misalignment == 0 ? 0 : 1024 - misalignment);
    }
    TileList list;
    const TileMapView& map = p.tile_map;
    if (map.counts != nullptr) {
      const int row = work.b * map.batch_stride + work.h * map.head_stride + q_tile;
      list.count = map.counts[row];
      list.entries = map.entries + static_cast<int64_t>(row) * map.capacity;
    } else {
      list.count = (p.kv_len + BLOCK_N - 1) / BLOCK_N;
      list.entries = nullptr;
    }

    if (tid == 0) {
      attnc_dev::mbarrier_init(smem.q_full(), 1);
      for (int s = 0; s < STAGES; ++s) {
        attnc_dev::mbarrier_init(smem.k_full(s), 1);
        attnc_dev::mbarrier_init(smem.v_full(s), 1);
        attnc_dev::mbarrier_init(smem.k_empty(s), 2);
        attnc_dev::mbarrier_init(smem.v_empty(s), 2);
      }
      attnc_dev::mbarrier_init_fence();
    }
    attnc_dev::block_barrier();

    // Through a shuffle, so the compiler sees the role as uniform across each warp: ptxas serialises
    // wgmmas it finds on divergent paths.
    const int warpgroup = static_cast<int>(attnc_dev::shfl_idx(static_cast<uint32_t>(tid / 128), 0));
    if (warpgroup == 0) {
      attnc_dev::setmaxnreg_dec<kProducerRegisters>();
      if (tid == 0) produce(p, smem, work, list);
    } else {
      attnc_dev::setmaxnreg_inc<kConsumerRegisters>();
      consume(p, smem, work, list, warpgroup - 1, tid % 128);
    }
  }

  // ---- The producer (one thread) ----

  static ATTNC_DEVICE_INLINE void produce(const Params& p, const Shared& smem, const Work& work, const TileList& list) {
    if (list.count == 0) return;  // the consumers then touch no buffer
    attnc_dev::prefetch_tensor_map(&p.k_map);
    attnc_dev::prefetch_tensor_map(&p.v_map);
    attnc_dev::mbarrier_arrive_expect_tx(smem.q_full(), BLOCK_M * HEAD_DIM * 2);
    for (int consumer = 0; consumer < 2; ++consumer) {
      for (int sub = 0; sub < HEAD_DIM / 64; ++sub) {
        attnc_dev::tma_load_4d(smem.qo(consumer) + sub * kSubTile, &p.q_map, sub * 64,
                               work.q_first + consumer * kWgRows, work.h, work.b, smem.q_full());
      }
    }
    // K_0, then K_i with V item i (tile i - 1; item 0 is zeros), then the last V item: the order the
    // consumers use them.
    for (int i = 0; i < list.count; ++i) {
      load_k(p, smem, work, list, i);
      load_v(p, smem, work, list, i);
    }
    load_v(p, smem, work, list, list.count);
  }

  static ATTNC_DEVICE_INLINE void load_k(const Params& p, const Shared& smem, const Work& work, const TileList& list,
                                         int i) {
    const int stage = i % STAGES, round = i / STAGES;
    const int kv_first = attnc_abi::tile_map_kv_tile(list.entry(i)) * BLOCK_N;
    attnc_dev::mbarrier_wait(smem.k_empty(stage), (round & 1) ^ 1);
    attnc_dev::mbarrier_arrive_expect_tx(smem.k_full(stage), kKStage);
    for (int sub = 0; sub < HEAD_DIM / 64; ++sub) {
      attnc_dev::tma_load_4d(smem.k(stage) + sub * BLOCK_N * 128, &p.k_map, sub * 64, kv_first, work.kv_head, work.b,
                             smem.k_full(stage));
    }
  }

  // V item `item`: key tile list.entry(item - 1), or for item 0 a box entirely before the first key,
  // which the copy engine fills with zeros.
  static ATTNC_DEVICE_INLINE void load_v(const Params& p, const Shared& smem, const Work& work, const TileList& list,
                                         int item) {
    const int stage = item % STAGES, round = item / STAGES;
    const int kv_first = item == 0 ? -BLOCK_N : attnc_abi::tile_map_kv_tile(list.entry(item - 1)) * BLOCK_N;
    attnc_dev::mbarrier_wait(smem.v_empty(stage), (round & 1) ^ 1);
    attnc_dev::mbarrier_arrive_expect_tx(smem.v_full(stage), kVStage);
    for (int sub = 0; sub < HEAD_DIM_V / 64; ++sub) {
      attnc_dev::tma_load_4d(smem.v(stage) + sub * BLOCK_N * 128, &p.v_map, sub * 64, kv_first, work.kv_head, work.b,
                             smem.v_full(stage));
    }
  }

  // ---- The consumers ----

  // Per-thread state of the warpgroup's rows. Thread 32 w + 4 g + t of the warpgroup holds rows
  // 16 w + g (r = 0) and 16 w + g + 8 (r = 1) of its 64, columns 8 j + 2 t and + 1 of every 8-column
  // block j: accumulator element 4 j + 2 r + e (the wgmma D layout).
  struct Rows {
    float o[kOuts];
    float row_max[2];  // running max of x (base 2), -inf until a score is kept
    float row_sum[2];  // this thread's share of l; the quad's shares are summed at the end
  };

  static ATTNC_DEVICE_INLINE void consume(const Params& p, const Shared& smem, const Work& work, const TileList& list,
                                          int consumer, int thread) {
    Rows rows;
    ATTNC_UNROLL
    for (int i = 0; i < kOuts; ++i) rows.o[i] = 0.0f;
    ATTNC_UNROLL
    for (int r = 0; r < 2; ++r) {
      rows.row_max[r] = attnc_dev::negative_infinity();
      rows.row_sum[r] = 0.0f;
    }
    const int n = list.count;
    // Whether every tile of this CTA needs the bounds checks (rows past q_len).
    const bool q_edge = work.q_first + BLOCK_M > p.q_len;
    const int warp_q_pos = p.q_offset + work.q_first + consumer * kWgRows + 16 * (thread / 32);

    if (n > 0) {
      attnc_dev::mbarrier_wait(smem.q_full(), 0);
      float s[kScores];
      uint32_t p_frag[kPvSteps][4];
      ATTNC_UNROLL
      for (int kk = 0; kk < kPvSteps; ++kk) {
        ATTNC_UNROLL
        for (int r = 0; r < 4; ++r) p_frag[kk][r] = 0;
      }
      float correction[2];
      if (consumer == 0) attnc_dev::named_barrier_arrive(1, 256);  // consumer 1 goes first
      // Iteration i: S_i = Q K_i^T and O += P_(i-1) V_(i-1) on the tensor cores, then the softmax of
      // tile i while P V still runs. The V ring carries one item more than the K ring: item 0 is a
      // tile of zeros (and P starts as zeros), so tile 0 runs the same straight-line body as the
      // others; one copy of the mods and the softmax keeps the compile time down, and no wgmma's
      // registers stay in flight across a branch (where ptxas would insert fences of its own).
      for (int i = 0; i < n; ++i) {
        const int k_stage = i % STAGES, v_stage = i % STAGES;
        const int entry = list.entry(i);
        attnc_dev::mbarrier_wait(smem.k_full(k_stage), (i / STAGES) & 1);
        attnc_dev::named_barrier_sync(1 + consumer, 256);  // my turn on the tensor cores
        attnc_dev::fence_operands(rows.o);
        attnc_dev::wgmma_fence();
        issue_scores(s, smem, consumer, k_stage);
        attnc_dev::wgmma_commit();
        attnc_dev::mbarrier_wait(smem.v_full(v_stage), (i / STAGES) & 1);
        // Another fence after the wait: ptxas treats the wait loop as a point where registers may
        // have changed, and would insert one itself.
        attnc_dev::fence_operands(p_frag);
        attnc_dev::wgmma_fence();
        issue_pv(rows.o, p_frag, smem, v_stage);
        attnc_dev::wgmma_commit();
        if (consumer == 0 || i + 1 < n) attnc_dev::named_barrier_arrive(2 - consumer, 256);  // the other's turn
        attnc_dev::wgmma_wait<1>();  // S_i is ready; P_(i-1) V_(i-1) may still run
        attnc_dev::fence_operands(s);
        if (thread == 0) attnc_dev::mbarrier_arrive(smem.k_empty(k_stage));
        softmax_tile(s, rows, correction, p, work, entry, q_edge, warp_q_pos, thread);
        attnc_dev::wgmma_wait<0>();
        attnc_dev::fence_operands(rows.o);
        attnc_dev::fence_operands(p_frag);
        if (thread == 0) attnc_dev::mbarrier_arrive(smem.v_empty(v_stage));
        rescale_output(rows, correction);
        pack_probabilities(s, p_frag);
      }

      // The last tile's P V: V item n.
      const int last = n % STAGES;
      attnc_dev::mbarrier_wait(smem.v_full(last), (n / STAGES) & 1);
      attnc_dev::fence_operands(rows.o);
      attnc_dev::fence_operands(p_frag);
      attnc_dev::wgmma_fence();
      issue_pv(rows.o, p_frag, smem, last);
      attnc_dev::wgmma_commit();
      attnc_dev::wgmma_wait<0>();
      attnc_dev::fence_operands(rows.o);
      attnc_dev::fence_operands(p_frag);
      if (thread == 0) attnc_dev::mbarrier_arrive(smem.v_empty(last));
    }
    store_output(rows, p, smem, work, consumer, thread);
  }

  // S = Q K^T for the warpgroup's 64 rows and the key tile in `stage`: HEAD_DIM / 16 chained wgmmas,
  // the first overwriting S. A k16 step moves 32 bytes inside a 64-column sub-tile.
  static ATTNC_DEVICE_INLINE void issue_scores(float (&s)[kScores], const Shared& smem, int consumer, int stage) {
    const uint32_t q = attnc_dev::smem_address(smem.qo(consumer));
    const uint32_t k = attnc_dev::smem_address(smem.k(stage));
    ATTNC_UNROLL
    for (int kk = 0; kk < kQkSteps; ++kk) {
      const uint64_t desc_q =
          attnc_dev::make_smem_descriptor(q + (kk / 4) * kSubTile + (kk % 4) * 32, 16, 1024, attnc_dev::kSwizzle128B);
      const uint64_t desc_k = attnc_dev::make_smem_descriptor(k + (kk / 4) * BLOCK_N * 128 + (kk % 4) * 32, 16, 1024,
                                                              attnc_dev::kSwizzle128B);
      attnc_dev::wgmma_ss<Elem, BLOCK_N, 0, 0>(s, desc_q, desc_k, kk > 0);
    }
  }

  // O += P V for the key tile in `stage`: BLOCK_N / 16 wgmmas with P's k16 fragments from registers
  // and V N-major (rows along the keys): a k16 step moves 16 rows (2048 bytes); the 64-column
  // sub-tiles along Dv are BLOCK_N * 128 bytes apart (the leading byte offset).
  static ATTNC_DEVICE_INLINE void issue_pv(float (&o)[kOuts], const uint32_t (&p_frag)[kPvSteps][4], const Shared& smem,
                                           int stage) {
    const uint32_t v = attnc_dev::smem_address(smem.v(stage));
    ATTNC_UNROLL
    for (int kk = 0; kk < kPvSteps; ++kk) {
      const uint64_t desc_v =
          attnc_dev::make_smem_descriptor(v + kk * 2048, BLOCK_N * 128, 1024, attnc_dev::kSwizzle128B);
      attnc_dev::wgmma_rs<Elem, HEAD_DIM_V, 1>(o, p_frag[kk], desc_v, true);
    }
  }

  // Mods, then the online-softmax update for one key tile: S becomes P (fp32, unnormalised) in
  // place, `correction` the factor O must be rescaled by once the previous P V has retired.
  static ATTNC_DEVICE_INLINE void softmax_tile(float (&s)[kScores], Rows& rows, float (&correction)[2], const Params& p,
                                               const Work& work, int entry, bool q_edge, int warp_q_pos, int thread) {
    const int kv_first = attnc_abi::tile_map_kv_tile(entry) * BLOCK_N;
    const bool partial = attnc_abi::tile_map_partial(entry);
    if (partial || q_edge || kv_first + BLOCK_N > p.kv_len) {
      apply_mods<true>(s, p, work, warp_q_pos, kv_first, partial, thread);
    } else {
      apply_mods<false>(s, p, work, warp_q_pos, kv_first, false, thread);
    }
    ATTNC_UNROLL
    for (int r = 0; r < 2; ++r) {
      float tile_max = attnc_dev::negative_infinity();
      ATTNC_UNROLL
      for (int j = 0; j < BLOCK_N / 8; ++j) {
        tile_max = attnc_dev::max_f32(tile_max, attnc_dev::max_f32(s[4 * j + 2 * r], s[4 * j + 2 * r + 1]));
      }
      // The four threads of a quad hold the same row.
      tile_max = attnc_dev::max_f32(tile_max, attnc_dev::shfl_xor(tile_max, 1));
      tile_max = attnc_dev::max_f32(tile_max, attnc_dev::shfl_xor(tile_max, 2));
      const float new_max = attnc_dev::max_f32(rows.row_max[r], tile_max);
      // While a row has seen only -inf, subtract 0 instead: exp2(-inf - 0) = 0 for every P and the
      // (zero) accumulators, where exp2(-inf - -inf) would be NaN.
      const float base = new_max == attnc_dev::negative_infinity() ? 0.0f : new_max;
      correction[r] = attnc_dev::fast_exp2(rows.row_max[r] - base);
      rows.row_max[r] = new_max;
      float sum = 0.0f;
      ATTNC_UNROLL
      for (int j = 0; j < BLOCK_N / 8; ++j) {
        ATTNC_UNROLL
        for (int e = 0; e < 2; ++e) {
          const float prob = attnc_dev::fast_exp2(s[4 * j + 2 * r + e] - base);
          s[4 * j + 2 * r + e] = prob;
          sum += prob;
        }
      }
      rows.row_sum[r] = rows.row_sum[r] * correction[r] + sum;
    }
  }

  // Turns raw dot products into base-2 logits in place: scale, score mod, mask, -inf for keys and
  // rows past the lengths. CHECKED is false for interior FULL tiles, where every element is in
  // range and kept, so the mask and the bounds tests are compiled out of the hot loop.
  template <bool CHECKED>
  static ATTNC_DEVICE_INLINE void apply_mods(float (&s)[kScores], const Params& p, const Work& work, int warp_q_pos,
                                             int kv_first, bool evaluate_mask, int thread) {
    const int q_end = p.q_offset + p.q_len;
    const float scale_log2 = p.scale * kLog2e;
    const float minus_inf = attnc_dev::negative_infinity();
    const int lane = thread % 32;
    ModPoint point{work.b, work.h, 0, 0, p.q_len, p.kv_len, p.num_heads, p.num_kv_heads};
    ATTNC_UNROLL
    for (int i = 0; i < kScores; ++i) {
      // Accumulator element i: row g (+8 for the second pair of each block), column 8 j + 2 t (+1).
      point.q_idx = warp_q_pos + lane / 4 + ((i / 2) % 2) * 8;
      point.kv_idx = kv_first + 8 * (i / 4) + 2 * (lane % 4) + (i % 2);
      if (CHECKED) {
        if (point.q_idx >= q_end || point.kv_idx >= p.kv_len) {
          s[i] = minus_inf;
          continue;
        }
        if (Mods::kHasMaskMod && evaluate_mask && !Mods::mask_mod(point, p.mods, p.bounds)) {
          s[i] = minus_inf;
          continue;
        }
      }
      if (Mods::kHasScoreMod) {
        s[i] = Mods::score_mod(s[i] * p.scale, point, p.mods, p.bounds) * kLog2e;
      } else {
        s[i] *= scale_log2;
      }
    }
  }

  static ATTNC_DEVICE_INLINE void rescale_output(Rows& rows, const float (&correction)[2]) {
    ATTNC_UNROLL
    for (int i = 0; i < kOuts; ++i) rows.o[i] *= correction[(i / 2) % 2];
  }

  // P's A fragments, k16 step kk (keys 16 kk ... 16 kk + 15): the accumulators of 8-column blocks
  // 2 kk and 2 kk + 1, rounded to 16 bits in pairs, in the register order of the A layout.
  static ATTNC_DEVICE_INLINE void pack_probabilities(const float (&s)[kScores], uint32_t (&p_frag)[kPvSteps][4]) {
    ATTNC_UNROLL
    for (int kk = 0; kk < kPvSteps; ++kk) {
      ATTNC_UNROLL
      for (int r = 0; r < 4; ++r) p_frag[kk][r] = attnc_dev::pack2<Elem>(s[8 * kk + 2 * r], s[8 * kk + 2 * r + 1]);
    }
  }

  // out = O / l in the input dtype through this consumer's Q / O region and a TMA store (clipped at
  // q_len), and the LSE for rows below q_len.
  static ATTNC_DEVICE_INLINE void store_output(Rows& rows, const Params& p, const Shared& smem, const Work& work,
                                               int consumer, int thread) {
    const int warp = thread / 32, lane = thread % 32, g = lane / 4, t = lane % 4;
    float inv_sum[2];
    bool empty[2];
    ATTNC_UNROLL
    for (int r = 0; r < 2; ++r) {
      float sum = rows.row_sum[r];
      sum += attnc_dev::shfl_xor(sum, 1);
      sum += attnc_dev::shfl_xor(sum, 2);
      rows.row_sum[r] = sum;
      // l is 0 exactly when the row kept no finite score: its output is 0 and its LSE -inf. A kept
      // NaN score makes l NaN (every later P, or the correction, is NaN), and the row NaN.
      empty[r] = sum == 0.0f;
      inv_sum[r] = empty[r] ? 0.0f : 1.0f / sum;
    }
    // The region's 64 x 64 sub-tiles with the 128-byte swizzle: row `row`, 16-byte chunk c at c ^ (row % 8).
    unsigned char* region = smem.qo(consumer);
    ATTNC_UNROLL
    for (int j = 0; j < HEAD_DIM_V / 8; ++j) {
      ATTNC_UNROLL
      for (int r = 0; r < 2; ++r) {
        const int row = 16 * warp + g + 8 * r;
        const int col = 8 * j + 2 * t;
        const uint32_t packed =
            attnc_dev::pack2<Elem>(rows.o[4 * j + 2 * r] * inv_sum[r], rows.o[4 * j + 2 * r + 1] * inv_sum[r]);
        unsigned char* at =
            region + (col / 64) * kSubTile + row * 128 + ((((col % 64) / 8) ^ (row % 8)) * 16) + (col % 8) * 2;
        store_shared_u32(at, packed);
      }
    }
    attnc_dev::fence_proxy_async_shared();
    attnc_dev::named_barrier_sync(3 + consumer, 128);
    const int row0 = work.q_first + consumer * kWgRows;
    if (thread == 0 && row0 < p.q_len) {
      for (int sub = 0; sub < HEAD_DIM_V / 64; ++sub) {
        attnc_dev::tma_store_4d(&p.out_map, sub * 64, row0, work.h, work.b, region + sub * kSubTile);
      }
      attnc_dev::bulk_commit_group();
      attnc_dev::bulk_wait_group_read<0>();
    }
    if (p.lse != nullptr && t == 0) {
      ATTNC_UNROLL
      for (int r = 0; r < 2; ++r) {
        const int q_idx = row0 + 16 * warp + g + 8 * r;
        if (q_idx < p.q_len) {
          p.lse[work.b * p.lse_batch_stride + work.h * p.lse_head_stride + q_idx * p.lse_row_stride] =
              empty[r] ? attnc_dev::negative_infinity()
                       : (rows.row_max[r] + attnc_dev::fast_log2(rows.row_sum[r])) * kLn2;
        }
      }
    }
  }

  static ATTNC_DEVICE_INLINE void store_shared_u32(unsigned char* dst, uint32_t value) {
#if ATTNC_ON_DEVICE
    *reinterpret_cast<uint32_t*>(dst) = value;
#else
    std::memcpy(dst, &value, sizeof value);
#endif
  }
};

}  // namespace attnc_flash_sm90

// Defines the extern "C" kernel NAME for one configuration (see the header comment). On the host
// it is an ordinary function, called once per CUDA thread inside a host_emulation::launch.
#define ATTNC_INSTANTIATE_FLASH_SM90_FORWARD(NAME, MODS, ELEM, HEAD_DIM, HEAD_DIM_V, BLOCK_N, STAGES)   \
  extern "C" ATTNC_KERNEL void ATTNC_LAUNCH_BOUNDS_MIN_BLOCKS(384, 1)                                   \
      NAME(const ATTNC_GRID_CONSTANT attnc_flash_sm90::FlashSm90Params<MODS::Params> params) {          \
    attnc_flash_sm90::FlashForwardSm90<MODS, ELEM, HEAD_DIM, HEAD_DIM_V, BLOCK_N, STAGES>::run(params); \
  }
