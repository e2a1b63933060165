#include "runtime/reference/ReferenceAttention.h"

#include <cmath>
#include <limits>
#include <vector>

#include <fmt/format.h>

#include "compiler/Interpreter.h"
#include "runtime/core/AttentionChecks.h"
#include "runtime/core/RuntimeError.h"

namespace attnc {

namespace {

constexpr const char* kFunction = "standard_attention";

// One mod compiled for this call: its tape and its environment with the arguments bound.
struct ModEvaluator {
  const Mod* mod;
  ir::CompiledExpr expr;
  ir::Environment env;

  ModEvaluator(const Mod& m, int32_t q_len, int32_t kv_len, int32_t heads, int32_t kv_heads, bool check_bounds)
      : mod(&m), expr(m.def().body), env(m.environment(q_len, kv_len, heads, kv_heads, check_bounds)) {}

  ir::Value evaluate(int32_t b, int32_t h, int32_t q_idx, int32_t kv_idx, float score) {
    env.set_point(b, h, q_idx, kv_idx, score);
    try {
      return expr.evaluate(env);
    } catch (const ir::IndexOutOfRange& e) {
      throw RuntimeError(out_of_range_message(kFunction, *mod, e.param, e.dim, e.index, e.extent, b, h, q_idx, kv_idx));
    }
  }
};

void store(const Tensor& t, int64_t offset, double value) {
  switch (t.dtype()) {
    case DType::F32: static_cast<float*>(t.data())[offset] = static_cast<float>(value); break;
    case DType::F16: static_cast<uint16_t*>(t.data())[offset] = float_to_half(static_cast<float>(value)); break;
    default: static_cast<uint16_t*>(t.data())[offset] = float_to_bfloat16(static_cast<float>(value)); break;
  }
}

// The attention of one configuration, templated on the accumulation type (double or float).
template <typename Acc>
void run(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out, const Tensor* lse, float scale,
         int32_t q_offset, ModEvaluator* score_mod, ModEvaluator* mask_mod) {
  const int64_t B = q.shape()[0], H = q.shape()[1], S = q.shape()[2], D = q.shape()[3];
  const int64_t Hkv = k.shape()[1], Skv = k.shape()[2], Dv = v.shape()[3];
  const int64_t group = Hkv > 0 ? H / Hkv : 1;  // Hkv == 0 only when H == 0 (no work)
  const auto& qs = q.strides();
  const auto& ks = k.strides();
  const auto& vs = v.strides();
  const auto& os = out.strides();
  std::vector<Acc> scores(static_cast<size_t>(Skv));
  std::vector<char> kept(static_cast<size_t>(Skv));
  std::vector<Acc> row(static_cast<size_t>(Dv));
  const Acc minus_inf = -std::numeric_limits<Acc>::infinity();

  for (int64_t b = 0; b < B; ++b) {
    for (int64_t h = 0; h < H; ++h) {
      const int64_t kvh = h / group;
      for (int64_t i = 0; i < S; ++i) {
        const auto b32 = static_cast<int32_t>(b), h32 = static_cast<int32_t>(h);
        const auto i32 = static_cast<int32_t>(q_offset + i);  // the mods' q_idx
        Acc max_score = minus_inf;
        bool any_nan = false;
        for (int64_t j = 0; j < Skv; ++j) {
          const auto j32 = static_cast<int32_t>(j);
          Acc dot = 0;
          for (int64_t d = 0; d < D; ++d) {
            Acc qv = load_as_float(q.data(), q.dtype(), b * qs[0] + h * qs[1] + i * qs[2] + d * qs[3]);
            Acc kv = load_as_float(k.data(), k.dtype(), b * ks[0] + kvh * ks[1] + j * ks[2] + d * ks[3]);
            dot += qv * kv;
          }
          // Mods see an fp32 score, as in every kernel.
          float s = static_cast<float>(static_cast<Acc>(scale) * dot);
          if (score_mod) s = score_mod->evaluate(b32, h32, i32, j32, s).f;
          bool keep = mask_mod ? mask_mod->evaluate(b32, h32, i32, j32, 0.0f).as_bool() : true;
          kept[j] = keep && s != -std::numeric_limits<float>::infinity();
          scores[j] = s;
          if (kept[j] && scores[j] > max_score) max_score = scores[j];
          if (kept[j] && std::isnan(s)) any_nan = true;
        }

        std::fill(row.begin(), row.end(), Acc(0));
        Acc row_lse = minus_inf;
        if (any_nan) {
          // A kept NaN score makes the whole row NaN (docs/semantics.md), even when every kept
          // score is NaN and the max above saw none of them.
          std::fill(row.begin(), row.end(), std::numeric_limits<Acc>::quiet_NaN());
          row_lse = std::numeric_limits<Acc>::quiet_NaN();
        } else if (max_score != minus_inf) {
          // (No kept key, or only -inf scores: output 0 and LSE -inf rather than 0/0 = NaN.)
          Acc sum = 0;
          for (int64_t j = 0; j < Skv; ++j) {
            if (!kept[j]) continue;
            Acc p = std::exp(scores[j] - max_score);
            sum += p;
            for (int64_t d = 0; d < Dv; ++d) {
              row[d] += p * static_cast<Acc>(
                                load_as_float(v.data(), v.dtype(), b * vs[0] + kvh * vs[1] + j * vs[2] + d * vs[3]));
            }
          }
          for (Acc& x : row) x /= sum;
          row_lse = max_score + std::log(sum);
        }
        for (int64_t d = 0; d < Dv; ++d) store(out, b * os[0] + h * os[1] + i * os[2] + d * os[3], row[d]);
        if (lse) {
          const auto& ls = lse->strides();
          store(*lse, b * ls[0] + h * ls[1] + i * ls[2], row_lse);
        }
      }
    }
  }
}

}  // namespace

void standard_attention(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out, const AttentionOptions& options,
                        Tensor* lse) {
  const AttentionShape shape = check_attention_args(kFunction, q, k, v, out, options, lse);
  const int64_t S = shape.q_len, D = shape.head_dim, H = shape.heads, Hkv = shape.kv_heads, Skv = shape.kv_len;
  const auto q_len = static_cast<int32_t>(S), kv_len = static_cast<int32_t>(Skv);
  const auto heads = static_cast<int32_t>(H), kv_heads = static_cast<int32_t>(Hkv);
  // Compiled once per call; each evaluation reuses the tape.
  std::optional<ModEvaluator> score_mod, mask_mod;
  if (options.score_mod) score_mod.emplace(*options.score_mod, q_len, kv_len, heads, kv_heads, options.check_bounds);
  if (options.mask_mod) mask_mod.emplace(*options.mask_mod, q_len, kv_len, heads, kv_heads, options.check_bounds);

  float scale = options.scale ? *options.scale : static_cast<float>(1.0 / std::sqrt(static_cast<double>(D)));
  ModEvaluator* score_ptr = score_mod ? &*score_mod : nullptr;
  ModEvaluator* mask_ptr = mask_mod ? &*mask_mod : nullptr;
  if (options.accumulation == AttentionOptions::Accumulation::F64) {
    run<double>(q, k, v, out, lse, scale, options.q_offset, score_ptr, mask_ptr);
  } else {
    run<float>(q, k, v, out, lse, scale, options.q_offset, score_ptr, mask_ptr);
  }
}

Tensor standard_attention(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionOptions& options,
                          Tensor* lse) {
  check_attention_inputs(kFunction, q, v);
  Tensor out = Tensor::empty(DType::F32, {q.shape()[0], q.shape()[1], q.shape()[2], v.shape()[3]});
  standard_attention(q, k, v, out, options, lse);
  return out;
}

}  // namespace attnc
