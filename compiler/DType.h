#pragma once
// Element storage types of tensors. Shared by the compiler (a tensor parameter's storage type is
// part of a mod's signature) and the runtime (tensor views, .npy files).

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace attnc {

enum class DType : uint8_t { F32, F16, BF16, I32, I64, U8, Bool };

constexpr size_t dtype_size(DType t) {
  switch (t) {
    case DType::F32: case DType::I32: return 4;
    case DType::F16: case DType::BF16: return 2;
    case DType::I64: return 8;
    case DType::U8: case DType::Bool: return 1;
  }
  return 0;
}

// "fp32", "fp16", "bf16", "int32", "int64", "uint8", "bool"
constexpr std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "fp32";
    case DType::F16: return "fp16";
    case DType::BF16: return "bf16";
    case DType::I32: return "int32";
    case DType::I64: return "int64";
    case DType::U8: return "uint8";
    case DType::Bool: return "bool";
  }
  return "?";
}

std::optional<DType> parse_dtype(std::string_view name);  // accepts the names above (and "float32" etc.)

constexpr bool dtype_is_float(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }
constexpr bool dtype_is_integer(DType t) { return t == DType::I32 || t == DType::I64; }
constexpr bool dtype_is_boolean(DType t) { return t == DType::Bool || t == DType::U8; }

// fp16 / bf16 <-> fp32 conversions (round to nearest even), host side.
float half_to_float(uint16_t bits);
uint16_t float_to_half(float value);
float bfloat16_to_float(uint16_t bits);
uint16_t float_to_bfloat16(float value);

// Reads element `offset` (in elements) of a buffer of type `t` as float / int64 / bool.
float load_as_float(const void* data, DType t, int64_t offset);
int64_t load_as_int(const void* data, DType t, int64_t offset);
bool load_as_bool(const void* data, DType t, int64_t offset);

}  // namespace attnc
