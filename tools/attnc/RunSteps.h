#pragma once
// The steps of `attnc run` that every path shares (the local kernels, the paged cache, the ring):
// FILE's mods bound from --arg, the --mask file, the attention options, the checks that name
// tensors in the user's terms, and writing the outputs whole.

#include <optional>
#include <string>

#include "runtime/core/AttentionOptions.h"
#include "runtime/core/Mod.h"
#include "runtime/core/Tensor.h"
#include "tools/attnc/RunOptions.h"

namespace attnc::cli {

// The mods --score-mod and --mask-mod name, with every --arg bound. UsageError for an --arg that no
// chosen mod declares (or a malformed value); RuntimeError for a parameter left unbound or a tensor
// file that does not fit its declaration.
struct RunMods {
  std::optional<Mod> score, mask;
};
RunMods load_run_mods(const RunOptions& o);

// The --mask file (undefined without one). RuntimeError, naming the file, unless it holds bool or
// uint8 values of rank 1 to 4.
Tensor read_run_mask(const RunOptions& o);

// RuntimeError unless `mask` broadcasts to (B, H, Sq, Skv) of q and k; with --kernel linear, unless
// it is a key mask too (its Sq axis of extent 1). Nothing for an undefined mask.
void check_run_mask(const RunOptions& o, const Tensor& mask, const Tensor& q, const Tensor& k);

// The options of a softmax kernel: the mods (pointing into `mods`), --scale, --q-offset and
// --check-bounds.
AttentionOptions run_attention_options(const RunOptions& o, const RunMods& mods);

// The kernels name themselves in their messages ("flash_attention: mod 'm': index 3 is out of
// range ...") for callers of the library; a user of `attnc run` called none of them.
std::string in_user_terms(const std::string& message);

// Writes -o (and --lse when given) so that the set appears whole or not at all.
void write_run_outputs(const RunOptions& o, const Tensor& out, const std::optional<Tensor>& lse);

}  // namespace attnc::cli
