#pragma once
// `attnc run --device cuda`: the inputs, the mods' tensor arguments and the mask copied to GPU 0,
// the kernel run there (attention()'s choice, the paged cache's decode kernel, or linear
// attention), and the results copied back.

#include <optional>

#include "runtime/core/AttentionOptions.h"
#include "runtime/core/Tensor.h"
#include "tools/attnc/RunOptions.h"

namespace attnc::cli {

// Runs o's kernel on GPU 0 over host tensors q, k, v and `mask` (bool or uint8, undefined for
// none) into the host tensors `out` and `lse`. `options` holds the mods with host tensor arguments.
// RuntimeError when there is no CUDA driver or GPU.
void run_on_gpu(const RunOptions& o, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, Tensor& out,
                const AttentionOptions& options, std::optional<Tensor>& lse);

}  // namespace attnc::cli
