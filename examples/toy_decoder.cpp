// A 2-layer toy decoder run step by step with attnc's MultiHeadAttention (nn/MultiHeadAttention.h):
// random weights (written to .npy files and read back, as real weights would be), a prompt
// prefilled through each layer's KV cache, then greedy decoding one token at a time. At the end it
// recomputes the whole sequence in one call per layer, without caches, and checks that every
// step's logits are the same: decoding through the cache must not change the result.
//
//   toy_decoder [--kind flash|standard|memory_efficient|linear|ring] [--steps N]
//
// Each layer: h = x + attention(x) (GQA, RoPE, causal); y = h + W2 relu(W1 h). Exit status 0 when
// decoding agrees with the whole-sequence computation, 1 when not, 2 for bad arguments.

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "nn/MultiHeadAttention.h"
#include "runtime/core/RuntimeError.h"

using namespace attnc;
using namespace attnc::nn;

namespace {

constexpr int64_t kVocab = 40, kModel = 32, kHeads = 4, kKvHeads = 2, kHidden = 64, kLayers = 2;

Tensor random_tensor(std::mt19937& rng, std::vector<int64_t> shape, float scale) {
  std::uniform_real_distribution<float> uniform(-scale, scale);
  int64_t n = 1;
  for (int64_t extent : shape) n *= extent;
  std::vector<float> values(static_cast<size_t>(n));
  for (float& x : values) x = uniform(rng);
  return Tensor::from_vector(values, std::move(shape));
}

struct Layer {
  MultiHeadAttention attention;
  Linear up, down;

  // x (1, S, kModel) -> (1, S, kModel); `cache` null for the whole-sequence computation.
  Tensor forward(const Tensor& x, KVCache* cache) const {
    const Tensor a = attention.forward(x, {}, cache);
    Tensor h = Tensor::empty(DType::F32, x.shape());
    auto* hd = static_cast<float*>(h.data());
    const auto* xd = static_cast<const float*>(x.data());
    const auto* ad = static_cast<const float*>(a.data());
    for (int64_t i = 0; i < x.numel(); ++i) hd[i] = xd[i] + ad[i];
    Tensor hidden = up.forward(h);
    for (int64_t i = 0; i < hidden.numel(); ++i) {
      float& value = static_cast<float*>(hidden.data())[i];
      value = std::max(value, 0.0f);
    }
    const Tensor m = down.forward(hidden);
    const auto* md = static_cast<const float*>(m.data());
    for (int64_t i = 0; i < h.numel(); ++i) hd[i] += md[i];
    return h;
  }
};

struct Model {
  Tensor embedding;  // (kVocab, kModel)
  std::vector<Layer> layers;
  Linear head;  // (kModel, kVocab)

