// attnc cache stats | list | verify | clear | prune, run as a process on a cache directory that
// the test fills through the library.

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>

#include <catch2/catch.hpp>

#include "tests/tools/AttncProcess.h"

#include "compiler/Signature.h"
#include "runtime/cache/KernelCache.h"

namespace fs = std::filesystem;
using namespace attnc;

namespace {

using attnc_test::run_attnc;
using attnc_test::slurp;
using Result = attnc_test::AttncResult;

// A scratch directory for one test.
struct TempDirectory : attnc_test::TempDirectory {
  TempDirectory() : attnc_test::TempDirectory("attnc-cache-cli") {}
};

KernelKey key_number(uint64_t i) {
  KernelKey key;
  key.family = "flash";
  key.add("score_mod", ir::Signature{0xabc, i}.hex()).add("dtype", "fp16").add("head_dim", "64");
  key.add("arch", "sm_90a").add("nvrtc", "13.0").add("template", "0f0f");
  return key;
}

// Fills `dir` with entries 0..count-1, each `payload` bytes, used in that order (0 least recently).
void fill_cache(const fs::path& dir, int count, size_t payload = 2000) {
  KernelCacheOptions options;
  options.directory = dir;
  options.max_disk_bytes = 0;
  KernelCache cache(options);
  for (int i = 0; i < count; ++i) {
    cache.get_or_compile(key_number(static_cast<uint64_t>(i)), [payload](const KernelKey& key) {
      return CachedKernel{std::string(payload, 'k'), key.hash_hex()};
    });
  }
}

fs::path entry_file(const fs::path& dir, int i) {
  return dir / (key_number(static_cast<uint64_t>(i)).hash_hex() + ".kernel");
}

}  // namespace

TEST_CASE("attnc cache stats and list describe the entries, most recently used first", "[cli][cache]") {
  TempDirectory scratch;
  fs::path dir = scratch.path() / "cache";
  fill_cache(dir, 3);
  uint64_t total = 0;
  for (int i = 0; i < 3; ++i) total += fs::file_size(entry_file(dir, i));

  Result stats = run_attnc("cache stats --dir '" + dir.string() + "'", scratch.path());
  CAPTURE(stats.err);
  CHECK(stats.status == 0);
  CHECK_THAT(stats.out, Catch::Contains("directory: " + dir.string()));
  CHECK_THAT(stats.out, Catch::Contains("entries: 3\n"));
  CHECK_THAT(stats.out, Catch::Contains("size: " + std::to_string(total) + " bytes"));

  Result list = run_attnc("cache list --dir '" + dir.string() + "'", scratch.path());
  CHECK(list.status == 0);
  std::vector<std::string> lines;
  std::istringstream in(list.out);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  REQUIRE(lines.size() == 3);
  for (int i = 0; i < 3; ++i) {
    CAPTURE(i, lines[i]);
    CHECK(lines[i].starts_with(key_number(static_cast<uint64_t>(2 - i)).hash_hex()));  // newest first
    CHECK_THAT(lines[i], Catch::Contains("flash score_mod=00000000 dtype=fp16 head_dim=64 arch=sm_90a nvrtc=13.0"));
  }

  SECTION("ATTNC_CACHE_DIR is the default directory, created 0700") {
    fs::path fresh = scratch.path() / "from-env" / "attnc";
    Result r = run_attnc("cache stats", scratch.path(), "ATTNC_CACHE_DIR='" + fresh.string() + "'");
    CHECK(r.status == 0);
    CHECK_THAT(r.out, Catch::Contains("directory: " + fresh.string()));
    CHECK_THAT(r.out, Catch::Contains("entries: 0\n"));
    struct stat info {};
    REQUIRE(::stat(fresh.c_str(), &info) == 0);
    CHECK((info.st_mode & 0777) == 0700);
  }
}

