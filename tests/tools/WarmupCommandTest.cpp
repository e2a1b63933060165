// attnc warmup, run as a process: manifests, progress and summary, exit codes, several processes
// warming one cache at once, and (where NVRTC is available) the real compile path. Most cases
// use the stand-in compiler selected by ATTNC_WARMUP_FAKE_COMPILER=LOG, which appends one line
// per compile to LOG, so the tests can count compiles.

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <string>

#include <catch2/catch.hpp>

#include "tests/tools/AttncProcess.h"

#include "runtime/cache/CacheDirectory.h"

namespace fs = std::filesystem;

namespace {

using attnc_test::attnc_command;
using attnc_test::quoted;
using attnc_test::run_attnc;
using attnc_test::slurp;
using Result = attnc_test::AttncResult;

// A scratch directory for one test.
struct TempDirectory : attnc_test::TempDirectory {
  TempDirectory() : attnc_test::TempDirectory("attnc-warmup-cli") {}
};

fs::path write_file(const fs::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

// Hash -> number of compiles in the fake compiler's log.
std::map<std::string, int> compiles_in(const fs::path& log) {
  std::map<std::string, int> out;
  std::istringstream in(slurp(log));
  for (std::string line; std::getline(in, line);) ++out[line.substr(0, line.find(' '))];
  return out;
}

size_t count_of(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

}  // namespace

TEST_CASE("attnc warmup compiles a manifest's kernels once and finds them cached the second time", "[cli][warmup]") {
  TempDirectory scratch;
  write_file(scratch.path() / "window.attn", "mask_mod window(w: int) = kv_idx <= q_idx && q_idx - kv_idx < w;\n");
  fs::path manifest = write_file(scratch.path() / "manifest.json", R"({
    "version": 1,
    "kernels": [
      {"mask_mod": "causal", "dtypes": ["bf16", "fp16"], "head_dims": [64, 128], "archs": ["sm_80"]},
      {"file": "window.attn", "mask_mod": "window", "dtypes": ["bf16"], "head_dims": [[128, 64]],
       "archs": ["sm_90a"], "check_bounds": true}
    ]
  })");
  fs::path log = scratch.path() / "compiles.log";
  fs::path cache = scratch.path() / "cache";
  std::string env = "ATTNC_WARMUP_FAKE_COMPILER=" + quoted(log);
  std::string args = "warmup " + quoted(manifest) + " --jobs 3 --cache-dir " + quoted(cache);

  Result first = run_attnc(args, scratch.path(), env);
  CAPTURE(first.out, first.err);
  CHECK(first.status == 0);
  CHECK_THAT(first.out, Catch::Contains("warmup: 5 kernels: 5 compiled, 0 already cached, 0 failed"));
  CHECK_THAT(first.out, Catch::Contains(cache.string()));
  // Not a terminal: one progress line per kernel.
  CHECK(count_of(first.err, "] compiled ") == 5);
  CHECK_THAT(first.err, Catch::Contains("[5/5]"));
  CHECK_THAT(first.err, Catch::Contains("<built-in> mask=causal fp16 d128 sm_80 flash"));
  CHECK_THAT(first.err, Catch::Contains("window.attn mask=window bf16 d128/64 sm_90a flash_sm90 check-bounds"));
  std::map<std::string, int> compiles = compiles_in(log);
  CHECK(compiles.size() == 5);
  for (const auto& [hash, count] : compiles) CHECK(count == 1);
  CHECK(attnc::CacheDirectory(cache).entries().size() == 5);

  Result second = run_attnc(args, scratch.path(), env);
  CHECK(second.status == 0);
  CHECK_THAT(second.out, Catch::Contains("5 kernels: 0 compiled, 5 already cached, 0 failed"));
  CHECK(count_of(second.err, "] cached ") == 5);
  CHECK(compiles_in(log) == compiles);  // nothing compiled again
}

TEST_CASE("attnc warmup reports each failed kernel with its reason and exits non-zero", "[cli][warmup]") {
  TempDirectory scratch;
  fs::path log = scratch.path() / "compiles.log";
  std::string env = "ATTNC_WARMUP_FAKE_COMPILER=" + quoted(log);
  std::string cache = " --cache-dir " + quoted(scratch.path() / "cache");

  SECTION("unknown mods, unsupported head dims and a mod of the wrong kind") {
    fs::path manifest = write_file(scratch.path() / "m.json", R"({"version": 1, "kernels": [
      {"mask_mod": "causal", "dtypes": ["bf16"], "head_dims": [64, 72], "archs": ["sm_80"]},
      {"mask_mod": "casual", "dtypes": ["bf16"], "head_dims": [64], "archs": ["sm_80"]},
      {"score_mod": "causal", "dtypes": ["bf16"], "head_dims": [64], "archs": ["sm_80"]}
    ]})");
    Result r = run_attnc("warmup " + quoted(manifest) + " -j 2" + cache, scratch.path(), env);
    CAPTURE(r.out, r.err);
    CHECK(r.status == 3);
    CHECK_THAT(r.out, Catch::Contains("4 kernels: 1 compiled, 0 already cached, 3 failed"));
    CHECK_THAT(r.err, Catch::Contains("failed:\n"));
    CHECK_THAT(r.err, Catch::Contains("<built-in> mask=causal bf16 d72 sm_80 flash:\n"));
    CHECK_THAT(r.err, Catch::Contains("head dims that are multiples of 16"));
    CHECK_THAT(r.err, Catch::Contains("no mod named 'casual'"));
    CHECK_THAT(r.err, Catch::Contains("'causal' is a mask_mod, not a score_mod"));
    CHECK(compiles_in(log).size() == 1);
  }
  SECTION("a mod file with errors: exit 1 with its diagnostics") {
    write_file(scratch.path() / "bad.attn", "mask_mod m = q_idx >= kv;\n");
    fs::path manifest = write_file(scratch.path() / "m.json", R"({"version": 1, "kernels": [
      {"file": "bad.attn", "mask_mod": "m", "dtypes": ["bf16"], "head_dims": [64], "archs": ["sm_80", "sm_90"]}
    ]})");
    Result r = run_attnc("warmup " + quoted(manifest) + cache, scratch.path(), env);
    CHECK(r.status == 1);
    CHECK_THAT(r.out, Catch::Contains("2 kernels: 0 compiled, 0 already cached, 2 failed"));
    CHECK_THAT(r.err, Catch::Contains("bad.attn:1:23: error: unknown name 'kv'"));
    CHECK_FALSE(fs::exists(log));
  }
  SECTION("a missing mod file") {
    fs::path manifest = write_file(scratch.path() / "m.json", R"({"version": 1, "kernels": [
      {"file": "missing.attn", "mask_mod": "m", "dtypes": ["bf16"], "head_dims": [64], "archs": ["sm_80"]}
    ]})");
    Result r = run_attnc("warmup " + quoted(manifest) + cache, scratch.path(), env);
    CHECK(r.status == 3);
    CHECK_THAT(r.err, Catch::Contains("missing.attn"));
  }
}

