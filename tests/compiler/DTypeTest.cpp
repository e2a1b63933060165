#include "compiler/DType.h"

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

using namespace attnc;

namespace {

float from_bits(uint32_t bits) { return std::bit_cast<float>(bits); }
uint32_t to_bits(float f) { return std::bit_cast<uint32_t>(f); }

bool half_is_nan(uint16_t h) { return (h & 0x7c00u) == 0x7c00u && (h & 0x3ffu) != 0; }
bool bf16_is_nan(uint16_t h) { return (h & 0x7f80u) == 0x7f80u && (h & 0x7fu) != 0; }

}  // namespace

TEST_CASE("parse_dtype reads every canonical name back and the usual aliases", "[dtype]") {
  for (DType t : {DType::F32, DType::F16, DType::BF16, DType::I32, DType::I64, DType::U8, DType::Bool}) {
    CAPTURE(dtype_name(t));
    REQUIRE(parse_dtype(dtype_name(t)) == t);
  }
  auto [alias, expected] = GENERATE(table<std::string, DType>({
      {"float32", DType::F32},
      {"float16", DType::F16},
      {"half", DType::F16},
      {"bfloat16", DType::BF16},
      {"i64", DType::I64},
      {"long", DType::I64},
      {"u8", DType::U8},
  }));
  CAPTURE(alias);
  CHECK(parse_dtype(alias) == expected);
}

TEST_CASE("parse_dtype rejects unknown names", "[dtype]") {
  auto name = GENERATE(as<std::string>{}, "", "FP32", "fp64", "int8", "float32 ", "bfloat");
  CAPTURE(name);
  CHECK_FALSE(parse_dtype(name).has_value());
}

TEST_CASE("float_to_half rounds to nearest even and handles the special values", "[dtype][fp16]") {
  auto [value, expected] = GENERATE(table<float, uint16_t>({
      {1.0f, 0x3c00},
      {-2.0f, 0xc000},
      {0.0f, 0x0000},
      {-0.0f, 0x8000},
      {0.1f, 0x2e66},
      {65504.0f, 0x7bff},  // largest finite half
      {65519.0f, 0x7bff},  // just below the tie with infinity
      {65520.0f, 0x7c00},  // tie between 65504 (odd) and inf: rounds to inf
      {1e6f, 0x7c00},      // overflow
      {-1e6f, 0xfc00},
      {std::numeric_limits<float>::infinity(), 0x7c00},
      {-std::numeric_limits<float>::infinity(), 0xfc00},
      {1.0f + 0x1p-11f, 0x3c00},             // tie: stays on even 0x3c00
      {1.0f + 3 * 0x1p-11f, 0x3c02},         // tie: rounds up to even 0x3c02
      {1.0f + 0x1p-11f + 0x1p-20f, 0x3c01},  // just above the tie
      {0x1p-14f, 0x0400},                    // smallest normal
      {0x1p-24f, 0x0001},                    // smallest subnormal
      {1023 * 0x1p-24f, 0x03ff},             // largest subnormal
      {0x1p-25f, 0x0000},                    // tie between 0 and the smallest subnormal: even is 0
      {0x1p-25f + 0x1p-40f, 0x0001},         // just above that tie
      {3 * 0x1p-25f, 0x0002},                // tie between 1 and 2 subnormal units: even is 2
      {-5 * 0x1p-25f, 0x8002},               // tie between 2 and 3: even is 2, sign kept
      {0x1p-14f - 0x1p-26f, 0x0400},         // rounds up out of the subnormals into the smallest normal
      {0x1p-30f, 0x0000},                    // underflow
      {from_bits(0x00000001u), 0x0000},      // a float subnormal
  }));
  CAPTURE(value, expected);
  CHECK(float_to_half(value) == expected);
}

TEST_CASE("float_to_half keeps NaN a NaN with its sign", "[dtype][fp16]") {
  auto bits = GENERATE(0x7fc00000u, 0x7f800001u, 0xff800001u, 0x7f802000u, 0xffffffffu);
  CAPTURE(bits);
  uint16_t h = float_to_half(from_bits(bits));
  CHECK(half_is_nan(h));
  CHECK(((h & 0x8000u) != 0) == ((bits & 0x80000000u) != 0));
}

TEST_CASE("half_to_float decodes normals, subnormals, infinities and NaN", "[dtype][fp16]") {
  CHECK(half_to_float(0x3c00) == 1.0f);
  CHECK(half_to_float(0xc000) == -2.0f);
  CHECK(half_to_float(0x7bff) == 65504.0f);
  CHECK(half_to_float(0x0001) == 0x1p-24f);
  CHECK(half_to_float(0x03ff) == 1023 * 0x1p-24f);
  CHECK(half_to_float(0x0400) == 0x1p-14f);
  CHECK(to_bits(half_to_float(0x8000)) == 0x80000000u);
  CHECK(half_to_float(0x7c00) == std::numeric_limits<float>::infinity());
  CHECK(half_to_float(0xfc00) == -std::numeric_limits<float>::infinity());
  CHECK(std::isnan(half_to_float(0x7e00)));
  CHECK(std::isnan(half_to_float(0x7c01)));
}

