#pragma once
// The contract between the code that compiler/CudaCodegen.cpp generates for a score mod and a mask
// mod, and the kernel templates that call it (flash_attention.cuh, mod_probe.cuh).
//
// This header compiles three ways: under NVRTC (no CUDA include directory, so no <cstdint>: the
// fixed-width types are defined here), under nvcc, and as plain host C++ (the host emulation of the
// kernel and the tests that run the generated code on the CPU). Everything the generated code
// computes goes through the helpers below, which reproduce compiler/Semantics.h bit for bit:
// wrapping ints, x / 0 == 0, x % 0 == 0, INT_MIN / -1 == INT_MIN, saturating float -> int with
// NaN -> 0, NaN-ignoring float min/max with -0 below +0, round half to even, and clamped tensor
// loads. Float +, -, *, / and sqrt use the _rn intrinsics on the device so that no FMA contraction
// or fast-math flag can change a result the interpreter computes exactly. The one exception is the
// transcendental functions (exp, exp2, log, log2, tanh, sigmoid, rsqrt): fast_math.cuh builds them
// from PTX approximate instructions, within error bounds it states and tests check.
//
// What generated code (an "attnc_mods.cuh") defines, in namespace attnc_gen:
//   struct ModParams { ... };   one field per parameter of the score mod, then of the mask mod,
//                               named p0, p1, ...: int32_t (int), float, int32_t (bool, 0/1) or
//                               attnc_abi::TensorParam; the layout is checked with static_asserts.
//   constexpr bool kHasScoreMod, kHasMaskMod, kCheckBounds;
//   ATTNC_DEVICE float score_mod(float score, const attnc_abi::ModPoint& p, const ModParams& params,
//                                attnc_abi::BoundsReport* report);    identity when absent
//   ATTNC_DEVICE bool mask_mod(const attnc_abi::ModPoint& p, const ModParams& params,
//                              attnc_abi::BoundsReport* report);      true when absent
//   ATTNC_DEVICE int tile_class(const attnc_abi::TileBox& tile, const attnc_abi::ModPoint& p,
//                               const ModParams& params);            0 EMPTY, 1 FULL, 2 PARTIAL
// `report` may be null; with kCheckBounds an out-of-range tensor index is recorded there (the first
// one wins) and the load still reads the clamped element, so the kernel finishes normally and the
// runtime raises the error afterwards. tile_class reads the whole box it is given (q_idx / kv_idx
// of `p` are ignored) and is exact or conservative as compiler/TileClassifier.h says.

#include "fixed_width_types.cuh"
#if !defined(__CUDACC_RTC__)
#include <cmath>
#include <cstdint>
#include <cstring>
#endif

#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define ATTNC_DEVICE __device__ __forceinline__
#define ATTNC_ON_DEVICE 1
#define ATTNC_UNROLL _Pragma("unroll")
#else
#define ATTNC_DEVICE inline
#define ATTNC_ON_DEVICE 0
#define ATTNC_UNROLL
#endif

