// The host models of the PTX approximate instructions (runtime/emulation/ApproxInstructions.h):
// the special-case tables of the PTX ISA (9.1, section 9.7.3) exactly, and finite results that
// err by the documented bound, in both directions, and never by more.

#include "runtime/emulation/ApproxInstructions.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include <catch2/catch.hpp>

namespace emu = attnc::host_emulation;

namespace {

const float kInf = std::numeric_limits<float>::infinity();
const float kNaN = std::numeric_limits<float>::quiet_NaN();
const float kSubnormal = 1e-40f;

bool same(float a, float b) {  // bit for bit, any NaN matching any NaN
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  return a == b && std::signbit(a) == std::signbit(b);
}

// Distance in representable floats between two finite floats of one sign.
int64_t ulps_apart(float a, float b) {
  int32_t ia, ib;
  std::memcpy(&ia, &a, 4);
  std::memcpy(&ib, &b, 4);
  return std::llabs(static_cast<int64_t>(ia) - ib);
}

}  // namespace

TEST_CASE("Approximate-instruction models follow the PTX ISA's special-case tables", "[emulation][fastmath]") {
  SECTION("ex2") {
    for (bool ftz : {false, true}) {
      CAPTURE(ftz);
      CHECK(same(emu::ex2_approx_f32(-kInf, ftz), 0.0f));
      CHECK(same(emu::ex2_approx_f32(-0.0f, ftz), 1.0f));
      CHECK(same(emu::ex2_approx_f32(0.0f, ftz), 1.0f));
      CHECK(same(emu::ex2_approx_f32(kInf, ftz), kInf));
      CHECK(same(emu::ex2_approx_f32(kNaN, ftz), kNaN));
    }
    CHECK(same(emu::ex2_approx_f32(-kSubnormal, true), 1.0f));  // flushed input
    CHECK(emu::ex2_approx_f32(-140.0f, false) > 0.0f);           // subnormal result kept
    CHECK(same(emu::ex2_approx_f32(-140.0f, true), 0.0f));       // and flushed
  }
  SECTION("lg2") {
    for (bool ftz : {false, true}) {
      CAPTURE(ftz);
      CHECK(same(emu::lg2_approx_f32(-kInf, ftz), kNaN));
      CHECK(same(emu::lg2_approx_f32(-3.0f, ftz), kNaN));
      CHECK(same(emu::lg2_approx_f32(-0.0f, ftz), -kInf));
      CHECK(same(emu::lg2_approx_f32(0.0f, ftz), -kInf));
      CHECK(same(emu::lg2_approx_f32(kInf, ftz), kInf));
      CHECK(same(emu::lg2_approx_f32(kNaN, ftz), kNaN));
    }
    CHECK(same(emu::lg2_approx_f32(kSubnormal, true), -kInf));
    CHECK(std::fabs(emu::lg2_approx_f32(kSubnormal, false) - std::log2(1e-40)) < 1e-3);
  }
  SECTION("rcp") {
    for (bool ftz : {false, true}) {
      CAPTURE(ftz);
      CHECK(same(emu::rcp_approx_f32(-kInf, ftz), -0.0f));
      CHECK(same(emu::rcp_approx_f32(-0.0f, ftz), -kInf));
      CHECK(same(emu::rcp_approx_f32(0.0f, ftz), kInf));
      CHECK(same(emu::rcp_approx_f32(kInf, ftz), 0.0f));
      CHECK(same(emu::rcp_approx_f32(kNaN, ftz), kNaN));
    }
    CHECK(same(emu::rcp_approx_f32(-kSubnormal, true), -kInf));
    CHECK(same(emu::rcp_approx_f32(1e38f, true), 0.0f));  // the subnormal result flushed
  }
  SECTION("rsqrt") {
    for (bool ftz : {false, true}) {
      CAPTURE(ftz);
      CHECK(same(emu::rsqrt_approx_f32(-kInf, ftz), kNaN));
      CHECK(same(emu::rsqrt_approx_f32(-2.0f, ftz), kNaN));
      CHECK(same(emu::rsqrt_approx_f32(-0.0f, ftz), -kInf));
      CHECK(same(emu::rsqrt_approx_f32(0.0f, ftz), kInf));
      CHECK(same(emu::rsqrt_approx_f32(kInf, ftz), 0.0f));
      CHECK(same(emu::rsqrt_approx_f32(kNaN, ftz), kNaN));
    }
    CHECK(same(emu::rsqrt_approx_f32(kSubnormal, true), kInf));
  }
  SECTION("tanh") {
    CHECK(same(emu::tanh_approx_f32(-kInf), -1.0f));
    CHECK(same(emu::tanh_approx_f32(-0.0f), -0.0f));
    CHECK(same(emu::tanh_approx_f32(0.0f), 0.0f));
    CHECK(same(emu::tanh_approx_f32(kInf), 1.0f));
    CHECK(same(emu::tanh_approx_f32(kNaN), kNaN));
    CHECK(same(emu::tanh_approx_f32(-kSubnormal), -kSubnormal));  // passed through
  }
}

