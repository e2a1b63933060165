#pragma once
// The one-call attention API: computes attention wherever the tensors live. CPU tensors run the
// CPU flash kernel (runtime/cpu/CpuFlashAttention.h); CUDA tensors compile the mods through the
// process-wide kernel cache and launch the CUDA kernel (runtime/cuda/CudaAttention.h), waiting for
// it to finish. The contract is standard_attention's (runtime/ReferenceAttention.h).

#include "runtime/ReferenceAttention.h"
#include "runtime/Tensor.h"

namespace attnc {

// q (B, H, S, D), k (B, Hkv, Skv, D), v (B, Hkv, Skv, Dv) -> out (B, H, S, Dv); `lse` as for
// standard_attention (an undefined one is allocated as fp32 (B, H, S) on the tensors' device).
// Every tensor, the mods' tensor arguments included, must be on one device: RuntimeError naming
// the two devices otherwise. On CUDA the inputs must be fp16 or bf16 (out of the same dtype), laid
// out as CudaKernel::launch requires.
void attention(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out, const AttentionOptions& options = {},
               Tensor* lse = nullptr);

}  // namespace attnc
