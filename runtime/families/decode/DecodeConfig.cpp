#include "runtime/families/decode/DecodeConfig.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "runtime/core/RuntimeError.h"

namespace attnc::decode {

namespace {

int normalized_sm(int sm) {
  if (sm < 80) {
    throw RuntimeError(
        fmt::format("the decode template needs sm_80 or newer (cp.async, bf16 mma.sync); got sm_{}", sm));
  }
  if (sm >= 90) return 90;
  if (sm >= 86) return sm >= 89 ? 89 : 86;
  return 80;
}

}  // namespace

bool is_decode_head_dim(int head_dim) { return head_dim >= 16 && head_dim <= 256 && head_dim % 16 == 0; }

size_t decode_shared_bytes(const DecodeTile& tile, int head_dim, int head_dim_v) {
  // Mirrors DecodeSplit's layout: a 128-byte header, Q (rows padded by 8 elements, rounded to 128
  // bytes), then the stages of K and V tiles of kDecodeBlockN padded rows.
  const size_t header = 128;
  const size_t q = (size_t(tile.rows()) * (head_dim + 8) * 2 + 127) / 128 * 128;
  const size_t stage = size_t(kDecodeBlockN) * ((head_dim + 8) + (head_dim_v + 8)) * 2;
  return header + q + size_t(tile.stages) * stage;
}

size_t decode_max_block_shared(int sm) {
  switch (normalized_sm(sm)) {
    case 80: return 163 * 1024;
    case 86:
    case 89: return 99 * 1024;
    default: return 227 * 1024;
  }
}

size_t decode_sm_shared(int sm) {
  switch (normalized_sm(sm)) {
    case 80: return 164 * 1024;
    case 86:
    case 89: return 100 * 1024;
    default: return 228 * 1024;
  }
}

int decode_ctas_per_sm(const DecodeTile& tile, int head_dim, int head_dim_v, int sm) {
  // The driver reserves 1 KiB of shared memory per CTA.
  const size_t per_cta = decode_shared_bytes(tile, head_dim, head_dim_v) + 1024;
  return static_cast<int>(std::clamp<size_t>(decode_sm_shared(sm) / per_cta, 0, 2));
}

bool decode_supported(int head_dim, int head_dim_v, int sm) {
  if (!is_decode_head_dim(head_dim) || !is_decode_head_dim(head_dim_v) || sm < 80) return false;
  // The smallest CTA (16 rows) with the shallowest pipeline must fit; wider layouts fall back to it.
  return decode_shared_bytes(DecodeTile{1, 4, 2}, head_dim, head_dim_v) <= decode_max_block_shared(sm);
}

DecodeTile choose_decode_tile(int rows, int head_dim, int head_dim_v, int sm, int stages) {
  if (!is_decode_head_dim(head_dim) || !is_decode_head_dim(head_dim_v)) {
    throw RuntimeError(
        fmt::format("the decode template supports head dims that are multiples of 16 up to 256; got {} and {}",
                    head_dim, head_dim_v));
  }
  DecodeTile tile = rows <= 16 ? DecodeTile{1, 4, 2} : rows <= 32 ? DecodeTile{2, 2, 2} : DecodeTile{4, 1, 2};
  // Above head dim 128 the O accumulators take 128 registers per thread: with the 64-key slices of
  // the (4, 1) layout ptxas spills, so wide heads use at most 32-row CTAs.
  if (std::max(head_dim, head_dim_v) > 128 && tile.warps_m > 2) tile = DecodeTile{2, 2, 2};
  // A layout whose Q tile leaves no room for two stages (head dim 256 over 64 rows on sm_80) takes
  // the next narrower one, in more row chunks.
  while (tile.warps_m > 1 && decode_shared_bytes(tile, head_dim, head_dim_v) > decode_max_block_shared(sm)) {
    tile = DecodeTile{tile.warps_m / 2, tile.warps_n * 2, 2};
  }
  if (stages != 0) {
    if (stages < 2 || stages > 4) throw RuntimeError(fmt::format("decode: stages must be 2, 3 or 4, got {}", stages));
    tile.stages = stages;
    if (decode_shared_bytes(tile, head_dim, head_dim_v) > decode_max_block_shared(sm)) {
      throw RuntimeError(fmt::format(
          "decode: {} stages of head dims {}/{} need {} bytes of shared memory; sm_{} has {}", stages, head_dim,
          head_dim_v, decode_shared_bytes(tile, head_dim, head_dim_v), sm, decode_max_block_shared(sm)));
    }
    return tile;
  }
  int best_score = 0;
  DecodeTile best = tile;
  for (int s = 2; s <= 4; ++s) {
    DecodeTile candidate = tile;
    candidate.stages = s;
    if (decode_shared_bytes(candidate, head_dim, head_dim_v) > decode_max_block_shared(sm)) break;
    const int score = decode_ctas_per_sm(candidate, head_dim, head_dim_v, sm) * (s - 1);
    if (score > best_score) {
      best_score = score;
      best = candidate;
    }
  }
  if (best_score == 0) {
    throw RuntimeError(fmt::format(
        "the decode template does not fit head dims {}/{} into the shared memory of sm_{} ({} bytes per block)",
        head_dim, head_dim_v, sm, decode_max_block_shared(sm)));
  }
  return best;
}

int decode_row_chunks(int rows, const DecodeTile& tile) { return std::max(1, (rows + tile.rows() - 1) / tile.rows()); }

int choose_num_splits(int64_t units, int64_t kv_len, int64_t slots, int min_keys, int max_splits) {
  if (units <= 0 || slots <= 0 || kv_len < 2 * int64_t{min_keys}) return 1;
  if (double(units) >= 0.8 * double(slots)) return 1;
  const int64_t limit = std::min<int64_t>({max_splits, kv_len / min_keys, slots});
  if (units * limit <= slots) return static_cast<int>(limit);  // not even one wave: as many as allowed
  auto fill = [&](int64_t n) {
    const double waves = double(units * n) / double(slots);
    return waves / std::ceil(waves);
  };
  double best = 0;
  for (int64_t n = 1; n <= limit; ++n) best = std::max(best, fill(n));
  for (int64_t n = 1; n <= limit; ++n) {
    if (fill(n) >= 0.95 * best) return static_cast<int>(n);
  }
  return 1;
}

std::string to_string(const DecodeTile& tile) {
  return fmt::format("m{}_n{}_s{}", tile.warps_m, tile.warps_n, tile.stages);
}

}  // namespace attnc::decode
