#include "runtime/reference/LinearReference.h"

#include <cmath>
#include <vector>

#include "runtime/core/AttentionChecks.h"

namespace attnc {

namespace {

constexpr const char* kFunction = "linear_attention_reference";
constexpr double kEpsilon = 1e-6;

double phi(double x) { return x > 0 ? x + 1 : std::exp(x); }

void store(const Tensor& t, int64_t offset, double value) {
  switch (t.dtype()) {
    case DType::F32: static_cast<float*>(t.data())[offset] = static_cast<float>(value); break;
    case DType::F16: static_cast<uint16_t*>(t.data())[offset] = float_to_half(static_cast<float>(value)); break;
    default: static_cast<uint16_t*>(t.data())[offset] = float_to_bfloat16(static_cast<float>(value)); break;
  }
}

}  // namespace

void linear_attention_reference(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out,
                                const LinearAttentionOptions& options) {
  const AttentionShape s = check_attention_args(kFunction, q, k, v, out, AttentionOptions{}, nullptr);
  const KeyMask mask = check_key_mask(kFunction, options.mask, s);
  const int64_t group = s.kv_heads > 0 ? s.heads / s.kv_heads : 1;
  const auto& qs = q.strides();
  const auto& ks = k.strides();
  const auto& vs = v.strides();
  const auto& os = out.strides();
  std::vector<double> phi_q(static_cast<size_t>(s.head_dim)), num(static_cast<size_t>(s.value_dim));
  for (int64_t b = 0; b < s.batch; ++b) {
    for (int64_t h = 0; h < s.heads; ++h) {
      const int64_t g = h / group;
      for (int64_t i = 0; i < s.q_len; ++i) {
        for (int64_t d = 0; d < s.head_dim; ++d) {
          phi_q[d] = phi(load_as_float(q.data(), q.dtype(), b * qs[0] + h * qs[1] + i * qs[2] + d * qs[3]));
        }
        std::fill(num.begin(), num.end(), 0.0);
        double den = 0;
        const int64_t visible = options.causal ? std::min(i + 1, s.kv_len) : s.kv_len;
        for (int64_t j = 0; j < visible; ++j) {
          if (!mask.keeps(b, h, j)) continue;
          double weight = 0;
          for (int64_t d = 0; d < s.head_dim; ++d) {
            weight += phi_q[d] * phi(load_as_float(k.data(), k.dtype(), b * ks[0] + g * ks[1] + j * ks[2] + d * ks[3]));
          }
          den += weight;
          for (int64_t e = 0; e < s.value_dim; ++e) {
            num[e] += weight * load_as_float(v.data(), v.dtype(), b * vs[0] + g * vs[1] + j * vs[2] + e * vs[3]);
          }
        }
        for (int64_t e = 0; e < s.value_dim; ++e) {
          store(out, b * os[0] + h * os[1] + i * os[2] + e * os[3], num[e] / (den + kEpsilon));
        }
      }
    }
  }
}

Tensor linear_attention_reference(const Tensor& q, const Tensor& k, const Tensor& v,
                                  const LinearAttentionOptions& options) {
  check_attention_inputs(kFunction, q, v);
  Tensor out = Tensor::empty(DType::F32, attention_out_shape(q, v));
  linear_attention_reference(q, k, v, out, options);
  return out;
}

}  // namespace attnc
