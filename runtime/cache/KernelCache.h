#pragma once
// The kernel cache: compiled kernels by KernelKey, in memory and on disk, compiling each key once.
//
// In memory, a map from the key's full canonical text to a shared future: the first request for a
// key compiles (or loads) it, and concurrent requests for the same key wait on that one result
// instead of compiling again. On disk (runtime/cache/CacheDirectory.h), a per-key file lock does
// the same between processes: the first process compiles and writes the entry, the others wait
// for the lock and then load what it wrote. Entries are verified on every load; a bad one is
// discarded and rebuilt. After each write the directory is pruned to the size cap, least
// recently used entries first.
//
// The cache never prints: what happened is in stats() and take_events(). A broken disk (a
// directory that cannot be created, a full file system) never fails a request; the cache carries
// on in memory and reports it. So does a directory that cannot be trusted (owned by another user,
// or writable by others): its entries are never loaded, and the reason is a DiskError event and
// disk_unavailable_reason(). An untrusted entry in a trusted directory is discarded like a
// corrupted one.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "runtime/cache/CacheDirectory.h"
#include "runtime/cache/CacheEntry.h"
#include "runtime/cache/KernelKey.h"

namespace attnc {

struct KernelCacheOptions {
  // Empty: default_cache_directory() (ATTNC_CACHE_DIR, else the user's cache directory).
  std::filesystem::path directory;
  bool use_disk = true;
  // The disk cache's size cap in bytes; 0: no cap.
  uint64_t max_disk_bytes = uint64_t{1} << 30;
  // Throw RuntimeError from the constructor when the directory cannot be used, rather than
  // carrying on in memory (for `attnc warmup`, whose whole point is the disk).
  bool require_disk = false;
  // Use a directory (and entries) that other users own or that group or others may write: say so
  // only for a directory shared on purpose whose writers are all trusted, since cached kernels run
  // on the GPU (runtime/cache/CacheDirectory.h). ATTNC_CACHE_TRUST_SHARED=1 does the same.
  bool trust_shared_directory = false;
};

// Where a request's kernel came from.
enum class CacheSource { Memory, Disk, Compiled };
const char* cache_source_name(CacheSource source);  // "memory", "disk", "compiled"

struct CacheResult {
  std::shared_ptr<const CachedKernel> kernel;
  CacheSource source = CacheSource::Memory;
  // Non-empty when this request compiled the kernel but could not write it to disk.
  std::string disk_problem;
};

struct CacheStats {
  uint64_t requests = 0;
  uint64_t memory_hits = 0;    // found in memory, or waited for another thread's compile
  uint64_t memory_misses = 0;  // = disk_hits + compiles + failures
  uint64_t disk_hits = 0;
  uint64_t compiles = 0;          // calls of the compile function that returned
  uint64_t compile_failures = 0;  // calls that threw
  uint64_t lock_waits = 0;        // disk misses that found the entry after taking the key's lock
  uint64_t discarded = 0;         // bad entries found on disk and removed
  uint64_t evicted = 0;           // entries removed by the size cap
  uint64_t disk_errors = 0;       // failed reads, writes, locks or removals
};

struct CacheEvent {
  enum class Kind { Discarded, Evicted, DiskError };
  Kind kind;
  std::string hash;    // the entry's key hash (file name), when the event concerns one
  std::string detail;  // the reason (Discarded), the size (Evicted), the error (DiskError)
};

class KernelCache {
 public:
  // Produces the kernel for a key, or throws (the exception reaches every waiting requester).
  using Compiler = std::function<CachedKernel(const KernelKey&)>;

  explicit KernelCache(KernelCacheOptions options = {});
  KernelCache(const KernelCache&) = delete;
  KernelCache& operator=(const KernelCache&) = delete;

  // The kernel of `key`: from memory, else from disk, else compiled by `compile` (once per key
  // across threads and, through the file lock, across processes) and written to disk. Thread-safe.
  // A failed compile is not remembered: the next request tries again.
  CacheResult get_or_compile(const KernelKey& key, const Compiler& compile);

  // The kernel of `key` from memory or disk, or nullptr; never compiles.
  std::shared_ptr<const CachedKernel> find(const KernelKey& key);

  // A kernel whose key equals `key` in every field but `field` (whatever `key` holds there), from
  // memory or disk, never compiling; among several, the one whose `field` is the highest version
  // (version_less). This is how a process without a compiler runs kernels an earlier process
  // compiled: the key names the compiler's version, and only the compiler can say which it is. The
  // match found for a key is remembered for the life of the cache.
  struct Match {
    KernelKey key;  // the entry's full key
    std::shared_ptr<const CachedKernel> kernel;
    CacheSource source = CacheSource::Memory;
  };
  std::optional<Match> find_ignoring(const KernelKey& key, std::string_view field);

  CacheStats stats() const;
  // The events since the last call, oldest first.
  std::vector<CacheEvent> take_events();

  bool has_disk() const { return disk_.has_value(); }
  // The directory in use; empty when the cache is in memory only.
  std::filesystem::path directory() const { return disk_ ? disk_->path() : std::filesystem::path(); }
  // Why the disk is not used, when options asked for it and it could not be opened.
  const std::string& disk_unavailable_reason() const { return disk_unavailable_; }

 private:
  using Future = std::shared_future<std::shared_ptr<const CachedKernel>>;

  // The slow path of a memory miss: disk, then the lock, then compile.
  CacheResult load_or_compile(const KernelKey& key, const std::string& text, const Compiler* compile);
  void record(CacheEvent::Kind kind, std::string hash, std::string detail);

  KernelCacheOptions options_;
  std::optional<CacheDirectory> disk_;
  std::string disk_unavailable_;

  mutable std::mutex mutex_;  // guards everything below
  std::unordered_map<std::string, Future> memory_;
  std::unordered_map<std::string, KernelKey> matches_;  // find_ignoring: relaxed key text -> full key
  CacheStats stats_;
  std::vector<CacheEvent> events_;
};

}  // namespace attnc
