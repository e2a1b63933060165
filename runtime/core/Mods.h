#pragma once
// The built-in mods and composition helpers, mirroring attnax / FlexAttention's API. Each returns
// an ordinary Mod: the built-ins are definitions of the prelude (compiler/Prelude.h) with their
// arguments bound, and compositions are new definitions built by IR substitution, so they have the
// same IR, signatures and kernels as the equivalent mod written by hand.

#include <vector>

#include "runtime/core/Mod.h"
#include "runtime/core/Tensor.h"

namespace attnc {

// kv_idx <= q_idx (top-left aligned).
Mod causal_mod();
// q_idx + kv_len - q_len >= kv_idx (aligned to the bottom-right corner, for decoding).
Mod causal_bottom_right_mod();
// causal: q_idx - window < kv_idx <= q_idx; otherwise |q_idx - kv_idx| < window. window > 0.
Mod sliding_window_mod(int window, bool causal = true);
// score - slopes[h] * |q_idx - kv_idx| with the ALiBi slopes of `num_heads` heads (> 0).
Mod alibi_mod(int num_heads);
// The ALiBi paper's head slopes. For a power of two n: 2^(-8 (i + 1) / n). Otherwise, with n' the
// largest power of two below n: the n' slopes of that schedule, then the slopes at indices
// 0, 2, 4, ... of the schedule for 2 n', until n slopes. 12 heads: 2^-1 .. 2^-8, 2^-0.5 .. 2^-3.5.
std::vector<float> alibi_slopes(int num_heads);
// Keys before prefix_lengths[b] are visible to every query; after that, causal. [B] int32/int64.
Mod prefix_lm_mod(Tensor prefix_lengths);
// A query sees only keys with the same document id: document_ids [B, S] int32/int64.
Mod document_mask_mod(Tensor document_ids);
// score + bias[b, h, q_idx, kv_idx]. A bias of rank < 4 is broadcast from the right as in PyTorch
// (missing leading axes get extent 1); an axis of extent 1 broadcasts over that index.
Mod additive_bias_mod(Tensor bias);
// cap * tanh(score / cap), cap > 0.
Mod softcap_mod(float cap);

// score -> mods[0] -> mods[1] -> ...: each score mod is applied to the previous one's result.
// Parameters are concatenated (a clashing name gets a suffix _2, _3, ...) and bound arguments carry
// over. RuntimeError for an empty list or a mask mod in it.
Mod compose_score_mods(const std::vector<Mod>& mods);
// The conjunction / disjunction of mask mods (parameters as for compose_score_mods).
Mod and_masks(const std::vector<Mod>& masks);
Mod or_masks(const std::vector<Mod>& masks);
// The score mod `mask ? score : -inf`.
Mod mask_mod_to_score_mod(const Mod& mask);
// The mask evaluated at every (b, h, q_idx, kv_idx) of a [B, H, Q, KV] grid, as a bool tensor, with
// q_len = Q, kv_len = KV, num_heads = num_kv_heads = H. The mask must be fully bound.
Tensor mask_mod_to_boolean_mask(const Mod& mask, int batch, int heads, int q_len, int kv_len);

}  // namespace attnc
