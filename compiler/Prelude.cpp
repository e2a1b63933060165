#include "compiler/Prelude.h"

#include "compiler/Frontend.h"

namespace attnc::ir {

namespace {

// Each definition mirrors the attnax/FlexAttention mod of the same purpose. Indices follow the
// contract: b, h, q_idx, kv_idx are absolute positions in the tensors of the call.
constexpr std::string_view kPrelude = R"(# attnc built-in mods.

# Standard causal masking: a query sees itself and every earlier key (top-left aligned).
mask_mod causal = kv_idx <= q_idx;

# Causal masking aligned to the bottom-right corner, for q_len != kv_len (decoding with a KV cache):
# the last query row sees every key.
mask_mod causal_bottom_right = q_idx + kv_len - q_len >= kv_idx;

# Causal sliding window: q_idx - window < kv_idx <= q_idx (the query and window - 1 earlier keys).
mask_mod sliding_window_causal(window: int) = kv_idx <= q_idx && q_idx - kv_idx < window;

# Symmetric sliding window: |q_idx - kv_idx| < window.
mask_mod sliding_window_symmetric(window: int) = abs(q_idx - kv_idx) < window;

# ALiBi: a per-head linear penalty on the distance between query and key.
score_mod alibi(slopes: float[H]) = score - slopes[h] * abs(q_idx - kv_idx);

# Prefix LM: bidirectional attention inside each sequence's prefix, causal after it.
mask_mod prefix_lm(prefix: int[B]) = kv_idx < prefix[b] || kv_idx <= q_idx;

# Document masking for packed sequences: a query sees only keys of its own document.
mask_mod document(ids: int[B, S]) = ids[b, q_idx] == ids[b, kv_idx];

# An additive bias tensor. An axis of extent 1 broadcasts: its index is clamped into [0, 1), i.e. to
# 0, because out-of-range tensor indices clamp. (With bounds checking on, such an index is
# reported instead; pass a full-size bias then.)
score_mod additive_bias(bias: float[BB, BH, BQ, BK]) = score + bias[b, h, q_idx, kv_idx];

# Logit softcapping (Gemma 2, Grok): squashes scores smoothly into (-cap, cap).
score_mod softcap(cap: float) = cap * tanh(score / cap);
)";

}  // namespace

std::string_view prelude_source() { return kPrelude; }

const Module& prelude_module() {
  // A function-local static is initialised once, thread-safely; a broken prelude is an attnc bug
  // and surfaces as the CompileError on every call (initialisation is retried after a throw).
  static const Module module = load_module_text("<prelude>", std::string(kPrelude));
  return module;
}

}  // namespace attnc::ir
