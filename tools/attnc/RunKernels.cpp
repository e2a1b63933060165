#include "tools/attnc/RunKernels.h"

#include <cstdio>

#include <fmt/format.h>

#include "dsl/Errors.h"
#include "runtime/core/AttentionChecks.h"
#include "runtime/core/Mods.h"
#include "runtime/core/RuntimeError.h"
#include "runtime/families/decode/DecodeConfig.h"
#include "runtime/families/decode/DecodeCpu.h"
#include "runtime/families/flash/FlashCpu.h"
#include "runtime/families/memory_efficient/MemoryEfficientCpu.h"
#include "runtime/reference/ReferenceAttention.h"
#include "tools/attnc/RunDevice.h"
#include "tools/attnc/RunLinear.h"
#include "tools/attnc/RunPaged.h"

namespace attnc::cli {

namespace {

void run_softmax_on_cpu(const RunOptions& o, const Tensor& q, const Tensor& k, const Tensor& v,
                        const AttentionOptions& options, Tensor& out, Tensor* lse) {
  if (o.page_size != 0) {
    run_paged(q, k, v, out, options, lse, o.page_size, o.seed, stderr);
    return;
  }
  switch (o.kernel) {
    case RunKernel::Flash: flash_attention(q, k, v, out, options, lse); return;
    case RunKernel::Standard: standard_attention(q, k, v, out, options, lse); return;
    case RunKernel::Decode: decode::decode_attention(q, k, v, out, options, lse); return;
    case RunKernel::MemoryEfficient: {
      BlockwiseOptions blockwise;
      blockwise.block_size = o.block_size;
      memory_efficient_attention(q, k, v, out, options, blockwise, lse);
      return;
    }
    case RunKernel::Linear:
    case RunKernel::Ring: break;
  }
  throw InternalError(fmt::format("attnc run: --kernel {} is not a local softmax kernel", run_kernel_name(o.kernel)));
}

}  // namespace

Tensor allocate_run_output(const Tensor& q, const Tensor& v) {
  // The runtime's checks, without an entry point's name: they name each tensor and its shape.
  check_attention_inputs("", q, v);
  return Tensor::empty(q.dtype(), attention_out_shape(q, v));
}

void run_local_kernel(const RunOptions& o, const RunMods& mods, const Tensor& q, const Tensor& k, const Tensor& v,
                      const Tensor& mask, Tensor& out, std::optional<Tensor>& lse) {
  try {
    if (o.kernel == RunKernel::Linear) {
      check_run_mask(o, mask, q, k);
      if (o.cuda) {
        run_on_gpu(o, q, k, v, mask, out, {}, lse);
      } else {
        run_linear_cpu(q, k, v, out, mask, o.causal, o.q_offset);
      }
      return;
    }
    const AttentionOptions options = run_attention_options(o, mods);
    check_attention_args("", q, k, v, out, options, lse ? &*lse : nullptr);
    check_run_mask(o, mask, q, k);
    if (o.kernel == RunKernel::Decode && q.size(2) > decode::kDecodeMaxQueryRows) {
      throw RuntimeError(
          fmt::format("--kernel decode takes at most {} query rows, but q ({}) has {}: {}; use "
                      "--kernel flash for longer queries",
                      decode::kDecodeMaxQueryRows, o.q, q.size(2), q.describe()));
    }
    if (o.cuda) {
      run_on_gpu(o, q, k, v, mask, out, options, lse);
      return;
    }
    const MaskedOptions masked = with_mask(options, mask);
    run_softmax_on_cpu(o, q, k, v, masked, out, lse ? &*lse : nullptr);
  } catch (const RuntimeError& e) {
    throw RuntimeError(in_user_terms(e.what()));
  }
}

}  // namespace attnc::cli
