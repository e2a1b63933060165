#include "runtime/reference/ReferenceBackward.h"

#include <cmath>
#include <limits>
#include <optional>
#include <vector>

#include "compiler/Interpreter.h"
#include "runtime/core/ModDerivatives.h"
#include "runtime/core/RuntimeError.h"

namespace attnc {

namespace {

constexpr const char* kBackward = "standard_attention_backward";
constexpr const char* kForward = "standard_attention_dropout";

// An expression of a mod evaluated by the interpreter in an environment with the mod's arguments.
struct Evaluator {
  const char* function;
  const Mod* mod;
  ir::CompiledExpr expr;
  ir::Environment env;

  Evaluator(const char* f, const Mod& m, const AttentionShape& shape, bool check_bounds)
      : function(f),
        mod(&m),
        expr(m.def().body),
        env(m.environment(static_cast<int32_t>(shape.q_len), static_cast<int32_t>(shape.kv_len),
                          static_cast<int32_t>(shape.heads), static_cast<int32_t>(shape.kv_heads), check_bounds)) {}

  ir::Value at(int64_t b, int64_t h, int32_t q_idx, int64_t kv_idx, float score) {
    env.set_point(static_cast<int32_t>(b), static_cast<int32_t>(h), q_idx, static_cast<int32_t>(kv_idx), score);
    try {
      return expr.evaluate(env);
    } catch (const ir::IndexOutOfRange& e) {
      throw RuntimeError(out_of_range_message(function, *mod, e.param, e.dim, e.index, e.extent,
                                              static_cast<int32_t>(b), static_cast<int32_t>(h), q_idx,
                                              static_cast<int32_t>(kv_idx)));
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

double load(const Tensor& t, int64_t b, int64_t h, int64_t i, int64_t d) {
  const auto& s = t.strides();
  return load_as_float(t.data(), t.dtype(), b * s[0] + h * s[1] + i * s[2] + d * s[3]);
}

// One row of the forward pass of one (b, h): raw and modded scores, the softmax and the dropout.
struct Row {
  std::vector<float> raw;      // scale * q.k rounded to fp32, what the score mod sees
  std::vector<float> modded;   // s'
  std::vector<double> p;       // softmax over kept keys; 0 for dropped ones and fully masked rows
  std::vector<double> kept_p;  // p * M * k: the probabilities after dropout
  double lse = -std::numeric_limits<double>::infinity();
};

class Forward {
 public:
  Forward(const char* function, const Tensor& q, const Tensor& k, const Tensor& v, const AttentionShape& shape,
          const AttentionOptions& options, const Dropout& dropout)
      : q_(q),
        k_(k),
        v_(v),
        shape_(shape),
        options_(options),
        dropout_(dropout),
        threshold_(dropout_threshold(dropout.rate)) {
    if (options.score_mod) score_.emplace(function, *options.score_mod, shape, options.check_bounds);
    if (options.mask_mod) mask_.emplace(function, *options.mask_mod, shape, options.check_bounds);
    scale_ = options.scale ? *options.scale : static_cast<float>(1.0 / std::sqrt(static_cast<double>(shape.head_dim)));
    group_ = shape.kv_heads > 0 ? shape.heads / shape.kv_heads : 1;
  }

  float scale() const { return scale_; }
  int64_t kv_head(int64_t h) const { return h / group_; }
  int32_t q_idx(int64_t i) const { return static_cast<int32_t>(options_.q_offset + i); }

  void row(int64_t b, int64_t h, int64_t i, Row& out) {
    const int64_t Skv = shape_.kv_len, D = shape_.head_dim;
    out.raw.assign(Skv, 0.0f);
    out.modded.assign(Skv, 0.0f);
    out.p.assign(Skv, 0.0);
    out.kept_p.assign(Skv, 0.0);
    std::vector<char> kept(Skv, 0);
    double max_score = -std::numeric_limits<double>::infinity();
    bool any_nan = false;
    for (int64_t j = 0; j < Skv; ++j) {
      double dot = 0;
      for (int64_t d = 0; d < D; ++d) dot += load(q_, b, h, i, d) * load(k_, b, kv_head(h), j, d);
      out.raw[j] = static_cast<float>(static_cast<double>(scale_) * dot);
      out.modded[j] = score_ ? score_->at(b, h, q_idx(i), j, out.raw[j]).f : out.raw[j];
      const bool keep = mask_ ? mask_->at(b, h, q_idx(i), j, 0.0f).as_bool() : true;
      kept[j] = keep && out.modded[j] != -std::numeric_limits<float>::infinity();
      if (kept[j] && std::isnan(out.modded[j])) any_nan = true;
      if (kept[j] && out.modded[j] > max_score) max_score = out.modded[j];
    }
    out.lse = -std::numeric_limits<double>::infinity();
    if (any_nan) {
      for (int64_t j = 0; j < Skv; ++j)
        out.p[j] = out.kept_p[j] = kept[j] ? std::numeric_limits<double>::quiet_NaN() : 0.0;
      out.lse = std::numeric_limits<double>::quiet_NaN();
      return;
    }
    if (max_score == -std::numeric_limits<double>::infinity()) return;  // no kept key: P = 0
    double sum = 0;
    for (int64_t j = 0; j < Skv; ++j) {
      if (kept[j]) sum += std::exp(out.modded[j] - max_score);
    }
    for (int64_t j = 0; j < Skv; ++j) {
      if (!kept[j]) continue;
      out.p[j] = std::exp(out.modded[j] - max_score) / sum;
      const bool survives =
          !dropout_.enabled() || dropout_keeps(threshold_, dropout_.seed, static_cast<int32_t>(b),
                                               static_cast<int32_t>(h), q_idx(i), static_cast<int32_t>(j));
      out.kept_p[j] = survives ? out.p[j] * (dropout_.enabled() ? 1.0 / (1.0 - dropout_.rate) : 1.0) : 0.0;
    }
    out.lse = max_score + std::log(sum);
  }

 private:
  const Tensor &q_, &k_, &v_;
  AttentionShape shape_;
  AttentionOptions options_;
  Dropout dropout_;
  uint32_t threshold_;
  std::optional<Evaluator> score_, mask_;
  float scale_ = 1;
  int64_t group_ = 1;
};

// A float tensor parameter's gradient, accumulated in fp64 in C order of the bound tensor's shape.
struct ParamGradient {
  uint32_t param;
  std::vector<int64_t> shape;
  std::vector<double> sum;
};

}  // namespace

void standard_attention_dropout(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out,
                                const AttentionOptions& options, const Dropout& dropout, Tensor* lse) {
  const AttentionShape shape = check_attention_args(kForward, q, k, v, out, options, lse);
  check_dropout(kForward, dropout);
  Forward forward(kForward, q, k, v, shape, options, dropout);
  Row row;
  for (int64_t b = 0; b < shape.batch; ++b) {
    for (int64_t h = 0; h < shape.heads; ++h) {
      for (int64_t i = 0; i < shape.q_len; ++i) {
        forward.row(b, h, i, row);
        const auto& os = out.strides();
        for (int64_t d = 0; d < shape.value_dim; ++d) {
          double o = 0;
          for (int64_t j = 0; j < shape.kv_len; ++j) {
            if (row.kept_p[j] != 0) o += row.kept_p[j] * load(v, b, forward.kv_head(h), j, d);
          }
          store(out, b * os[0] + h * os[1] + i * os[2] + d * os[3], o);
        }
        if (lse) store(*lse, b * lse->strides()[0] + h * lse->strides()[1] + i * lse->strides()[2], row.lse);
      }
    }
  }
}

void standard_attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& dout,
                                 AttentionGradients& grads, const AttentionOptions& options, const Dropout& dropout) {
  check_attention_inputs(kBackward, q, v);
  const Tensor out_shape_only = Tensor::empty(DType::F32, attention_out_shape(q, v));
  const AttentionShape shape =
      check_backward_args(kBackward, q, k, v, out_shape_only, nullptr, dout, grads, options, dropout);
  const int64_t B = shape.batch, H = shape.heads, S = shape.q_len, D = shape.head_dim;
  const int64_t Hkv = shape.kv_heads, Skv = shape.kv_len, Dv = shape.value_dim;

  std::optional<ModDerivatives> derivatives;
  std::optional<Evaluator> d_score;
  std::vector<Evaluator> site_derivatives;
  std::vector<std::vector<Evaluator>> site_indices;
  std::vector<ParamGradient> params;
  if (options.score_mod) {
    derivatives.emplace(derive_score_mod(kBackward, *options.score_mod));
    d_score.emplace(kBackward, derivatives->d_score, shape, options.check_bounds);
    for (const ModDerivatives::Site& site : derivatives->sites) {
      site_derivatives.emplace_back(kBackward, site.derivative, shape, options.check_bounds);
      site_indices.emplace_back();
      for (const Mod& index : site.indices) site_indices.back().emplace_back(kBackward, index, shape, false);
    }
    for (uint32_t p : derivatives->float_tensors) {
      const auto& argument = options.score_mod->argument(p);
      const Tensor& bound = std::get<Tensor>(*argument);
      params.push_back({p, bound.shape(), std::vector<double>(static_cast<size_t>(bound.numel()), 0.0)});
    }
  }

  Forward forward(kBackward, q, k, v, shape, options, dropout);
  const double scale = forward.scale();
  std::vector<double> dq(B * H * S * D, 0.0), dk(B * Hkv * Skv * D, 0.0), dv(B * Hkv * Skv * Dv, 0.0);
  std::vector<double> o_row(Dv), do_row(Dv);
  Row row;
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t h = 0; h < H; ++h) {
      const int64_t g = forward.kv_head(h);
      for (int64_t i = 0; i < S; ++i) {
        forward.row(b, h, i, row);
        // D_i = rowsum(dO * O), with O recomputed in fp64.
        double di = 0;
        for (int64_t d = 0; d < Dv; ++d) {
          o_row[d] = 0;
          for (int64_t j = 0; j < Skv; ++j) {
            if (row.kept_p[j] != 0) o_row[d] += row.kept_p[j] * load(v, b, g, j, d);
          }
          do_row[d] = load(dout, b, h, i, d);
          di += do_row[d] * o_row[d];
        }
        for (int64_t j = 0; j < Skv; ++j) {
          if (row.p[j] == 0) continue;  // dropped by the mask, s' = -inf, or underflowed: no gradient
          double dp = 0;
          for (int64_t d = 0; d < Dv; ++d) {
            dp += do_row[d] * load(v, b, g, j, d);
            dv[((b * Hkv + g) * Skv + j) * Dv + d] += row.kept_p[j] * do_row[d];
          }
          // dP through dropout: the same decision and factor as the forward's.
          dp = row.p[j] != 0 ? dp * (row.kept_p[j] / row.p[j]) : 0.0;
          const double ds_modded = row.p[j] * (dp - di);
          // A zero gradient contributes zero, also where the derivative is infinite (as the kernels do).
          if (ds_modded == 0) continue;
          const double ds = d_score ? ds_modded * d_score->at(b, h, forward.q_idx(i), j, row.raw[j]).f : ds_modded;
          for (int64_t d = 0; d < D; ++d) {
            dq[((b * H + h) * S + i) * D + d] += scale * ds * load(k, b, g, j, d);
            dk[((b * Hkv + g) * Skv + j) * D + d] += scale * ds * load(q, b, h, i, d);
          }
          for (size_t s = 0; s < site_derivatives.size(); ++s) {
            const uint32_t param = derivatives->sites[s].param;
            for (ParamGradient& gradient : params) {
              if (gradient.param != param) continue;
              int64_t offset = 0;
              for (size_t d = 0; d < gradient.shape.size(); ++d) {
                const auto index = static_cast<int64_t>(site_indices[s][d].at(b, h, forward.q_idx(i), j, row.raw[j]).f);
                offset = offset * gradient.shape[d] + index;
              }
              gradient.sum[static_cast<size_t>(offset)] +=
                  ds_modded * site_derivatives[s].at(b, h, forward.q_idx(i), j, row.raw[j]).f;
            }
          }
        }
      }
    }
  }

  const auto write = [](const Tensor& t, const std::vector<double>& values, int64_t n1, int64_t n2, int64_t n3,
                        int64_t n4) {
    const auto& s = t.strides();
    for (int64_t a = 0; a < n1; ++a)
      for (int64_t b = 0; b < n2; ++b)
        for (int64_t c = 0; c < n3; ++c)
          for (int64_t d = 0; d < n4; ++d)
            store(t, a * s[0] + b * s[1] + c * s[2] + d * s[3], values[((a * n2 + b) * n3 + c) * n4 + d]);
  };
  write(grads.dq, dq, B, H, S, D);
  write(grads.dk, dk, B, Hkv, Skv, D);
  write(grads.dv, dv, B, Hkv, Skv, Dv);
  grads.dparams.clear();
  for (const ParamGradient& gradient : params) {
    Tensor t = Tensor::empty(DType::F32, gradient.shape);
    auto* data = static_cast<float*>(t.data());
    for (size_t e = 0; e < gradient.sum.size(); ++e) data[e] = static_cast<float>(gradient.sum[e]);
    grads.dparams.emplace(options.score_mod->def().params[gradient.param].name, std::move(t));
  }
}

}  // namespace attnc
