#pragma once
// Where a test finds the source tree and the attnc binary: the environment first (ATTNC_SOURCE_DIR,
// ATTNC_BINARY), so binaries built on one machine run from another checkout (tools/gpu/prepare.sh
// builds them here, tools/gpu/check.sh runs them on a GPU machine), else the paths CMake compiled in.
// Header-only: the compiled-in defaults are definitions of the test executables' own targets.

#include <cstdlib>
#include <string>

namespace attnc::test {

inline std::string path_from_env(const char* name, const char* fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? std::string(value) : std::string(fallback);
}

#ifdef ATTNC_SOURCE_DIR
inline std::string source_dir() { return path_from_env("ATTNC_SOURCE_DIR", ATTNC_SOURCE_DIR); }
#endif
#ifdef ATTNC_BINARY
inline std::string attnc_binary() { return path_from_env("ATTNC_BINARY", ATTNC_BINARY); }
#endif

}  // namespace attnc::test
