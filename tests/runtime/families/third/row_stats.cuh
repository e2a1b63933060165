#pragma once
// A throw-away kernel family that exists only to test the seam between families
// (tests/runtime/families/third/ThirdFamilyTest.cpp): it is not embedded in the library, and
// nothing in runtime/ knows it. For every query row (b, h, q_idx) of a score tensor S (B, H, Sq,
// Skv), fp32, it counts the keys the mask keeps and sums the score mod's values over them:
//   count[b, h, q] = #{kv : mask_mod(b, h, q, kv)},  total[b, h, q] = sum over those of score_mod(S)
// One warp per row: lanes stride over the keys and the warp reduces with shuffles, so the host
// emulation's collectives are exercised. Mods is a traits type as in flash_attention.cuh.

#include "device_primitives.cuh"
#include "mod_abi.cuh"

namespace row_stats_family {

template <class ModParams>
struct RowStatsParams {
  const float* scores;  // (B, H, Sq, Skv), C-contiguous
  float* total;         // (B, H, Sq)
  float* count;         // (B, H, Sq)
  int32_t batch, num_heads, q_len, kv_len;
  ModParams mods;
};

// Grid (Sq, H, B), 32 threads.
template <class Mods>
ATTNC_DEVICE_INLINE void row_stats(const RowStatsParams<typename Mods::Params>& p) {
  const int q = attnc_dev::block_idx_x(), h = attnc_dev::block_idx_y(), b = attnc_dev::block_idx_z();
  const int lane = attnc_dev::thread_idx_x();
  const int64_t row = (static_cast<int64_t>(b) * p.num_heads + h) * p.q_len + q;
  attnc_abi::ModPoint point{b, h, q, 0, p.q_len, p.kv_len, p.num_heads, p.num_heads};
  float total = 0.0f, count = 0.0f;
  for (int kv = lane; kv < p.kv_len; kv += 32) {
    point.kv_idx = kv;
    if (Mods::kHasMaskMod && !Mods::mask_mod(point, p.mods, nullptr)) continue;
    const float s = p.scores[row * p.kv_len + kv];
    total += Mods::kHasScoreMod ? Mods::score_mod(s, point, p.mods, nullptr) : s;
    count += 1.0f;
  }
  for (int offset = 16; offset > 0; offset /= 2) {
    total += attnc_dev::shfl_xor(total, offset);
    count += attnc_dev::shfl_xor(count, offset);
  }
  if (lane == 0) {
    p.total[row] = total;
    p.count[row] = count;
  }
}

}  // namespace row_stats_family

#if defined(__CUDACC_RTC__)
// The entry point over the generated code (attnc_mods.cuh and generated_mods.cuh, included first).
extern "C" __global__ void attnc_row_stats(
    const row_stats_family::RowStatsParams<attnc_abi::GeneratedMods::Params> params) {
  row_stats_family::row_stats<attnc_abi::GeneratedMods>(params);
}
#endif
