#pragma once
// The one-call attention API: computes attention wherever the tensors live, picking the kernel
// family by device and shape. Queries of at most 16 rows (decoding) run the decode family
// (runtime/families/decode/: split-KV, each K/V row read once per GQA group), longer ones a flash
// family. CPU tensors run the CPU kernels; CUDA tensors compile the mods through the process-wide
// kernel cache and launch the family's CUDA kernel, waiting for it to finish: on a compute
// capability 9.0 GPU the Hopper family (runtime/families/flash_sm90/FlashSm90Cuda.h) for the head
// dims and layouts it takes, else the flash family's template (runtime/families/flash/FlashCuda.h);
// head dims the decode template cannot fit on the device fall back to flash. ATTNC_NO_SM90=1 in the
// environment keeps long CUDA calls on the flash family (for comparisons). The contract is
// standard_attention's (runtime/reference/ReferenceAttention.h, docs/semantics.md).

#include <memory>

#include "runtime/core/AttentionGradients.h"
#include "runtime/core/AttentionOptions.h"
#include "runtime/core/Dropout.h"
#include "runtime/core/Tensor.h"

namespace attnc {

// q (B, H, S, D), k (B, Hkv, Skv, D), v (B, Hkv, Skv, Dv) -> out (B, H, S, Dv); `lse` as for
// standard_attention (an undefined one is allocated as fp32 (B, H, S) on the tensors' device).
// Every tensor, the mods' tensor arguments included, must be on one device: RuntimeError naming
// the two devices otherwise. On CUDA the inputs must be fp16 or bf16 (out of the same dtype), laid
// out as FlashKernel::launch requires.
void attention(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out, const AttentionOptions& options = {},
               Tensor* lse = nullptr);

// The tile map attention() would build for calls with these tensors' shapes, options.mask_mod (with
// its bound arguments) and options.q_offset, built once so that repeated calls skip the pre-pass:
// pass it as options.tile_map while the mask's arguments stay the same (the kernel checks sizes,
// q_offset, tiles, mask signature and argument identity, not tensor contents). Null when the kernel
// attention() picks for these tensors does not use tile maps (the CPU kernel, the sm_80 template,
// no mask mod): such calls need none.
std::shared_ptr<const TileMap> build_tile_map(const Tensor& q, const Tensor& k, const Tensor& v,
                                              const AttentionOptions& options);

// The same with attnax's boolean mask: `mask` (bool, uint8, int32 or int64, broadcastable to
// (B, H, Sq, Skv), True keeps; undefined for none) is anded into options' mask mod
// (with_mask, runtime/core/Mods.h). On CUDA the mask must be an int32 or int64 device tensor.
void attention(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out, const Tensor& mask,
               const AttentionOptions& options, Tensor* lse = nullptr);

// The backward pass of attention(): given out and lse from the forward call with the same options
// (with dropout: attention_dropout's), and dout = dLoss/dout, fills grads.dq, dk, dv (allocated as
// fp32 when undefined) and grads.dparams (one fp32 tensor per float tensor parameter of the score
// mod, by name). docs/gradients.md gives the formulas, the derivatives of mods at non-differentiable
// points and which results are deterministic. CPU tensors run the CPU family
// (runtime/families/flash_backward/FlashBackwardCpu.h); CUDA tensors the CUDA template
// (FlashBackwardCuda.h: bf16 / fp16 inputs, gradients allocated in q's dtype when undefined, at most
// 4 float tensor parameters with gradients). Every tensor must be on q's device.
void attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse,
                        const Tensor& dout, AttentionGradients& grads, const AttentionOptions& options = {},
                        const Dropout& dropout = {});

// The forward pass with attention dropout (runtime/core/Dropout.h): out and the LSE before dropout,
// what attention_backward needs. Without dropout it is attention(); with dropout, the CPU flash
// kernel (FlashOptions::dropout) for CPU tensors and the CUDA flash (sm_80) template for device
// tensors, both dropping exactly the elements standard_attention_dropout (the fp64 reference) and
// the backward passes drop.
void attention_dropout(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out, const AttentionOptions& options,
                       const Dropout& dropout, Tensor* lse);

// Linear attention (runtime/reference/LinearReference.h gives its contract) wherever the tensors
// live: the CPU's chunkwise kernel (runtime/families/linear/LinearCpu.h) or the CUDA family's
// (runtime/families/linear/LinearCuda.h: fp32, bf16 or fp16 inputs, out of the same dtype, a bool or
// uint8 mask), waiting for it to finish.
void linear_attention(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out,
                      const LinearAttentionOptions& options = {});

}  // namespace attnc
