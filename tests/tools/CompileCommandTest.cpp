// attnc compile, as a process: every architecture of the one list, messages about head dims, the
// output checked first, and cubins through the kernel cache (where NVRTC is available).

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "tests/tools/AttncProcess.h"

#include "runtime/cache/CacheDirectory.h"
#include "runtime/cuda/Architectures.h"
#include "runtime/cuda/Nvrtc.h"

namespace fs = std::filesystem;

namespace {

using attnc_test::quoted;
using attnc_test::run_attnc;
using attnc_test::slurp;
using Result = attnc_test::AttncResult;

struct TempDirectory : attnc_test::TempDirectory {
  TempDirectory() : attnc_test::TempDirectory("attnc-compile-cli") {}
};

const std::string kCompile = "compile examples/mistral.attn --mask-mod sliding_window --dtype bf16 ";

}  // namespace

TEST_CASE("attnc compile takes every architecture of the one list, sm_90a included", "[cli][compile]") {
  TempDirectory scratch;
  for (std::string_view arch : attnc::cuda::kCudaArchitectures) {
    CAPTURE(arch);
    fs::path out = scratch.path() / (std::string(arch) + ".cu");
    Result r = run_attnc(kCompile + "--head-dim 64 --arch " + std::string(arch) + " --emit cuda -o " + quoted(out),
                         scratch.path());
    CAPTURE(r.err);
    CHECK(r.status == 0);
    CHECK(fs::exists(out));
  }
  Result old = run_attnc(kCompile + "--head-dim 64 --arch sm_75 --emit cuda -o x.cu", scratch.path());
  CHECK(old.status == 2);
  CHECK_THAT(old.err, Catch::Contains(attnc::cuda::cuda_architecture_list()));
  Result help = run_attnc("compile --help", scratch.path());
  CHECK_THAT(help.out, Catch::Contains("sm_90a"));
}

TEST_CASE("attnc compile says which head dim the template cannot take", "[cli][compile]") {
  TempDirectory scratch;
  Result r = run_attnc(
      kCompile + "--head-dim 64 --head-dim-v 72 --arch sm_80 --emit cuda -o " + quoted(scratch.path() / "x.cu"),
      scratch.path());
  CHECK(r.status == 3);
  CHECK_THAT(r.err, Catch::Contains("got 64 for q and k and 72 for v"));
}

TEST_CASE("attnc compile checks its output before compiling and rejects cache options it cannot use",
          "[cli][compile]") {
  TempDirectory scratch;
  Result missing =
      run_attnc(kCompile + "--head-dim 64 --arch sm_80 --emit cuda -o " + quoted(scratch.path() / "missing" / "x.cu"),
                scratch.path());
  CHECK(missing.status == 3);
  CHECK_THAT(missing.err, Catch::Contains("does not exist"));
  CHECK(missing.out.empty());
  auto [args, message] = GENERATE(table<std::string, std::string>({
      {"--emit cubin --no-cache --cache-dir /tmp/c", "excludes"},
      {"--emit cuda --cache-dir /tmp/c", "apply to --emit cubin only"},
      {"--emit cubin --arch sm_90", "--arch is given 2 times"},
  }));
  CAPTURE(args);
  Result r = run_attnc(kCompile + "--head-dim 64 --arch sm_80 -o " + quoted(scratch.path() / "x") + " " + args,
                       scratch.path());
  CHECK(r.status == 2);
  CHECK_THAT(r.err, Catch::Contains(message));
}

TEST_CASE("attnc compile --emit cubin reads and fills the kernel cache, under the runtime's key",
          "[cli][compile][nvrtc]") {
  TempDirectory scratch;
  fs::path cache = scratch.path() / "cache";
  fs::path first = scratch.path() / "first.cubin", second = scratch.path() / "second.cubin";
  std::string args = kCompile + "--head-dim 64 --arch sm_80 --emit cubin --cache-dir " + quoted(cache) + " -o ";
  Result compiled = run_attnc(args + quoted(first), scratch.path());
  if (compiled.status == 3 && compiled.err.find("NVRTC cannot compile it") != std::string::npos) {
    WARN("NVRTC is not available here; the cubin path of attnc compile was not tested");
    return;
  }
  CAPTURE(compiled.out, compiled.err);
  REQUIRE(compiled.status == 0);
  CHECK_THAT(compiled.out, Catch::Contains("compiled and stored in the kernel cache " + cache.string()));
  REQUIRE(attnc::CacheDirectory(cache).entries().size() == 1);

  Result hit = run_attnc(args + quoted(second), scratch.path());
  CAPTURE(hit.err);
  REQUIRE(hit.status == 0);
  CHECK_THAT(hit.out, Catch::Contains("found in the kernel cache " + cache.string() + ", a cache hit"));
  CHECK(slurp(first) == slurp(second));
  CHECK(attnc::CacheDirectory(cache).entries().size() == 1);

  // The runtime's key: a warmup of the same kernel finds it cached.
  fs::path manifest = scratch.path() / "m.json";
  std::ofstream(manifest) << R"({"version": 1, "kernels": [{"file": ")"
                          << attnc::test::source_dir() + "/examples/mistral.attn"
                          << R"(", "mask_mod": "sliding_window", "dtypes": ["bf16"], "head_dims": [64],
                                 "archs": ["sm_80"]}]})";
  Result warm = run_attnc("warmup " + quoted(manifest) + " --cache-dir " + quoted(cache), scratch.path());
  CAPTURE(warm.out, warm.err);
  CHECK_THAT(warm.out, Catch::Contains("1 kernel: 0 compiled, 1 already cached, 0 failed"));

  Result bypass = run_attnc(
      kCompile + "--head-dim 64 --arch sm_80 --emit cubin --no-cache -o " + quoted(scratch.path() / "third.cubin"),
      scratch.path());
  CHECK(bypass.status == 0);
  CHECK_THAT(bypass.out, Catch::Contains("not cached: --no-cache"));
}