TEST_CASE("attnc warmup rejects malformed manifests, pointing at the place", "[cli][warmup]") {
  TempDirectory scratch;
  auto [what, text, message] = GENERATE(table<std::string, std::string, std::string>({
      {"a syntax error", "{\"version\": 1,\n \"kernels\": [}", "m.json:2:14: unexpected character '}'"},
      {"trailing text", "{\"version\": 1, \"kernels\": []} x", "m.json:1:31: unexpected text after"},
      {"no version", "{\"kernels\": []}", "missing \"version\": 1"},
      {"another version", "{\"version\": 2, \"kernels\": []}", "m.json:1:13: this attnc reads manifest version 1"},
      {"an unknown top-level key", "{\"version\": 1, \"kernels\": [], \"kernel\": 1}", "unknown key \"kernel\""},
      {"an unknown entry key", "{\"version\": 1, \"kernels\": [{\"mask_mod\": \"causal\", \"dtype\": [\"bf16\"]}]}",
       "unknown key \"dtype\""},
      {"no mods",
       "{\"version\": 1, \"kernels\": [{\"dtypes\": [\"bf16\"], \"head_dims\": [64], \"archs\": [\"sm_80\"]}]}",
       "needs a \"score_mod\", a \"mask_mod\" or both"},
      {"an fp32 kernel",
       "{\"version\": 1, \"kernels\": [{\"mask_mod\": \"causal\", \"dtypes\": [\"fp32\"], \"head_dims\": [64], "
       "\"archs\": [\"sm_80\"]}]}",
       "dtype \"fp32\": the kernels take \"bf16\" or \"fp16\""},
      {"an old architecture",
       "{\"version\": 1, \"kernels\": [{\"mask_mod\": \"causal\", \"dtypes\": [\"bf16\"], \"head_dims\": [64], "
       "\"archs\": [\"sm_75\"]}]}",
       "unknown GPU architecture 'sm_75'"},
      {"a fractional head dim",
       "{\"version\": 1, \"kernels\": [{\"mask_mod\": \"causal\", \"dtypes\": [\"bf16\"], \"head_dims\": [64.5], "
       "\"archs\": [\"sm_80\"]}]}",
       "must be an integer"},
      {"an empty list",
       "{\"version\": 1, \"kernels\": [{\"mask_mod\": \"causal\", \"dtypes\": [], \"head_dims\": [64], "
       "\"archs\": [\"sm_80\"]}]}",
       "\"dtypes\" is empty"},
      {"a duplicate key", "{\"version\": 1, \"version\": 1, \"kernels\": []}", "duplicate key \"version\""},
      {"an unterminated string", "{\"version\": 1, \"kernels\": [\"abc]}", "unterminated string"},
      // Values deep in the document, after numbers (which nlohmann reads one character past).
      {"a dtype on the third line",
       "{\"version\": 1,\n \"kernels\": [{\"mask_mod\": \"causal\",\n   \"dtypes\": [\"bf16\", \"fp32\"], "
       "\"head_dims\": [64], \"archs\": [\"sm_80\"]}]}",
       "m.json:3:23: dtype \"fp32\""},
      {"a head dim after other numbers",
       "{\"version\": 1, \"kernels\": [{\"mask_mod\": \"causal\", \"dtypes\": [\"bf16\"],\n  \"head_dims\": [64, "
       "128,64.5], \"archs\": [\"sm_80\"]}]}",
       "m.json:2:25: a head dim (D, or [D, D_v]) must be an integer"},
      {"an unknown key, pointed at",
       "{\"version\": 1, \"kernels\": [{\"mask_mod\": \"causal\",\n  \"dtype\": [\"bf16\"]}]}",
       "m.json:2:3: unknown key \"dtype\""},
      {"a number beyond double's range", "{\"version\": 1e999, \"kernels\": []}", "m.json:1:"},
      {"the Hopper family off sm_90a",
       "{\"version\": 1, \"kernels\": [{\"mask_mod\": \"causal\", \"dtypes\": [\"bf16\"], \"head_dims\": [64],\n"
       " \"archs\": [\"sm_80\"], \"families\": [\"flash_sm90\"]}]}",
       "m.json:2:35: the flash_sm90 family builds for sm_90a only, not sm_80 (\"archs\" lists sm_80)"},
      {"an unknown family",
       "{\"version\": 1, \"kernels\": [{\"mask_mod\": \"causal\", \"dtypes\": [\"bf16\"], \"head_dims\": [64], "
       "\"archs\": [\"sm_80\"], \"families\": [\"hopper\"]}]}",
       "family \"hopper\": expected auto, flash, flash_sm90 or decode"},
      {"decode rows without the decode family",
       "{\"version\": 1, \"kernels\": [{\"mask_mod\": \"causal\", \"dtypes\": [\"bf16\"], \"head_dims\": [64], "
       "\"archs\": [\"sm_80\"], \"decode_rows\": [4]}]}",
       "\"decode_rows\" needs \"decode\" in \"families\""},
      {"no decode rows",
       "{\"version\": 1, \"kernels\": [{\"mask_mod\": \"causal\", \"dtypes\": [\"bf16\"], \"head_dims\": [64], "
       "\"archs\": [\"sm_80\"], \"families\": [\"decode\"], \"decode_rows\": [0]}]}",
       "query rows per KV head must be from 1 to 1048576"},
  }));
  CAPTURE(what);
  fs::path manifest = write_file(scratch.path() / "m.json", text);
  Result r = run_attnc("warmup " + quoted(manifest) + " --cache-dir " + quoted(scratch.path() / "cache"),
                       scratch.path(), "ATTNC_WARMUP_FAKE_COMPILER=" + quoted(scratch.path() / "log"));
  CAPTURE(r.err);
  CHECK(r.status == 3);
  CHECK_THAT(r.err, Catch::Contains(message));
}