TEST_CASE("attnc cache verify reports bad entries and removes them with --fix", "[cli][cache]") {
  TempDirectory scratch;
  fs::path dir = scratch.path() / "cache";
  fill_cache(dir, 4);
  std::string args = " --dir '" + dir.string() + "'";

  Result clean = run_attnc("cache verify" + args, scratch.path());
  CHECK(clean.status == 0);
  CHECK_THAT(clean.out, Catch::Contains("4 entries checked, 0 bad"));

  // Entry 1 loses its last byte; entry 3 gets a flipped byte.
  fs::resize_file(entry_file(dir, 1), fs::file_size(entry_file(dir, 1)) - 1);
  std::string bytes = slurp(entry_file(dir, 3));
  bytes[bytes.size() / 2] ^= 0x40;
  std::ofstream(entry_file(dir, 3), std::ios::binary | std::ios::trunc) << bytes;

  Result bad = run_attnc("cache verify" + args, scratch.path());
  CHECK(bad.status == 3);
  CHECK_THAT(bad.out, Catch::Contains(entry_file(dir, 1).string() + ": truncated"));
  CHECK_THAT(bad.out, Catch::Contains(entry_file(dir, 3).string() + ": corrupted"));
  CHECK_THAT(bad.out, Catch::Contains("4 entries checked, 2 bad (run with --fix to remove)"));
  CHECK(fs::exists(entry_file(dir, 1)));  // verify alone changes nothing

  Result listed = run_attnc("cache list" + args, scratch.path());
  CHECK(listed.status == 0);
  CHECK_THAT(listed.out, Catch::Contains("BAD: truncated"));

  Result fixed = run_attnc("cache verify --fix" + args, scratch.path());
  CHECK(fixed.status == 0);
  CHECK_THAT(fixed.out, Catch::Contains("(removed)"));
  CHECK_FALSE(fs::exists(entry_file(dir, 1)));
  CHECK_FALSE(fs::exists(entry_file(dir, 3)));
  CHECK(fs::exists(entry_file(dir, 0)));
  CHECK(fs::exists(entry_file(dir, 2)));
  Result again = run_attnc("cache verify" + args, scratch.path());
  CHECK(again.status == 0);
  CHECK_THAT(again.out, Catch::Contains("2 entries checked, 0 bad"));
}

TEST_CASE("attnc cache prune keeps the most recently used entries within the size", "[cli][cache]") {
  TempDirectory scratch;
  fs::path dir = scratch.path() / "cache";
  fill_cache(dir, 5, 10000);
  uint64_t one = fs::file_size(entry_file(dir, 0));
  std::string args = " --dir '" + dir.string() + "'";

  // Two and a half entries' worth, written as a K size: entries 0, 1 and 2 must go.
  std::string max_size = std::to_string((one * 5 / 2) / 1024) + "K";
  Result pruned = run_attnc("cache prune --max-size " + max_size + args, scratch.path());
  CAPTURE(pruned.err, max_size);
  CHECK(pruned.status == 0);
  CHECK_THAT(pruned.out, Catch::Contains("removed 3 entries"));
  CHECK_THAT(pruned.out, Catch::Contains("in 2 entries"));
  for (int i = 0; i < 5; ++i) {
    CAPTURE(i);
    CHECK(fs::exists(entry_file(dir, i)) == (i >= 3));
  }
  Result nothing = run_attnc("cache prune --max-size 1G" + args, scratch.path());
  CHECK(nothing.status == 0);
  CHECK_THAT(nothing.out, Catch::Contains("removed 0 entries"));

  Result clear = run_attnc("cache clear" + args, scratch.path());
  CHECK(clear.status == 0);
  CHECK_THAT(clear.out, Catch::Contains("removed 2 entries from " + dir.string()));
  CHECK(fs::is_empty(dir));
  Result stats = run_attnc("cache stats" + args, scratch.path());
  CHECK_THAT(stats.out, Catch::Contains("entries: 0\n"));
}

