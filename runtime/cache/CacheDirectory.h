#pragma once
// The kernel cache's directory on disk: where it is, and every file operation on it. Entries are
// `<hash>.kernel` files (runtime/cache/CacheEntry.h), named by KernelKey::hash_hex(); each is
// written to a temporary file in the same directory and renamed into place, so a reader sees the
// old entry, the new one or none, never a partial file. `<hash>.lock` files carry advisory locks
// (flock) that let processes agree who compiles a key. An entry's modification time is its last
// use, which least-recently-used eviction orders by. A lock file is removed with its entry, and
// only by the lock's holder; a locker that finds its lock file unlinked under it locks again.
//
// Trust: a cached kernel is code that will run on the GPU, so a directory that another user owns,
// or that group or others may write, is refused (anyone who can write it could plant a kernel),
// and so is an entry owned by another user or writable by group or others: such an entry is
// treated like a corrupted one, never loaded. CacheDirectoryOptions::trust_shared (or
// ATTNC_CACHE_TRUST_SHARED=1, which callers read with trust_shared_cache_from_environment()) says
// a directory is shared on purpose and everyone who can write it is trusted.
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

// Whether ATTNC_CACHE_TRUST_SHARED is set to 1: the user says shared cache directories are trusted.
bool trust_shared_cache_from_environment();

// "512", "64K", "10M", "2G" (powers of 1024; a trailing "B"/"iB" is accepted) -> bytes.
std::optional<uint64_t> parse_byte_size(std::string_view text);

struct CacheDirectoryOptions {
  // Create the directory (mode 0700; missing parents with the usual mode) when it does not exist;
  // false: a missing directory is a RuntimeError.
  bool create = true;
  // Use a directory and entries that other users own or that group or others may write.
  bool trust_shared = false;
};

class CacheDirectory {
 public:
  // RuntimeError when the path is not a directory, cannot be created, or is not trusted (above):
  // the message names the directory, what is wrong and how to fix it.
  explicit CacheDirectory(std::filesystem::path path, CacheDirectoryOptions options = {});

  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path entry_path(std::string_view hash) const;

  enum class LoadStatus { Loaded, Missing, Discarded };
  struct LoadResult {
    LoadStatus status = LoadStatus::Missing;
    std::string problem;  // for Discarded: why the file was not loaded
    CachedKernel kernel;  // for Loaded
  };
  // Loads the entry of `key_text` (whose hash is `hash`), verifying its header and (unless the
  // directory is trusted as shared) that it is this user's and not writable by others. A sound
  // entry's modification time is set to now (it was just used). A bad entry is never returned;
  // with `remove_bad` it is also deleted (do that only while holding the key's lock, or a good
  // entry another process just renamed into place could be deleted instead).
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
  // The lock if no one else holds it now, else nullopt.
  std::optional<KeyLock> try_lock(std::string_view hash) const;

  // Removes the entry of `hash` and its lock file while holding its lock (waiting for it with
  // `wait`, else giving up when another holder has it). Returns whether the entry is gone.
  bool remove_entry(std::string_view hash, bool wait = true) const;

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
  // Checks every entry: the header and checksums, that the key text parses as a KernelKey, that
  // its hash is the file's name, and that it can be trusted. Does not change anything.
  std::vector<Verification> verify() const;

  struct PruneResult {
    std::vector<EntryInfo> removed;
    uint64_t bytes_before = 0, bytes_after = 0;
  };
  // Removes entries (and their lock files), least recently used first, until the total size is at
  // most `max_bytes`. The entry named `keep_hash`, if any, is kept even if it alone is over the
  // cap, and so is an entry whose lock another holder has (it is being rebuilt or loaded).
  PruneResult prune(uint64_t max_bytes, std::string_view keep_hash = {}) const;

  // Removes every entry and lock file (each under its lock, waiting for holders) and leftover
  // temporary file; returns the number of entries.
  size_t clear() const;
  // Removes one file, ignoring a file that is already gone.
  void remove(const std::filesystem::path& file) const;

 private:
  // Why an entry (or the directory) with these owner and mode bits cannot be trusted, or "".
  std::string untrusted_because(uint32_t owner, uint32_t mode) const;
  std::optional<KeyLock> acquire(std::string_view hash, bool wait) const;

  std::filesystem::path path_;
  CacheDirectoryOptions options_;
};

}  // namespace attnc
