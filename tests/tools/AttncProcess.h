#pragma once
// Running the attnc binary as a user would, for the CLI tests: a process started from the source
// directory with stdout and stderr captured to files, plus a self-removing scratch directory.
// ATTNC_SOURCE_DIR and ATTNC_BINARY come from the environment or tests/CMakeLists.txt (TestPaths.h).

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <system_error>

#include "tests/support/TestPaths.h"

namespace attnc_test {

namespace fs = std::filesystem;

struct AttncResult {
  int status = -1;  // the exit status, or -1 when attnc did not exit normally
  std::string out, err;
};

inline std::string slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

inline std::string quoted(const fs::path& path) { return "'" + path.string() + "'"; }

// A fresh directory under the system's temporary directory, removed with everything in it.
class TempDirectory {
 public:
  explicit TempDirectory(const std::string& prefix) {
    static std::atomic<int> counter{0};
    path_ = fs::temp_directory_path() / (prefix + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDirectory() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  TempDirectory(const TempDirectory&) = delete;
  TempDirectory& operator=(const TempDirectory&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// The shell command that runs `attnc ARGS` with the environment assignments `env` ("NAME=value
// ..." or empty), writing scratch/NAME.out and scratch/NAME.err.
inline std::string attnc_command(const std::string& args, const fs::path& scratch, const std::string& name = "run",
                                 const std::string& env = "") {
  return env + " " + quoted(fs::path(attnc::test::attnc_binary())) + " " + args + " >" + quoted(scratch / (name + ".out")) + " 2>" +
         quoted(scratch / (name + ".err"));
}

// Runs attnc from the source directory (so examples/... paths work) and collects what it printed.
inline AttncResult run_attnc(const std::string& args, const fs::path& scratch, const std::string& env = "") {
  int raw = std::system(("cd " + quoted(fs::path(attnc::test::source_dir())) + " && " + attnc_command(args, scratch, "run", env)).c_str());
  AttncResult r;
  r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  r.out = slurp(scratch / "run.out");
  r.err = slurp(scratch / "run.err");
  return r;
}

}  // namespace attnc_test
