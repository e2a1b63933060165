#pragma once
// Multi-head attention as a module (attnax's MultiHeadAttention), above the runtime: Q/K/V and
// output projections (nn/Linear.h), MHA / GQA / MQA (num_kv_heads divides num_heads), optional RoPE
// on Q and K (nn/RotaryEmbedding.h), a kernel chosen by kind or given by the caller, the
// constructor's score mod composed with a per-call one, an optional causal sliding window, and a
// KV cache for autoregressive decoding (nn/KVCache.h). docs/nn.md describes it.
//
//   x (B, S, in) -> q = x Wq + bq, k = x Wk + bk, v = x Wv + bv      (B, S, H D) / (B, S, Hkv D)
//   seen as (B, H, S, D) / (B, Hkv, S, D) without copies; RoPE on q and k at positions p0 + s
//   with a cache: k, v appended; attention over every cached position, q_offset = p0
//   out (B, H, S, D) written straight into (B, S, H D) -> y = out Wo + bo        (B, S, out)
//
// Mods. The kernel's score mod is compose_score_mods(constructor's, call's) (either alone, or none);
// its mask mod and_masks(causal or the sliding window, the call's mask mod, the call's mask tensor)
// (those given). Every call builds these compositions anew, but they are keyed by signature: a
// composition the process has compiled before runs its compiled programs again
// (cpu_program_cache_stats() counts it; on CUDA the kernel cache's stats()).
//
// Positions are global: a call through a cache starts at the cache's length, and q_idx, kv_idx,
// RoPE and the call's mask tensor (indexed [b, h, q_idx, kv_idx], broadcast from the right) all use
// positions in the whole sequence. Prefill and token-by-token decoding therefore compute the same
// thing as one call over the whole sequence.
//
// Tensors are fp32 on the CPU. The GPU path (cuBLAS projections through nn/Linear.h, a RoPE kernel,
// a device cache) is designed in docs/nn.md; forward() on CUDA tensors says so.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "nn/KVCache.h"
#include "nn/Linear.h"
#include "nn/RotaryEmbedding.h"
#include "runtime/core/AttentionOptions.h"
#include "runtime/core/Mod.h"
#include "runtime/core/Tensor.h"

namespace attnc::nn {

// The built-in kernels, as attnax's AttentionType names them.
enum class AttentionKind {
  Standard,         // standard_attention: the materialised fp64 reference (exact, slow)
  MemoryEfficient,  // memory_efficient_attention with block_size
  Flash,            // attention(): the flash kernel of the tensors' device
  Linear,           // linear_attention (softmax-free: no mods; causal from the config)
  Ring,             // ring attention of ring_ranks ranks computed in this process (ring_attention_local)
  Paged,            // the paged kernel over a paged cache: arrives with the runtime's paged KV cache
};

const char* attention_kind_name(AttentionKind kind);  // "standard", "memory_efficient", ...
std::optional<AttentionKind> parse_attention_kind(std::string_view name);

// A kernel given by the caller: writes out (B, H, S, Dv) from q, k, v as attention() would, with
// the options the module composed (mods, q_offset). E.g. ring attention over MPI on the caller's
// shards (distributed/MpiRing.h).
using AttentionKernel = std::function<void(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out,
                                           const AttentionOptions& options)>;

struct MultiHeadAttentionConfig {
  int64_t num_heads = 1;
  int64_t in_features = 0;
  int64_t qkv_features = 0;  // H D; 0: in_features
  int64_t out_features = 0;  // 0: in_features
  int64_t num_kv_heads = 0;  // 0: num_heads (MHA); 1: MQA; between: GQA
  bool use_bias = true;

  AttentionKind kind = AttentionKind::Flash;
  AttentionKernel kernel;      // when set, used instead of `kind`
  int block_size = 512;        // MemoryEfficient
  int linear_chunk_size = 64;  // Linear
  int ring_ranks = 2;          // Ring

  std::optional<Mod> score_mod;  // applied on every call, fully bound
  bool causal = false;           // keys after the query are masked
  std::optional<int> window;     // a causal sliding window of this many keys (implies causal)

  bool use_rope = false;
  double rope_base = 10000.0;
  int64_t rope_max_positions = 8192;
};

// The layer's parameters, in flax's layout: w* (in, out), b* (out). Biases are undefined when
// config.use_bias is false.
struct MultiHeadAttentionWeights {
  Tensor wq, bq, wk, bk, wv, bv, wo, bo;

  // Reads {prefix}wq.npy, {prefix}bq.npy, ... from `directory` (biases only when use_bias);
  // RuntimeError naming a missing or malformed file (runtime/core/Npy.h).
  static MultiHeadAttentionWeights load_npy(const std::string& directory, const std::string& prefix = "",
                                            bool use_bias = true);
  // Writes the defined tensors under the same names.
  void save_npy(const std::string& directory, const std::string& prefix = "") const;
};

// What one call adds to the constructor's configuration.
struct AttentionCall {
  const Mod* score_mod = nullptr;  // composed after the constructor's
  const Mod* mask_mod = nullptr;   // anded with causal / the window
  Tensor mask;                     // a boolean mask tensor (runtime/core/Mods.h, mask_tensor_mod), anded
};

class MultiHeadAttention {
 public:
  // RuntimeError when the sizes do not fit together (qkv_features a multiple of num_heads,
  // num_kv_heads dividing num_heads, an even head dim with RoPE), the weights do not have the
  // config's shapes, or a mod is not fully bound or of the wrong kind.
  MultiHeadAttention(MultiHeadAttentionConfig config, const MultiHeadAttentionWeights& weights);

  const MultiHeadAttentionConfig& config() const { return config_; }
  int64_t head_dim() const { return head_dim_; }

  // x (B, S, in_features) fp32 on the CPU -> (B, S, out_features). With `cache`, x's tokens follow
  // the cached ones (positions cache->length() + s): their keys and values are appended and they
  // attend to every cached position. RuntimeError for bad shapes, a full cache, or a kind that
  // cannot run the call (Linear with mods; Linear decoding more than one token after a prefill;
  // Paged).
  Tensor forward(const Tensor& x, const AttentionCall& call = {}, KVCache* cache = nullptr) const;

  // A contiguous cache for this layer's keys and values.
  ContiguousKVCache make_cache(int64_t batch, int64_t capacity) const;

 private:
  void run_kernel(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out, const AttentionCall& call,
                  int64_t start) const;

  MultiHeadAttentionConfig config_;
  int64_t head_dim_ = 0;
  Linear q_proj_, k_proj_, v_proj_, out_proj_;
  std::optional<RotaryEmbedding> rope_;
  std::optional<Mod> base_mask_;  // causal or the sliding window
};

}  // namespace attnc::nn