TEST_CASE("every half value survives a round trip through float", "[dtype][fp16]") {
  int mismatches = 0;
  for (uint32_t h = 0; h <= 0xffffu; ++h) {
    auto bits = static_cast<uint16_t>(h);
    uint16_t back = float_to_half(half_to_float(bits));
    bool ok = half_is_nan(bits) ? half_is_nan(back) && (back & 0x8000u) == (bits & 0x8000u) : back == bits;
    if (!ok) ++mismatches;
  }
  CHECK(mismatches == 0);
}

#if defined(__FLT16_MAX__)
TEST_CASE("float_to_half agrees with the compiler's _Float16 conversion on random floats", "[dtype][fp16]") {
  std::mt19937 rng(1234);
  // Mostly values near the fp16 range (exponents -30..20) so that subnormals, ties and overflow are hit.
  std::uniform_int_distribution<uint32_t> exponent(127 - 30, 127 + 20);
  std::uniform_int_distribution<uint32_t> mantissa(0, 0x7fffff);
  std::uniform_int_distribution<uint32_t> tail(0, 3);
  int mismatches = 0;
  uint32_t first_mismatch = 0;
  for (int i = 0; i < 200000; ++i) {
    uint32_t m = mantissa(rng);
    if (tail(rng) == 0) m = (m & ~0x1fffu) | 0x1000u;  // force an exact tie for normals
    uint32_t bits = (static_cast<uint32_t>(i & 1) << 31) | (exponent(rng) << 23) | m;
    float f = from_bits(bits);
    auto reference = static_cast<_Float16>(f);
    uint16_t expected;
    std::memcpy(&expected, &reference, 2);
    if (float_to_half(f) != expected && mismatches++ == 0) first_mismatch = bits;
  }
  CAPTURE(first_mismatch);
  CHECK(mismatches == 0);
}
#endif

TEST_CASE("float_to_bfloat16 rounds to nearest even and handles the special values", "[dtype][bf16]") {
  auto [bits, expected] = GENERATE(table<uint32_t, uint16_t>({
      {0x3f800000u, 0x3f80},  // 1.0
      {0x3f808000u, 0x3f80},  // tie: stays on even
      {0x3f818000u, 0x3f82},  // tie: rounds up to even
      {0x3f808001u, 0x3f81},  // just above the tie
      {0x3f807fffu, 0x3f80},  // just below the tie
      {0x7f7fffffu, 0x7f80},  // FLT_MAX rounds to inf
      {0xff7fffffu, 0xff80},
      {0x7f800000u, 0x7f80},  // inf
      {0xff800000u, 0xff80},
      {0x00008000u, 0x0000},  // subnormal tie: even is 0
      {0x00018000u, 0x0002},  // subnormal tie: even is 2
      {0x80000000u, 0x8000},  // -0
  }));
  CAPTURE(bits, expected);
  CHECK(float_to_bfloat16(from_bits(bits)) == expected);
}

TEST_CASE("float_to_bfloat16 keeps NaN a NaN even when its payload sits in the dropped bits", "[dtype][bf16]") {
  auto bits = GENERATE(0x7f800001u, 0xff800001u, 0x7fc00000u, 0x7fffffffu);
  CAPTURE(bits);
  uint16_t b = float_to_bfloat16(from_bits(bits));
  CHECK(bf16_is_nan(b));
  CHECK(((b & 0x8000u) != 0) == ((bits & 0x80000000u) != 0));
}

TEST_CASE("bfloat16_to_float is exact and round-trips every bf16 value", "[dtype][bf16]") {
  CHECK(bfloat16_to_float(0x3f80) == 1.0f);
  CHECK(bfloat16_to_float(0xc0a0) == -5.0f);
  CHECK(bfloat16_to_float(0x0001) == from_bits(0x00010000u));
  CHECK(std::isnan(bfloat16_to_float(0x7fc0)));
  int mismatches = 0;
  for (uint32_t h = 0; h <= 0xffffu; ++h) {
    auto bits = static_cast<uint16_t>(h);
    uint16_t back = float_to_bfloat16(bfloat16_to_float(bits));
    bool ok = bf16_is_nan(bits) ? bf16_is_nan(back) : back == bits;
    if (!ok) ++mismatches;
  }
  CHECK(mismatches == 0);
}

