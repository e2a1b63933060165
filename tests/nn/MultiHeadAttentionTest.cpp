// MultiHeadAttention (nn/MultiHeadAttention.h) against a float64 reference of the same layer written
// out here (projections, RoPE from its formula, attention with the mods evaluated by the
// interpreter, output projection, all in double); prefill plus token-by-token decoding through the
// cache against one call over the whole sequence; per-call mod compositions against the CPU
// program cache's counters.
//
// Tolerances: the layer computes in fp32 (OpenBLAS projections, a fp32 RoPE table, fp32 kernels):
// ||y - reference|| / ||reference|| <= kTol. Decoding and the whole-sequence call sum in other
// orders: the same tolerance between them.

#include "nn/MultiHeadAttention.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include "compiler/Interpreter.h"
#include "runtime/Attention.h"
#include "runtime/core/Mods.h"
#include "runtime/core/RuntimeError.h"
#include "runtime/cpu/CpuModProgram.h"
#include "runtime/reference/LinearReference.h"
#include "tests/support/AttentionComparison.h"
#include "tests/support/TestTensors.h"

using namespace attnc;
using namespace attnc::nn;

namespace {

constexpr double kTol = 1e-5;

struct Sizes {
  int64_t heads = 4, kv_heads = 2, in = 24, head_dim = 8, out = 20;
};

MultiHeadAttentionWeights random_weights(const Sizes& s, uint32_t seed, bool bias = true) {
  const float scale = 1.0f / std::sqrt(float(s.in));
  MultiHeadAttentionWeights w;
  w.wq = test::uniform_tensor(seed, DType::F32, {s.in, s.heads * s.head_dim}, -scale, scale);
  w.wk = test::uniform_tensor(seed + 1, DType::F32, {s.in, s.kv_heads * s.head_dim}, -scale, scale);
  w.wv = test::uniform_tensor(seed + 2, DType::F32, {s.in, s.kv_heads * s.head_dim}, -scale, scale);
  w.wo = test::uniform_tensor(seed + 3, DType::F32, {s.heads * s.head_dim, s.out}, -scale, scale);
  if (bias) {
    w.bq = test::uniform_tensor(seed + 4, DType::F32, {s.heads * s.head_dim}, -0.1f, 0.1f);
    w.bk = test::uniform_tensor(seed + 5, DType::F32, {s.kv_heads * s.head_dim}, -0.1f, 0.1f);
    w.bv = test::uniform_tensor(seed + 6, DType::F32, {s.kv_heads * s.head_dim}, -0.1f, 0.1f);
    w.bo = test::uniform_tensor(seed + 7, DType::F32, {s.out}, -0.1f, 0.1f);
  }
  return w;
}

MultiHeadAttentionConfig config_for(const Sizes& s) {
  MultiHeadAttentionConfig c;
  c.num_heads = s.heads;
  c.num_kv_heads = s.kv_heads;
  c.in_features = s.in;
  c.qkv_features = s.heads * s.head_dim;
  c.out_features = s.out;
  return c;
}

// y[b, s, :] = x[b, s, :] W + bias, in double.
std::vector<double> project(const Tensor& x, const Tensor& w, const Tensor& bias) {
  const int64_t B = x.size(0), S = x.size(1), in = w.size(0), out = w.size(1);
  std::vector<double> y(size_t(B * S * out));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t s = 0; s < S; ++s)
      for (int64_t o = 0; o < out; ++o) {
        double sum = bias.defined() ? bias.get_float({o}) : 0.0;
        for (int64_t e = 0; e < in; ++e) sum += double(x.get_float({b, s, e})) * w.get_float({e, o});
        y[size_t((b * S + s) * out + o)] = sum;
      }
  return y;
}

// RoPE in double on rows laid out (B, S, heads, D).
void rope(std::vector<double>& t, int64_t B, int64_t S, int64_t heads, int64_t D, double base) {
  const int64_t half = D / 2;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t s = 0; s < S; ++s)
      for (int64_t h = 0; h < heads; ++h)
        for (int64_t i = 0; i < half; ++i) {
          double* row = t.data() + ((b * S + s) * heads + h) * D;
          const double angle = double(s) * std::pow(base, -double(i) / double(half));
          const double x1 = row[i], x2 = row[i + half];
          row[i] = x1 * std::cos(angle) - x2 * std::sin(angle);
          row[i + half] = x1 * std::sin(angle) + x2 * std::cos(angle);
        }
}

