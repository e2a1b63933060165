#include "runtime/cache/KernelCache.h"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "compiler/Signature.h"
#include "runtime/cache/Warmup.h"
#include "runtime/core/RuntimeError.h"

using namespace attnc;
namespace fs = std::filesystem;

namespace {

// A fresh directory under /tmp, removed with everything in it when the test ends.
class TempDirectory {
 public:
  TempDirectory() {
    static std::atomic<int> counter{0};
    path_ = fs::temp_directory_path() /
            ("attnc-cache-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    fs::remove_all(path_);
  }
  ~TempDirectory() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// Key number i: distinct mask signatures, everything else as a real sm_90a bf16 kernel.
KernelKey test_key(uint64_t i) {
  KernelKey key;
  key.family = "flash";
  key.add("mask_mod", ir::Signature{0x1000 + i, 0x2000 + i}.hex()).add("dtype", "bf16").add("head_dim", "128");
  key.add("arch", "sm_90a").add("nvrtc", "13.0").add("template", "00112233445566778899aabbccddeeff");
  return key;
}

// The bytes a fake compiler makes for a key: derived from the key, so a kernel loaded for the
// wrong key is visible.
CachedKernel fake_kernel(const KernelKey& key, size_t payload_size = 1000) {
  CachedKernel kernel;
  kernel.metadata = "entry=attnc_fwd\n";
  std::string seed = key.hash_hex();
  kernel.payload.reserve(payload_size);
  for (size_t i = 0; kernel.payload.size() < payload_size; ++i) kernel.payload += seed[i % seed.size()];
  return kernel;
}

// Counts its calls; optionally slow, so concurrent requests really overlap.
struct FakeCompiler {
  std::atomic<int> calls{0};
  std::chrono::milliseconds delay{0};
  size_t payload_size = 1000;
  KernelCache::Compiler function() {
    return [this](const KernelKey& key) {
      ++calls;
      std::this_thread::sleep_for(delay);
      return fake_kernel(key, payload_size);
    };
  }
};

KernelCacheOptions disk_options(const fs::path& dir, uint64_t cap = 0) {
  KernelCacheOptions options;
  options.directory = dir;
  options.max_disk_bytes = cap;
  return options;
}

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}
void write_bytes(const fs::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

// Sets (or, with nullptr, unsets) an environment variable for one scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value)
      ::setenv(name, value, 1);
    else
      ::unsetenv(name);
  }
  ~ScopedEnv() {
    if (old_)
      ::setenv(name_, old_->c_str(), 1);
    else
      ::unsetenv(name_);
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

}  // namespace

TEST_CASE("the kernel cache counts requests, hits, misses and compiles", "[runtime][cache]") {
  FakeCompiler compiler;
  SECTION("in memory") {
    KernelCacheOptions options;
    options.use_disk = false;
    KernelCache cache(options);
    CHECK_FALSE(cache.has_disk());
    CacheResult a1 = cache.get_or_compile(test_key(1), compiler.function());
    CacheResult a2 = cache.get_or_compile(test_key(1), compiler.function());
    CacheResult b = cache.get_or_compile(test_key(2), compiler.function());
    CHECK(a1.source == CacheSource::Compiled);
    CHECK(a2.source == CacheSource::Memory);
    CHECK(b.source == CacheSource::Compiled);
    CHECK(a1.kernel == a2.kernel);  // the same object, not a copy
    CHECK(*b.kernel == fake_kernel(test_key(2)));
    CacheStats s = cache.stats();
    CHECK(s.requests == 3);
    CHECK(s.memory_hits == 1);
    CHECK(s.memory_misses == 2);
    CHECK(s.compiles == 2);
    CHECK(s.disk_hits == 0);
    CHECK(compiler.calls == 2);
    CHECK(cache.find(test_key(3)) == nullptr);
    CHECK(cache.find(test_key(1)) == a1.kernel);
  }
  SECTION("on disk: a second cache on the same directory loads what the first compiled") {
    TempDirectory dir;
    {
      KernelCache first(disk_options(dir.path()));
      CHECK(first.get_or_compile(test_key(1), compiler.function()).source == CacheSource::Compiled);
      CHECK(first.stats().compiles == 1);
    }
    KernelCache second(disk_options(dir.path()));
    CHECK(second.directory() == dir.path());
    CacheResult loaded = second.get_or_compile(test_key(1), compiler.function());
    CHECK(loaded.source == CacheSource::Disk);
    CHECK(*loaded.kernel == fake_kernel(test_key(1)));
    CHECK(second.get_or_compile(test_key(1), compiler.function()).source == CacheSource::Memory);
    CacheStats s = second.stats();
    CHECK(s.requests == 2);
    CHECK(s.disk_hits == 1);
    CHECK(s.memory_hits == 1);
    CHECK(s.compiles == 0);
    CHECK(compiler.calls == 1);
    CHECK(second.take_events().empty());
    // find() reads the disk too, but never compiles.
    KernelCache third(disk_options(dir.path()));
    REQUIRE(third.find(test_key(1)) != nullptr);
    CHECK(*third.find(test_key(1)) == fake_kernel(test_key(1)));
    CHECK(third.find(test_key(2)) == nullptr);
    CHECK(compiler.calls == 1);
  }
}

TEST_CASE("eight threads asking for one key at once compile it once", "[runtime][cache][threads]") {
  bool use_disk = GENERATE(false, true);
  CAPTURE(use_disk);
  TempDirectory dir;
  KernelCacheOptions options = disk_options(dir.path());
  options.use_disk = use_disk;
  KernelCache cache(options);
  FakeCompiler compiler;
  compiler.delay = std::chrono::milliseconds(100);

  // All threads start together, so the others arrive while the first compiles.
  std::mutex mutex;
  std::condition_variable cv;
  bool go = false;
  std::vector<CacheResult> results(8);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      {
        std::unique_lock lock(mutex);
        cv.wait(lock, [&] { return go; });
      }
      results[t] = cache.get_or_compile(test_key(7), compiler.function());
    });
  }
  {
    std::lock_guard lock(mutex);
    go = true;
  }
  cv.notify_all();
  for (std::thread& thread : threads) thread.join();

  CHECK(compiler.calls == 1);
  CacheStats s = cache.stats();
  CHECK(s.compiles == 1);
  CHECK(s.requests == 8);
  CHECK(s.memory_misses == 1);
  CHECK(s.memory_hits == 7);
  int compiled = 0;
  for (const CacheResult& r : results) {
    REQUIRE(r.kernel != nullptr);
    CHECK(r.kernel == results[0].kernel);
    compiled += r.source == CacheSource::Compiled;
  }
  CHECK(compiled == 1);
  CHECK(*results[0].kernel == fake_kernel(test_key(7)));
}

