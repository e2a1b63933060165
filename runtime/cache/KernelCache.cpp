#include "runtime/cache/KernelCache.h"

#include <algorithm>

#include <fmt/format.h>

#include "compiler/StableHash.h"
#include "runtime/core/RuntimeError.h"

namespace attnc {

const char* cache_source_name(CacheSource source) {
  switch (source) {
    case CacheSource::Memory: return "memory";
    case CacheSource::Disk: return "disk";
    case CacheSource::Compiled: return "compiled";
  }
  return "?";
}

KernelCache::KernelCache(KernelCacheOptions options) : options_(std::move(options)) {
  if (!options_.use_disk) return;
  try {
    CacheDirectoryOptions directory;
    directory.trust_shared = options_.trust_shared_directory || trust_shared_cache_from_environment();
    disk_.emplace(options_.directory.empty() ? default_cache_directory() : options_.directory, directory);
  } catch (const RuntimeError& e) {
    if (options_.require_disk) throw;
    disk_unavailable_ = e.what();
    record(CacheEvent::Kind::DiskError, "", disk_unavailable_);
  }
}

void KernelCache::record(CacheEvent::Kind kind, std::string hash, std::string detail) {
  std::lock_guard guard(mutex_);
  if (kind == CacheEvent::Kind::Discarded) ++stats_.discarded;
  if (kind == CacheEvent::Kind::Evicted) ++stats_.evicted;
  if (kind == CacheEvent::Kind::DiskError) ++stats_.disk_errors;
  events_.push_back(CacheEvent{kind, std::move(hash), std::move(detail)});
}

CacheResult KernelCache::get_or_compile(const KernelKey& key, const Compiler& compile) {
  std::string text = key.serialize();
  std::promise<std::shared_ptr<const CachedKernel>> promise;
  Future future;
  {
    std::lock_guard guard(mutex_);
    ++stats_.requests;
    auto it = memory_.find(text);
    if (it != memory_.end()) {
      ++stats_.memory_hits;
      future = it->second;
    } else {
      ++stats_.memory_misses;
      memory_.emplace(text, promise.get_future().share());
    }
  }
  // Another request got here first: wait for its result (or its exception).
  if (future.valid()) return CacheResult{future.get(), CacheSource::Memory, {}};

  try {
    CacheResult result = load_or_compile(key, text, &compile);
    promise.set_value(result.kernel);
    return result;
  } catch (...) {
    {
      std::lock_guard guard(mutex_);
      memory_.erase(text);  // not remembered: the next request tries again
    }
    promise.set_exception(std::current_exception());
    throw;
  }
}

std::shared_ptr<const CachedKernel> KernelCache::find(const KernelKey& key) {
  std::string text = key.serialize();
  Future future;
  {
    std::lock_guard guard(mutex_);
    ++stats_.requests;
    auto it = memory_.find(text);
    if (it != memory_.end()) {
      ++stats_.memory_hits;
      future = it->second;
    } else {
      ++stats_.memory_misses;
    }
  }
  if (future.valid()) {
    try {
      return future.get();
    } catch (...) {
      return nullptr;  // the compile it waited for failed
    }
  }
  CacheResult result = load_or_compile(key, text, nullptr);
  if (result.kernel) {
    std::promise<std::shared_ptr<const CachedKernel>> promise;
    promise.set_value(result.kernel);
    std::lock_guard guard(mutex_);
    memory_.emplace(text, promise.get_future().share());  // keeps an entry another thread added meanwhile
  }
  return result.kernel;
}

std::optional<KernelCache::Match> KernelCache::find_ignoring(const KernelKey& key, std::string_view field) {
  // Keys relaxed to one spelling of `field`, so that two keys differing only there compare equal.
  auto relaxed = [&](const KernelKey& k) -> std::optional<std::string> {
    if (k.find(field) == nullptr) return std::nullopt;
    return k.with(field, "*").serialize();
  };
  const std::optional<std::string> wanted = relaxed(key);
  if (!wanted) return std::nullopt;
  auto found = [&](const KernelKey& full) -> std::optional<Match> {
    const uint64_t disk_hits = stats().disk_hits;
    std::shared_ptr<const CachedKernel> kernel = find(full);
    if (!kernel) return std::nullopt;
    std::lock_guard guard(mutex_);
    matches_.insert_or_assign(*wanted, full);
    return Match{full, std::move(kernel), stats_.disk_hits > disk_hits ? CacheSource::Disk : CacheSource::Memory};
  };

  std::optional<KernelKey> known;
  std::vector<KernelKey> candidates;
  {
    std::lock_guard guard(mutex_);
    if (auto it = matches_.find(*wanted); it != matches_.end()) known = it->second;
    for (const auto& [text, future] : memory_) {
      std::optional<KernelKey> k = KernelKey::parse(text);
      if (k && relaxed(*k) == wanted) candidates.push_back(std::move(*k));
    }
  }
  if (known) {
    if (std::optional<Match> match = found(*known)) return match;
  }
  if (disk_) {
    try {
      for (const CacheDirectory::KeyText& entry : disk_->key_texts()) {
        std::optional<KernelKey> k = KernelKey::parse(entry.text);
        if (k && relaxed(*k) == wanted) candidates.push_back(std::move(*k));
      }
    } catch (const RuntimeError& e) {
      record(CacheEvent::Kind::DiskError, "", e.what());
    }
  }
  std::sort(candidates.begin(), candidates.end(), [&](const KernelKey& a, const KernelKey& b) {
    return version_less(*b.find(field), *a.find(field));  // newest first
  });
  for (const KernelKey& candidate : candidates) {
    if (std::optional<Match> match = found(candidate)) return match;
  }
  return std::nullopt;
}

CacheResult KernelCache::load_or_compile(const KernelKey& key, const std::string& text, const Compiler* compile) {
  CacheResult result;
  std::string hash = StableHash128().bytes(text.data(), text.size()).hex();

  auto try_load = [&](bool under_lock) -> bool {
    try {
      CacheDirectory::LoadResult loaded = disk_->load(text, hash, /*remove_bad=*/under_lock);
      if (loaded.status == CacheDirectory::LoadStatus::Loaded) {
        result.kernel = std::make_shared<const CachedKernel>(std::move(loaded.kernel));
        result.source = CacheSource::Disk;
        std::lock_guard guard(mutex_);
        ++stats_.disk_hits;
        if (under_lock) ++stats_.lock_waits;
        return true;
      }
      // Outside the lock a bad entry is only skipped; it is counted and removed under the lock.
      if (loaded.status == CacheDirectory::LoadStatus::Discarded && under_lock) {
        record(CacheEvent::Kind::Discarded, hash, loaded.problem);
      }
    } catch (const RuntimeError& e) {
      record(CacheEvent::Kind::DiskError, hash, e.what());
    }
    return false;
  };

  auto run_compile = [&] {
    try {
      CachedKernel kernel = (*compile)(key);
      result.kernel = std::make_shared<const CachedKernel>(std::move(kernel));
      result.source = CacheSource::Compiled;
      std::lock_guard guard(mutex_);
      ++stats_.compiles;
    } catch (...) {
      std::lock_guard guard(mutex_);
      ++stats_.compile_failures;
      throw;
    }
  };

  if (!disk_) {
    if (compile != nullptr) run_compile();
    return result;
  }
  if (try_load(false) || compile == nullptr) return result;

  // Miss: take the key's lock, so that of all processes wanting this key one compiles it and the
  // others, waiting here, find its entry when they get the lock.
  {
    std::optional<CacheDirectory::KeyLock> lock;
    try {
      lock.emplace(disk_->lock(hash));
    } catch (const RuntimeError& e) {
      record(CacheEvent::Kind::DiskError, hash, e.what());  // compile anyway, unlocked
    }
    if (lock && try_load(true)) return result;
    run_compile();
    try {
      disk_->store(text, hash, *result.kernel);
    } catch (const RuntimeError& e) {
      result.disk_problem = e.what();
      record(CacheEvent::Kind::DiskError, hash, e.what());
      return result;
    }
  }

  if (options_.max_disk_bytes > 0) {
    try {
      CacheDirectory::PruneResult pruned = disk_->prune(options_.max_disk_bytes, hash);
      for (const CacheDirectory::EntryInfo& entry : pruned.removed) {
        record(CacheEvent::Kind::Evicted, entry.hash, fmt::format("{} bytes", entry.size));
      }
    } catch (const RuntimeError& e) {
      record(CacheEvent::Kind::DiskError, hash, e.what());
    }
  }
  return result;
}

CacheStats KernelCache::stats() const {
  std::lock_guard guard(mutex_);
  return stats_;
}

std::vector<CacheEvent> KernelCache::take_events() {
  std::lock_guard guard(mutex_);
  std::vector<CacheEvent> out;
  out.swap(events_);
  return out;
}

}  // namespace attnc
