#pragma once
// The tile configuration of the flash-attention template (runtime/families/flash/flash_attention.cuh) per
// head dim and GPU architecture: BLOCK_M query rows and NUM_WARPS warps per CTA, BLOCK_N keys per
// K/V tile. It is part of the kernel cache key, and the launcher sizes the grid and the dynamic
// shared memory from it.

#include <cstddef>
#include <string>

namespace attnc::flash {

struct TileConfig {
  int block_m = 0;
  int block_n = 0;
  int num_warps = 0;

  friend bool operator==(const TileConfig&, const TileConfig&) = default;
};

// The architectures the template is tuned for: 80, 86, 89, 90 (sm_XX). Others map to the nearest
// one below (a newer one to 90); below 80 is a RuntimeError (the template needs cp.async and
// bf16 mma.sync).
int normalize_arch(int sm);

// Head dims the template supports: multiples of 16 up to 256 (for both q/k and v).
bool is_supported_head_dim(int head_dim);

// The configuration for (head_dim, head_dim_v, arch): RuntimeError for an unsupported head dim or
// architecture. Guarantees: block_m a multiple of 16 * num_warps, block_n a multiple of 16, and
// flash_shared_bytes(...) within max_dynamic_shared_bytes(arch).
TileConfig choose_tile_config(int head_dim, int head_dim_v, int sm);

// The dynamic shared memory the template needs for a configuration (16-bit inputs), exactly
// FlashForward<...>::kSharedBytes.
size_t flash_shared_bytes(const TileConfig& config, int head_dim, int head_dim_v);

// The most dynamic shared memory one block may opt into on an architecture.
size_t max_dynamic_shared_bytes(int sm);

// "m128_n64_w8", for cache keys and file names.
std::string to_string(const TileConfig& config);

}  // namespace attnc::flash