// The layer in double: the mods are evaluated by the interpreter (their meaning), everything else
// from the formulas.
Tensor reference_layer(const MultiHeadAttentionConfig& config, const MultiHeadAttentionWeights& w, const Tensor& x,
                       const Mod* score_mod, const Mod* mask_mod) {
  const int64_t B = x.size(0), S = x.size(1), H = config.num_heads, Hkv = config.num_kv_heads;
  const int64_t D = config.qkv_features / H, group = H / Hkv;
  std::vector<double> q = project(x, w.wq, w.bq), k = project(x, w.wk, w.bk), v = project(x, w.wv, w.bv);
  if (config.use_rope) {
    rope(q, B, S, H, D, config.rope_base);
    rope(k, B, S, Hkv, D, config.rope_base);
  }
  std::vector<float> merged(size_t(B * S * H * D), 0.0f);
  std::optional<ir::CompiledExpr> score_expr, mask_expr;
  std::optional<ir::Environment> score_env, mask_env;
  if (score_mod)
    score_expr.emplace(score_mod->def().body),
        score_env.emplace(score_mod->environment(int32_t(S), int32_t(S), int32_t(H), int32_t(Hkv)));
  if (mask_mod)
    mask_expr.emplace(mask_mod->def().body),
        mask_env.emplace(mask_mod->environment(int32_t(S), int32_t(S), int32_t(H), int32_t(Hkv)));
  std::vector<double> scores(static_cast<size_t>(S));
  std::vector<bool> kept(static_cast<size_t>(S));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < S; ++i) {
        double max_score = -INFINITY;
        for (int64_t j = 0; j < S; ++j) {
          double dot = 0;
          for (int64_t d = 0; d < D; ++d) {
            dot += q[size_t(((b * S + i) * H + h) * D + d)] * k[size_t(((b * S + j) * Hkv + h / group) * D + d)];
          }
          float s = float(dot / std::sqrt(double(D)));
          if (score_mod) {
            score_env->set_point(int32_t(b), int32_t(h), int32_t(i), int32_t(j), s);
            s = score_expr->evaluate(*score_env).f;
          }
          bool keep = true;
          if (mask_mod) {
            mask_env->set_point(int32_t(b), int32_t(h), int32_t(i), int32_t(j));
            keep = mask_expr->evaluate(*mask_env).as_bool();
          }
          kept[size_t(j)] = keep;
          scores[size_t(j)] = s;
          if (keep) max_score = std::max(max_score, double(s));
        }
        if (max_score == -INFINITY) continue;  // nothing to attend to: zeros
        double sum = 0;
        std::vector<double> row(size_t(D), 0.0);
        for (int64_t j = 0; j < S; ++j) {
          if (!kept[size_t(j)]) continue;
          const double p = std::exp(scores[size_t(j)] - max_score);
          sum += p;
          for (int64_t d = 0; d < D; ++d) row[size_t(d)] += p * v[size_t(((b * S + j) * Hkv + h / group) * D + d)];
        }
        for (int64_t d = 0; d < D; ++d) merged[size_t(((b * S + i) * H + h) * D + d)] = float(row[size_t(d)] / sum);
      }
  const std::vector<double> y =
      project(Tensor::from_vector(merged, {B, S, H * D}), w.wo, w.bo);  // the merged heads in fp32 are exact enough
  std::vector<float> yf(y.begin(), y.end());
  return Tensor::from_vector(yf, {B, S, config.out_features});
}

}  // namespace