TEST_CASE("attnc warmup rejects wrong command lines with exit status 2", "[cli][warmup]") {
  TempDirectory scratch;
  auto [args, message] = GENERATE(table<std::string, std::string>({
      {"warmup", "no manifest given"},
      {"warmup a.json b.json", "more than one manifest"},
      {"warmup a.json --jobs 0", "--jobs takes a number"},
      {"warmup a.json --jobs many", "--jobs takes a number"},
      {"warmup a.json --frobnicate", "unknown option '--frobnicate'"},
  }));
  CAPTURE(args);
  Result r = run_attnc(args, scratch.path());
  CHECK(r.status == 2);
  CHECK_THAT(r.err, Catch::Contains(message));
  Result help = run_attnc("warmup --help", scratch.path());
  CHECK(help.status == 0);
  CHECK_THAT(help.out, Catch::Contains("Usage: attnc warmup MANIFEST.json"));
}

TEST_CASE("four attnc warmup processes on one cache compile each of 20 kernels once and all succeed",
          "[cli][warmup][processes]") {
  TempDirectory scratch;
  // 2 dtypes x 5 head dims x 2 architectures = 20 kernels.
  fs::path manifest = write_file(scratch.path() / "m.json", R"({"version": 1, "kernels": [
    {"mask_mod": "causal", "dtypes": ["bf16", "fp16"], "head_dims": [32, 64, 96, 128, 256],
     "archs": ["sm_80", "sm_90"]}
  ]})");
  fs::path log = scratch.path() / "compiles.log";
  std::string env = "ATTNC_WARMUP_FAKE_COMPILER=" + quoted(log);
  std::string args = "warmup " + quoted(manifest) + " --jobs 2 --cache-dir " + quoted(scratch.path() / "cache");
  std::string script;
  for (int p = 0; p < 4; ++p) {
    script += "( " + attnc_command(args, scratch.path(), "p" + std::to_string(p), env) + "; echo $? >" +
              quoted(scratch.path() / ("p" + std::to_string(p) + ".status")) + " ) & ";
  }
  script += "wait";
  REQUIRE(std::system(script.c_str()) == 0);

  size_t compiled = 0, cached = 0;
  for (int p = 0; p < 4; ++p) {
    std::string name = "p" + std::to_string(p);
    std::string out = slurp(scratch.path() / (name + ".out"));
    CAPTURE(p, out, slurp(scratch.path() / (name + ".err")));
    CHECK(slurp(scratch.path() / (name + ".status")) == "0\n");
    std::smatch m;
    REQUIRE(std::regex_search(out, m, std::regex(R"(20 kernels: (\d+) compiled, (\d+) already cached, 0 failed)")));
    compiled += std::stoul(m[1]);
    cached += std::stoul(m[2]);
  }
  CHECK(compiled == 20);  // between them, each kernel compiled by exactly one process
  CHECK(cached == 60);
  std::map<std::string, int> compiles = compiles_in(log);
  CHECK(compiles.size() == 20);
  for (const auto& [hash, count] : compiles) {
    CAPTURE(hash);
    CHECK(count == 1);
  }
  for (const auto& v : attnc::CacheDirectory(scratch.path() / "cache").verify()) CHECK(v.problem.empty());
}

