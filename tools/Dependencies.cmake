# The header-only libraries of the attnc tool and the benchmark suite: CLI11 (command lines) and
# nlohmann-json (the warmup manifest, the bench's JSON). Debian ships both with CMake configs
# (libcli11-dev, nlohmann-json3-dev; scripts/install-deps.sh installs them). A machine without them
# (the GPU machine) uses the copies tools/gpu/prepare.sh puts in ATTNC_DEPS_INCLUDE_DIR, or in
# tools/gpu/deps/include when that option is not given. Included from the top CMakeLists.txt, so
# the imported targets are visible to every directory.
set(_attnc_header_dirs ${ATTNC_DEPS_INCLUDE_DIR} ${PROJECT_SOURCE_DIR}/tools/gpu/deps/include)

find_package(CLI11 CONFIG QUIET)
if(NOT TARGET CLI11::CLI11)
  find_path(ATTNC_CLI11_INCLUDE_DIR CLI/CLI.hpp PATHS ${_attnc_header_dirs} NO_DEFAULT_PATH)
  if(NOT ATTNC_CLI11_INCLUDE_DIR)
    message(FATAL_ERROR "attnc: CLI11 not found: install libcli11-dev (scripts/install-deps.sh), or give "
                        "ATTNC_DEPS_INCLUDE_DIR holding CLI/CLI.hpp (tools/gpu/prepare.sh)")
  endif()
  add_library(CLI11::CLI11 INTERFACE IMPORTED)
  target_include_directories(CLI11::CLI11 SYSTEM INTERFACE ${ATTNC_CLI11_INCLUDE_DIR})
endif()

find_package(nlohmann_json 3 QUIET)
if(NOT TARGET nlohmann_json::nlohmann_json)
  find_path(ATTNC_NLOHMANN_INCLUDE_DIR nlohmann/json.hpp PATHS ${_attnc_header_dirs} NO_DEFAULT_PATH)
  if(NOT ATTNC_NLOHMANN_INCLUDE_DIR)
    message(FATAL_ERROR "attnc: nlohmann-json not found: install nlohmann-json3-dev (scripts/install-deps.sh), or "
                        "give ATTNC_DEPS_INCLUDE_DIR holding nlohmann/json.hpp (tools/gpu/prepare.sh)")
  endif()
  add_library(nlohmann_json::nlohmann_json INTERFACE IMPORTED)
  target_include_directories(nlohmann_json::nlohmann_json SYSTEM INTERFACE ${ATTNC_NLOHMANN_INCLUDE_DIR})
endif()
