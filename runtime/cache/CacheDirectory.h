#pragma once
// The kernel cache's directory on disk: where it is, and every file operation on it. Entries are
// `<hash>.kernel` files (runtime/cache/CacheEntry.h), named by KernelKey::hash_hex(); each is
// written to a temporary file in the same directory and renamed into place, so a reader sees the
// old entry, the new one or none, never a partial file. `<hash>.lock` files carry advisory locks
// (flock) that let processes agree who compiles a key. An entry's modification time is its last
// use, which least-recently-used eviction orders by.
//
// All failures are RuntimeErrors naming the path; nothing here prints.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/cache/CacheEntry.h"

namespace attnc {

// ATTNC_CACHE_DIR when set and non-empty; else $XDG_CACHE_HOME/attnc when XDG_CACHE_HOME is an
// absolute path; else $HOME/.cache/attnc. RuntimeError when none of these is available.
std::filesystem::path default_cache_directory();

// "512", "64K", "10M", "2G" (powers of 1024; a trailing "B"/"iB" is accepted) -> bytes.
std::optional<uint64_t> parse_byte_size(std::string_view text);

class CacheDirectory {
 public:
  // Creates the directory (mode 0700; missing parents with the usual mode) when it does not exist.
  explicit CacheDirectory(std::filesystem::path path);

  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path entry_path(std::string_view hash) const;

  enum class LoadStatus { Loaded, Missing, Discarded };
  struct LoadResult {
    LoadStatus status = LoadStatus::Missing;
    std::string problem;  // for Discarded: why the file was not loaded
    CachedKernel kernel;  // for Loaded
  };
  // Loads the entry of `key_text` (whose hash is `hash`), verifying its header. A sound entry's
  // modification time is set to now (it was just used). A bad entry is never returned; with
  // `remove_bad` it is also deleted (do that only while holding the key's lock, or a good entry
  // another process just renamed into place could be deleted instead).
  LoadResult load(std::string_view key_text, std::string_view hash, bool remove_bad) const;

  // Writes the entry atomically (temporary file, then rename); its modification time is now.
  void store(std::string_view key_text, std::string_view hash, const CachedKernel& kernel) const;

  // An exclusive advisory lock on one key, held until destroyed. Two holders on the same key, in
  // any processes (or the same one), exclude each other.
  class KeyLock {
   public:
    explicit KeyLock(int fd) : fd_(fd) {}
    KeyLock(KeyLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
    KeyLock& operator=(KeyLock&&) = delete;
    ~KeyLock();

   private:
    int fd_;
  };
  KeyLock lock(std::string_view hash) const;  // blocks until the lock is held

  struct EntryInfo {
    std::filesystem::path path;
    std::string hash;  // the file name's stem
    uint64_t size = 0;
    std::filesystem::file_time_type last_used;
  };
  // Every `*.kernel` file, least recently used first (ties by name).
  std::vector<EntryInfo> entries() const;
  uint64_t total_size() const;

  struct KeyText {
    std::string hash;  // the file name's stem
    std::string text;  // the key text stored in the entry
  };
  // The key text of every entry whose header is sound, read without the payload (a few hundred
  // bytes each). Entries are not verified in full: a load does that.
  std::vector<KeyText> key_texts() const;

  struct Verification {
    EntryInfo entry;
    std::string problem;  // empty when the entry is sound
    std::string key_text;
  };
  // Checks every entry: the header and checksums, that the key text parses as a KernelKey, and
  // that its hash is the file's name. Does not change anything.
  std::vector<Verification> verify() const;

  struct PruneResult {
    std::vector<EntryInfo> removed;
    uint64_t bytes_before = 0, bytes_after = 0;
  };
  // Removes entries, least recently used first, until the total size is at most `max_bytes`.
  // The entry named `keep_hash`, if any, is kept even if it alone is over the cap.
  PruneResult prune(uint64_t max_bytes, std::string_view keep_hash = {}) const;

  // Removes every entry, lock file and leftover temporary file; returns the number of entries.
  size_t clear() const;
  // Removes one file, ignoring a file that is already gone.
  void remove(const std::filesystem::path& file) const;

 private:
  std::filesystem::path path_;
};

}  // namespace attnc
