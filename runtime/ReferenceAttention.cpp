#include "runtime/ReferenceAttention.h"

#include <cmath>
#include <limits>
#include <vector>

#include <fmt/format.h>

#include "compiler/Interpreter.h"
#include "runtime/RuntimeError.h"

namespace attnc {

namespace {

[[noreturn]] void fail(const std::string& message) { throw RuntimeError("standard_attention: " + message); }

void require_float_cpu(const Tensor& t, const char* role) {
  if (!t.defined()) fail(fmt::format("{} is undefined", role));
  if (!dtype_is_float(t.dtype())) {
    fail(fmt::format("{} must be fp32, fp16 or bf16, not {} ({})", role, dtype_name(t.dtype()), t.describe()));
  }
  if (t.device() != Device::Cpu) {
    fail(fmt::format("{} is on {}; the reference attention runs on the CPU ({})", role, device_name(t.device()),
                     t.describe()));
  }
}

void require_rank(const Tensor& t, size_t rank, const char* role, const char* layout) {
  if (t.rank() != rank) fail(fmt::format("{} must have rank {} {}, got {}", role, rank, layout, t.describe()));
}

void require_mod(const Mod* mod, dsl::ModKind kind, const char* option) {
  if (!mod) return;
  if (mod->kind() != kind) {
    fail(fmt::format("{} was passed as the {}, but it is a {}", mod->describe(), option,
                     kind == dsl::ModKind::Score ? "mask mod" : "score mod"));
  }
}

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
      const ir::ModDef& def = mod->def();
      std::string param = e.param < def.params.size() ? def.params[e.param].name : fmt::format("#{}", e.param);
      fail(
          fmt::format("{}: index {} is out of range for dimension {} of parameter '{}' (extent {}) at "
                      "(b={}, h={}, q_idx={}, kv_idx={})",
                      mod->describe(), e.index, e.dim, param, e.extent, b, h, q_idx, kv_idx));
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
         ModEvaluator* score_mod, ModEvaluator* mask_mod) {
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
        const auto b32 = static_cast<int32_t>(b), h32 = static_cast<int32_t>(h), i32 = static_cast<int32_t>(i);
        Acc max_score = minus_inf;
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
        }

        std::fill(row.begin(), row.end(), Acc(0));
        Acc row_lse = minus_inf;
        // No kept key (or only -inf scores): output 0 and LSE -inf rather than 0/0 = NaN.
        if (max_score != minus_inf) {
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
  require_float_cpu(q, "q");
  require_float_cpu(k, "k");
  require_float_cpu(v, "v");
  require_rank(q, 4, "q", "(B, H, S, D)");
  require_rank(k, 4, "k", "(B, Hkv, Skv, D)");
  require_rank(v, 4, "v", "(B, Hkv, Skv, Dv)");
  const int64_t B = q.shape()[0], H = q.shape()[1], S = q.shape()[2], D = q.shape()[3];
  const int64_t Hkv = k.shape()[1], Skv = k.shape()[2], Dv = v.shape()[3];
  if (k.shape()[0] != B || v.shape()[0] != B) {
    fail(fmt::format("batch sizes differ: q {}, k {}, v {}", shape_to_string(q.shape()), shape_to_string(k.shape()),
                     shape_to_string(v.shape())));
  }
  if (k.shape()[3] != D) {
    fail(fmt::format("q and k head dims differ: q {}, k {}", shape_to_string(q.shape()), shape_to_string(k.shape())));
  }
  if (v.shape()[1] != Hkv || v.shape()[2] != Skv) {
    fail(fmt::format("k and v differ in heads or length: k {}, v {}", shape_to_string(k.shape()),
                     shape_to_string(v.shape())));
  }
  if (Hkv == 0 ? H != 0 : H % Hkv != 0) {
    fail(fmt::format("the {} query heads are not a multiple of the {} key/value heads", H, Hkv));
  }
  for (int64_t extent : {B, H, S, Skv, Hkv}) {
    if (extent > std::numeric_limits<int32_t>::max()) {
      fail(fmt::format("sizes q {}, k {} exceed the int range of mod indices", shape_to_string(q.shape()),
                       shape_to_string(k.shape())));
    }
  }
  if (D == 0) fail(fmt::format("the head dim of q {} is 0", shape_to_string(q.shape())));

  require_float_cpu(out, "out");
  std::vector<int64_t> out_shape{B, H, S, Dv};
  if (out.shape() != out_shape) {
    fail(fmt::format("out must have shape {} (B, H, S, Dv), got {}", shape_to_string(out_shape), out.describe()));
  }
  if (lse) {
    std::vector<int64_t> lse_shape{B, H, S};
    if (!lse->defined()) *lse = Tensor::empty(DType::F32, lse_shape);
    require_float_cpu(*lse, "lse");
    if (lse->shape() != lse_shape) {
      fail(fmt::format("lse must have shape {} (B, H, S), got {}", shape_to_string(lse_shape), lse->describe()));
    }
  }

  require_mod(options.score_mod, dsl::ModKind::Score, "score_mod");
  require_mod(options.mask_mod, dsl::ModKind::Mask, "mask_mod");
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
    run<double>(q, k, v, out, lse, scale, score_ptr, mask_ptr);
  } else {
    run<float>(q, k, v, out, lse, scale, score_ptr, mask_ptr);
  }
}

Tensor standard_attention(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionOptions& options,
                          Tensor* lse) {
  require_float_cpu(q, "q");
  require_float_cpu(v, "v");
  require_rank(q, 4, "q", "(B, H, S, D)");
  require_rank(v, 4, "v", "(B, Hkv, Skv, Dv)");
  Tensor out = Tensor::empty(DType::F32, {q.shape()[0], q.shape()[1], q.shape()[2], v.shape()[3]});
  standard_attention(q, k, v, out, options, lse);
  return out;
}

}  // namespace attnc
