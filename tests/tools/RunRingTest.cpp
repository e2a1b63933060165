// `mpirun -np P attnc run ... --kernel ring` (tools/attnc/RunRing.cpp), as a process: rank 0 reads
// the whole inputs, the ranks run the ring, rank 0 writes the output, which must equal
// `attnc run --kernel standard` on the same inputs: causal, sliding-window, document and ALiBi mods,
// a mask and a query offset, GQA, lengths that do not divide among the ranks. ctest runs these
// (hidden from a plain `test_tools` run) as tools_run_ring_np2 and _np3, ATTNC_RING_RANKS saying P.

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>

#include <catch2/catch.hpp>

#include "tests/support/AttentionComparison.h"
#include "tests/tools/AttncProcess.h"
#include "tests/tools/RunTestFiles.h"

#include "runtime/core/Npy.h"

namespace fs = std::filesystem;

namespace {

using attnc_test::quoted;
using attnc_test::run_attnc;
using attnc_test::RunInputs;
using Result = attnc_test::AttncResult;

int ring_ranks() {
  const char* ranks = std::getenv("ATTNC_RING_RANKS");
  return ranks != nullptr ? std::atoi(ranks) : 2;
}

// `mpirun -np P attnc ARGS` from the source directory, output captured like run_attnc's.
Result run_mpi(const std::string& args, const fs::path& scratch) {
#ifdef ATTNC_MPIEXEC
  const std::string command = "cd " + quoted(ATTNC_SOURCE_DIR) + " && " + ATTNC_MPIEXEC + " -n " +
                              std::to_string(ring_ranks()) + " " + ATTNC_MPIEXEC_FLAGS + " " +
                              attnc_test::attnc_command(args, scratch, "mpi");
  const int raw = std::system(command.c_str());
  Result r;
  r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  r.out = attnc_test::slurp(scratch / "mpi.out");
  r.err = attnc_test::slurp(scratch / "mpi.err");
  return r;
#else
  FAIL("this build has no MPI, so --kernel ring cannot be tested");
  return {};
#endif
}

}  // namespace

TEST_CASE("mpirun attnc run --kernel ring writes what --kernel standard writes", "[.][ring][cli][run]") {
  attnc_test::TempDirectory scratch("attnc-run-ring");
  CAPTURE(ring_ranks());
  // 2 sequences, 4 query heads over 2 KV heads, 37 positions: uneven shards for 2, 3 and 4 ranks.
  RunInputs in(scratch.path(), 2, 4, 2, 37, 37, 16, 71);
  attnc::Tensor ids = attnc::Tensor::empty(attnc::DType::I32, {2, 37});
  for (int64_t i = 0; i < ids.numel(); ++i) static_cast<int32_t*>(ids.data())[i] = static_cast<int32_t>(i % 37 / 10);
  attnc::write_npy((scratch.path() / "ids.npy").string(), ids);
  attnc_test::write_mask(scratch.path() / "mask.npy", {2, 1, 37, 37}, 13);
  // GENERATE's values are made once, for the first run's scratch directory: IDS and MASK name this
  // run's files.
  auto [mods, label] = GENERATE(table<std::string, std::string>({
      {" --mask-mod causal", "causal"},
      {" --mask-mod sliding_window --arg window=7", "sliding window"},
      {" --mask-mod causal_document --arg ids=IDS", "documents"},
      {" --score-mod alibi --arg slopes=examples/inputs/slopes.npy --mask-mod causal", "ALiBi"},
      {" --mask-mod causal --q-offset 5 --mask MASK", "offset and mask"},
  }));
  for (const auto& [name, file] : {std::pair{"IDS", "ids.npy"}, std::pair{"MASK", "mask.npy"}}) {
    if (size_t at = mods.find(name); at != std::string::npos)
      mods.replace(at, std::strlen(name), quoted(scratch.path() / file));
  }
  CAPTURE(label, mods);
  const fs::path ring = scratch.path() / "ring.npy", ring_lse = scratch.path() / "ring-lse.npy";
  const fs::path standard = scratch.path() / "standard.npy", standard_lse = scratch.path() / "standard-lse.npy";
  const std::string run = "run examples/seed.attn" + mods + in.args;
  Result r = run_mpi(run + " --kernel ring -o " + quoted(ring) + " --lse " + quoted(ring_lse), scratch.path());
  CAPTURE(r.err);
  REQUIRE(r.status == 0);
  Result s =
      run_attnc(run + " --kernel standard -o " + quoted(standard) + " --lse " + quoted(standard_lse), scratch.path());
  REQUIRE(s.status == 0);
  const attnc::Tensor expected = attnc::read_npy(standard.string());
  CHECK(attnc_test::relative_error(attnc::read_npy(ring.string()), expected) < 2e-6);
  CHECK(attnc_test::lse_mismatches(attnc::read_npy(ring_lse.string()), attnc::read_npy(standard_lse.string())) == 0);
}

TEST_CASE("mpirun attnc run --kernel ring reports a failure once and leaves no rank waiting", "[.][ring][cli][run]") {
  attnc_test::TempDirectory scratch("attnc-run-ring");
  const fs::path out = scratch.path() / "out.npy";
  SECTION("an input only rank 0 reads is missing") {
    Result r = run_mpi(
        "run examples/seed.attn --mask-mod causal --kernel ring --q nope.npy --k nope.npy --v nope.npy "
        "-o " +
            quoted(out),
        scratch.path());
    CHECK(r.status == 3);
    CHECK_THAT(r.err, Catch::Contains("nope.npy"));
    CHECK(r.err.find("nope.npy") == r.err.rfind("nope.npy"));  // one rank reports it
    CHECK_FALSE(fs::exists(out));
  }
  SECTION("a tensor argument every rank reads is missing") {
    RunInputs in(scratch.path(), 1, 2, 2, 9, 9, 8, 3);
    Result r = run_mpi("run examples/seed.attn --mask-mod document --arg ids=missing-ids.npy --kernel ring" + in.args +
                           " -o " + quoted(out),
                       scratch.path());
    CHECK(r.status != 0);
    CHECK_THAT(r.err, Catch::Contains("missing-ids.npy"));
    CHECK(r.err.find("missing-ids.npy") == r.err.rfind("missing-ids.npy"));
  }
}