TEST_CASE("a failed compile reaches the caller, is counted, and is tried again next time", "[runtime][cache]") {
  TempDirectory dir;
  KernelCache cache(disk_options(dir.path()));
  int calls = 0;
  auto failing = [&](const KernelKey&) -> CachedKernel {
    ++calls;
    throw RuntimeError("nvrtc: error: something is wrong");
  };
  CHECK_THROWS_WITH(cache.get_or_compile(test_key(1), failing), Catch::Contains("something is wrong"));
  CHECK(cache.stats().compile_failures == 1);
  CHECK(cache.stats().compiles == 0);
  CHECK(fs::is_empty(dir.path()) == false);  // the lock file, but no entry:
  CHECK_FALSE(fs::exists(dir.path() / (test_key(1).hash_hex() + ".kernel")));
  FakeCompiler compiler;
  CHECK(cache.get_or_compile(test_key(1), compiler.function()).source == CacheSource::Compiled);
  CHECK(calls == 1);
  CHECK(compiler.calls == 1);
}

TEST_CASE("corrupt, truncated and foreign cache entries are discarded and rebuilt, never loaded",
          "[runtime][cache][disk]") {
  TempDirectory dir;
  FakeCompiler compiler;
  {
    KernelCache cache(disk_options(dir.path()));
    cache.get_or_compile(test_key(1), compiler.function());
    cache.get_or_compile(test_key(2), compiler.function());
  }
  fs::path entry = dir.path() / (test_key(1).hash_hex() + ".kernel");
  fs::path other = dir.path() / (test_key(2).hash_hex() + ".kernel");
  const std::string good = read_bytes(entry);
  REQUIRE(good.size() > kCacheEntryHeaderSize + 1000);
  auto flipped = [&](size_t at) {
    std::string bytes = good;
    bytes[at] = static_cast<char>(bytes[at] ^ 0x10);
    return bytes;
  };
  auto [damage, bytes, reason] = GENERATE_COPY(table<std::string, std::string, std::string>({
      {"a flipped payload byte", flipped(good.size() - 10), "checksum mismatch"},
      {"a flipped key byte", flipped(kCacheEntryHeaderSize + 30), "checksum mismatch"},
      {"a flipped size byte", flipped(32), "header checksum mismatch"},
      {"a flipped magic byte", flipped(0), "bad magic"},
      {"another format version", flipped(8), "format version"},
      {"truncated to half", good.substr(0, good.size() / 2), "truncated"},
      {"truncated by one byte", good.substr(0, good.size() - 1), "truncated"},
      {"truncated inside the header", good.substr(0, 20), "truncated"},
      {"empty", "", "truncated"},
      {"trailing garbage", good + "xyz", "oversized"},
      {"a valid entry of another key", read_bytes(other), "written for another key"},
  }));
  CAPTURE(damage);
  write_bytes(entry, bytes);

  KernelCache cache(disk_options(dir.path()));
  CacheResult result = cache.get_or_compile(test_key(1), compiler.function());
  CHECK(result.source == CacheSource::Compiled);
  CHECK(*result.kernel == fake_kernel(test_key(1)));
  CacheStats s = cache.stats();
  CHECK(s.discarded == 1);
  CHECK(s.disk_hits == 0);
  CHECK(s.compiles == 1);
  std::vector<CacheEvent> events = cache.take_events();
  REQUIRE(events.size() == 1);
  CHECK(events[0].kind == CacheEvent::Kind::Discarded);
  CHECK(events[0].hash == test_key(1).hash_hex());
  CHECK_THAT(events[0].detail, Catch::Contains(reason));
  // Rebuilt: the file is sound again and a new process loads it.
  CHECK(read_bytes(entry) == good);
  KernelCache later(disk_options(dir.path()));
  CHECK(later.get_or_compile(test_key(1), compiler.function()).source == CacheSource::Disk);
  // The neighbour was never touched.
  CHECK(later.get_or_compile(test_key(2), compiler.function()).source == CacheSource::Disk);
}

