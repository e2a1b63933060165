#include "runtime/cache/CacheDirectory.h"

#include <fcntl.h>
#include <pwd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include <fmt/format.h>

#include "compiler/StableHash.h"
#include "runtime/cache/KernelKey.h"
#include "runtime/core/RuntimeError.h"

namespace fs = std::filesystem;

namespace attnc {

namespace {

constexpr std::string_view kEntrySuffix = ".kernel";
constexpr std::string_view kLockSuffix = ".lock";
constexpr std::string_view kTempSuffix = ".tmp";

std::string errno_text() { return std::strerror(errno); }

// Closes a descriptor at scope exit.
struct FileDescriptor {
  int fd = -1;
  ~FileDescriptor() {
    if (fd >= 0) ::close(fd);
  }
};

// The current time at full precision. File systems stamp writes with a coarse clock (a few
// milliseconds), too coarse to order uses that follow each other quickly, so the cache sets
// modification times itself.
timespec precise_now() {
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  return now;
}

// Reads the whole file; nullopt when it does not exist. `info` receives the file's status.
std::optional<std::string> read_file(const fs::path& path, struct stat& info) {
  FileDescriptor file{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (file.fd < 0) {
    if (errno == ENOENT) return std::nullopt;
    throw RuntimeError(fmt::format("cannot open cache entry '{}': {}", path.string(), errno_text()));
  }
  if (::fstat(file.fd, &info) != 0) {
    throw RuntimeError(fmt::format("cannot stat cache entry '{}': {}", path.string(), errno_text()));
  }
  std::string bytes(static_cast<size_t>(info.st_size), '\0');
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::read(file.fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw RuntimeError(fmt::format("cannot read cache entry '{}': {}", path.string(), errno_text()));
    if (n == 0) break;  // the file shrank under us: what was read is checked like any truncation
    done += static_cast<size_t>(n);
  }
  bytes.resize(done);
  return bytes;
}

bool has_suffix(const fs::path& path, std::string_view suffix) { return path.filename().string().ends_with(suffix); }

// "user 'nobody' (uid 65534)", or "uid 65534" for a uid without a name.
std::string describe_user(uid_t uid) {
  struct passwd entry {};
  struct passwd* found = nullptr;
  char buffer[1024];
  if (::getpwuid_r(uid, &entry, buffer, sizeof buffer, &found) == 0 && found != nullptr) {
    return fmt::format("user '{}' (uid {})", found->pw_name, uid);
  }
  return fmt::format("uid {}", uid);
}

}  // namespace

bool trust_shared_cache_from_environment() {
  const char* value = std::getenv("ATTNC_CACHE_TRUST_SHARED");
  return value != nullptr && std::string_view(value) == "1";
}

fs::path default_cache_directory() {
  if (const char* dir = std::getenv("ATTNC_CACHE_DIR"); dir != nullptr && *dir != '\0') return fs::path(dir);
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg != nullptr && *xdg == '/') return fs::path(xdg) / "attnc";
  if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
    return fs::path(home) / ".cache" / "attnc";
  }
  throw RuntimeError("no kernel cache directory: set ATTNC_CACHE_DIR (or XDG_CACHE_HOME or HOME), or pass a directory");
}

std::optional<uint64_t> parse_byte_size(std::string_view text) {
  uint64_t value = 0;
  size_t i = 0;
  for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i) {
    if (value > (UINT64_MAX - 9) / 10) return std::nullopt;
    value = value * 10 + static_cast<uint64_t>(text[i] - '0');
  }
  if (i == 0) return std::nullopt;
  std::string_view unit = text.substr(i);
  int shift = 0;
  if (!unit.empty()) {
    char c = unit[0];
    shift = c == 'K' || c == 'k'   ? 10
            : c == 'M' || c == 'm' ? 20
            : c == 'G' || c == 'g' ? 30
            : c == 'T' || c == 't' ? 40
                                   : -1;
    if (shift > 0)
      unit.remove_prefix(1);
    else if (c != 'B' && c != 'b')
      return std::nullopt;
    else
      shift = 0;
    if (!unit.empty() && unit != "B" && unit != "iB" && unit != "b") return std::nullopt;
  }
  if (shift > 0 && value > (UINT64_MAX >> shift)) return std::nullopt;
  return value << shift;
}