  // Token ids -> logits (1, S, kVocab), through the caches when given.
  Tensor forward(const std::vector<int>& tokens, std::vector<ContiguousKVCache>* caches) const {
    const auto length = static_cast<int64_t>(tokens.size());
    Tensor x = Tensor::empty(DType::F32, {1, length, kModel});
    for (int64_t s = 0; s < length; ++s) {
      for (int64_t e = 0; e < kModel; ++e) x.set_float({0, s, e}, embedding.get_float({tokens[size_t(s)], e}));
    }
    for (size_t l = 0; l < layers.size(); ++l) x = layers[l].forward(x, caches ? &(*caches)[l] : nullptr);
    return head.forward(x);
  }
};

int argmax_last(const Tensor& logits) {
  const int64_t last = logits.size(1) - 1;
  int best = 0;
  for (int v = 1; v < kVocab; ++v) {
    if (logits.get_float({0, last, v}) > logits.get_float({0, last, best})) best = v;
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  AttentionKind kind = AttentionKind::Flash;
  int steps = 12;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--kind" && i + 1 < argc) {
      const auto parsed = parse_attention_kind(argv[++i]);
      if (!parsed) {
        std::fprintf(stderr, "toy_decoder: unknown kind '%s'\n", argv[i]);
        return 2;
      }
      kind = *parsed;
    } else if (arg == "--steps" && i + 1 < argc) {
      steps = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: toy_decoder [--kind flash|standard|memory_efficient|linear|ring] [--steps N]\n");
      return 2;
    }
  }
  try {
    std::mt19937 rng(2024);
    const std::filesystem::path dir =
        std::filesystem::temp_directory_path() / ("attnc-toy-decoder-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    Model model{random_tensor(rng, {kVocab, kModel}, 1.0f), {}, Linear(random_tensor(rng, {kModel, kVocab}, 0.3f))};
    for (int64_t l = 0; l < kLayers; ++l) {
      const float scale = 1.0f / std::sqrt(float(kModel));
      MultiHeadAttentionWeights weights;
      weights.wq = random_tensor(rng, {kModel, kModel}, scale);
      weights.bq = random_tensor(rng, {kModel}, 0.1f);
      weights.wk = random_tensor(rng, {kModel, kKvHeads * kModel / kHeads}, scale);
      weights.bk = random_tensor(rng, {kKvHeads * kModel / kHeads}, 0.1f);
      weights.wv = random_tensor(rng, {kModel, kKvHeads * kModel / kHeads}, scale);
      weights.bv = random_tensor(rng, {kKvHeads * kModel / kHeads}, 0.1f);
      weights.wo = random_tensor(rng, {kModel, kModel}, scale);
      weights.bo = random_tensor(rng, {kModel}, 0.1f);
      const std::string prefix = "layer" + std::to_string(l) + ".";
      weights.save_npy(dir.string(), prefix);

      MultiHeadAttentionConfig config;
      config.num_heads = kHeads;
      config.num_kv_heads = kKvHeads;
      config.in_features = kModel;
      config.kind = kind;
      config.block_size = 8;
      config.ring_ranks = 3;
      config.causal = true;
      config.use_rope = true;
      config.rope_max_positions = 256;
      model.layers.push_back(
          Layer{MultiHeadAttention(config, MultiHeadAttentionWeights::load_npy(dir.string(), prefix)),
                Linear(random_tensor(rng, {kModel, kHidden}, 0.2f), random_tensor(rng, {kHidden}, 0.1f)),
                Linear(random_tensor(rng, {kHidden, kModel}, 0.2f), random_tensor(rng, {kModel}, 0.1f))});
    }
    std::filesystem::remove_all(dir);

    // Prefill the prompt, then decode one token per step through the caches.
    std::vector<int> tokens = {1, 7, 3, 12, 5};
    const int64_t capacity = static_cast<int64_t>(tokens.size()) + steps;
    std::vector<ContiguousKVCache> caches;
    for (const Layer& layer : model.layers) caches.push_back(layer.attention.make_cache(1, capacity));
    std::vector<Tensor> step_logits{model.forward(tokens, &caches)};
    for (int step = 0; step < steps; ++step) {
      tokens.push_back(argmax_last(step_logits.back()));
      step_logits.push_back(model.forward({tokens.back()}, &caches));
    }

    // The whole sequence at once, without caches: every position's logits must agree.
    const Tensor whole = model.forward(tokens, nullptr);
    double worst = 0, scale = 0;
    int64_t position = 0;
    for (const Tensor& part : step_logits) {
      for (int64_t s = 0; s < part.size(1); ++s, ++position) {
        for (int64_t v = 0; v < kVocab; ++v) {
          worst = std::max(worst, double(std::fabs(part.get_float({0, s, v}) - whole.get_float({0, position, v}))));
          scale = std::max(scale, double(std::fabs(whole.get_float({0, position, v}))));
        }
      }
    }
    std::printf("toy_decoder: %lld layers, %s attention, %d decoding steps\n", static_cast<long long>(kLayers),
                attention_kind_name(kind), steps);
    std::printf("tokens:");
    for (int t : tokens) std::printf(" %d", t);
    std::printf("\nlargest difference between step-by-step and whole-sequence logits: %.3g (logits up to %.3g)\n",
                worst, scale);
    if (!(worst <= 1e-4 * std::max(scale, 1.0))) {
      std::fprintf(stderr, "toy_decoder: decoding through the cache changed the logits\n");
      return 1;
    }
    return 0;
  } catch (const RuntimeError& e) {
    std::fprintf(stderr, "toy_decoder: %s\n", e.what());
    return 1;
  }
}