TEST_CASE("verify() reports exactly the damaged entries", "[runtime][cache][disk]") {
  TempDirectory dir;
  FakeCompiler compiler;
  KernelCache cache(disk_options(dir.path()));
  for (int i = 0; i < 4; ++i) cache.get_or_compile(test_key(i), compiler.function());
  CacheDirectory disk(dir.path());
  fs::path damaged = disk.entry_path(test_key(1).hash_hex());
  std::string bytes = read_bytes(damaged);
  bytes.back() ^= 1;
  write_bytes(damaged, bytes);
  // A sound entry under the wrong name is foreign too.
  fs::copy_file(disk.entry_path(test_key(2).hash_hex()), disk.entry_path(test_key(9).hash_hex()));
  std::map<std::string, std::string> problems;
  for (const CacheDirectory::Verification& v : disk.verify()) problems[v.entry.hash] = v.problem;
  REQUIRE(problems.size() == 5);
  CHECK(problems[test_key(0).hash_hex()].empty());
  CHECK_THAT(problems[test_key(1).hash_hex()], Catch::Contains("checksum mismatch"));
  CHECK(problems[test_key(2).hash_hex()].empty());
  CHECK(problems[test_key(3).hash_hex()].empty());
  CHECK_THAT(problems[test_key(9).hash_hex()], Catch::Contains("another key"));
}