CacheDirectory::CacheDirectory(fs::path path, CacheDirectoryOptions options)
    : path_(std::move(path)), options_(options) {
  if (path_.empty()) throw RuntimeError("kernel cache directory: empty path");
  std::error_code error;
  if (!fs::is_directory(path_, error)) {
    if (fs::exists(path_, error)) {
      throw RuntimeError(fmt::format("kernel cache directory '{}' exists and is not a directory", path_.string()));
    }
    if (!options_.create) {
      throw RuntimeError(fmt::format("kernel cache directory '{}' does not exist", path_.string()));
    }
    if (path_.has_parent_path() && !path_.parent_path().empty()) {
      fs::create_directories(path_.parent_path(), error);
      if (error) {
        throw RuntimeError(fmt::format("cannot create the parent of kernel cache directory '{}': {}", path_.string(),
                                       error.message()));
      }
    }
    // 0700: compiled kernels are code this user's processes will load and run; nobody else may
    // plant or read them.
    if (::mkdir(path_.c_str(), 0700) != 0 && errno != EEXIST) {
      throw RuntimeError(fmt::format("cannot create kernel cache directory '{}': {}", path_.string(), errno_text()));
    }
  }
  struct stat info {};
  if (::stat(path_.c_str(), &info) != 0) {
    throw RuntimeError(fmt::format("cannot use kernel cache directory '{}': {}", path_.string(), errno_text()));
  }
  if (std::string why = untrusted_because(info.st_uid, info.st_mode); !why.empty()) {
    std::string fix = info.st_uid == ::geteuid()
                          ? fmt::format("run `chmod 700 '{}'`", path_.string())
                          : std::string("use a directory of your own (ATTNC_CACHE_DIR, or the cache directory option)");
    throw RuntimeError(fmt::format(
        "kernel cache directory '{}' is {}: a cached kernel is code that runs on the GPU, and whoever can write "
        "the directory could plant one, so it is not used. To fix it, {}; or, if the directory is shared on "
        "purpose and everyone who can write it is trusted, set ATTNC_CACHE_TRUST_SHARED=1 (attnc: "
        "--trust-shared-cache; the library: KernelCacheOptions::trust_shared_directory)",
        path_.string(), why, fix));
  }
}

std::string CacheDirectory::untrusted_because(uint32_t owner, uint32_t mode) const {
  if (options_.trust_shared) return "";
  if (owner != ::geteuid()) {
    return fmt::format("owned by {}, not by this user ({})", describe_user(owner), describe_user(::geteuid()));
  }
  if ((mode & (S_IWGRP | S_IWOTH)) != 0) {
    const char* who = (mode & S_IWGRP) && (mode & S_IWOTH) ? "group and others" : (mode & S_IWGRP) ? "group" : "others";
    return fmt::format("writable by {} (mode {:04o})", who, mode & 07777);
  }
  return "";
}

fs::path CacheDirectory::entry_path(std::string_view hash) const {
  return path_ / (std::string(hash) + std::string(kEntrySuffix));
}

CacheDirectory::LoadResult CacheDirectory::load(std::string_view key_text, std::string_view hash,
                                                bool remove_bad) const {
  LoadResult result;
  fs::path file = entry_path(hash);
  struct stat info {};
  std::optional<std::string> bytes = read_file(file, info);
  if (!bytes) return result;
  DecodedCacheEntry decoded = decode_cache_entry(*bytes, key_text);
  if (std::string untrusted = untrusted_because(info.st_uid, info.st_mode); !untrusted.empty()) {
    decoded.problem = "not trusted: " + untrusted;
  }
  if (!decoded.ok()) {
    result.status = LoadStatus::Discarded;
    result.problem = std::move(decoded.problem);
    if (remove_bad) remove(file);
    return result;
  }
  timespec times[2] = {{0, UTIME_OMIT}, precise_now()};
  // A failed touch only makes the entry look older to eviction; the load itself succeeded.
  (void)::utimensat(AT_FDCWD, file.c_str(), times, 0);
  result.status = LoadStatus::Loaded;
  result.kernel = std::move(decoded.kernel);
  return result;
}