namespace attnc_abi {

constexpr int kMaxRank = 8;

// A tensor parameter: a strided view (strides in elements). The element storage type is not here:
// it is part of the mod's signature, so the generated code knows it statically.
struct TensorParam {
  const void* data;
  int32_t rank;
  int64_t shape[kMaxRank];
  int64_t strides[kMaxRank];
};
static_assert(sizeof(TensorParam) == 144 && alignof(TensorParam) == 8, "TensorParam layout (CudaCodegen.h)");

// The point a mod is evaluated at, and the sizes of the call.
struct ModPoint {
  int32_t b, h, q_idx, kv_idx, q_len, kv_len, num_heads, num_kv_heads;
};

// A tile of queries [q_first, q_last] x keys [kv_first, kv_last], inclusive, global indices.
struct TileBox {
  int32_t q_first, q_last, kv_first, kv_last;
};

// The first out-of-range tensor index seen with bounds checking on. `failed` is 0 until then; the
// fields are written once, by the thread that changed `failed` from 0 to 1. `param` is the index
// into ModParams (score mod parameters first, then the mask mod's).
struct BoundsReport {
  int32_t failed, param, dim;
  int64_t index, extent;
  int32_t b, h, q_idx, kv_idx;
};

// Storage types of tensor elements (compiler/DType.h's DType, in the same order).
enum class Storage : int32_t { F32, F16, BF16, I32, I64, U8, Bool };

constexpr int32_t kIntMin = -2147483647 - 1;
constexpr int32_t kIntMax = 2147483647;
constexpr int64_t kInt64Min = -9223372036854775807LL - 1;
constexpr int64_t kInt64Max = 9223372036854775807LL;

// ---- Bits ----

ATTNC_DEVICE float float_from_bits(uint32_t bits) {
#if ATTNC_ON_DEVICE
  return __int_as_float(static_cast<int32_t>(bits));
#else
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
#endif
}

ATTNC_DEVICE uint32_t float_bits(float f) {
#if ATTNC_ON_DEVICE
  return static_cast<uint32_t>(__float_as_int(f));
#else
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  return bits;
#endif
}

ATTNC_DEVICE bool is_nan(float f) { return f != f; }

// ---- Int (32-bit, wrapping) and Int64 (wrapping) arithmetic, through unsigned to avoid UB ----

ATTNC_DEVICE int32_t add_i32(int32_t a, int32_t b) {
  return static_cast<int32_t>(static_cast<uint32_t>(a) + static_cast<uint32_t>(b));
}
ATTNC_DEVICE int32_t sub_i32(int32_t a, int32_t b) {
  return static_cast<int32_t>(static_cast<uint32_t>(a) - static_cast<uint32_t>(b));
}
ATTNC_DEVICE int32_t mul_i32(int32_t a, int32_t b) {
  return static_cast<int32_t>(static_cast<uint32_t>(a) * static_cast<uint32_t>(b));
}
ATTNC_DEVICE int32_t neg_i32(int32_t a) { return static_cast<int32_t>(0u - static_cast<uint32_t>(a)); }
ATTNC_DEVICE int32_t abs_i32(int32_t a) { return a < 0 ? neg_i32(a) : a; }  // abs(INT_MIN) == INT_MIN
ATTNC_DEVICE int32_t div_i32(int32_t a, int32_t b) {
  if (b == 0) return 0;
  if (a == kIntMin && b == -1) return a;
  return a / b;
}
ATTNC_DEVICE int32_t mod_i32(int32_t a, int32_t b) {
  if (b == 0 || b == -1) return 0;
  return a % b;
}
ATTNC_DEVICE int32_t min_i32(int32_t a, int32_t b) { return a < b ? a : b; }
ATTNC_DEVICE int32_t max_i32(int32_t a, int32_t b) { return a > b ? a : b; }

ATTNC_DEVICE int64_t add_i64(int64_t a, int64_t b) {
  return static_cast<int64_t>(static_cast<uint64_t>(a) + static_cast<uint64_t>(b));
}
ATTNC_DEVICE int64_t sub_i64(int64_t a, int64_t b) {
  return static_cast<int64_t>(static_cast<uint64_t>(a) - static_cast<uint64_t>(b));
}
ATTNC_DEVICE int64_t mul_i64(int64_t a, int64_t b) {
  return static_cast<int64_t>(static_cast<uint64_t>(a) * static_cast<uint64_t>(b));
}
ATTNC_DEVICE int64_t neg_i64(int64_t a) { return static_cast<int64_t>(uint64_t(0) - static_cast<uint64_t>(a)); }
ATTNC_DEVICE int64_t abs_i64(int64_t a) { return a < 0 ? neg_i64(a) : a; }
ATTNC_DEVICE int64_t div_i64(int64_t a, int64_t b) {
  if (b == 0) return 0;
  if (a == kInt64Min && b == -1) return a;
  return a / b;
}
ATTNC_DEVICE int64_t mod_i64(int64_t a, int64_t b) {
  if (b == 0 || b == -1) return 0;
  return a % b;
}
ATTNC_DEVICE int64_t min_i64(int64_t a, int64_t b) { return a < b ? a : b; }
ATTNC_DEVICE int64_t max_i64(int64_t a, int64_t b) { return a > b ? a : b; }

// ---- Float (binary32, round to nearest even, never contracted into FMA) ----

#if ATTNC_ON_DEVICE
ATTNC_DEVICE float add_f32(float a, float b) { return __fadd_rn(a, b); }
ATTNC_DEVICE float sub_f32(float a, float b) { return __fsub_rn(a, b); }
ATTNC_DEVICE float mul_f32(float a, float b) { return __fmul_rn(a, b); }
ATTNC_DEVICE float div_f32(float a, float b) { return __fdiv_rn(a, b); }
ATTNC_DEVICE float sqrt_f32(float a) { return __fsqrt_rn(a); }
ATTNC_DEVICE float fmod_f32(float a, float b) { return fmodf(a, b); }
ATTNC_DEVICE float abs_f32(float a) { return fabsf(a); }
ATTNC_DEVICE float sin_f32(float a) { return sinf(a); }
ATTNC_DEVICE float cos_f32(float a) { return cosf(a); }
ATTNC_DEVICE float pow_f32(float a, float b) { return powf(a, b); }
ATTNC_DEVICE float floor_f32(float a) { return floorf(a); }
ATTNC_DEVICE float ceil_f32(float a) { return ceilf(a); }
ATTNC_DEVICE float round_f32(float a) { return rintf(a); }  // half to even
#else
// Host: the C library's float functions, exactly what the interpreter calls. Tests compile this
// with -ffp-contract=off.
ATTNC_DEVICE float add_f32(float a, float b) { return a + b; }
ATTNC_DEVICE float sub_f32(float a, float b) { return a - b; }
ATTNC_DEVICE float mul_f32(float a, float b) { return a * b; }
ATTNC_DEVICE float div_f32(float a, float b) { return a / b; }
ATTNC_DEVICE float sqrt_f32(float a) { return std::sqrt(a); }
ATTNC_DEVICE float fmod_f32(float a, float b) { return std::fmod(a, b); }
ATTNC_DEVICE float abs_f32(float a) { return std::fabs(a); }
ATTNC_DEVICE float sin_f32(float a) { return std::sin(a); }
ATTNC_DEVICE float cos_f32(float a) { return std::cos(a); }
ATTNC_DEVICE float pow_f32(float a, float b) { return std::pow(a, b); }
ATTNC_DEVICE float floor_f32(float a) { return std::floor(a); }
ATTNC_DEVICE float ceil_f32(float a) { return std::ceil(a); }
ATTNC_DEVICE float round_f32(float a) { return std::nearbyint(a); }  // half to even (default mode)
#endif

// The transcendental functions: fast, within the error bounds fast_math.cuh states (not bit for bit
// with the interpreter, which calls the C library). sin, cos and pow keep the library's versions.
}  // namespace attnc_abi
#include "fast_math.cuh"
namespace attnc_abi {

ATTNC_DEVICE float exp_f32(float a) { return fast_exp(a); }
ATTNC_DEVICE float exp2_f32(float a) { return fast_exp2(a); }
ATTNC_DEVICE float log_f32(float a) { return fast_log(a); }
ATTNC_DEVICE float log2_f32(float a) { return fast_log2(a); }
ATTNC_DEVICE float tanh_f32(float a) { return fast_tanh(a); }
ATTNC_DEVICE float rsqrt_f32(float a) { return fast_rsqrt(a); }
ATTNC_DEVICE float sigmoid_f32(float a) { return fast_sigmoid(a); }

// min/max ignore a NaN operand and order -0 below +0 (compiler/Semantics.cpp).
ATTNC_DEVICE float min_f32(float a, float b) {
  if (is_nan(a)) return b;
  if (is_nan(b)) return a;
  if (a == b) return (float_bits(a) >> 31) != 0 ? a : b;
  return a < b ? a : b;
}
ATTNC_DEVICE float max_f32(float a, float b) {
  if (is_nan(a)) return b;
  if (is_nan(b)) return a;
  if (a == b) return (float_bits(a) >> 31) != 0 ? b : a;
  return a > b ? a : b;
}

// ---- Conversions ----

// Truncates toward zero, saturates, NaN -> 0. The range checks come first: the conversion
// instruction is only ever given an in-range value.
ATTNC_DEVICE int32_t f32_to_i32(float f) {
  if (is_nan(f)) return 0;
  if (f >= 2147483648.0f) return kIntMax;
  if (f <= -2147483648.0f) return kIntMin;
#if ATTNC_ON_DEVICE
  return __float2int_rz(f);
#else
  return static_cast<int32_t>(f);
#endif
}
ATTNC_DEVICE int64_t f32_to_i64(float f) {
  if (is_nan(f)) return 0;
  if (f >= 9.2233720368547758e18f) return kInt64Max;
  if (f <= -9.2233720368547758e18f) return kInt64Min;
#if ATTNC_ON_DEVICE
  return __float2ll_rz(f);
#else
  return static_cast<int64_t>(f);
#endif
}
ATTNC_DEVICE float i32_to_f32(int32_t v) { return static_cast<float>(v); }  // round to nearest
ATTNC_DEVICE float i64_to_f32(int64_t v) { return static_cast<float>(v); }
ATTNC_DEVICE int32_t i64_to_i32(int64_t v) {
  return static_cast<int32_t>(static_cast<uint32_t>(static_cast<uint64_t>(v)));
}

ATTNC_DEVICE float bf16_bits_to_f32(uint16_t bits) { return float_from_bits(static_cast<uint32_t>(bits) << 16); }
ATTNC_DEVICE float f16_bits_to_f32(uint16_t bits) {
#if ATTNC_ON_DEVICE
  float f;
  asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(bits));
  return f;
#else
  uint32_t sign = static_cast<uint32_t>(bits & 0x8000u) << 16;
  uint32_t exponent = (bits >> 10) & 0x1fu;
  uint32_t mantissa = bits & 0x3ffu;
  if (exponent == 0) {
    float magnitude = static_cast<float>(mantissa) * 5.9604644775390625e-8f;  // * 2^-24, exact
    return float_from_bits(float_bits(magnitude) | sign);
  }
  if (exponent == 0x1f) return float_from_bits(sign | 0x7f800000u | (mantissa << 13));
  return float_from_bits(sign | ((exponent + 112u) << 23) | (mantissa << 13));
#endif
}