TEST_CASE("attnc warmup compiles with NVRTC and a second warmup finds everything cached", "[cli][warmup][nvrtc]") {
  TempDirectory scratch;
  fs::path manifest = write_file(scratch.path() / "m.json", R"({"version": 1, "kernels": [
    {"mask_mod": "causal", "dtypes": ["bf16"], "head_dims": [64], "archs": ["sm_80"]}
  ]})");
  std::string args = "warmup " + quoted(manifest) + " --cache-dir " + quoted(scratch.path() / "cache");
  Result first = run_attnc(args, scratch.path());
  if (first.status == 3 && first.err.find("NVRTC, which cannot be used here") != std::string::npos) {
    WARN("NVRTC is not available here; the real compile path of attnc warmup was not tested");
    return;
  }
  CAPTURE(first.out, first.err);
  CHECK(first.status == 0);
  CHECK_THAT(first.out, Catch::Contains("1 kernel: 1 compiled, 0 already cached, 0 failed"));
  Result second = run_attnc(args, scratch.path());
  CHECK(second.status == 0);
  CHECK_THAT(second.out, Catch::Contains("1 kernel: 0 compiled, 1 already cached, 0 failed"));
  Result list = run_attnc("cache list --dir " + quoted(scratch.path() / "cache"), scratch.path());
  CHECK_THAT(list.out, Catch::Contains("dtype=bf16 head_dim=64 head_dim_v=64"));
  CHECK_THAT(list.out, Catch::Contains(" arch=sm_80 nvrtc="));
  CHECK_THAT(list.out, Catch::Contains("--gpu-architecture=sm_80"));
}