void CacheDirectory::store(std::string_view key_text, std::string_view hash, const CachedKernel& kernel) const {
  static std::atomic<uint64_t> counter{0};
  std::string bytes = encode_cache_entry(key_text, kernel);
  fs::path temp = path_ / fmt::format(".{}.{}.{}{}", hash, ::getpid(), counter++, kTempSuffix);
  FileDescriptor file{::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)};
  if (file.fd < 0) {
    throw RuntimeError(
        fmt::format("cannot create a file in kernel cache directory '{}': {}", path_.string(), errno_text()));
  }
  auto fail = [&](std::string_view what) {
    std::string message = fmt::format("cannot {} cache entry '{}': {}", what, temp.string(), errno_text());
    ::unlink(temp.c_str());
    throw RuntimeError(message);
  };
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(file.fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail("write");
    done += static_cast<size_t>(n);
  }
  timespec times[2] = {{0, UTIME_OMIT}, precise_now()};
  (void)::futimens(file.fd, times);
  if (::close(file.fd) != 0) {
    file.fd = -1;
    fail("write");
  }
  file.fd = -1;
  // rename() replaces atomically: readers see the old file or the new one, never a mixture.
  if (::rename(temp.c_str(), entry_path(hash).c_str()) != 0) fail("rename");
}

CacheDirectory::KeyLock::~KeyLock() {
  if (fd_ >= 0) ::close(fd_);  // closing the descriptor releases the flock
}

CacheDirectory::KeyLock CacheDirectory::lock(std::string_view hash) const { return std::move(*acquire(hash, true)); }

std::optional<CacheDirectory::KeyLock> CacheDirectory::try_lock(std::string_view hash) const {
  return acquire(hash, false);
}

std::optional<CacheDirectory::KeyLock> CacheDirectory::acquire(std::string_view hash, bool wait) const {
  fs::path file = path_ / (std::string(hash) + std::string(kLockSuffix));
  for (;;) {
    int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) throw RuntimeError(fmt::format("cannot open lock file '{}': {}", file.string(), errno_text()));
    KeyLock lock(fd);
    while (::flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB)) != 0) {
      if (errno == EWOULDBLOCK && !wait) return std::nullopt;
      if (errno != EINTR) throw RuntimeError(fmt::format("cannot lock '{}': {}", file.string(), errno_text()));
    }
    // The holder before us may have removed the lock file with its entry (remove_entry). A lock on
    // a file that is no longer there excludes no one who opens the path now, so lock again, the
    // file that is there.
    struct stat held {
    }, current{};
    if (::fstat(fd, &held) == 0 && ::stat(file.c_str(), &current) == 0 && held.st_dev == current.st_dev &&
        held.st_ino == current.st_ino) {
      return lock;
    }
  }
}

bool CacheDirectory::remove_entry(std::string_view hash, bool wait) const {
  std::optional<KeyLock> held = acquire(hash, wait);
  if (!held) return false;
  remove(entry_path(hash));
  remove(path_ / (std::string(hash) + std::string(kLockSuffix)));  // while held: see acquire()
  return true;
}

std::vector<CacheDirectory::EntryInfo> CacheDirectory::entries() const {
  std::vector<EntryInfo> out;
  std::error_code error;
  for (fs::directory_iterator it(path_, error), end; !error && it != end; it.increment(error)) {
    const fs::path& file = it->path();
    if (!has_suffix(file, kEntrySuffix) || file.filename().string().starts_with(".")) continue;
    std::error_code stat_error;
    EntryInfo info;
    info.path = file;
    info.hash = file.stem().string();
    info.size = it->file_size(stat_error);
    if (stat_error) continue;  // removed while we looked
    info.last_used = it->last_write_time(stat_error);
    if (stat_error) continue;
    out.push_back(std::move(info));
  }
  if (error)
    throw RuntimeError(fmt::format("cannot list kernel cache directory '{}': {}", path_.string(), error.message()));
  std::sort(out.begin(), out.end(), [](const EntryInfo& a, const EntryInfo& b) {
    return a.last_used != b.last_used ? a.last_used < b.last_used : a.hash < b.hash;
  });
  return out;
}

uint64_t CacheDirectory::total_size() const {
  uint64_t total = 0;
  for (const EntryInfo& entry : entries()) total += entry.size;
  return total;
}