// ---- Tensor loads ----

template <typename T>
ATTNC_DEVICE T read_element(const void* data, int64_t offset) {
#if ATTNC_ON_DEVICE
  return static_cast<const T*>(data)[offset];
#else
  T value;  // memcpy: host buffers need not be aligned for T
  std::memcpy(&value, static_cast<const unsigned char*>(data) + offset * static_cast<int64_t>(sizeof(T)), sizeof(T));
  return value;
#endif
}

// Element `offset` of a float tensor, as float.
template <Storage S>
ATTNC_DEVICE float element_float(const TensorParam& t, int64_t offset) {
  if (S == Storage::F16) return f16_bits_to_f32(read_element<uint16_t>(t.data, offset));
  if (S == Storage::BF16) return bf16_bits_to_f32(read_element<uint16_t>(t.data, offset));
  return read_element<float>(t.data, offset);
}
// Element `offset` of an int tensor (int32, or int64 narrowed by wrapping).
template <Storage S>
ATTNC_DEVICE int32_t element_int(const TensorParam& t, int64_t offset) {
  if (S == Storage::I64) return i64_to_i32(read_element<int64_t>(t.data, offset));
  return read_element<int32_t>(t.data, offset);
}
// Element `offset` of a bool tensor (one byte; any nonzero byte is true).
template <Storage S>
ATTNC_DEVICE bool element_bool(const TensorParam& t, int64_t offset) {
  return read_element<uint8_t>(t.data, offset) != 0;
}

