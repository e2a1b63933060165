#pragma once
// What every attention entry point takes besides the tensors: the mods, the scale and how strictly
// mods index their tensors. The shapes and checks all entry points share are in
// runtime/core/AttentionChecks.h; the meaning of each field is docs/semantics.md's.

#include <cstdint>
#include <optional>

#include "runtime/core/Mod.h"
#include "runtime/core/Tensor.h"

namespace attnc {

class TileMap;  // runtime/tilemap/TileMap.h

struct AttentionOptions {
  const Mod* score_mod = nullptr;  // a fully bound score mod, or none (identity)
  const Mod* mask_mod = nullptr;   // a fully bound mask mod, or none (keep everything)
  std::optional<float> scale;      // default 1 / sqrt(D)
  // The query position of the first query row: mods see q_idx = q_offset + row (keys are always
  // at kv_idx = column). 0 for plain tensors; a call through a KV cache passes the position of its
  // first new token, so a causal, window or document mask means the same in prefill and decode.
  // Must be >= 0, with q_offset + q_len within int32.
  int32_t q_offset = 0;
  // Out-of-range tensor indices in mods become RuntimeErrors instead of being clamped.
  bool check_bounds = false;
  // A tile map the caller built for calls like this one (runtime/Attention.h, build_tile_map): for
  // the mask mod's signature and bound arguments, the sizes, q_offset and the kernel's tiles, which
  // the kernel checks. Kernels that walk tile maps (the Hopper family) then skip building one per
  // call; the others ignore it. Null: built when needed.
  const TileMap* tile_map = nullptr;
  // Precision of dot products and softmax. Scores passed to mods are fp32 either way.
  enum class Accumulation { F64, F32 } accumulation = Accumulation::F64;
};

// Linear attention (attnax's linear_attention; docs/semantics.md, "Linear attention"): softmax-free,
// with the feature map phi(x) = elu(x) + 1, so it takes no mods and no scale.
struct LinearAttentionOptions {
  // Query i sees keys j <= i (top-left aligned, as causal_mod); otherwise every key.
  bool causal = true;
  // Tokens per chunk of the chunkwise-parallel form (> 0): inside a chunk a masked matmul, across
  // chunks a (D x Dv) state and a (D) normaliser carried forward. It changes only the order of
  // floating-point sums, not the result.
  int32_t chunk_size = 64;
  // Keys to drop, as attnax does: a bool, uint8, int32 or int64 tensor broadcastable to
  // (B, H, Sq, Skv) of which only query row 0 is read (a key-padding mask; nonzero keeps). A
  // dropped key's phi(k) and v are zeroed, so it adds to neither sum. Undefined: keep every key.
  Tensor mask;
};

}  // namespace attnc