std::vector<CacheDirectory::KeyText> CacheDirectory::key_texts() const {
  std::vector<KeyText> out;
  for (const EntryInfo& entry : entries()) {
    FileDescriptor file{::open(entry.path.c_str(), O_RDONLY | O_CLOEXEC)};
    if (file.fd < 0) continue;  // removed while we looked
    std::string header(kCacheEntryHeaderSize, '\0');
    if (::pread(file.fd, header.data(), header.size(), 0) != static_cast<ssize_t>(header.size())) continue;
    std::optional<uint64_t> key_size = cache_entry_key_size(header);
    if (!key_size || *key_size == 0 || *key_size > entry.size - kCacheEntryHeaderSize) continue;
    std::string text(*key_size, '\0');
    if (::pread(file.fd, text.data(), text.size(), kCacheEntryHeaderSize) != static_cast<ssize_t>(text.size()))
      continue;
    out.push_back(KeyText{entry.hash, std::move(text)});
  }
  return out;
}

std::vector<CacheDirectory::Verification> CacheDirectory::verify() const {
  std::vector<Verification> out;
  for (EntryInfo& entry : entries()) {
    Verification v;
    struct stat info {};
    std::optional<std::string> bytes = read_file(entry.path, info);
    if (!bytes) continue;  // removed while we looked
    DecodedCacheEntry decoded = decode_cache_entry(*bytes, std::nullopt, /*with_payload=*/false);
    v.problem = decoded.problem;
    if (std::string untrusted = untrusted_because(info.st_uid, info.st_mode); !untrusted.empty()) {
      v.problem = "not trusted: " + untrusted;
    }
    v.key_text = decoded.key_text;
    if (v.problem.empty()) {
      std::optional<KernelKey> key = KernelKey::parse(v.key_text);
      if (!key)
        v.problem = "its key text is not a valid kernel key";
      else if (key->hash_hex() != entry.hash)
        v.problem = "written for another key (the file name is not its key's hash)";
    }
    v.entry = std::move(entry);
    out.push_back(std::move(v));
  }
  return out;
}

CacheDirectory::PruneResult CacheDirectory::prune(uint64_t max_bytes, std::string_view keep_hash) const {
  PruneResult result;
  std::vector<EntryInfo> all = entries();
  for (const EntryInfo& entry : all) result.bytes_before += entry.size;
  result.bytes_after = result.bytes_before;
  for (EntryInfo& entry : all) {  // oldest first
    if (result.bytes_after <= max_bytes) break;
    if (!keep_hash.empty() && entry.hash == keep_hash) continue;
    if (!remove_entry(entry.hash, /*wait=*/false)) continue;  // in use: being rebuilt or loaded
    result.bytes_after -= entry.size;
    result.removed.push_back(std::move(entry));
  }
  return result;
}

size_t CacheDirectory::clear() const {
  size_t entries_removed = 0;
  std::vector<std::string> locked;  // hashes of entries and lock files, each removed under its lock
  std::vector<fs::path> temporaries;
  std::error_code error;
  for (fs::directory_iterator it(path_, error), end; !error && it != end; it.increment(error)) {
    const fs::path& file = it->path();
    bool hidden = file.filename().string().starts_with(".");
    if (has_suffix(file, kEntrySuffix) && !hidden) {
      locked.push_back(file.stem().string());
      ++entries_removed;
    } else if (has_suffix(file, kLockSuffix) && !hidden) {
      locked.push_back(file.stem().string());
    } else if (has_suffix(file, kTempSuffix)) {
      temporaries.push_back(file);
    }
  }
  if (error)
    throw RuntimeError(fmt::format("cannot list kernel cache directory '{}': {}", path_.string(), error.message()));
  std::sort(locked.begin(), locked.end());
  locked.erase(std::unique(locked.begin(), locked.end()), locked.end());
  for (const std::string& hash : locked) remove_entry(hash, /*wait=*/true);
  for (const fs::path& file : temporaries) remove(file);
  return entries_removed;
}

void CacheDirectory::remove(const fs::path& file) const {
  if (::unlink(file.c_str()) != 0 && errno != ENOENT) {
    throw RuntimeError(fmt::format("cannot remove '{}': {}", file.string(), errno_text()));
  }
}

}  // namespace attnc
