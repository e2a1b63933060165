#pragma once
// The one-call attention API: computes attention wherever the tensors live, picking the kernel
// family by device and shape. Queries of at most 16 rows (decoding) run the decode family
// (runtime/families/decode/: split-KV, each K/V row read once per GQA group), longer ones the flash
// family (runtime/families/flash/). CPU tensors run the CPU kernels; CUDA tensors compile the mods
// through the process-wide kernel cache and launch the family's CUDA kernel, waiting for it to finish
// (head dims the decode template cannot fit on the device fall back to flash). The contract is
// standard_attention's (runtime/reference/ReferenceAttention.h, docs/semantics.md).

#include "runtime/core/AttentionOptions.h"
#include "runtime/core/Tensor.h"

namespace attnc {

// q (B, H, S, D), k (B, Hkv, Skv, D), v (B, Hkv, Skv, Dv) -> out (B, H, S, Dv); `lse` as for
// standard_attention (an undefined one is allocated as fp32 (B, H, S) on the tensors' device).
// Every tensor, the mods' tensor arguments included, must be on one device: RuntimeError naming
// the two devices otherwise. On CUDA the inputs must be fp16 or bf16 (out of the same dtype), laid
// out as FlashKernel::launch requires.
void attention(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out, const AttentionOptions& options = {},
               Tensor* lse = nullptr);

}  // namespace attnc