TEST_CASE("load_as_float reads every storage type", "[dtype][load]") {
  std::vector<float> f32{1.5f, -2.25f, 3.0f};
  std::vector<uint16_t> f16{float_to_half(0.5f), float_to_half(-65504.0f)};
  std::vector<uint16_t> bf16{float_to_bfloat16(3.0f), float_to_bfloat16(-0.125f)};
  std::vector<int32_t> i32{7, -9};
  std::vector<int64_t> i64{int64_t{1} << 40, -3};
  std::vector<uint8_t> u8{0, 200};
  std::vector<uint8_t> b8{0, 2};
  CHECK(load_as_float(f32.data(), DType::F32, 1) == -2.25f);
  CHECK(load_as_float(f16.data(), DType::F16, 0) == 0.5f);
  CHECK(load_as_float(f16.data(), DType::F16, 1) == -65504.0f);
  CHECK(load_as_float(bf16.data(), DType::BF16, 0) == 3.0f);
  CHECK(load_as_float(bf16.data(), DType::BF16, 1) == -0.125f);
  CHECK(load_as_float(i32.data(), DType::I32, 1) == -9.0f);
  CHECK(load_as_float(i64.data(), DType::I64, 0) == 0x1p40f);
  CHECK(load_as_float(u8.data(), DType::U8, 1) == 200.0f);
  CHECK(load_as_float(b8.data(), DType::Bool, 1) == 1.0f);
}

TEST_CASE("load_as_int reads integers whole and converts floats with the IR's saturating rule", "[dtype][load]") {
  std::vector<int64_t> i64{(int64_t{1} << 32) + 5, -1, std::numeric_limits<int64_t>::min()};
  std::vector<int32_t> i32{std::numeric_limits<int32_t>::min(), 42};
  std::vector<uint8_t> u8{255, 0};
  std::vector<uint8_t> b8{7, 0};
  std::vector<float> f32{-2.75f, std::nanf(""), 1e30f, -1e30f};
  CHECK(load_as_int(i64.data(), DType::I64, 0) == (int64_t{1} << 32) + 5);  // narrowing is the caller's job
  CHECK(load_as_int(i64.data(), DType::I64, 1) == -1);
  CHECK(load_as_int(i64.data(), DType::I64, 2) == std::numeric_limits<int64_t>::min());
  CHECK(load_as_int(i32.data(), DType::I32, 0) == std::numeric_limits<int32_t>::min());
  CHECK(load_as_int(i32.data(), DType::I32, 1) == 42);
  CHECK(load_as_int(u8.data(), DType::U8, 0) == 255);
  CHECK(load_as_int(b8.data(), DType::Bool, 0) == 1);
  CHECK(load_as_int(b8.data(), DType::Bool, 1) == 0);
  CHECK(load_as_int(f32.data(), DType::F32, 0) == -2);
  CHECK(load_as_int(f32.data(), DType::F32, 1) == 0);
  CHECK(load_as_int(f32.data(), DType::F32, 2) == std::numeric_limits<int64_t>::max());
  CHECK(load_as_int(f32.data(), DType::F32, 3) == std::numeric_limits<int64_t>::min());
}

TEST_CASE("load_as_bool treats any nonzero element as true", "[dtype][load]") {
  std::vector<uint8_t> b8{0, 1, 2, 255};
  std::vector<float> f32{0.0f, -0.0f, 0.5f, std::nanf("")};
  std::vector<int64_t> i64{0, int64_t{1} << 40};
  std::vector<int32_t> i32{0, -1};
  CHECK_FALSE(load_as_bool(b8.data(), DType::Bool, 0));
  CHECK(load_as_bool(b8.data(), DType::Bool, 1));
  CHECK(load_as_bool(b8.data(), DType::Bool, 2));
  CHECK(load_as_bool(b8.data(), DType::U8, 3));
  CHECK_FALSE(load_as_bool(f32.data(), DType::F32, 0));
  CHECK_FALSE(load_as_bool(f32.data(), DType::F32, 1));
  CHECK(load_as_bool(f32.data(), DType::F32, 2));
  CHECK(load_as_bool(f32.data(), DType::F32, 3));
  CHECK_FALSE(load_as_bool(i64.data(), DType::I64, 0));
  CHECK(load_as_bool(i64.data(), DType::I64, 1));  // not truncated to the low 32 bits first
  CHECK(load_as_bool(i32.data(), DType::I32, 1));
}

TEST_CASE("loads read unaligned buffers", "[dtype][load]") {
  alignas(8) unsigned char bytes[16] = {};
  float value = -7.5f;
  std::memcpy(bytes + 1, &value, sizeof value);
  CHECK(load_as_float(bytes + 1, DType::F32, 0) == -7.5f);
  int64_t big = -123456789012345;
  std::memcpy(bytes + 3, &big, sizeof big);
  CHECK(load_as_int(bytes + 3, DType::I64, 0) == big);
}
