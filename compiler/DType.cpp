#include "compiler/DType.h"

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

namespace attnc {

namespace {

template <typename T>
T read(const void* data, int64_t offset) {
  // memcpy: tensor buffers come from anywhere (numpy, torch, mmap) and need not be aligned for T.
  T value;
  std::memcpy(&value, static_cast<const unsigned char*>(data) + offset * static_cast<int64_t>(sizeof(T)), sizeof(T));
  return value;
}

float read_float(const void* data, DType t, int64_t offset) {
  switch (t) {
    case DType::F32: return read<float>(data, offset);
    case DType::F16: return half_to_float(read<uint16_t>(data, offset));
    case DType::BF16: return bfloat16_to_float(read<uint16_t>(data, offset));
    default: return 0.0f;
  }
}

// Float -> int64 with the same total rules as the IR's Float -> Int cast: truncate, saturate, NaN is 0.
int64_t saturating_int64(float f) {
  if (std::isnan(f)) return 0;
  if (f >= 9.2233720368547758e18f) return std::numeric_limits<int64_t>::max();
  if (f <= -9.2233720368547758e18f) return std::numeric_limits<int64_t>::min();
  return static_cast<int64_t>(f);
}

}  // namespace

std::optional<DType> parse_dtype(std::string_view name) {
  struct Alias {
    std::string_view name;
    DType type;
  };
  // The canonical names first, then the spellings numpy and torch users type.
  static constexpr Alias kAliases[] = {
      {"fp32", DType::F32},  {"fp16", DType::F16},      {"bf16", DType::BF16},   {"int32", DType::I32},
      {"int64", DType::I64}, {"uint8", DType::U8},      {"bool", DType::Bool},   {"float32", DType::F32},
      {"f32", DType::F32},   {"float", DType::F32},     {"float16", DType::F16}, {"f16", DType::F16},
      {"half", DType::F16},  {"bfloat16", DType::BF16}, {"i32", DType::I32},     {"int", DType::I32},
      {"i64", DType::I64},   {"long", DType::I64},      {"u8", DType::U8},       {"bool8", DType::Bool},
  };
  for (const Alias& alias : kAliases) {
    if (alias.name == name) return alias.type;
  }
  return std::nullopt;
}

float half_to_float(uint16_t bits) {
  uint32_t sign = static_cast<uint32_t>(bits & 0x8000u) << 16;
  uint32_t exponent = (bits >> 10) & 0x1fu;
  uint32_t mantissa = bits & 0x3ffu;
  if (exponent == 0) {
    // Zero or subnormal: mantissa * 2^-24 is exact in binary32.
    float magnitude = std::ldexp(static_cast<float>(mantissa), -24);
    return sign ? -magnitude : magnitude;
  }
  if (exponent == 0x1f) return std::bit_cast<float>(sign | 0x7f800000u | (mantissa << 13));  // inf, NaN
  return std::bit_cast<float>(sign | ((exponent + 112u) << 23) | (mantissa << 13));          // rebias 15 -> 127
}

uint16_t float_to_half(float value) {
  uint32_t bits = std::bit_cast<uint32_t>(value);
  auto sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  uint32_t magnitude = bits & 0x7fffffffu;
  if (magnitude > 0x7f800000u) {
    // NaN stays NaN: keep the top payload bits and force the quiet bit so the payload cannot become 0 (inf).
    return static_cast<uint16_t>(sign | 0x7e00u | ((magnitude >> 13) & 0x3ffu));
  }
  if (magnitude >= 0x38800000u) {
    // Normal in fp16 range or above (2^-14 and up): rebias the exponent, then round the 13 dropped
    // bits to nearest even. A carry out of the mantissa correctly bumps the exponent; anything that
    // lands at or above the fp16 infinity encoding (including +-inf itself) is infinity.
    uint32_t rebiased = magnitude - (112u << 23);
    uint32_t rounded = (rebiased + 0xfffu + ((rebiased >> 13) & 1u)) >> 13;
    if (rounded >= 0x7c00u) return static_cast<uint16_t>(sign | 0x7c00u);
    return static_cast<uint16_t>(sign | rounded);
  }
  // fp16 subnormal or zero: the result is round(|value| / 2^-24) in units of the smallest subnormal.
  uint32_t exponent = magnitude >> 23;
  if (exponent < 102) return sign;  // below 2^-25: rounds to zero (2^-25 itself is a tie and goes to even 0)
  uint32_t significand = (magnitude & 0x7fffffu) | 0x800000u;
  uint32_t shift = 126u - exponent;  // 14..24
  uint32_t quotient = significand >> shift;
  uint32_t remainder = significand & ((1u << shift) - 1u);
  uint32_t halfway = 1u << (shift - 1u);
  if (remainder > halfway || (remainder == halfway && (quotient & 1u))) ++quotient;  // may reach 0x400: min normal
  return static_cast<uint16_t>(sign | quotient);
}

float bfloat16_to_float(uint16_t bits) { return std::bit_cast<float>(static_cast<uint32_t>(bits) << 16); }

uint16_t float_to_bfloat16(float value) {
  uint32_t bits = std::bit_cast<uint32_t>(value);
  if ((bits & 0x7fffffffu) > 0x7f800000u) {
    // Truncating a NaN could clear every payload bit left and give inf; force the quiet bit instead.
    return static_cast<uint16_t>((bits >> 16) | 0x0040u);
  }
  // Round to nearest even on the 16 dropped bits; overflow carries into the exponent and reaches inf.
  uint32_t rounded = bits + 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(rounded >> 16);
}

float load_as_float(const void* data, DType t, int64_t offset) {
  switch (t) {
    case DType::F32:
    case DType::F16:
    case DType::BF16: return read_float(data, t, offset);
    case DType::I32: return static_cast<float>(read<int32_t>(data, offset));
    case DType::I64: return static_cast<float>(read<int64_t>(data, offset));
    case DType::U8: return static_cast<float>(read<uint8_t>(data, offset));
    case DType::Bool: return read<uint8_t>(data, offset) != 0 ? 1.0f : 0.0f;
  }
  return 0.0f;
}

int64_t load_as_int(const void* data, DType t, int64_t offset) {
  switch (t) {
    case DType::F32:
    case DType::F16:
    case DType::BF16: return saturating_int64(read_float(data, t, offset));
    case DType::I32: return read<int32_t>(data, offset);
    case DType::I64: return read<int64_t>(data, offset);
    case DType::U8: return read<uint8_t>(data, offset);
    case DType::Bool: return read<uint8_t>(data, offset) != 0 ? 1 : 0;
  }
  return 0;
}

bool load_as_bool(const void* data, DType t, int64_t offset) {
  switch (t) {
    case DType::F32:
    case DType::F16:
    case DType::BF16: return read_float(data, t, offset) != 0.0f;  // NaN is nonzero, as in C
    case DType::I32: return read<int32_t>(data, offset) != 0;
    case DType::I64: return read<int64_t>(data, offset) != 0;
    case DType::U8:
    case DType::Bool: return read<uint8_t>(data, offset) != 0;
  }
  return false;
}

}  // namespace attnc