TEST_CASE("multi-head attention equals a float64 reference of the layer", "[nn][mha]") {
  const auto [name, heads, kv_heads] =
      GENERATE(table<const char*, int64_t, int64_t>({{"MHA", 4, 4}, {"GQA", 4, 2}, {"MQA", 4, 1}}));
  const AttentionKind kind =
      GENERATE(AttentionKind::Flash, AttentionKind::Standard, AttentionKind::MemoryEfficient, AttentionKind::Ring);
  CAPTURE(name, attention_kind_name(kind));
  Sizes sizes;
  sizes.heads = heads;
  sizes.kv_heads = kv_heads;
  const MultiHeadAttentionWeights weights = random_weights(sizes, 10);
  MultiHeadAttentionConfig config = config_for(sizes);
  config.kind = kind;
  config.block_size = 8;
  config.ring_ranks = 3;
  const Tensor x = test::uniform_tensor(20, DType::F32, {2, 29, sizes.in});

  SECTION("plain") {
    const MultiHeadAttention layer(config, weights);
    CHECK(attnc_test::relative_error(layer.forward(x), reference_layer(layer.config(), weights, x, nullptr, nullptr)) <=
          kTol);
  }
  SECTION("RoPE, a causal window, the constructor's ALiBi composed with a per-call soft-cap, a mask tensor") {
    config.use_rope = true;
    config.window = 6;
    config.score_mod = alibi_mod(int(heads));
    const MultiHeadAttention layer(config, weights);
    const Mod softcap = softcap_mod(2.0f);
    std::vector<int32_t> pad(2 * 29, 1);
    for (int j = 20; j < 29; ++j) pad[size_t(29 + j)] = 0;  // batch 1 pads its last 9 keys
    AttentionCall call;
    call.score_mod = &softcap;
    call.mask = Tensor::from_vector(pad, {2, 1, 1, 29}, DType::Bool);
    const Mod score = compose_score_mods({*config.score_mod, softcap});
    const Mod mask = and_masks({sliding_window_mod(6, true), mask_tensor_mod(call.mask)});
    CHECK(attnc_test::relative_error(layer.forward(x, call),
                                     reference_layer(layer.config(), weights, x, &score, &mask)) <= kTol);
  }
}

TEST_CASE("a caller's kernel replaces the kind, and linear attention runs the linear kernel", "[nn][mha]") {
  const Sizes sizes;
  const MultiHeadAttentionWeights weights = random_weights(sizes, 30);
  MultiHeadAttentionConfig config = config_for(sizes);
  config.causal = true;
  const Tensor x = test::uniform_tensor(31, DType::F32, {1, 21, sizes.in});
  int calls = 0;
  config.kernel = [&](const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out, const AttentionOptions& options) {
    ++calls;
    CHECK(options.mask_mod != nullptr);  // the causal mask the module composed
    LinearAttentionOptions linear;
    linear_attention_reference(q, k, v, out, linear);
  };
  const Tensor by_kernel = MultiHeadAttention(config, weights).forward(x);
  CHECK(calls == 1);
  config.kernel = nullptr;
  config.kind = AttentionKind::Linear;
  config.linear_chunk_size = 5;
  CHECK(attnc_test::relative_error(MultiHeadAttention(config, weights).forward(x), by_kernel) <= kTol);
}

TEST_CASE("decoding token by token through the KV cache equals one call over the sequence", "[nn][mha][decode]") {
  const AttentionKind kind =
      GENERATE(AttentionKind::Flash, AttentionKind::MemoryEfficient, AttentionKind::Ring, AttentionKind::Linear);
  CAPTURE(attention_kind_name(kind));
  const Sizes sizes;
  const MultiHeadAttentionWeights weights = random_weights(sizes, 40);
  MultiHeadAttentionConfig config = config_for(sizes);
  config.kind = kind;
  config.block_size = 16;
  config.use_rope = true;
  config.causal = true;
  if (kind != AttentionKind::Linear) {
    config.window = 24;
    config.score_mod = alibi_mod(int(sizes.heads));
  }
  const MultiHeadAttention layer(config, weights);
  const int64_t prompt = 16, steps = 64, total = prompt + steps;
  const Tensor x = test::uniform_tensor(41, DType::F32, {2, total, sizes.in});
  const Tensor whole = layer.forward(x);

  ContiguousKVCache cache = layer.make_cache(2, total);
  auto rows = [&](int64_t first, int64_t count) {  // x[:, first:first+count, :], contiguous
    Tensor part = Tensor::empty(DType::F32, {2, count, sizes.in});
    for (int64_t b = 0; b < 2; ++b)
      for (int64_t s = 0; s < count; ++s)
        for (int64_t e = 0; e < sizes.in; ++e) part.set_float({b, s, e}, x.get_float({b, first + s, e}));
    return part;
  };
  Tensor decoded = Tensor::empty(DType::F32, {2, total, sizes.out});
  auto keep = [&](const Tensor& y, int64_t first) {
    for (int64_t b = 0; b < 2; ++b)
      for (int64_t s = 0; s < y.size(1); ++s)
        for (int64_t o = 0; o < sizes.out; ++o) decoded.set_float({b, first + s, o}, y.get_float({b, s, o}));
  };
  keep(layer.forward(rows(0, prompt), {}, &cache), 0);
  for (int64_t t = prompt; t < total; ++t) keep(layer.forward(rows(t, 1), {}, &cache), t);
  CHECK(cache.length() == total);
  CHECK(attnc_test::relative_error(decoded, whole) <= kTol);
}

