#pragma once
// The built-in mods and composition helpers, mirroring attnax / FlexAttention's API. Each returns
// an ordinary Mod: the built-ins are definitions of the prelude (compiler/Prelude.h) with their
// arguments bound, and compositions are new definitions built by IR substitution, so they have the
// same IR, signatures and kernels as the equivalent mod written by hand.

#include <memory>
#include <string>
#include <vector>

#include "runtime/core/AttentionOptions.h"
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
// keep[b, h, q_idx, kv_idx] != 0: a boolean mask tensor (True keeps) as a mask mod, so it combines
// with other mask mods (and_masks) and its tiles are classified like any mask's. Broadcast like
// additive_bias_mod: a mask of rank < 4 gets leading axes of extent 1, and an axis of extent 1
// broadcasts over its index. The tile classifier summarises int and float tensors over a tile's box
// (compiler/TileClassifier.h) but not bool ones, so a bool or uint8 mask (CPU only) is copied once
// into an int32 tensor of 0 / 1 with the same shape; an int32 or int64 mask (any device, nonzero
// keeps) is bound as it is. RuntimeError for another dtype, a rank above 4, or a bool / uint8 mask
// on CUDA (convert it to int32 there).
Mod mask_tensor_mod(Tensor mask);

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

// AttentionOptions that own the mask mod they point to: `options` with a mask tensor anded into its
// mask mod (and_masks({*options.mask_mod, mask_tensor_mod(mask)}), or the tensor's mod alone). An
// undefined mask leaves the options as they are. Copies share the mod, so options() stays valid for
// as long as any copy lives. Every kernel that takes AttentionOptions takes these.
class MaskedOptions {
 public:
  MaskedOptions(const AttentionOptions& options, const Tensor& mask);
  const AttentionOptions& options() const { return options_; }
  operator const AttentionOptions&() const { return options_; }  // NOLINT: used where options go

 private:
  std::shared_ptr<const Mod> mask_;
  AttentionOptions options_;
};
MaskedOptions with_mask(const AttentionOptions& options, const Tensor& mask);

// A mod evaluated from a block of a longer sequence (ring attention's shards): the block's kernel
// sees its own columns 0, 1, ..., and its own lengths, while the mod must see whole-sequence
// positions and lengths. The returned mod is `mod` with kv_idx replaced by kv_idx + a new int
// parameter (`kv_offset`), and q_len / kv_len, where the mod reads them, by new int parameters
// (`seq_q_len`, `seq_kv_len`); bound arguments carry over, the new ones are left unbound. Queries
// are placed with AttentionOptions::q_offset, which every kernel honours. One definition for every
// block, so every block of every rank and step runs one compiled program (the offsets are
// run-time arguments), and the tile classifier stays exact: kv_idx + offset ranges over an interval
// as kv_idx does.
struct BlockMod {
  Mod mod;
  std::string kv_offset;   // the name of the kv offset parameter
  std::string seq_q_len;   // the name of the whole-sequence q_len parameter, empty when unused
  std::string seq_kv_len;  // the same for kv_len

  // A copy of `mod` with the block's arguments bound.
  Mod at(int32_t kv_offset, int32_t q_len, int32_t kv_len) const;
};
BlockMod block_view_mod(const Mod& mod);

}  // namespace attnc
