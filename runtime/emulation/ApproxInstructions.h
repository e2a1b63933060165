#pragma once
// Host models of the PTX approximate float instructions that runtime/kernels/fast_math.cuh builds
// the generated code's transcendental functions from (ex2, lg2, rcp, rsqrt and tanh .approx.f32).
//
// The hardware's exact results are not public; the PTX ISA (9.1, section 9.7.3) documents each
// instruction's special cases and a worst-case error. A model that returned the correctly rounded
// value would make host tests pass for formulas that fail on the chip, so each model returns an
// answer *at* its documented error bound instead: the exact value moved by the full bound, up or
// down as a hash of the input's bits says (deterministic, and both directions occur). The special
// cases (zeros, infinities, NaN, negative arguments, subnormals with and without .ftz) follow the
// ISA's tables exactly. Anything built on these and tested against an exact reference is then
// tested against the worst the documentation allows.
//
// Header-only and free of other attnc headers, because mod_abi.cuh includes it when it is compiled
// as host C++ (tests, installed headers); only host code ever sees it.

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

namespace attnc::host_emulation {

// The documented bounds (PTX ISA 9.1, 9.7.3.13 rcp, 9.7.3.16 rsqrt, 9.7.3.20 lg2, 9.7.3.21 ex2,
// 9.7.3.22 tanh).
constexpr int kEx2ApproxUlps = 2;            // from the correctly rounded result, full range
constexpr int kRcpApproxUlps = 1;            // full range
constexpr double kLg2ApproxError = 0x1p-22;  // absolute on (0.5, 2), relative elsewhere
constexpr double kTanhApproxRelError = 0x1p-11;
inline double rsqrt_approx_rel_error() { return std::exp2(-22.9); }

namespace approx_detail {

inline uint32_t bits_of(float f) {
  uint32_t b;
  std::memcpy(&b, &f, sizeof b);
  return b;
}
inline float from_bits(uint32_t b) {
  float f;
  std::memcpy(&f, &b, sizeof f);
  return f;
}
inline bool is_subnormal(float f) { return f != 0.0f && std::fabs(f) < std::numeric_limits<float>::min(); }
inline float flush(float f) { return is_subnormal(f) ? std::copysign(0.0f, f) : f; }

// +1 or -1 from the input's bits and the instruction (a 32-bit mix), so errors of both signs appear.
inline int direction(float input, uint32_t salt) {
  uint32_t h = bits_of(input) ^ (salt * 0x9e3779b9u);
  h ^= h >> 16;
  h *= 0x7feb352du;
  h ^= h >> 15;
  h *= 0x846ca68bu;
  h ^= h >> 16;
  return (h & 1u) != 0 ? 1 : -1;
}

// `f` moved `n` representable floats up (n > 0) or down, never past the largest finite magnitude
// (a result near FLT_MAX that the bound would carry to infinity stays finite) and never onto an
// infinity from a finite value.
inline float step(float f, int n) {
  const float max = std::numeric_limits<float>::max();
  for (; n > 0; --n) f = f == max ? f : std::nextafter(f, std::numeric_limits<float>::infinity());
  for (; n < 0; ++n) f = f == -max ? f : std::nextafter(f, -std::numeric_limits<float>::infinity());
  return f;
}

// The float nearest exact * (1 + dir * rel) + dir * abs, pulled back by one float if rounding took
// it past the bound: the largest error the bound permits, in direction `dir`.
inline float at_bound(double exact, double rel, double abs, int dir) {
  const double bound = rel * std::fabs(exact) + abs;
  const double moved = exact + dir * bound;
  float f = static_cast<float>(moved);
  if (std::isinf(f)) f = std::copysign(std::numeric_limits<float>::max(), static_cast<float>(moved));
  if (std::fabs(static_cast<double>(f) - exact) > bound) f = step(f, dir > 0 ? -1 : 1);
  return f;
}

}  // namespace approx_detail

// ex2.approx{.ftz}.f32: 2^a within 2 ulp of the correctly rounded result.
// -inf -> +0, +-0 -> 1, +inf -> +inf, NaN -> NaN; .ftz flushes subnormal inputs and results.
inline float ex2_approx_f32(float a, bool ftz) {
  using namespace approx_detail;
  if (ftz) a = flush(a);
  if (std::isnan(a)) return a;
  if (std::isinf(a)) return a > 0 ? a : 0.0f;
  if (a == 0.0f) return 1.0f;
  const float rounded = static_cast<float>(std::exp2(static_cast<double>(a)));
  float r = std::isinf(rounded) ? rounded : step(rounded, kEx2ApproxUlps * direction(a, 1));
  if (r < 0.0f) r = 0.0f;  // stepping down from +0 or a tiny result stays non-negative
  return ftz ? flush(r) : r;
}

// lg2.approx{.ftz}.f32: log2(a) within 2^-22 absolute for a in (0.5, 2), 2^-22 relative elsewhere.
// negative (and -inf) -> NaN, +-0 -> -inf, +inf -> +inf, NaN -> NaN; .ftz flushes subnormal inputs.
inline float lg2_approx_f32(float a, bool ftz) {
  using namespace approx_detail;
  if (ftz) a = flush(a);
  if (std::isnan(a)) return a;
  if (a == 0.0f) return -std::numeric_limits<float>::infinity();
  if (a < 0.0f) return std::numeric_limits<float>::quiet_NaN();
  if (std::isinf(a)) return a;
  const double exact = std::log2(static_cast<double>(a));
  const bool near_one = a > 0.5f && a < 2.0f;
  return at_bound(exact, near_one ? 0.0 : kLg2ApproxError, near_one ? kLg2ApproxError : 0.0, direction(a, 2));
}

// rcp.approx{.ftz}.f32: 1/a within 1 ulp. +-0 -> +-inf, +-inf -> +-0, NaN -> NaN; .ftz flushes
// subnormal inputs (to an infinite result) and subnormal results.
inline float rcp_approx_f32(float a, bool ftz) {
  using namespace approx_detail;
  if (ftz) a = flush(a);
  if (std::isnan(a)) return a;
  if (a == 0.0f) return std::copysign(std::numeric_limits<float>::infinity(), a);
  if (std::isinf(a)) return std::copysign(0.0f, a);
  const float rounded = static_cast<float>(1.0 / static_cast<double>(a));
  float r = std::isinf(rounded) ? rounded : step(rounded, kRcpApproxUlps * direction(a, 3));
  if ((r > 0.0f) != (a > 0.0f) || r == 0.0f) r = std::copysign(0.0f, a);  // never crosses zero
  return ftz ? flush(r) : r;
}

// rsqrt.approx{.ftz}.f32: 1/sqrt(a) within 2^-22.9 relative. negative (and -inf) -> NaN,
// -0 -> -inf, +0 -> +inf, +inf -> +0, NaN -> NaN; .ftz flushes subnormal inputs.
inline float rsqrt_approx_f32(float a, bool ftz) {
  using namespace approx_detail;
  if (ftz) a = flush(a);
  if (std::isnan(a)) return a;
  if (a == 0.0f) return std::copysign(std::numeric_limits<float>::infinity(), a);
  if (a < 0.0f) return std::numeric_limits<float>::quiet_NaN();
  if (std::isinf(a)) return 0.0f;
  const double exact = 1.0 / std::sqrt(static_cast<double>(a));
  return at_bound(exact, rsqrt_approx_rel_error(), 0.0, direction(a, 4));
}

// tanh.approx.f32: tanh(a) within 2^-11 relative. +-0 -> +-0, +-inf -> +-1, NaN -> NaN; subnormal
// inputs pass through unchanged (the ISA's note: tanh(x) ~ x there).
inline float tanh_approx_f32(float a) {
  using namespace approx_detail;
  if (std::isnan(a) || a == 0.0f || is_subnormal(a)) return a;
  if (std::isinf(a)) return std::copysign(1.0f, a);
  const double exact = std::tanh(static_cast<double>(a));
  return at_bound(exact, kTanhApproxRelError, 0.0, direction(a, 5));
}

}  // namespace attnc::host_emulation