// Clamps `index` into [0, extent). The runtime never binds a tensor with an empty dimension.
ATTNC_DEVICE int64_t clamp_index(int64_t index, int64_t extent) {
  return index < 0 ? 0 : (index >= extent ? extent - 1 : index);
}

// Records the first out-of-range index into `report` (first writer wins).
ATTNC_DEVICE void report_out_of_range(BoundsReport* report, int32_t param, int32_t dim, int64_t index, int64_t extent,
                                      const ModPoint& p) {
  if (report == nullptr) return;
#if ATTNC_ON_DEVICE
  if (atomicCAS(&report->failed, 0, 1) != 0) return;
#else
  int32_t expected = 0;
  if (!__atomic_compare_exchange_n(&report->failed, &expected, 1, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) return;
#endif
  report->param = param;
  report->dim = dim;
  report->index = index;
  report->extent = extent;
  report->b = p.b;
  report->h = p.h;
  report->q_idx = p.q_idx;
  report->kv_idx = p.kv_idx;
}

// The element offset of `at` (RANK indices, dimension 0 first), each clamped into range.
template <int RANK>
ATTNC_DEVICE int64_t clamped_offset(const TensorParam& t, const int64_t (&at)[RANK]) {
  int64_t offset = 0;
  ATTNC_UNROLL
  for (int d = 0; d < RANK; ++d) offset += clamp_index(at[d], t.shape[d]) * t.strides[d];
  return offset;
}

// The same, recording the first out-of-range index (dimension 0 first) before clamping it.
template <int RANK>
ATTNC_DEVICE int64_t checked_offset(const TensorParam& t, const int64_t (&at)[RANK], int32_t param, const ModPoint& p,
                                    BoundsReport* report) {
  int64_t offset = 0;
  ATTNC_UNROLL
  for (int d = 0; d < RANK; ++d) {
    if (at[d] < 0 || at[d] >= t.shape[d]) report_out_of_range(report, param, d, at[d], t.shape[d], p);
    offset += clamp_index(at[d], t.shape[d]) * t.strides[d];
  }
  return offset;
}

// ---- Range summaries (IR LoadRange): min or max of a tensor over a box, for tile classification ----

// The box is [first[d], last[d]] per dimension (either order), each bound clamped into range, walked
// last dimension fastest; `visit` receives each element's offset.
template <int RANK, class Visit>
ATTNC_DEVICE void for_each_in_box(const TensorParam& t, const int64_t (&first)[RANK], const int64_t (&last)[RANK],
                                  Visit&& visit) {
  int64_t from[RANK], to[RANK], at[RANK];
  ATTNC_UNROLL
  for (int d = 0; d < RANK; ++d) {
    int64_t a = clamp_index(first[d], t.shape[d]), b = clamp_index(last[d], t.shape[d]);
    from[d] = a < b ? a : b;
    to[d] = a < b ? b : a;
    at[d] = from[d];
  }
  while (true) {
    int64_t offset = 0;
    for (int d = 0; d < RANK; ++d) offset += at[d] * t.strides[d];
    visit(offset);
    int d = RANK - 1;
    while (d >= 0 && at[d] == to[d]) {
      at[d] = from[d];
      --d;
    }
    if (d < 0) return;
    ++at[d];
  }
}

// Float summaries skip NaN (as min_f32) and start from NaN, so an all-NaN box gives NaN; int
// summaries start from the neutral extreme.
template <Storage S, bool IS_MIN, int RANK>
ATTNC_DEVICE float range_float(const TensorParam& t, const int64_t (&first)[RANK], const int64_t (&last)[RANK]) {
  float acc = float_from_bits(0x7fc00000u);
  for_each_in_box<RANK>(t, first, last, [&](int64_t offset) {
    float v = element_float<S>(t, offset);
    acc = IS_MIN ? min_f32(acc, v) : max_f32(acc, v);
  });
  return acc;
}

template <Storage S, bool IS_MIN, int RANK>
ATTNC_DEVICE int32_t range_int(const TensorParam& t, const int64_t (&first)[RANK], const int64_t (&last)[RANK]) {
  int32_t acc = IS_MIN ? kIntMax : kIntMin;
  for_each_in_box<RANK>(t, first, last, [&](int64_t offset) {
    int32_t v = element_int<S>(t, offset);
    acc = IS_MIN ? min_i32(acc, v) : max_i32(acc, v);
  });
  return acc;
}

}  // namespace attnc_abi