TEST_CASE("eviction by size drops the least recently used entries first", "[runtime][cache][disk]") {
  TempDirectory dir;
  FakeCompiler compiler;
  // Measure one entry, then allow three and a half.
  uint64_t entry_size = 0;
  {
    KernelCache probe(disk_options(dir.path()));
    probe.get_or_compile(test_key(0), compiler.function());
    entry_size = CacheDirectory(dir.path()).total_size();
    CacheDirectory(dir.path()).clear();
  }
  REQUIRE(entry_size > 1000);
  uint64_t cap = entry_size * 7 / 2;
  auto present = [&](int i) { return fs::exists(dir.path() / (test_key(i).hash_hex() + ".kernel")); };
  {
    KernelCache writer(disk_options(dir.path(), cap));
    for (int i = 1; i <= 3; ++i) writer.get_or_compile(test_key(i), compiler.function());
    CHECK(writer.stats().evicted == 0);
  }
  // Entry 1, the oldest write, is used again (by another process, from disk): now 2 is the oldest.
  {
    KernelCache reader(disk_options(dir.path(), cap));
    CHECK(reader.get_or_compile(test_key(1), compiler.function()).source == CacheSource::Disk);
  }
  KernelCache writer(disk_options(dir.path(), cap));
  writer.get_or_compile(test_key(4), compiler.function());
  CHECK(present(1));
  CHECK_FALSE(present(2));
  CHECK(present(3));
  CHECK(present(4));
  CHECK(writer.stats().evicted == 1);
  std::vector<CacheEvent> events = writer.take_events();
  REQUIRE(events.size() == 1);
  CHECK(events[0].kind == CacheEvent::Kind::Evicted);
  CHECK(events[0].hash == test_key(2).hash_hex());
  CHECK(CacheDirectory(dir.path()).total_size() <= cap);

  // Two more: 3 goes (least recently used), then 1; the newest is always kept.
  writer.get_or_compile(test_key(5), compiler.function());
  CHECK_FALSE(present(3));
  CHECK(present(1));
  writer.get_or_compile(test_key(6), compiler.function());
  CHECK_FALSE(present(1));
  CHECK(present(4));
  CHECK(present(5));
  CHECK(present(6));

  SECTION("prune keeps the most recent entries") {
    CacheDirectory disk(dir.path());
    CacheDirectory::PruneResult pruned = disk.prune(entry_size);
    REQUIRE(pruned.removed.size() == 2);
    CHECK(pruned.removed[0].hash == test_key(4).hash_hex());
    CHECK(pruned.removed[1].hash == test_key(5).hash_hex());
    CHECK(pruned.bytes_after == entry_size);
    CHECK(present(6));
  }
  SECTION("an entry larger than the cap is still kept when just written") {
    KernelCache tiny(disk_options(dir.path(), 10));
    tiny.get_or_compile(test_key(8), compiler.function());
    CHECK(present(8));
    CHECK(CacheDirectory(dir.path()).entries().size() == 1);
  }
}

