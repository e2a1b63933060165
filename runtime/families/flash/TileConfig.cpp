#include "runtime/families/flash/TileConfig.h"

#include <algorithm>

#include "dsl/Errors.h"
#include "runtime/core/RuntimeError.h"

namespace attnc::flash {

int normalize_arch(int sm) {
  if (sm < 80) {
    throw RuntimeError("the flash-attention template needs sm_80 or newer (cp.async, bf16 mma.sync); got sm_" +
                       std::to_string(sm));
  }
  if (sm >= 90) return 90;
  if (sm >= 89) return 89;
  if (sm >= 86) return 86;
  return 80;
}

bool is_supported_head_dim(int head_dim) { return head_dim >= 16 && head_dim <= 256 && head_dim % 16 == 0; }

size_t max_dynamic_shared_bytes(int sm) {
  switch (normalize_arch(sm)) {
    case 80: return 163 * 1024;
    case 86:
    case 89: return 99 * 1024;
    default: return 227 * 1024;
  }
}

size_t flash_shared_bytes(const TileConfig& config, int head_dim, int head_dim_v) {
  // Mirrors FlashForward's layout: two K/V stages with rows padded by 8 elements; Q aliases the
  // second stage when it moves into registers (head dims up to 128), else has its own region.
  const size_t k_tile = size_t(config.block_n) * (head_dim + 8);
  const size_t v_tile = size_t(config.block_n) * (head_dim_v + 8);
  const size_t stage = k_tile + v_tile;
  const size_t q_tile = size_t(config.block_m) * (head_dim + 8);
  const size_t elements = head_dim <= 128 ? stage + std::max(stage, q_tile) : 2 * stage + q_tile;
  return elements * 2;
}

TileConfig choose_tile_config(int head_dim, int head_dim_v, int sm) {
  if (!is_supported_head_dim(head_dim) || !is_supported_head_dim(head_dim_v)) {
    throw RuntimeError("the flash-attention template supports head dims that are multiples of 16 up to 256; got " +
                       std::to_string(head_dim) + " for q and k and " + std::to_string(head_dim_v) + " for v");
  }
  normalize_arch(sm);
  // Registers, not shared memory, are the limit: Q's fragments (up to head dim 128), the S tile and
  // the O accumulators live in registers. 32 rows per warp at head dim 64 reuses each K fragment
  // twice but needs ~255 registers, leaving a generated mod no room, so every head dim gets 16 rows
  // per warp; the widest heads also get narrower key tiles. Above head dim 128 the O accumulators
  // alone take 128 registers per thread: with 32-key tiles ptxas fits sm_80 / sm_86 / sm_89 in 255
  // registers without spilling, but on sm_90 its code spills 72-80 bytes per thread, so sm_90 gets
  // 16-key tiles (230-250 registers, no spills; see the tests). Every choice fits every
  // architecture's shared memory (the largest, head dim 256 with 32-key tiles, needs exactly the
  // 99 KB of sm_86 / sm_89).
  const int widest = std::max(head_dim, head_dim_v);
  const TileConfig config = widest <= 128              ? TileConfig{128, 64, 8}
                            : normalize_arch(sm) >= 90 ? TileConfig{64, 16, 4}
                                                       : TileConfig{64, 32, 4};
  ATTNC_ASSERT(flash_shared_bytes(config, head_dim, head_dim_v) <= max_dynamic_shared_bytes(sm),
               "tile configuration " + to_string(config) + " exceeds shared memory on sm_" + std::to_string(sm));
  return config;
}

std::string to_string(const TileConfig& config) {
  return "m" + std::to_string(config.block_m) + "_n" + std::to_string(config.block_n) + "_w" +
         std::to_string(config.num_warps);
}

}  // namespace attnc::flash
