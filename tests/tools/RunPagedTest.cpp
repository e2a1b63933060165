// attnc run --paged (tools/attnc/RunPaged.cpp), as a process: the same inputs through a paged KV
// cache with a randomly permuted block table give the contiguous path's output, for every mod of
// every example file, every page size and KV lengths that end mid-page; the seed and the table
// are printed; on a machine without a GPU, --device cuda says so.

#include <filesystem>
#include <regex>
#include <string>

#include <catch2/catch.hpp>

#include "tests/support/AttentionComparison.h"
#include "tests/tools/AttncProcess.h"
#include "tests/tools/RunTestFiles.h"

#include "compiler/Frontend.h"
#include "runtime/core/Npy.h"
#include "runtime/cuda/CudaDriver.h"

namespace fs = std::filesystem;

namespace {

using attnc_test::quoted;
using attnc_test::run_attnc;
using attnc_test::RunInputs;
using attnc_test::slurp;
using Result = attnc_test::AttncResult;

const std::string kInputs = " --q examples/inputs/q.npy --k examples/inputs/k.npy --v examples/inputs/v.npy";
const int kPageSizes[] = {16, 32, 64, 128};

// The pages the log lists for sequence `s`.
std::string pages_of(const std::string& log, int s) {
  std::smatch m;
  const std::string text = log;
  REQUIRE(std::regex_search(text, m, std::regex("sequence " + std::to_string(s) + ": pages ([0-9 .]+)")));
  return m[1];
}

}  // namespace

TEST_CASE("attnc run --paged equals the contiguous path for every mod of every example file", "[cli][run][paged]") {
  attnc_test::TempDirectory scratch("attnc-run-paged");
  const fs::path paged = scratch.path() / "paged.npy", reference = scratch.path() / "reference.npy";
  const fs::path paged_lse = scratch.path() / "paged-lse.npy", reference_lse = scratch.path() / "reference-lse.npy";
  int files = 0, mods = 0;
  for (const auto& entry : fs::directory_iterator(fs::path(ATTNC_SOURCE_DIR) / "examples")) {
    if (entry.path().extension() != ".attn") continue;
    ++files;
    const attnc::ir::Module module = attnc::ir::load_module_file(entry.path().string());
    for (const attnc::ir::ModDef& def : module.defs) {
      // The example inputs: 1 sequence, 4 query heads over 2 KV heads, 100 positions (mid-page for
      // every page size), so each page size in turn.
      const int page_size = kPageSizes[mods++ % 4];
      const std::string run = "run " + quoted(entry.path()) +
                              (def.kind == attnc::ir::ModKind::Mask ? " --mask-mod " : " --score-mod ") + def.name +
                              attnc_test::bind_every_parameter(def, scratch.path(), 1, 4, 100) + kInputs;
      CAPTURE(entry.path().filename().string(), def.name, page_size);
      Result r = run_attnc(
          run + " --paged " + std::to_string(page_size) + " -o " + quoted(paged) + " --lse " + quoted(paged_lse),
          scratch.path());
      CAPTURE(r.err);
      REQUIRE(r.status == 0);
      CHECK_THAT(r.err, Catch::Contains("in " + std::to_string(page_size) + "-token pages") &&
                            Catch::Contains("seed 1 (--seed)"));
      Result ref = run_attnc(run + " --kernel standard -o " + quoted(reference) + " --lse " + quoted(reference_lse),
                             scratch.path());
      REQUIRE(ref.status == 0);
      const attnc::Tensor expected = attnc::read_npy(reference.string());
      CHECK(attnc_test::relative_error_where_defined(attnc::read_npy(paged.string()), expected) < 2e-6);
      CHECK(attnc_test::nan_mismatches(attnc::read_npy(paged.string()), expected) == 0);
      CHECK(attnc_test::lse_mismatches(attnc::read_npy(paged_lse.string()), attnc::read_npy(reference_lse.string())) ==
            0);
    }
  }
  CHECK(files >= 5);
  CHECK(mods >= 20);
}