TEST_CASE("Approximate-instruction models err by their documented bound in both directions", "[emulation][fastmath]") {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> wide(-100.0f, 100.0f), positive(1e-6f, 1e6f);
  const double rsqrt_bound = emu::rsqrt_approx_rel_error();
  int ex2_up = 0, ex2_down = 0, rcp_up = 0, rcp_down = 0;
  double tanh_worst = 0, rsqrt_worst = 0, lg2_worst = 0;
  for (int i = 0; i < 20000; ++i) {
    const float x = wide(rng), y = positive(rng);
    CAPTURE(x, y);
    // ex2: exactly 2 floats from the correctly rounded value (the bound, never more).
    const float ex2_rounded = static_cast<float>(std::exp2(static_cast<double>(x)));
    const float ex2 = emu::ex2_approx_f32(x, false);
    REQUIRE(ulps_apart(ex2, ex2_rounded) <= 2);
    (ex2 > ex2_rounded ? ex2_up : ex2_down) += ulps_apart(ex2, ex2_rounded) == 2;
    // rcp: 1 float away.
    const float rcp_rounded = static_cast<float>(1.0 / y);
    const float rcp = emu::rcp_approx_f32(y, false);
    REQUIRE(ulps_apart(rcp, rcp_rounded) == 1);
    (rcp > rcp_rounded ? rcp_up : rcp_down) += 1;
    // tanh, rsqrt: relative; lg2: absolute on (0.5, 2), relative elsewhere.
    const double tanh_exact = std::tanh(static_cast<double>(x / 16));
    const double tanh_error = std::fabs(emu::tanh_approx_f32(x / 16) - tanh_exact) / std::fabs(tanh_exact);
    REQUIRE(tanh_error <= emu::kTanhApproxRelError);
    tanh_worst = std::max(tanh_worst, tanh_error);
    const double rsqrt_exact = 1.0 / std::sqrt(static_cast<double>(y));
    const double rsqrt_error = std::fabs(emu::rsqrt_approx_f32(y, false) - rsqrt_exact) / rsqrt_exact;
    REQUIRE(rsqrt_error <= rsqrt_bound);
    rsqrt_worst = std::max(rsqrt_worst, rsqrt_error);
    const float z = i % 2 == 0 ? y : 0.5f + 1.5f * std::fabs(x) / 100.0f;
    const double lg2_exact = std::log2(static_cast<double>(z));
    const bool near_one = z > 0.5f && z < 2.0f;
    const double lg2_error = std::fabs(emu::lg2_approx_f32(z, false) - lg2_exact) / (near_one ? 1.0 : std::fabs(lg2_exact));
    REQUIRE(lg2_error <= emu::kLg2ApproxError);
    lg2_worst = std::max(lg2_worst, lg2_error);
  }
  CHECK(ex2_up > 1000);
  CHECK(ex2_down > 1000);
  CHECK(rcp_up > 1000);
  CHECK(rcp_down > 1000);
  // Float rounding keeps the errors a little under the bound, never far under it.
  CHECK(tanh_worst > 0.99 * emu::kTanhApproxRelError);
  CHECK(rsqrt_worst > 0.5 * rsqrt_bound);
  CHECK(lg2_worst > 0.5 * emu::kLg2ApproxError);
}
