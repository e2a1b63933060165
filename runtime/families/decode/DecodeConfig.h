#pragma once
// The decode family's choices, as pure functions (no GPU, no threads), so the launchers, the CPU
// kernel and the tests share them:
//
// - the CTA layout of the CUDA template (runtime/families/decode/decode_attention.cuh) for a call's
//   rows per KV head (G = H / Hkv query heads times q_len query rows): warps over rows x warps over
//   keys, and the depth of the shared-memory pipeline; part of the kernel cache key;
// - the number of KV splits, for the GPU and for the CPU thread pool.
//
// The split heuristic. A decode call has `units` independent pieces of work (B Hkv row-chunks on the
// GPU, B Hkv on the CPU), each streaming the keys of one batch row. With fewer units than the
// machine has slots (SMs times the CTAs each holds, or CPU workers), each unit's keys are cut into
// `splits` ranges, merged afterwards by their LSE. As in FlashAttention-2's heuristic, with u units
// and s slots, splitting n ways fills (u n / s) / ceil(u n / s) of the last wave; the smallest n
// within 95% of the best fill over n = 1 .. max is chosen, so a grid of 0.97 waves is preferred to
// 8 full waves with 8x the merge work. When even the most splits allowed do not fill one wave, all
// of them are taken (a memory-bound kernel gains from every extra stream). No split is made shorter
// than min_keys (the prologue, the pipeline warm-up and the merge are paid per split), there are at
// most max_splits, and a call that already has 80% of a wave of units is not split at all. Splits are taken over the longest
// batch row; at run time each CTA divides only its row's live (non-EMPTY) key tiles, so a sliding
// window's splits all work on the window.

#include <cstddef>
#include <cstdint>
#include <string>

namespace attnc::decode {

// Keys per pipeline stage of the CUDA template (its BLOCK_N) and per tile of the CPU kernel.
inline constexpr int kDecodeBlockN = 64;

// attention() runs the decode family for queries of at most this many rows (one token, or a few
// speculative ones), the flash family above.
inline constexpr int64_t kDecodeMaxQueryRows = 16;

struct DecodeTile {
  int warps_m = 1;  // m16 row blocks per CTA: 16 warps_m rows of the group
  int warps_n = 4;  // key slices per 64-key tile
  int stages = 2;   // K/V tiles in the shared-memory ring

  int rows() const { return 16 * warps_m; }
  int threads() const { return 32 * warps_m * warps_n; }
  friend bool operator==(const DecodeTile&, const DecodeTile&) = default;
};

// The head dims the template takes: multiples of 16 up to 256, q/k and v independently.
bool is_decode_head_dim(int head_dim);

// The dynamic shared memory of the template for a layout, exactly DecodeSplit<...>::kSharedBytes.
size_t decode_shared_bytes(const DecodeTile& tile, int head_dim, int head_dim_v);

// Shared memory per block (opt-in maximum) and per SM of an architecture (sm_80, 86, 89, 90; others
// as the nearest below, newer as 90). RuntimeError below sm_80.
size_t decode_max_block_shared(int sm);
size_t decode_sm_shared(int sm);

// CTAs of `tile` one SM holds, as far as shared memory decides (at most 2: the register file holds
// two 128-thread CTAs of up to 255 registers; see docs/cuda-backend.md for the ptxas figures).
int decode_ctas_per_sm(const DecodeTile& tile, int head_dim, int head_dim_v, int sm);

// Whether the template has a layout for these head dims on `sm` (two stages of the 16-row layout fit
// its shared memory): all supported head dims on sm_80 and sm_90; up to 128 on sm_86 / sm_89.
bool decode_supported(int head_dim, int head_dim_v, int sm);

// The layout for `rows` = G q_len rows per KV head: (1, 4) up to 16 rows, (2, 2) up to 32, (4, 1)
// above (cut into CTAs of 64 rows); a layout that does not fit two stages takes the next narrower
// one (head dim 256 on sm_80: (2, 2) for more than 32 rows). `stages` 0 picks the depth that keeps the most tiles in flight
// per SM (CTAs per SM x (stages - 1)), the shallower one on a tie; 2 to 4 forces it. RuntimeError
// for unsupported head dims or architectures, or forced stages that do not fit.
DecodeTile choose_decode_tile(int rows, int head_dim, int head_dim_v, int sm, int stages = 0);

// CTAs per KV head: ceil(rows / tile.rows()).
int decode_row_chunks(int rows, const DecodeTile& tile);

// The number of KV splits (module comment): `units` independent streams of at most `kv_len` keys on
// `slots` slots. 1 when kv_len < 2 min_keys or units fill 80% of the slots.
int choose_num_splits(int64_t units, int64_t kv_len, int64_t slots, int min_keys, int max_splits);

// The split parameters of the two backends.
inline constexpr int kCudaMinKeysPerSplit = 256;
inline constexpr int kCpuMinKeysPerSplit = 512;
inline constexpr int kMaxSplits = 64;

// "m1_n4_s3", for cache keys and reports.
std::string to_string(const DecodeTile& tile);

}  // namespace attnc::decode