TEST_CASE("attnc run --paged is bit-identical to the contiguous decode kernel, at any page size and offset",
          "[cli][run][paged]") {
  attnc_test::TempDirectory scratch("attnc-run-paged");
  // 3 sequences of 203 keys (mid-page for every size), 4 query heads over 2 KV heads, 5 query rows.
  RunInputs in(scratch.path(), 3, 4, 2, 5, 203, 32, 51);
  attnc_test::write_mask(scratch.path() / "mask.npy", {3, 1, 1, 203}, 9);
  const std::string run =
      "run examples/seed.attn --mask-mod sliding_window --arg window=150 --score-mod alibi "
      "--arg slopes=examples/inputs/slopes.npy" +
      in.args;
  const fs::path contiguous = scratch.path() / "contiguous.npy", paged = scratch.path() / "paged.npy";
  // GENERATE's values are made once, for the first run's scratch directory: MASK names this one's.
  auto [flags, page_size] = GENERATE(table<std::string, int>({
      {"", 16},
      {"", 32},
      {"", 64},
      {"", 128},
      {" --q-offset 198", 16},
      {" --q-offset 60 --mask MASK", 32},
  }));
  if (size_t at = flags.find("MASK"); at != std::string::npos)
    flags.replace(at, 4, quoted(scratch.path() / "mask.npy"));
  CAPTURE(flags, page_size);
  Result c = run_attnc(run + flags + " --kernel decode -o " + quoted(contiguous), scratch.path());
  CAPTURE(c.err);
  REQUIRE(c.status == 0);
  Result p = run_attnc(run + flags + " --paged " + std::to_string(page_size) + " -o " + quoted(paged), scratch.path());
  CAPTURE(p.err);
  REQUIRE(p.status == 0);
  CHECK(slurp(paged) == slurp(contiguous));
  // The table really is scattered: sequence 0 does not hold pages 0, 1, 2, ... in order.
  const int pages = (203 + page_size - 1) / page_size;
  std::string identity;
  for (int i = 0; i < pages && i < 12; ++i) identity += (i ? " " : "") + std::to_string(i);
  CHECK(pages_of(p.err, 0).rfind(identity, 0) != 0);
}

TEST_CASE("attnc run --seed draws another block table and the same output", "[cli][run][paged]") {
  attnc_test::TempDirectory scratch("attnc-run-paged");
  const fs::path a = scratch.path() / "a.npy", b = scratch.path() / "b.npy";
  const std::string run =
      "run examples/mistral.attn --mask-mod sliding_window --arg window=16" + kInputs + " --paged 16";
  Result first = run_attnc(run + " -o " + quoted(a), scratch.path());
  Result second = run_attnc(run + " --seed 12345 -o " + quoted(b), scratch.path());
  REQUIRE(first.status == 0);
  REQUIRE(second.status == 0);
  CHECK_THAT(second.err, Catch::Contains("seed 12345"));
  CHECK(pages_of(first.err, 0) != pages_of(second.err, 0));
  CHECK(slurp(a) == slurp(b));
  // The same seed, the same table.
  Result again = run_attnc(run + " --seed 12345 -o " + quoted(b), scratch.path());
  CHECK(pages_of(again.err, 0) == pages_of(second.err, 0));
}

TEST_CASE("attnc run --paged --device cuda needs the CUDA driver and says so", "[cli][run][paged][cuda]") {
  attnc_test::TempDirectory scratch("attnc-run-paged");
  RunInputs in(scratch.path(), 2, 4, 2, 3, 77, 64, 61, attnc::DType::F16);
  const fs::path out = scratch.path() / "out.npy", reference = scratch.path() / "reference.npy";
  const std::string run = "run examples/seed.attn --mask-mod causal" + in.args + " --q-offset 74";
  Result gpu = run_attnc(run + " --paged 32 --device cuda -o " + quoted(out), scratch.path());
  if (!attnc::cuda::CudaDriver::available()) {
    CHECK(gpu.status == 3);
    CHECK_THAT(gpu.err, Catch::Contains("no CUDA driver (libcuda.so.1) on this machine"));
    return;
  }
  WARN("this machine has a CUDA driver; checked the GPU's paged run instead of its absence");
  CAPTURE(gpu.err);
  REQUIRE(gpu.status == 0);
  REQUIRE(run_attnc(run + " --kernel standard -o " + quoted(reference), scratch.path()).status == 0);
  CHECK(attnc_test::relative_error(attnc::read_npy(out.string()), attnc::read_npy(reference.string())) < 1e-2);
}
