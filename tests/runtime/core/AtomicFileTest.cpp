#include "runtime/core/AtomicFile.h"

#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "runtime/core/RuntimeError.h"

using namespace attnc;
namespace fs = std::filesystem;

namespace {

// A fresh directory, removed with everything in it.
class TempDirectory {
 public:
  TempDirectory() {
    static std::atomic<int> counter{0};
    path_ = fs::temp_directory_path() /
            ("attnc-atomic-file-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDirectory() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::string slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::vector<std::string> names_in(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace

TEST_CASE("an atomic file appears only when committed, and whole", "[runtime][atomic-file]") {
  TempDirectory dir;
  fs::path out = dir.path() / "out.bin";
  std::ofstream(out) << "old contents";
  {
    AtomicFile file(out);
    file.write("new ");
    CHECK(slurp(out) == "old contents");  // not yet
    file.write("contents");
    file.commit();
  }
  CHECK(slurp(out) == "new contents");
  CHECK(names_in(dir.path()) == std::vector<std::string>{"out.bin"});

  SECTION("an uncommitted file leaves the destination as it was and no temporary file") {
    {
      AtomicFile file(out);
      file.write("half of it");
    }
    CHECK(slurp(out) == "new contents");
    CHECK(names_in(dir.path()) == std::vector<std::string>{"out.bin"});
  }
  SECTION("a set of files: written first, committed together") {
    fs::path lse = dir.path() / "lse.bin";
    std::vector<AtomicFile> set;
    set.emplace_back(out);
    set.emplace_back(lse);
    for (AtomicFile& file : set) file.write("x");
    CHECK_FALSE(fs::exists(lse));
    for (AtomicFile& file : set) file.commit();
    CHECK(slurp(out) == "x");
    CHECK(slurp(lse) == "x");
  }
  SECTION("through a symbolic link, the file it points to is replaced") {
    fs::path link = dir.path() / "link.bin";
    fs::create_symlink(out, link);
    write_file_atomically(link, "via the link");
    CHECK(fs::is_symlink(link));
    CHECK(slurp(out) == "via the link");
  }
  SECTION("a special file such as /dev/null is written in place, not replaced") {
    write_file_atomically("/dev/null", "discarded");
    struct stat info {};
    REQUIRE(::stat("/dev/null", &info) == 0);
    CHECK(S_ISCHR(info.st_mode));
  }
}

TEST_CASE("output locations are checked before anything is written", "[runtime][atomic-file]") {
  TempDirectory dir;
  CHECK_NOTHROW(check_output_path(dir.path() / "new.npy"));
  CHECK_NOTHROW(check_output_path("/dev/null"));
  CHECK_THROWS_WITH(check_output_path(dir.path()), Catch::Contains("is a directory"));
  CHECK_THROWS_WITH(check_output_path(dir.path() / "missing" / "x.npy"),
                    Catch::Contains("missing") && Catch::Contains("does not exist"));
  std::ofstream(dir.path() / "file") << "x";
  CHECK_THROWS_WITH(check_output_path(dir.path() / "file" / "x.npy"), Catch::Contains("is not a directory"));
  CHECK_THROWS_WITH(AtomicFile(dir.path() / "missing" / "x.npy"), Catch::Contains("x.npy"));

  CHECK_NOTHROW(check_output_directory(dir.path()));
  CHECK_NOTHROW(check_output_directory(dir.path() / "a" / "b"));  // can be created
  CHECK_THROWS_WITH(check_output_directory(dir.path() / "file"), Catch::Contains("is not a directory"));
  CHECK_THROWS_WITH(check_output_directory(dir.path() / "file" / "sub"), Catch::Contains("is not a directory"));
  if (::geteuid() != 0) {
    fs::create_directories(dir.path() / "read-only");
    fs::permissions(dir.path() / "read-only", fs::perms::owner_read | fs::perms::owner_exec);
    CHECK_THROWS_WITH(check_output_path(dir.path() / "read-only" / "x.npy"), Catch::Contains("cannot create files"));
    fs::permissions(dir.path() / "read-only", fs::perms::owner_all);
  }
}
