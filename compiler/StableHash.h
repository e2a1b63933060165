#pragma once
// Hashes that are the same on every run, build and machine: FNV-1a over explicit little-endian
// bytes. Used for IR structural hashes and for signatures; never std::hash or pointer values.

#include <cstdint>
#include <string>
#include <string_view>

namespace attnc {

class StableHash64 {
 public:
  StableHash64& bytes(const void* data, size_t size) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < size; ++i) state_ = (state_ ^ p[i]) * 0x100000001b3ull;
    return *this;
  }
  StableHash64& u64(uint64_t value) {
    unsigned char le[8];
    for (int i = 0; i < 8; ++i) le[i] = static_cast<unsigned char>(value >> (8 * i));
    return bytes(le, 8);
  }
  StableHash64& text(std::string_view s) { return u64(s.size()).bytes(s.data(), s.size()); }
  uint64_t value() const { return state_; }

 private:
  uint64_t state_ = 0xcbf29ce484222325ull;
};

// 128-bit FNV-1a; the digest prints as 32 lowercase hex digits.
class StableHash128 {
 public:
  StableHash128& bytes(const void* data, size_t size) {
    const unsigned __int128 prime = (static_cast<unsigned __int128>(1) << 88) + 0x13b;
    const auto* p = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < size; ++i) state_ = (state_ ^ p[i]) * prime;
    return *this;
  }
  StableHash128& u64(uint64_t value) {
    unsigned char le[8];
    for (int i = 0; i < 8; ++i) le[i] = static_cast<unsigned char>(value >> (8 * i));
    return bytes(le, 8);
  }
  StableHash128& text(std::string_view s) { return u64(s.size()).bytes(s.data(), s.size()); }
  uint64_t high() const { return static_cast<uint64_t>(state_ >> 64); }
  uint64_t low() const { return static_cast<uint64_t>(state_); }
  std::string hex() const {
    static const char digits[] = "0123456789abcdef";
    std::string out(32, '0');
    unsigned __int128 v = state_;
    for (int i = 31; i >= 0; --i, v >>= 4) out[i] = digits[static_cast<int>(v & 0xf)];
    return out;
  }

 private:
  unsigned __int128 state_ = (static_cast<unsigned __int128>(0x6c62272e07bb0142ull) << 64) | 0x62b821756295c58dull;
};

}  // namespace attnc