TEST_CASE("the cache directory is created with mode 0700 and entries appear atomically", "[runtime][cache][disk]") {
  TempDirectory dir;
  fs::path nested = dir.path() / "a" / "b" / "attnc";
  KernelCache cache(disk_options(nested));
  REQUIRE(fs::is_directory(nested));
  struct stat info {};
  REQUIRE(::stat(nested.c_str(), &info) == 0);
  CHECK((info.st_mode & 0777) == 0700);

  SECTION("a reader never sees a partial entry while a writer replaces it") {
    CacheDirectory disk(nested);
    KernelKey key = test_key(1);
    std::string text = key.serialize(), hash = key.hash_hex();
    std::atomic<bool> done{false};
    std::thread writer([&] {
      for (int round = 0; round < 20; ++round) {
        CachedKernel kernel = fake_kernel(key, 4 << 20);
        kernel.metadata = "round " + std::to_string(round);
        disk.store(text, hash, kernel);
      }
      done = true;
    });
    int seen = 0, bad = 0;
    while (!done) {
      CacheDirectory::LoadResult loaded = disk.load(text, hash, /*remove_bad=*/false);
      if (loaded.status == CacheDirectory::LoadStatus::Loaded) ++seen;
      if (loaded.status == CacheDirectory::LoadStatus::Discarded) ++bad;
    }
    writer.join();
    CHECK(bad == 0);
    CHECK(seen > 0);
    // Only the entry and no temporary file is left behind.
    std::vector<std::string> names;
    for (const auto& file : fs::directory_iterator(nested)) names.push_back(file.path().filename().string());
    CHECK(names == std::vector<std::string>{hash + ".kernel"});
  }
  SECTION("a directory that cannot be created") {
    fs::path file = dir.path() / "plain-file";
    write_bytes(file, "x");
    KernelCacheOptions options = disk_options(file / "cache");
    options.require_disk = true;
    CHECK_THROWS_AS(KernelCache(options), RuntimeError);
    options.require_disk = false;
    KernelCache memory_only(options);
    CHECK_FALSE(memory_only.has_disk());
    CHECK_THAT(memory_only.disk_unavailable_reason(), Catch::Contains("plain-file"));
    FakeCompiler compiler;
    CHECK(memory_only.get_or_compile(test_key(1), compiler.function()).source == CacheSource::Compiled);
    CHECK(memory_only.stats().disk_errors == 1);
  }
}

TEST_CASE("a cache directory others may write is never loaded from unless trusted as shared",
          "[runtime][cache][disk][trust]") {
  TempDirectory dir;
  fs::create_directories(dir.path());
  FakeCompiler compiler;
  {
    KernelCache writer(disk_options(dir.path()));
    writer.get_or_compile(test_key(1), compiler.function());
  }
  fs::permissions(dir.path(), fs::perms::all);  // 0777: anyone could plant a kernel here
  ScopedEnv no_trust("ATTNC_CACHE_TRUST_SHARED", nullptr);

  SECTION("the default cache carries on in memory, says why, and compiles rather than load") {
    KernelCache cache(disk_options(dir.path()));
    CHECK_FALSE(cache.has_disk());
    CHECK_THAT(cache.disk_unavailable_reason(),
               Catch::Contains(dir.path().string()) && Catch::Contains("writable by group and others (mode 0777)") &&
                   Catch::Contains("chmod 700") && Catch::Contains("ATTNC_CACHE_TRUST_SHARED=1"));
    std::vector<CacheEvent> events = cache.take_events();
    REQUIRE(events.size() == 1);
    CHECK(events[0].kind == CacheEvent::Kind::DiskError);
    CHECK_THAT(events[0].detail, Catch::Contains("writable by group and others"));
    CHECK(cache.get_or_compile(test_key(1), compiler.function()).source == CacheSource::Compiled);
    CHECK(cache.stats().disk_hits == 0);
  }
  SECTION("a cache that needs its disk refuses with the reason") {
    KernelCacheOptions options = disk_options(dir.path());
    options.require_disk = true;
    CHECK_THROWS_WITH(KernelCache(options), Catch::Contains("writable by group and others"));
  }
  SECTION("trusted as shared, by option or by ATTNC_CACHE_TRUST_SHARED=1, it is used") {
    KernelCacheOptions options = disk_options(dir.path());
    options.trust_shared_directory = true;
    KernelCache trusted(options);
    CHECK(trusted.has_disk());
    CHECK(trusted.get_or_compile(test_key(1), compiler.function()).source == CacheSource::Disk);
    ScopedEnv trust("ATTNC_CACHE_TRUST_SHARED", "1");
    KernelCache by_environment(disk_options(dir.path()));
    CHECK(by_environment.has_disk());
  }
}