TEST_CASE("per-call mod compositions compile once per signature", "[nn][mha][cache]") {
  const Sizes sizes;
  MultiHeadAttentionConfig config = config_for(sizes);
  config.causal = true;
  // A constructor mod no other test composes, so this test's first call compiles.
  config.score_mod = compose_score_mods({alibi_mod(int(sizes.heads)), softcap_mod(11.0f), softcap_mod(13.0f)});
  const MultiHeadAttention layer(config, random_weights(sizes, 50));
  const Tensor x = test::uniform_tensor(51, DType::F32, {1, 70, sizes.in});

  auto compiles_during = [&](const std::function<void()>& run) {
    const CpuProgramCacheStats before = cpu_program_cache_stats();
    run();
    return cpu_program_cache_stats().compiles - before.compiles;
  };
  const Mod cap_a = softcap_mod(3.0f), cap_b = softcap_mod(30.0f), window = sliding_window_mod(9, true);
  AttentionCall with_cap;
  with_cap.score_mod = &cap_a;
  CHECK(compiles_during([&] { layer.forward(x, with_cap); }) >= 1);  // the new composition
  with_cap.score_mod = &cap_b;
  CHECK(compiles_during([&] { layer.forward(x, with_cap); }) == 0);  // another cap: same signature
  CHECK(compiles_during([&] { layer.forward(x, with_cap); }) == 0);
  AttentionCall with_window = with_cap;
  with_window.mask_mod = &window;
  CHECK(compiles_during([&] { layer.forward(x, with_window); }) == 1);  // causal && window: a new mask
  CHECK(compiles_during([&] { layer.forward(x, with_window); }) == 0);
}

TEST_CASE("weights round-trip through .npy files", "[nn][mha]") {
  const Sizes sizes;
  const MultiHeadAttentionWeights weights = random_weights(sizes, 60);
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("attnc-nn-weights-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  weights.save_npy(dir.string(), "layer0.");
  const MultiHeadAttentionWeights loaded = MultiHeadAttentionWeights::load_npy(dir.string(), "layer0.");
  const Tensor x = test::uniform_tensor(61, DType::F32, {1, 9, sizes.in});
  CHECK(attnc_test::relative_error(MultiHeadAttention(config_for(sizes), loaded).forward(x),
                                   MultiHeadAttention(config_for(sizes), weights).forward(x)) == 0.0);
  CHECK_THROWS_AS(MultiHeadAttentionWeights::load_npy(dir.string(), "layer1."), RuntimeError);
  std::filesystem::remove_all(dir);
}

TEST_CASE("multi-head attention refuses what it cannot run", "[nn][mha]") {
  const Sizes sizes;
  const MultiHeadAttentionWeights weights = random_weights(sizes, 70);
  MultiHeadAttentionConfig config = config_for(sizes);
  config.num_kv_heads = 3;
  CHECK_THROWS_WITH(MultiHeadAttention(config, weights), Catch::Contains("num_kv_heads (3) must divide num_heads (4)"));
  config = config_for(sizes);
  config.out_features = 7;
  CHECK_THROWS_WITH(MultiHeadAttention(config, weights), Catch::Contains("wo must have shape [32, 7]"));
  config = config_for(sizes);
  config.kind = AttentionKind::Paged;
  const Tensor x = test::uniform_tensor(71, DType::F32, {1, 3, sizes.in});
  CHECK_THROWS_WITH(MultiHeadAttention(config, weights).forward(x), Catch::Contains("paged kernel arrives"));
  config.kind = AttentionKind::Linear;
  config.score_mod = softcap_mod(2.0f);
  CHECK_THROWS_WITH(MultiHeadAttention(config, weights).forward(x), Catch::Contains("softmax-free"));
  config = config_for(sizes);
  config.use_rope = true;
  config.rope_max_positions = 2;
  CHECK_THROWS_WITH(MultiHeadAttention(config, weights).forward(x), Catch::Contains("rope_max_positions"));
  CHECK_THROWS_WITH(MultiHeadAttention(config_for(sizes), weights).forward(Tensor::zeros(DType::F32, {1, 3, 5})),
                    Catch::Contains("x must be fp32 (B, S, 24)"));
}
