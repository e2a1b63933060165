#include "tests/support/GradientCases.h"

#include <algorithm>

#include "compiler/Frontend.h"
#include "runtime/core/Mods.h"
#include "tests/support/RandomExpr.h"
#include "tests/support/TestTensors.h"

namespace attnc::test {

namespace {

const ir::Module& backward_mods() {
  static const ir::Module module = ir::load_module_text("backward.attn", R"(
# A learned relative-position bias: a (heads x buckets) table read at a clamped bucket.
score_mod relative_bias(table: float[NH, R]) =
    let d = clamp(q_idx - kv_idx + R / 2, 0, R - 1);
    score + table[h, d];
# Per-head temperatures and a softcap with min/max, abs and where in the way.
score_mod temperature(t: float[NH]) = where(score > 0.0, score * t[h], score / (1.0 + abs(t[h]))) + min(score, 0.5);
# Rows 0 and 3 keep nothing: their gradients must be zero.
mask_mod holes = q_idx != 0 && q_idx != 3 && kv_idx <= q_idx + 2;
)");
  return module;
}

Mod from_backward_module(const char* name) { return Mod::from_module(backward_mods(), name); }

}  // namespace

std::vector<GradientCase> gradient_cases(int64_t batch, int64_t heads, int64_t kv_heads, int64_t q_len, int64_t kv_len,
                                         int64_t head_dim, int64_t value_dim, int random_count, uint32_t seed) {
  std::mt19937 rng(seed);
  const auto H = static_cast<int>(heads);
  const int64_t longest = std::max(q_len, kv_len);
  std::vector<GradientCase> cases;
  const auto add = [&](std::string name, std::optional<Mod> score, std::optional<Mod> mask) {
    GradientCase c;
    c.name = std::move(name);
    c.batch = batch;
    c.heads = heads;
    c.kv_heads = kv_heads;
    c.q_len = q_len;
    c.kv_len = kv_len;
    c.head_dim = head_dim;
    c.value_dim = value_dim;
    c.score_mod = std::move(score);
    c.mask_mod = std::move(mask);
    cases.push_back(std::move(c));
    return &cases.back();
  };
  add("no mods", std::nullopt, std::nullopt);
  add("causal", std::nullopt, causal_mod());
  add("causal bottom-right", std::nullopt, causal_bottom_right_mod());
  add("sliding window", std::nullopt, sliding_window_mod(3, true));
  add("symmetric window", std::nullopt, sliding_window_mod(2, false));
  std::vector<int32_t> prefix(static_cast<size_t>(batch));
  for (auto& p : prefix) p = std::uniform_int_distribution<int32_t>(0, static_cast<int32_t>(kv_len))(rng);
  add("prefix lm", std::nullopt, prefix_lm_mod(Tensor::from_vector(prefix, {batch})));
  std::vector<int32_t> ids(static_cast<size_t>(batch * longest));
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>((i % longest) / 3);
  add("document", std::nullopt, document_mask_mod(Tensor::from_vector(ids, {batch, longest})));
  {
    Mod alibi = alibi_mod(H);
    // Learned slopes: random values instead of the fixed schedule, so the gradient is not special.
    alibi.bind("slopes", uniform_tensor(rng, DType::F32, {heads}, 0.1f, 1.0f));
    add("alibi", alibi, std::nullopt);
  }
  add("softcap", softcap_mod(2.5f), std::nullopt);
  add("additive bias, broadcast over b and q",
      additive_bias_mod(uniform_tensor(rng, DType::F32, {1, heads, 1, kv_len})), std::nullopt);
  add("additive bias, full", additive_bias_mod(uniform_tensor(rng, DType::F32, {batch, heads, q_len, kv_len})),
      causal_mod());
  {
    Mod table = from_backward_module("relative_bias");
    table.bind("table", uniform_tensor(rng, DType::F32, {heads, 5}));
    add("relative bias table", table, sliding_window_mod(4, false));
    Mod temperature = from_backward_module("temperature");
    temperature.bind("t", uniform_tensor(rng, DType::F32, {heads}, -1.5f, 1.5f));
    add("temperature", temperature, std::nullopt);
    Mod alibi = alibi_mod(H);
    add("softcap after alibi, causal and window", compose_score_mods({alibi, softcap_mod(3.0f)}),
        and_masks({causal_mod(), sliding_window_mod(4, true)}));
    add("fully masked rows", table, from_backward_module("holes"));
  }
  {
    GradientCase* c = add("dropout", from_backward_module("relative_bias"), causal_mod());
    c->score_mod->bind("table", uniform_tensor(rng, DType::F32, {heads, 5}));
    c->dropout = Dropout{0.3f, 0x1234abcd5678ull};
  }
  {
    GradientCase* c = add("q_offset 3, causal and softcap", softcap_mod(1.5f), causal_mod());
    c->q_offset = 3;
  }

  // Random mods: a score mod score * c + tanh(R) + t[i] * sin(R') with a float tensor t read at a random
  // index, and a random mask (a random bool expression over positions) or none.
  ir::test::RandomExprOptions score_options;
  score_options.params = {{ir::Type::Float, {3}, DType::F32}, {ir::Type::Int, {}, DType::I32}};
  score_options.edge_value_probability = 0.0;
  ir::test::RandomExprOptions mask_options = score_options;
  mask_options.use_score = false;
  // NaN (log of a negative, sin of inf) becomes 0, so that rows stay finite.
  const auto finite_or_zero = [](const ir::Expr& x) {
    return ir::make_select(ir::make_binary(ir::Op::Eq, x, x), x, ir::make_float(0.0f));
  };
  for (int r = 0; r < random_count; ++r) {
    const ir::Expr score = ir::make_builtin(ir::Builtin::Score);
    const ir::Expr index = ir::test::random_expr(rng, ir::Type::Int, 2, score_options);
    const ir::Expr squashed =
        finite_or_zero(ir::make_call(ir::Op::Tanh, {ir::test::random_expr(rng, ir::Type::Float, 3, score_options)}));
    const ir::Expr wave =
        finite_or_zero(ir::make_call(ir::Op::Sin, {ir::test::random_expr(rng, ir::Type::Float, 2, score_options)}));
    const ir::Expr body = ir::make_binary(
        ir::Op::Add, ir::make_binary(ir::Op::Add, ir::make_binary(ir::Op::Mul, score, ir::make_float(0.75f)), squashed),
        ir::make_binary(ir::Op::Mul, ir::make_load(0, ir::Type::Float, {index}), wave));
    ir::ModDef score_def{
        "random_score_" + std::to_string(r), ir::ModKind::Score, ir::test::random_param_decls(score_options), body, {}};
    Mod score_mod = Mod::from_def(score_def);
    score_mod.bind("p0", uniform_tensor(rng, DType::F32, {3}));
    score_mod.bind("p1", std::uniform_int_distribution<int32_t>(-3, 3)(rng));
    std::optional<Mod> mask_mod;
    if (r % 2 == 1) {
      ir::ModDef mask_def{"random_mask_" + std::to_string(r),
                          ir::ModKind::Mask,
                          ir::test::random_param_decls(mask_options),
                          ir::test::random_expr(rng, ir::Type::Bool, 3, mask_options),
                          {}};
      mask_mod = Mod::from_def(mask_def);
      mask_mod->bind("p0", uniform_tensor(rng, DType::F32, {3}));
      mask_mod->bind("p1", std::uniform_int_distribution<int32_t>(-3, 3)(rng));
    }
    add("random mods #" + std::to_string(r), score_mod, mask_mod);
  }
  return cases;
}

}  // namespace attnc::test
