#include "runtime/cache/CacheDirectory.h"

#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "compiler/Signature.h"
#include "runtime/cache/KernelKey.h"
#include "runtime/core/RuntimeError.h"

using namespace attnc;
namespace fs = std::filesystem;

namespace {

// A fresh directory under /tmp (not created), removed with everything in it.
class TempDirectory {
 public:
  TempDirectory() {
    static std::atomic<int> counter{0};
    path_ = fs::temp_directory_path() /
            ("attnc-cache-directory-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
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

KernelKey key_number(uint64_t i) {
  KernelKey key;
  key.family = "flash";
  key.add("mask_mod", ir::Signature{0x77 + i, i}.hex()).add("arch", "sm_80").add("nvrtc", "13.0");
  return key;
}

// Stores entry i (`size` payload bytes) and returns its hash.
std::string store(const CacheDirectory& dir, uint64_t i, size_t size = 100) {
  KernelKey key = key_number(i);
  dir.store(key.serialize(), key.hash_hex(), CachedKernel{std::string(size, 'x'), "entry=e\n"});
  return key.hash_hex();
}

size_t files_ending_in(const fs::path& dir, const std::string& suffix) {
  size_t n = 0;
  for (const auto& entry : fs::directory_iterator(dir)) n += entry.path().filename().string().ends_with(suffix);
  return n;
}

constexpr uid_t kNobody = 65534;

}  // namespace

TEST_CASE("a missing cache directory is created 0700, or refused when creating is not wanted", "[runtime][cache]") {
  TempDirectory dir;
  CacheDirectoryOptions existing_only;
  existing_only.create = false;
  CHECK_THROWS_WITH(CacheDirectory(dir.path(), existing_only),
                    Catch::Contains(dir.path().string()) && Catch::Contains("does not exist"));
  CHECK_FALSE(fs::exists(dir.path()));
  CacheDirectory created(dir.path());
  struct stat info {};
  REQUIRE(::stat(dir.path().c_str(), &info) == 0);
  CHECK((info.st_mode & 0777) == 0700);
  CHECK_NOTHROW(CacheDirectory(dir.path(), existing_only));
}

TEST_CASE("a cache directory writable by group or others is refused unless trusted as shared",
          "[runtime][cache][trust]") {
  TempDirectory dir;
  CacheDirectory(dir.path());
  fs::permissions(dir.path(), fs::perms::owner_all | fs::perms::group_all);  // 0770
  CHECK_THROWS_AS(CacheDirectory(dir.path()), RuntimeError);
  CHECK_THROWS_WITH(CacheDirectory(dir.path()), Catch::Contains("'" + dir.path().string() + "'") &&
                                                    Catch::Contains("writable by group (mode 0770)") &&
                                                    Catch::Contains("chmod 700") &&
                                                    Catch::Contains("--trust-shared-cache"));
  CacheDirectoryOptions shared;
  shared.trust_shared = true;
  CHECK_NOTHROW(CacheDirectory(dir.path(), shared));
}

TEST_CASE("a cache directory or entry owned by another user is refused (run as root)", "[runtime][cache][trust]") {
  if (::geteuid() != 0) {
    WARN("not running as root: cannot give a cache directory to another user; the ownership check was not tested");
    return;
  }
  TempDirectory dir;
  CacheDirectory mine(dir.path());
  std::string hash = store(mine, 1);
  KernelKey key = key_number(1);

  SECTION("an entry: never loaded, reported by verify, removed when asked to") {
    REQUIRE(::chown(mine.entry_path(hash).c_str(), kNobody, kNobody) == 0);
    CacheDirectory::LoadResult loaded = mine.load(key.serialize(), hash, /*remove_bad=*/false);
    CHECK(loaded.status == CacheDirectory::LoadStatus::Discarded);
    CHECK_THAT(loaded.problem, Catch::Contains("not trusted: owned by") && Catch::Contains("uid 65534") &&
                                   Catch::Contains("not by this user"));
    REQUIRE(mine.verify().size() == 1);
    CHECK_THAT(mine.verify()[0].problem, Catch::Contains("uid 65534"));
    mine.load(key.serialize(), hash, /*remove_bad=*/true);
    CHECK_FALSE(fs::exists(mine.entry_path(hash)));
  }
  SECTION("the directory") {
    REQUIRE(::chown(dir.path().c_str(), kNobody, kNobody) == 0);
    CHECK_THROWS_WITH(CacheDirectory(dir.path()),
                      Catch::Contains("uid 65534") && Catch::Contains("use a directory of your own"));
    CacheDirectoryOptions shared;
    shared.trust_shared = true;
    CacheDirectory trusted(dir.path(), shared);
    CHECK(trusted.load(key.serialize(), hash, false).status == CacheDirectory::LoadStatus::Loaded);
  }
}

TEST_CASE("removing an entry removes its lock file too, and only under the lock", "[runtime][cache][locks]") {
  TempDirectory dir;
  CacheDirectory cache(dir.path());
  std::vector<std::string> hashes;
  for (uint64_t i = 0; i < 4; ++i) {
    hashes.push_back(store(cache, i, 1000));
    cache.lock(hashes.back());  // leaves the lock file, as a compile does
  }
  REQUIRE(files_ending_in(dir.path(), ".lock") == 4);

  SECTION("prune") {
    CacheDirectory::PruneResult pruned = cache.prune(2 * fs::file_size(cache.entry_path(hashes[0])));
    CHECK(pruned.removed.size() == 2);
    CHECK(files_ending_in(dir.path(), ".kernel") == 2);
    CHECK(files_ending_in(dir.path(), ".lock") == 2);
    for (const auto& removed : pruned.removed) CHECK_FALSE(fs::exists(dir.path() / (removed.hash + ".lock")));
  }
  SECTION("an entry whose lock is held elsewhere is kept by prune") {
    CacheDirectory::KeyLock busy = cache.lock(hashes[0]);  // the least recently used
    CacheDirectory::PruneResult pruned = cache.prune(0);
    CHECK(pruned.removed.size() == 3);
    CHECK(fs::exists(cache.entry_path(hashes[0])));
    CHECK_FALSE(cache.remove_entry(hashes[0], /*wait=*/false));
  }
  SECTION("remove_entry and clear") {
    CHECK(cache.remove_entry(hashes[1]));
    CHECK_FALSE(fs::exists(cache.entry_path(hashes[1])));
    CHECK_FALSE(fs::exists(dir.path() / (hashes[1] + ".lock")));
    CHECK(cache.clear() == 3);
    CHECK(fs::is_empty(dir.path()));
  }
}

TEST_CASE("a lock taken on a lock file that was removed meanwhile is taken again on the new file",
          "[runtime][cache][locks]") {
  TempDirectory dir;
  CacheDirectory cache(dir.path());
  const std::string hash = key_number(9).hash_hex();
  const fs::path lock_file = dir.path() / (hash + ".lock");

  std::optional<CacheDirectory::KeyLock> first(cache.lock(hash));
  std::atomic<bool> second_holds{false}, release_second{false};
  std::thread second([&] {
    CacheDirectory::KeyLock lock = cache.lock(hash);  // waits for the first holder
    second_holds = true;
    while (!release_second) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  CHECK_FALSE(second_holds);
  fs::remove(lock_file);  // what remove_entry does while holding the lock
  first.reset();
  while (!second_holds) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  // The second holder locked the file that is there now, so a third locker must wait for it.
  CHECK(fs::exists(lock_file));
  CHECK_FALSE(cache.try_lock(hash).has_value());
  release_second = true;
  second.join();
  CHECK(cache.try_lock(hash).has_value());
}
