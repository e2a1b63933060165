#pragma once
// The local (single-process) kernels of `attnc run`: the checks of the inputs against the chosen
// kernel, then the kernel on the CPU or, with --device cuda, GPU 0. The ring is RunRing.h's.

#include <optional>

#include "runtime/core/Tensor.h"
#include "tools/attnc/RunOptions.h"
#include "tools/attnc/RunSteps.h"

namespace attnc::cli {

// The output of o's kernel for q and v: q's dtype, (B, H, S, D_v). RuntimeError naming q or v when
// their shapes do not fit.
Tensor allocate_run_output(const Tensor& q, const Tensor& v);

// Checks q, k, v, `mask` and the options against o's kernel (the runtime's own checks, without an
// entry point's name; --kernel decode's query limit), then runs it into `out` (and `lse` when
// defined). RuntimeErrors speak in the user's terms.
void run_local_kernel(const RunOptions& o, const RunMods& mods, const Tensor& q, const Tensor& k, const Tensor& v,
                      const Tensor& mask, Tensor& out, std::optional<Tensor>& lse);

}  // namespace attnc::cli