TEST_CASE("attnc cache rejects wrong command lines with exit status 2", "[cli][cache]") {
  TempDirectory scratch;
  std::string dir = " --dir '" + (scratch.path() / "cache").string() + "'";
  auto [args, message] = GENERATE_REF(table<std::string, std::string>({
      {"cache", "missing subcommand"},
      {"cache shrink" + dir, "unknown subcommand 'shrink'"},
      {"cache prune" + dir, "prune needs --max-size N"},
      {"cache prune --max-size 12X" + dir, "'12X' is not a size"},
      {"cache stats --fix" + dir, "unknown option '--fix'"},
      {"cache clear extra" + dir, "unexpected argument 'extra'"},
      {"cache list --dir", "needs a value"},
  }));
  CAPTURE(args);
  Result r = run_attnc(args, scratch.path());
  CHECK(r.status == 2);
  CHECK_THAT(r.err, Catch::Contains(message));
  Result help = run_attnc("cache --help", scratch.path());
  CHECK(help.status == 0);
  CHECK_THAT(help.out, Catch::Contains("Usage: attnc cache stats"));
}

TEST_CASE("attnc cache prune and verify --fix remove lock files with their entries", "[cli][cache][locks]") {
  TempDirectory scratch;
  fs::path dir = scratch.path() / "cache";
  fill_cache(dir, 4, 10000);  // each compile leaves its key's lock file
  auto locks = [&] {
    size_t n = 0;
    for (const auto& entry : fs::directory_iterator(dir)) n += entry.path().extension() == ".lock";
    return n;
  };
  REQUIRE(locks() == 4);
  std::string args = " --dir '" + dir.string() + "'";

  Result pruned = run_attnc("cache prune --max-size 25K" + args, scratch.path());
  CHECK(pruned.status == 0);
  CHECK_THAT(pruned.out, Catch::Contains("removed 2 entries"));
  CHECK(locks() == 2);

  fs::resize_file(entry_file(dir, 3), fs::file_size(entry_file(dir, 3)) - 1);
  Result fixed = run_attnc("cache verify --fix" + args, scratch.path());
  CHECK(fixed.status == 0);
  CHECK_FALSE(fs::exists(entry_file(dir, 3)));
  CHECK(locks() == 1);

  Result cleared = run_attnc("cache clear" + args, scratch.path());
  CHECK(cleared.status == 0);
  CHECK(fs::is_empty(dir));
}

TEST_CASE("attnc cache refuses a --dir that does not exist instead of creating it", "[cli][cache]") {
  TempDirectory scratch;
  fs::path missing = scratch.path() / "typo";
  for (const char* action : {"clear", "stats", "list", "verify", "prune --max-size 1G"}) {
    CAPTURE(action);
    Result r = run_attnc(std::string("cache ") + action + " --dir '" + missing.string() + "'", scratch.path());
    CHECK(r.status == 3);
    CHECK_THAT(r.err, Catch::Contains("'" + missing.string() + "' does not exist"));
    CHECK_FALSE(fs::exists(missing));
  }
}

TEST_CASE("attnc cache refuses a directory others may write unless told it is shared and trusted",
          "[cli][cache][trust]") {
  TempDirectory scratch;
  fs::path dir = scratch.path() / "cache";
  fill_cache(dir, 1);
  fs::permissions(dir, fs::perms::all);
  std::string args = "cache list --dir '" + dir.string() + "'";
  Result refused = run_attnc(args, scratch.path(), "ATTNC_CACHE_TRUST_SHARED=");
  CHECK(refused.status == 3);
  CHECK_THAT(refused.err, Catch::Contains("writable by group and others (mode 0777)") &&
                              Catch::Contains("chmod 700 '" + dir.string() + "'"));
  CHECK(refused.out.empty());
  Result trusted = run_attnc(args + " --trust-shared-cache", scratch.path());
  CHECK(trusted.status == 0);
  CHECK_THAT(trusted.out, Catch::Contains(key_number(0).hash_hex()));
  CHECK(run_attnc(args, scratch.path(), "ATTNC_CACHE_TRUST_SHARED=1").status == 0);
}
