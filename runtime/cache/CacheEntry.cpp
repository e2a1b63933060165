#include "runtime/cache/CacheEntry.h"

#include <cstring>

#include <fmt/format.h>

#include "compiler/StableHash.h"

namespace attnc {

namespace {

constexpr char kMagic[8] = {'A', 'T', 'T', 'N', 'C', 'K', 'C', '\0'};

void put_u32(std::string& out, uint32_t value) {
  for (int i = 0; i < 4; ++i) out += static_cast<char>(value >> (8 * i));
}
void put_u64(std::string& out, uint64_t value) {
  for (int i = 0; i < 8; ++i) out += static_cast<char>(value >> (8 * i));
}
uint64_t get_u64(std::string_view bytes, size_t offset) {
  uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = value << 8 | static_cast<unsigned char>(bytes[offset + i]);
  return value;
}
uint32_t get_u32(std::string_view bytes, size_t offset) {
  uint32_t value = 0;
  for (int i = 3; i >= 0; --i) value = value << 8 | static_cast<unsigned char>(bytes[offset + i]);
  return value;
}

uint64_t body_checksum(std::string_view key, std::string_view metadata, std::string_view payload) {
  return StableHash64().text(key).text(metadata).text(payload).value();
}

}  // namespace

std::string encode_cache_entry(std::string_view key_text, const CachedKernel& kernel) {
  std::string out;
  out.reserve(kCacheEntryHeaderSize + key_text.size() + kernel.metadata.size() + kernel.payload.size());
  out.append(kMagic, sizeof kMagic);
  put_u32(out, kCacheEntryVersion);
  put_u32(out, kCacheEntryHeaderSize);
  put_u64(out, key_text.size());
  put_u64(out, kernel.metadata.size());
  put_u64(out, kernel.payload.size());
  put_u64(out, body_checksum(key_text, kernel.metadata, kernel.payload));
  put_u64(out, StableHash64().bytes(out.data(), out.size()).value());
  out += key_text;
  out += kernel.metadata;
  out += kernel.payload;
  return out;
}

std::optional<uint64_t> cache_entry_key_size(std::string_view header) {
  if (header.size() < kCacheEntryHeaderSize || std::memcmp(header.data(), kMagic, sizeof kMagic) != 0 ||
      get_u32(header, 8) != kCacheEntryVersion || get_u32(header, 12) != kCacheEntryHeaderSize ||
      StableHash64().bytes(header.data(), 48).value() != get_u64(header, 48)) {
    return std::nullopt;
  }
  return get_u64(header, 16);
}

DecodedCacheEntry decode_cache_entry(std::string_view bytes, std::optional<std::string_view> expected_key_text,
                                     bool with_payload) {
  DecodedCacheEntry entry;
  auto fail = [&](std::string problem) {
    entry.problem = std::move(problem);
    return entry;
  };
  if (bytes.size() < kCacheEntryHeaderSize) {
    return fail(
        fmt::format("truncated: {} bytes, shorter than the {}-byte header", bytes.size(), kCacheEntryHeaderSize));
  }
  if (std::memcmp(bytes.data(), kMagic, sizeof kMagic) != 0) return fail("not an attnc kernel-cache entry (bad magic)");
  uint32_t version = get_u32(bytes, 8);
  if (version != kCacheEntryVersion) {
    return fail(fmt::format("format version {}, this attnc reads version {}", version, kCacheEntryVersion));
  }
  if (StableHash64().bytes(bytes.data(), 48).value() != get_u64(bytes, 48) ||
      get_u32(bytes, 12) != kCacheEntryHeaderSize) {
    return fail("corrupted header (header checksum mismatch)");
  }
  uint64_t key_size = get_u64(bytes, 16), metadata_size = get_u64(bytes, 24), payload_size = get_u64(bytes, 32);
  uint64_t available = bytes.size() - kCacheEntryHeaderSize;
  // Compared one by one so a huge size cannot wrap the sum.
  if (key_size > available || metadata_size > available - key_size ||
      payload_size != available - key_size - metadata_size) {
    uint64_t expected = kCacheEntryHeaderSize + key_size + metadata_size + payload_size;
    return fail(fmt::format("{}: {} bytes, the header promises {}", bytes.size() < expected ? "truncated" : "oversized",
                            bytes.size(), expected));
  }
  std::string_view key = bytes.substr(kCacheEntryHeaderSize, key_size);
  std::string_view metadata = bytes.substr(kCacheEntryHeaderSize + key_size, metadata_size);
  std::string_view payload = bytes.substr(kCacheEntryHeaderSize + key_size + metadata_size);
  if (body_checksum(key, metadata, payload) != get_u64(bytes, 40)) return fail("corrupted (checksum mismatch)");
  if (expected_key_text && key != *expected_key_text) return fail("written for another key");
  entry.key_text = key;
  if (with_payload) {
    entry.kernel.metadata = metadata;
    entry.kernel.payload = payload;
  }
  return entry;
}

}  // namespace attnc
