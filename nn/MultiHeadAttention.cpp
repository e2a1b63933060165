#include "nn/MultiHeadAttention.h"

#include <limits>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "distributed/RingAttention.h"
#include "runtime/Attention.h"
#include "runtime/core/Mods.h"
#include "runtime/core/Npy.h"
#include "runtime/core/RuntimeError.h"
#include "runtime/families/memory_efficient/MemoryEfficientCpu.h"
#include "runtime/reference/ReferenceAttention.h"

namespace attnc::nn {

namespace {

constexpr const char* kModule = "MultiHeadAttention";

struct KindName {
  AttentionKind kind;
  const char* name;
};
constexpr KindName kKindNames[] = {
    {AttentionKind::Standard, "standard"}, {AttentionKind::MemoryEfficient, "memory_efficient"},
    {AttentionKind::Flash, "flash"},       {AttentionKind::Linear, "linear"},
    {AttentionKind::Ring, "ring"},         {AttentionKind::Paged, "paged"},
};

MultiHeadAttentionConfig resolved(MultiHeadAttentionConfig config) {
  if (config.qkv_features == 0) config.qkv_features = config.in_features;
  if (config.out_features == 0) config.out_features = config.in_features;
  if (config.num_kv_heads == 0) config.num_kv_heads = config.num_heads;
  if (config.window) config.causal = true;
  return config;
}

// (B, S, heads * D) memory seen as (B, heads, S, D), without a copy.
Tensor heads_view(const Tensor& t, int64_t heads, int64_t head_dim) {
  const int64_t batch = t.size(0), length = t.size(1), row = heads * head_dim;
  std::shared_ptr<Tensor> keep = std::make_shared<Tensor>(t);
  return Tensor::from_storage(std::shared_ptr<void>(keep, t.data()), t.data(), t.dtype(),
                              {batch, heads, length, head_dim}, {length * row, head_dim, row, 1}, t.device());
}

void require_shape(const Tensor& t, const std::vector<int64_t>& shape, const char* name) {
  if (!t.defined() || t.shape() != shape) {
    throw RuntimeError(fmt::format("{}: {} must have shape {}, got {}", kModule, name, shape_to_string(shape),
                                   t.defined() ? t.describe() : "an undefined tensor"));
  }
}

std::string npy_path(const std::string& directory, const std::string& prefix, const char* name) {
  return fmt::format("{}/{}{}.npy", directory, prefix, name);
}

}  // namespace

const char* attention_kind_name(AttentionKind kind) {
  for (const KindName& k : kKindNames) {
    if (k.kind == kind) return k.name;
  }
  return "?";
}

std::optional<AttentionKind> parse_attention_kind(std::string_view name) {
  for (const KindName& k : kKindNames) {
    if (name == k.name) return k.kind;
  }
  return std::nullopt;
}

MultiHeadAttentionWeights MultiHeadAttentionWeights::load_npy(const std::string& directory, const std::string& prefix,
                                                              bool use_bias) {
  MultiHeadAttentionWeights w;
  w.wq = read_npy(npy_path(directory, prefix, "wq"));
  w.wk = read_npy(npy_path(directory, prefix, "wk"));
  w.wv = read_npy(npy_path(directory, prefix, "wv"));
  w.wo = read_npy(npy_path(directory, prefix, "wo"));
  if (use_bias) {
    w.bq = read_npy(npy_path(directory, prefix, "bq"));
    w.bk = read_npy(npy_path(directory, prefix, "bk"));
    w.bv = read_npy(npy_path(directory, prefix, "bv"));
    w.bo = read_npy(npy_path(directory, prefix, "bo"));
  }
  return w;
}

void MultiHeadAttentionWeights::save_npy(const std::string& directory, const std::string& prefix) const {
  const std::pair<const char*, const Tensor*> named[] = {{"wq", &wq}, {"bq", &bq}, {"wk", &wk}, {"bk", &bk},
                                                         {"wv", &wv}, {"bv", &bv}, {"wo", &wo}, {"bo", &bo}};
  for (const auto& [name, tensor] : named) {
    if (tensor->defined()) write_npy(npy_path(directory, prefix, name), *tensor);
  }
}

MultiHeadAttention::MultiHeadAttention(MultiHeadAttentionConfig config, const MultiHeadAttentionWeights& weights)
    : config_(resolved(std::move(config))),
      q_proj_(weights.wq, weights.bq),
      k_proj_(weights.wk, weights.bk),
      v_proj_(weights.wv, weights.bv),
      out_proj_(weights.wo, weights.bo) {
  const MultiHeadAttentionConfig& c = config_;
  if (c.num_heads < 1 || c.in_features < 1 || c.qkv_features % c.num_heads != 0) {
    throw RuntimeError(fmt::format("{}: qkv_features ({}) must be a positive multiple of num_heads ({})", kModule,
                                   c.qkv_features, c.num_heads));
  }
  if (c.num_kv_heads < 1 || c.num_kv_heads > c.num_heads || c.num_heads % c.num_kv_heads != 0) {
    throw RuntimeError(
        fmt::format("{}: num_kv_heads ({}) must divide num_heads ({})", kModule, c.num_kv_heads, c.num_heads));
  }
  head_dim_ = c.qkv_features / c.num_heads;
  const int64_t kv_features = c.num_kv_heads * head_dim_;
  require_shape(q_proj_.weight(), {c.in_features, c.qkv_features}, "wq");
  require_shape(k_proj_.weight(), {c.in_features, kv_features}, "wk");
  require_shape(v_proj_.weight(), {c.in_features, kv_features}, "wv");
  require_shape(out_proj_.weight(), {c.qkv_features, c.out_features}, "wo");
  if (c.use_bias) {
    require_shape(q_proj_.bias(), {c.qkv_features}, "bq");
    require_shape(k_proj_.bias(), {kv_features}, "bk");
    require_shape(v_proj_.bias(), {kv_features}, "bv");
    require_shape(out_proj_.bias(), {c.out_features}, "bo");
  } else if (q_proj_.bias().defined() || k_proj_.bias().defined() || v_proj_.bias().defined() ||
             out_proj_.bias().defined()) {
    throw RuntimeError(fmt::format("{}: use_bias is false but biases were given", kModule));
  }
  if (c.use_rope) rope_.emplace(head_dim_, c.rope_max_positions, c.rope_base);
  if (c.window) {
    base_mask_.emplace(sliding_window_mod(*c.window, true));
  } else if (c.causal) {
    base_mask_.emplace(causal_mod());
  }
  if (c.score_mod && (c.score_mod->kind() != dsl::ModKind::Score || !c.score_mod->fully_bound())) {
    throw RuntimeError(fmt::format("{}: the constructor's score mod must be a fully bound score mod: {}", kModule,
                                   c.score_mod->describe()));
  }
}

ContiguousKVCache MultiHeadAttention::make_cache(int64_t batch, int64_t capacity) const {
  return ContiguousKVCache(batch, config_.num_kv_heads, capacity, head_dim_, head_dim_);
}

Tensor MultiHeadAttention::forward(const Tensor& x, const AttentionCall& call, KVCache* cache) const {
  const MultiHeadAttentionConfig& c = config_;
  if (x.defined() && x.device() == Device::Cuda) {
    throw RuntimeError(
        fmt::format("{}: runs on CPU tensors; the GPU path (cuBLAS projections, a RoPE kernel, a "
                    "device cache) is designed in docs/nn.md but not built yet",
                    kModule));
  }
  if (!x.defined() || x.rank() != 3 || x.dtype() != DType::F32 || x.size(2) != c.in_features) {
    throw RuntimeError(fmt::format("{}: x must be fp32 (B, S, {}), got {}", kModule, c.in_features,
                                   x.defined() ? x.describe() : "an undefined tensor"));
  }
  const int64_t batch = x.size(0), length = x.size(1);
  const int64_t start = cache ? cache->length() : 0;
  const Tensor q = heads_view(q_proj_.forward(x), c.num_heads, head_dim_);
  const Tensor k_new = heads_view(k_proj_.forward(x), c.num_kv_heads, head_dim_);
  const Tensor v_new = heads_view(v_proj_.forward(x), c.num_kv_heads, head_dim_);
  if (rope_) {
    rope_->apply(q, start);
    rope_->apply(k_new, start);
  }
  Tensor k = k_new, v = v_new;
  if (cache) {
    cache->append(k_new, v_new);
    k = cache->keys();
    v = cache->values();
  }
  // The kernel writes (B, H, S, D) straight into the (B, S, H D) rows the output projection reads.
  const Tensor merged = Tensor::empty(DType::F32, {batch, length, c.qkv_features});
  Tensor out = heads_view(merged, c.num_heads, head_dim_);
  run_kernel(q, k, v, out, call, start);
  return out_proj_.forward(merged);
}

void MultiHeadAttention::run_kernel(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out,
                                    const AttentionCall& call, int64_t start) const {
  const MultiHeadAttentionConfig& c = config_;
  if (start > std::numeric_limits<int32_t>::max()) {
    throw RuntimeError(fmt::format("{}: position {} is past the int range of mod indices", kModule, start));
  }
  if (!c.kernel && c.kind == AttentionKind::Linear) {
    if (c.score_mod || call.score_mod || call.mask_mod || c.window) {
      throw RuntimeError(
          fmt::format("{}: linear attention is softmax-free and takes no score mod, mask mod or "
                      "window (a key-padding mask goes in AttentionCall::mask)",
                      kModule));
    }
    LinearAttentionOptions linear;
    linear.causal = c.causal;
    linear.chunk_size = c.linear_chunk_size;
    linear.mask = call.mask;
    if (c.causal && start > 0) {
      // One new token after the cache sees every cached key and itself: causal is all of them.
      if (q.size(2) != 1) {
        throw RuntimeError(fmt::format(
            "{}: causal linear attention decodes one token at a time after a prefill, not {}", kModule, q.size(2)));
      }
      linear.causal = false;
    }
    linear_attention(q, k, v, out, linear);
    return;
  }

  // The call's compositions: each distinct one is compiled once per process, by signature.
  std::vector<Mod> scores, masks;
  if (c.score_mod) scores.push_back(*c.score_mod);
  if (call.score_mod) scores.push_back(*call.score_mod);
  if (base_mask_) masks.push_back(*base_mask_);
  if (call.mask_mod) masks.push_back(*call.mask_mod);
  if (call.mask.defined()) masks.push_back(mask_tensor_mod(call.mask));
  const std::optional<Mod> score = scores.empty() ? std::nullopt : std::optional<Mod>(compose_score_mods(scores));
  const std::optional<Mod> mask = masks.empty() ? std::nullopt : std::optional<Mod>(and_masks(masks));
  AttentionOptions options;
  options.score_mod = score ? &*score : nullptr;
  options.mask_mod = mask ? &*mask : nullptr;
  options.q_offset = static_cast<int32_t>(start);

  if (c.kernel) {
    c.kernel(q, k, v, out, options);
    return;
  }
  switch (c.kind) {
    case AttentionKind::Standard: standard_attention(q, k, v, out, options); return;
    case AttentionKind::MemoryEfficient: {
      BlockwiseOptions blockwise;
      blockwise.block_size = c.block_size;
      memory_efficient_attention(q, k, v, out, options, blockwise);
      return;
    }
    case AttentionKind::Flash: attention(q, k, v, out, options); return;
    case AttentionKind::Ring: distributed::ring_attention_local(q, k, v, out, c.ring_ranks, options); return;
    case AttentionKind::Paged:
      throw RuntimeError(
          fmt::format("{}: the paged kernel arrives with the runtime's paged KV cache; use the flash "
                      "kind with a ContiguousKVCache meanwhile",
                      kModule));
    case AttentionKind::Linear: break;  // handled above
  }
}

}  // namespace attnc::nn
