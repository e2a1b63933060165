#pragma once
// The bytes of one kernel-cache entry on disk, and the check that guards every load. An entry is
// a fixed header followed by the key's canonical text, the compiler's metadata and the payload:
//
//   offset  size  field
//        0     8  magic "ATTNCKC\0"
//        8     4  format version (kCacheEntryVersion), little-endian
//       12     4  header size in bytes (56)
//       16     8  key text size
//       24     8  metadata size
//       32     8  payload size
//       40     8  checksum: StableHash64 of key text, metadata and payload
//       48     8  header checksum: StableHash64 of bytes 0..47
//       56        key text, metadata, payload
//
// The key text is stored in full, not only hashed into the file name, so an entry written for
// another key (a hash collision, a renamed or copied file) is recognised as foreign and never
// loaded. The checksums catch flipped bytes; the sizes, which must add up to the file's size
// exactly, catch truncation and trailing garbage.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace attnc {

// What the cache keeps for one key. The cache never looks inside.
struct CachedKernel {
  std::string payload;   // the compiled bytes (cubin, PTX, ...)
  std::string metadata;  // what the compiler wants kept beside them (entry names, log, ...)
  bool operator==(const CachedKernel&) const = default;
};

inline constexpr uint32_t kCacheEntryVersion = 1;
inline constexpr size_t kCacheEntryHeaderSize = 56;

std::string encode_cache_entry(std::string_view key_text, const CachedKernel& kernel);

struct DecodedCacheEntry {
  std::string problem;  // empty when the entry is sound; otherwise why it must be discarded
  std::string key_text;
  CachedKernel kernel;
  bool ok() const { return problem.empty(); }
};

// Checks everything the header promises. With `expected_key_text`, an entry for any other key is
// a problem ("written for another key"). `with_payload` false skips copying metadata and payload
// out (they are still checksummed).
DecodedCacheEntry decode_cache_entry(std::string_view bytes, std::optional<std::string_view> expected_key_text,
                                     bool with_payload = true);

// The size of the key text that follows a sound header (the first kCacheEntryHeaderSize bytes of
// an entry), or nullopt when the header is not one (bad magic, version or header checksum). For
// reading the keys of many entries without their payloads; a full load still verifies everything.
std::optional<uint64_t> cache_entry_key_size(std::string_view header);

}  // namespace attnc
