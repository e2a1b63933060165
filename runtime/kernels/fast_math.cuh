#pragma once
// The transcendental functions of generated mod code (exp, exp2, log, log2, tanh, sigmoid, rsqrt),
// built from the PTX approximate instructions instead of libdevice. Part of mod_abi.cuh, which
// includes it after its float helpers (it uses ATTNC_DEVICE, mul_f32, add_f32 and abs_f32).
//
// Why: these run once per score element inside the attention loop, next to the softmax's own ex2.
// libdevice's tanhf costs two multi-function-unit operations (ex2 and rcp) and 13 more instructions;
// tanh.approx.f32 is one. Softcap (cap * tanh(score / cap)) was the slowest built-in mod for that.
//
// Accuracy, against the exact value (docs/cuda-backend.md has the table and how it is tested):
//   exp2, log2, rsqrt, tanh   the instruction itself: its bound in the PTX ISA (2 ulp; 2^-22 absolute
//                             on (0.5, 2) and relative elsewhere; 2^-22.9 relative; 2^-11 relative)
//   exp                       x * log2(e) split exactly into hi + lo with two FMAs, ex2(hi) corrected
//                             by (1 + lo * ln 2): 2^-21 relative for normal results (ex2 alone would
//                             lose |x| * 2^-24 to the product's rounding: 44 ulp at x = 88); results
//                             below 2^-126 are flushed to 0
//   log                       lg2 times ln 2: 2^-22 absolute on (0.5, 2), 2^-21 relative elsewhere
//   sigmoid                   rcp.approx.ftz(1 + exp(-x)): 2^-20 relative; below 2^-126 flushed to 0
// Special values follow the instructions' tables (docs/cuda-backend.md); NaN stays NaN everywhere.
//
// On the host (tests, the emulated kernels) each instruction is modelled at its documented worst
// case by runtime/emulation/ApproxInstructions.h, so a host test of these formulas is a test of the
// worst the hardware may do, not of a correctly rounded stand-in.

#if !ATTNC_ON_DEVICE
#include "runtime/emulation/ApproxInstructions.h"
#endif

namespace attnc_abi {

// ---- The instructions (not volatile: pure, so the compiler may share or hoist them) ----

ATTNC_DEVICE float approx_ex2(float a) {  // subnormal results kept
#if ATTNC_ON_DEVICE
  float d;
  asm("ex2.approx.f32 %0, %1;" : "=f"(d) : "f"(a));
  return d;
#else
  return attnc::host_emulation::ex2_approx_f32(a, false);
#endif
}

ATTNC_DEVICE float approx_ex2_ftz(float a) {  // subnormal inputs and results flushed to zero
#if ATTNC_ON_DEVICE
  float d;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(d) : "f"(a));
  return d;
#else
  return attnc::host_emulation::ex2_approx_f32(a, true);
#endif
}

ATTNC_DEVICE float approx_lg2(float a) {
#if ATTNC_ON_DEVICE
  float d;
  asm("lg2.approx.f32 %0, %1;" : "=f"(d) : "f"(a));
  return d;
#else
  return attnc::host_emulation::lg2_approx_f32(a, false);
#endif
}

ATTNC_DEVICE float approx_rcp_ftz(float a) {  // subnormal inputs and results flushed to zero
#if ATTNC_ON_DEVICE
  float d;
  asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(d) : "f"(a));
  return d;
#else
  return attnc::host_emulation::rcp_approx_f32(a, true);
#endif
}

ATTNC_DEVICE float approx_rsqrt(float a) {
#if ATTNC_ON_DEVICE
  float d;
  asm("rsqrt.approx.f32 %0, %1;" : "=f"(d) : "f"(a));
  return d;
#else
  return attnc::host_emulation::rsqrt_approx_f32(a, false);
#endif
}

ATTNC_DEVICE float approx_tanh(float a) {  // sm_75 and newer
#if ATTNC_ON_DEVICE
  float d;
  asm("tanh.approx.f32 %0, %1;" : "=f"(d) : "f"(a));
  return d;
#else
  return attnc::host_emulation::tanh_approx_f32(a);
#endif
}

ATTNC_DEVICE float fma_f32(float a, float b, float c) {  // one rounding
#if ATTNC_ON_DEVICE
  return __fmaf_rn(a, b, c);
#else
  return std::fma(a, b, c);
#endif
}

// ---- The functions ----

ATTNC_DEVICE float fast_exp2(float x) { return approx_ex2(x); }
ATTNC_DEVICE float fast_log2(float x) { return approx_lg2(x); }
ATTNC_DEVICE float fast_rsqrt(float x) { return approx_rsqrt(x); }
ATTNC_DEVICE float fast_tanh(float x) { return approx_tanh(x); }

// ln 2 rounded to float; its rounding error (2^-25 relative) is below every bound stated above.
constexpr float kFastLn2 = 0.693147182464599609375f;

ATTNC_DEVICE float fast_log(float x) { return mul_f32(approx_lg2(x), kFastLn2); }

// e^x = 2^(x log2 e). x * log2(e) = hi + lo exactly enough: hi is the rounded product with the
// float constant, the first FMA recovers that product's rounding error, the second adds x times the
// constant's own error. 2^lo = 1 + lo ln 2 to within (lo ln 2)^2 / 2 < 2^-36, since |lo| <= 2^-17
// wherever ex2(hi) is finite and nonzero. Outside that range (hi infinite, NaN, or the result 0 or
// infinite) the correction is skipped: it would only turn 0 * inf into NaN. The flush-to-zero ex2
// (one instruction; the subnormal-keeping form costs four) makes results below 2^-126 (x < -87.3)
// zero: an absolute error under 2^-126, far below any score that survives a softmax.
ATTNC_DEVICE float fast_exp(float x) {
  constexpr float kLog2E = 1.44269502162933349609375f;  // log2(e) rounded to float
  constexpr float kLog2ELow = 1.925962991126617468e-8f;  // log2(e) - kLog2E
  const float hi = mul_f32(x, kLog2E);
  const float lo = fma_f32(x, kLog2ELow, fma_f32(x, kLog2E, -hi));
  const float e = approx_ex2_ftz(hi);
  const bool correct = e > 0.0f && e < 3.402823466e38f;  // false for 0, inf and NaN
  return correct ? fma_f32(e, mul_f32(lo, kFastLn2), e) : e;
}

// 1 / (1 + e^-x). The sum is at least 1 (or inf / NaN), so the flush-to-zero reciprocal only loses
// results below 2^-126 (x < -87.3), which become 0.
ATTNC_DEVICE float fast_sigmoid(float x) { return approx_rcp_ftz(add_f32(1.0f, fast_exp(-x))); }

}  // namespace attnc_abi