TEST_CASE("the example manifest examples/warmup.json is valid and names 13 kernels", "[cli][warmup][examples]") {
  TempDirectory scratch;
  Result r = run_attnc("warmup examples/warmup.json --cache-dir " + quoted(scratch.path() / "cache"), scratch.path(),
                       "ATTNC_WARMUP_FAKE_COMPILER=" + quoted(scratch.path() / "log"));
  CAPTURE(r.err);
  CHECK(r.status == 0);
  CHECK_THAT(r.out, Catch::Contains("warmup: 13 kernels: 13 compiled, 0 already cached, 0 failed"));
}

TEST_CASE("attnc warmup builds a configuration listed twice once, and says how many threads it used", "[cli][warmup]") {
  TempDirectory scratch;
  fs::path manifest = write_file(scratch.path() / "m.json", R"({"version": 1, "kernels": [
    {"mask_mod": "causal", "dtypes": ["bf16", "bf16"], "head_dims": [64, 64], "archs": ["sm_80"]},
    {"mask_mod": "causal", "dtypes": ["bf16"], "head_dims": [64], "archs": ["sm_80"]}
  ]})");
  fs::path log = scratch.path() / "compiles.log";
  Result r = run_attnc("warmup " + quoted(manifest) + " --jobs 8 --cache-dir " + quoted(scratch.path() / "cache"),
                       scratch.path(), "ATTNC_WARMUP_FAKE_COMPILER=" + quoted(log));
  CAPTURE(r.out, r.err);
  CHECK(r.status == 0);
  CHECK_THAT(r.out, Catch::Contains("warmup: 1 kernel (4 repeated configurations skipped): 1 compiled, 0 already "
                                    "cached, 0 failed"));
  CHECK_THAT(r.out, Catch::Contains(" s, 1 thread) in "));
  CHECK(compiles_in(log).size() == 1);
  CHECK(count_of(r.err, "[1/1]") == 1);
}

TEST_CASE("attnc warmup refuses a cache directory others may write unless told it is shared", "[cli][warmup][trust]") {
  TempDirectory scratch;
  fs::path cache = scratch.path() / "cache";
  fs::create_directories(cache);
  fs::permissions(cache, fs::perms::all);
  std::string args = "warmup examples/warmup.json --cache-dir " + quoted(cache);
  std::string env = "ATTNC_WARMUP_FAKE_COMPILER=" + quoted(scratch.path() / "log");
  Result refused = run_attnc(args, scratch.path(), env + " ATTNC_CACHE_TRUST_SHARED=");
  CHECK(refused.status == 3);
  CHECK_THAT(refused.err, Catch::Contains("writable by group and others") && Catch::Contains("--trust-shared-cache"));
  CHECK_FALSE(fs::exists(scratch.path() / "log"));  // nothing compiled
  Result trusted = run_attnc(args + " --trust-shared-cache", scratch.path(), env);
  CHECK(trusted.status == 0);
}

TEST_CASE("attnc warmup builds each family a manifest names, the decode family per layout", "[cli][warmup]") {
  TempDirectory scratch;
  // Per architecture: auto (flash_sm90 on sm_90a, flash on sm_80), flash (on sm_80 the same kernel as
  // auto), and decode for 1, 4 and 32 rows per KV head (1 and 4 share a layout).
  fs::path manifest = write_file(scratch.path() / "m.json", R"({"version": 1, "kernels": [
    {"mask_mod": "causal", "dtypes": ["bf16"], "head_dims": [128], "archs": ["sm_80", "sm_90a"],
     "families": ["auto", "flash", "decode"], "decode_rows": [1, 4, 32]}
  ]})");
  fs::path log = scratch.path() / "compiles.log";
  Result r = run_attnc("warmup " + quoted(manifest) + " --cache-dir " + quoted(scratch.path() / "cache"),
                       scratch.path(), "ATTNC_WARMUP_FAKE_COMPILER=" + quoted(log));
  CAPTURE(r.out, r.err);
  CHECK(r.status == 0);
  CHECK_THAT(r.out, Catch::Contains("warmup: 7 kernels (3 repeated configurations skipped): 7 compiled"));
  CHECK(compiles_in(log).size() == 7);
  CHECK_THAT(r.err, Catch::Contains("<built-in> mask=causal bf16 d128 sm_90a flash_sm90 ("));
  CHECK_THAT(r.err, Catch::Contains("<built-in> mask=causal bf16 d128 sm_90a flash ("));
  CHECK_THAT(r.err, Catch::Contains("<built-in> mask=causal bf16 d128 sm_80 decode rows=32 ("));
  CHECK(count_of(r.err, " flash_sm90 (") == 1);
  CHECK(count_of(r.err, " decode rows=") == 4);
}