TEST_CASE("attnc compile picks the family the runtime runs, or the one asked for", "[cli][compile]") {
  TempDirectory scratch;
  struct Row {
    std::string args, family, entry;
  };
  const std::vector<Row> rows = {
      {"--head-dim 128 --arch sm_90a", "flash_sm90 family (m128_n128_s2)", "attnc_flash_sm90_forward"},
      {"--head-dim 64 --arch sm_90a", "flash_sm90 family (m128_n128_s3)", "attnc_flash_sm90_forward"},
      // Head dims the Hopper template does not take fall back to the flash family, as at run time.
      {"--head-dim 96 --arch sm_90a", "flash family", "attnc_flash_forward"},
      {"--head-dim 128 --arch sm_90", "flash family", "attnc_flash_forward"},
      {"--head-dim 128 --arch sm_90a --family flash", "flash family", "attnc_flash_forward"},
      {"--head-dim 128 --arch sm_80 --family decode --rows 4", "decode family (m1_n4", "attnc_decode_merge"},
  };
  for (const Row& row : rows) {
    CAPTURE(row.args);
    fs::path out = scratch.path() / "k.cu";
    Result r = run_attnc(kCompile + row.args + " --emit cuda -o " + quoted(out), scratch.path());
    CAPTURE(r.out, r.err);
    REQUIRE(r.status == 0);
    CHECK_THAT(r.out, Catch::Contains(row.family));
    const std::string text = slurp(out);
    CHECK_THAT(text, Catch::Contains(row.entry));
    // The user's names appear in comments of --emit cuda only.
    CHECK_THAT(text, Catch::Contains("sliding_window"));
  }
  CHECK_THAT(slurp(scratch.path() / "k.cu"), Catch::Contains("attnc_decode_split"));

  auto [args, message] = GENERATE(table<std::string, std::string>({
      {"--arch sm_80 --family flash_sm90", "--family flash_sm90 builds for --arch sm_90a only, not sm_80"},
      {"--arch sm_80 --family hopper", "--family takes auto, flash, flash_sm90 or decode"},
      {"--arch sm_80 --rows 4", "--rows applies to --family decode only"},
      {"--arch sm_80 --family decode --rows 0", "--rows takes a positive number of rows"},
  }));
  CAPTURE(args);
  Result bad = run_attnc(kCompile + "--head-dim 128 --emit cuda -o " + quoted(scratch.path() / "x.cu") + " " + args,
                         scratch.path());
  CHECK(bad.status == 2);
  CHECK_THAT(bad.err, Catch::Contains(message));
}

TEST_CASE("attnc compile --arch sm_90a emits Hopper PTX with wgmma and TMA bulk tensor copies",
          "[cli][compile][nvrtc]") {
  if (!attnc::cuda::Nvrtc::available()) {
    WARN("NVRTC is not available here; the Hopper PTX was not checked: " + attnc::cuda::Nvrtc::unavailable_reason());
    return;
  }
  TempDirectory scratch;
  fs::path ptx = scratch.path() / "hopper.ptx";
  Result r = run_attnc(kCompile + "--head-dim 128 --arch sm_90a --emit ptx -o " + quoted(ptx), scratch.path());
  CAPTURE(r.out, r.err);
  REQUIRE(r.status == 0);
  CHECK_THAT(r.out, Catch::Contains("ptx for sm_90a, flash_sm90 family"));
  const std::string text = slurp(ptx);
  CHECK_THAT(text, Catch::Contains(".target sm_90a"));
  CHECK_THAT(text, Catch::Contains("wgmma.mma_async"));
  CHECK_THAT(text, Catch::Contains("cp.async.bulk.tensor"));
  CHECK_THAT(text, Catch::Contains(".entry attnc_flash_sm90_forward"));
}

TEST_CASE("attnc compile --family decode --emit cubin fills the cache under the key warmup uses",
          "[cli][compile][nvrtc]") {
  TempDirectory scratch;
  fs::path cache = scratch.path() / "cache";
  Result compiled =
      run_attnc(kCompile + "--head-dim 64 --arch sm_80 --family decode --rows 8 --emit cubin --cache-dir " +
                    quoted(cache) + " -o " + quoted(scratch.path() / "decode.cubin"),
                scratch.path());
  if (compiled.status == 3 && compiled.err.find("NVRTC cannot compile it") != std::string::npos) {
    WARN("NVRTC is not available here; the decode cubin path of attnc compile was not tested");
    return;
  }
  CAPTURE(compiled.out, compiled.err);
  REQUIRE(compiled.status == 0);
  CHECK_THAT(compiled.out, Catch::Contains("decode family"));
  CHECK_THAT(compiled.out, Catch::Contains("compiled and stored in the kernel cache"));
  fs::path manifest = scratch.path() / "m.json";
  std::ofstream(manifest) << R"({"version": 1, "kernels": [{"file": ")"
                          << std::string(ATTNC_SOURCE_DIR) + "/examples/mistral.attn"
                          << R"(", "mask_mod": "sliding_window", "dtypes": ["bf16"], "head_dims": [64],
                                 "archs": ["sm_80"], "families": ["decode"], "decode_rows": [1]}]})";
  Result warm = run_attnc("warmup " + quoted(manifest) + " --cache-dir " + quoted(cache), scratch.path());
  CAPTURE(warm.out, warm.err);
  // 1 and 8 rows per KV head share a layout, hence a kernel.
  CHECK_THAT(warm.out, Catch::Contains("1 kernel: 0 compiled, 1 already cached, 0 failed"));
}