TEST_CASE("a cache entry others may write is discarded and rebuilt, never loaded", "[runtime][cache][disk][trust]") {
  TempDirectory dir;
  FakeCompiler compiler;
  {
    KernelCache writer(disk_options(dir.path()));
    writer.get_or_compile(test_key(1), compiler.function());
  }
  fs::path entry = dir.path() / (test_key(1).hash_hex() + ".kernel");
  fs::permissions(entry, fs::perms::owner_read | fs::perms::owner_write | fs::perms::others_write);
  std::vector<CacheDirectory::Verification> checked = CacheDirectory(dir.path()).verify();
  REQUIRE(checked.size() == 1);
  CHECK_THAT(checked[0].problem, Catch::Contains("not trusted: writable by others (mode 0602)"));

  KernelCache cache(disk_options(dir.path()));
  CHECK(cache.get_or_compile(test_key(1), compiler.function()).source == CacheSource::Compiled);
  CHECK(compiler.calls == 2);
  std::vector<CacheEvent> events = cache.take_events();
  REQUIRE(events.size() == 1);
  CHECK(events[0].kind == CacheEvent::Kind::Discarded);
  CHECK_THAT(events[0].detail, Catch::Contains("writable by others"));
  struct stat info {};
  REQUIRE(::stat(entry.c_str(), &info) == 0);
  CHECK((info.st_mode & 0777) == 0600);  // rebuilt by this user, for this user
}

TEST_CASE("the default cache directory follows ATTNC_CACHE_DIR, XDG_CACHE_HOME and HOME", "[runtime][cache]") {
  ScopedEnv home("HOME", "/home/someone");
  SECTION("ATTNC_CACHE_DIR first") {
    ScopedEnv attnc("ATTNC_CACHE_DIR", "/srv/kernels");
    ScopedEnv xdg("XDG_CACHE_HOME", "/xdg");
    CHECK(default_cache_directory() == fs::path("/srv/kernels"));
  }
  SECTION("then XDG_CACHE_HOME, when absolute") {
    ScopedEnv attnc("ATTNC_CACHE_DIR", "");
    ScopedEnv xdg("XDG_CACHE_HOME", "/xdg");
    CHECK(default_cache_directory() == fs::path("/xdg/attnc"));
  }
  SECTION("then HOME") {
    ScopedEnv attnc("ATTNC_CACHE_DIR", nullptr);
    ScopedEnv xdg("XDG_CACHE_HOME", "relative/ignored");
    CHECK(default_cache_directory() == fs::path("/home/someone/.cache/attnc"));
  }
  SECTION("none of them") {
    ScopedEnv attnc("ATTNC_CACHE_DIR", nullptr);
    ScopedEnv xdg("XDG_CACHE_HOME", nullptr);
    ScopedEnv no_home("HOME", nullptr);
    CHECK_THROWS_AS(default_cache_directory(), RuntimeError);
  }
}

TEST_CASE("byte sizes parse with K, M and G suffixes", "[runtime][cache]") {
  auto [text, expected] = GENERATE(table<std::string, std::optional<uint64_t>>({
      {"0", 0},
      {"512", 512},
      {"64K", 64ull << 10},
      {"64k", 64ull << 10},
      {"10M", 10ull << 20},
      {"10MB", 10ull << 20},
      {"10MiB", 10ull << 20},
      {"2G", 2ull << 30},
      {"1T", 1ull << 40},
      {"100B", 100},
      {"", std::nullopt},
      {"M", std::nullopt},
      {"-1", std::nullopt},
      {"1.5G", std::nullopt},
      {"10X", std::nullopt},
      {"10MM", std::nullopt},
      {"99999999999999999999", std::nullopt},
      {"17179869184G", std::nullopt},  // 2^64 bytes
  }));
  CAPTURE(text);
  CHECK(parse_byte_size(text) == expected);
}

TEST_CASE("four processes warming the same 20 kernels at once compile each once and all succeed",
          "[runtime][cache][processes]") {
  TempDirectory dir;
  fs::create_directories(dir.path());
  fs::path log = dir.path() / "compiles.log";
  fs::path cache_dir = dir.path() / "cache";
  constexpr int kProcesses = 4, kKernels = 20;

  std::vector<pid_t> children;
  for (int p = 0; p < kProcesses; ++p) {
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      // The child: its own cache over the shared directory, the kernels in its own order, two
      // threads. It reports through its exit status only, and never returns into Catch.
      int status = 1;
      try {
        KernelCache cache(disk_options(cache_dir));
        std::vector<int> order(kKernels);
        for (int i = 0; i < kKernels; ++i) order[i] = i;
        std::shuffle(order.begin(), order.end(), std::mt19937(p));
        std::vector<WarmupJob> jobs;
        for (int i : order) {
          WarmupJob job;
          job.label = "kernel " + std::to_string(i);
          job.make_key = [i] { return test_key(static_cast<uint64_t>(i)); };
          job.compile = [&log](const KernelKey& key) {
            // One write() of a short line to an O_APPEND file: lines never interleave.
            std::string line = key.hash_hex() + " " + std::to_string(::getpid()) + "\n";
            int fd = ::open(log.c_str(), O_WRONLY | O_APPEND | O_CREAT, 0600);
            if (fd < 0 || ::write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
              throw RuntimeError("cannot append to the compile log");
            }
            ::close(fd);
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
            return fake_kernel(key);
          };
          jobs.push_back(std::move(job));
        }
        WarmupSummary summary = warm_cache(cache, jobs, 2);
        bool loaded_right = true;
        for (int i = 0; i < kKernels; ++i) {
          std::shared_ptr<const CachedKernel> kernel = cache.find(test_key(static_cast<uint64_t>(i)));
          loaded_right = loaded_right && kernel && *kernel == fake_kernel(test_key(static_cast<uint64_t>(i)));
        }
        status = summary.failed == 0 && summary.compiled + summary.cached == kKernels && loaded_right ? 0 : 1;
      } catch (...) {
        status = 2;
      }
      ::_exit(status);
    }
    children.push_back(pid);
  }
  for (pid_t pid : children) {
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    CAPTURE(pid);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
  }

  std::map<std::string, int> compiles;
  std::ifstream in(log);
  for (std::string hash, pid; in >> hash >> pid;) ++compiles[hash];
  CHECK(compiles.size() == kKernels);
  for (int i = 0; i < kKernels; ++i) {
    CAPTURE(i);
    CHECK(compiles[test_key(static_cast<uint64_t>(i)).hash_hex()] == 1);
  }
  CacheDirectory disk(cache_dir);
  std::vector<CacheDirectory::Verification> checked = disk.verify();
  CHECK(checked.size() == kKernels);
  for (const CacheDirectory::Verification& v : checked) CHECK(v.problem.empty());
}

TEST_CASE("kernel cache timings: warm load from disk and in-memory lookup", "[runtime][cache][.benchmark]") {
  TempDirectory dir;
  FakeCompiler compiler;
  compiler.payload_size = 256 << 10;  // a typical flash-attention cubin is a few hundred KB
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  using Clock = std::chrono::steady_clock;
  for (size_t payload : {size_t{256} << 10, size_t{1} << 20}) {
    compiler.payload_size = payload;
    KernelKey key = test_key(payload);
    { KernelCache(disk_options(dir.path())).get_or_compile(key, compiler.function()); }
    std::vector<double> disk_ms;
    for (int i = 0; i < 50; ++i) {
      auto start = Clock::now();
      KernelCache cache(disk_options(dir.path()));  // a new process's cache: empty memory
      CacheResult r = cache.get_or_compile(key, compiler.function());
      disk_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
      REQUIRE(r.source == CacheSource::Disk);
    }
    std::printf("warm load from disk, %zu KB entry: median %.3f ms (target < 20 ms)\n", payload >> 10, median(disk_ms));
    CHECK(median(disk_ms) < 20.0);
  }
  KernelCache cache(disk_options(dir.path()));
  KernelKey key = test_key(1);
  cache.get_or_compile(key, compiler.function());
  std::vector<double> lookup_us;
  for (int batch = 0; batch < 50; ++batch) {
    constexpr int kPerBatch = 1000;
    auto start = Clock::now();
    for (int i = 0; i < kPerBatch; ++i) {
      if (cache.get_or_compile(key, compiler.function()).source != CacheSource::Memory) FAIL("not a memory hit");
    }
    lookup_us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - start).count() / kPerBatch);
  }
  std::printf("in-memory lookup (key serialisation included): median %.3f us (target < 10 us)\n", median(lookup_us));
  CHECK(median(lookup_us) < 10.0);
}
