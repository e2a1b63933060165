// attnc run's command line (tools/attnc/RunOptions.cpp), as a process: the options of the kernels,
// the paged cache and the query offset, and every combination that does not apply, refused as a
// usage error before any file is read.

#include <filesystem>
#include <string>

#include <catch2/catch.hpp>

#include "tests/tools/AttncProcess.h"

namespace fs = std::filesystem;

namespace {

using attnc_test::quoted;
using attnc_test::run_attnc;
using Result = attnc_test::AttncResult;

}  // namespace

TEST_CASE("attnc run refuses options that do not apply to the chosen kernel or device, before reading anything",
          "[cli][run][usage]") {
  attnc_test::TempDirectory scratch("attnc-run-options");
  const fs::path out = scratch.path() / "out.npy";
  // Inputs that do not exist: reading them would be exit status 3, not 2.
  const std::string inputs = " --q nope-q.npy --k nope-k.npy --v nope-v.npy -o " + quoted(out);
  const std::string mods = "run examples/seed.attn --mask-mod causal";
  const std::string linear = "run --kernel linear";
  auto [args, message] = GENERATE_COPY(table<std::string, std::string>({
      {mods + " --kernel fast", "--kernel takes flash, standard, decode, memory-efficient, linear or ring"},
      {mods + " --kernel decode --block-size 64",
       "--block-size does not go with --kernel decode: only --kernel memory-efficient"},
      {mods + " --block-size 64", "--block-size does not go with --kernel flash"},
      {mods + " --kernel memory-efficient --block-size 0", "--block-size takes a number of rows from 1 to 65536"},
      {mods + " --causal", "--causal does not go with --kernel flash: only --kernel linear takes it"},
      {linear + " examples/seed.attn", "--kernel linear takes no mods, so no mod file"},
      {linear + " --mask-mod causal", "--mask-mod does not go with --kernel linear: linear attention takes no mods"},
      {linear + " --score-mod alibi", "--score-mod does not go with --kernel linear"},
      {linear + " --arg window=3", "--arg does not go with --kernel linear"},
      {linear + " --check-bounds", "--check-bounds does not go with --kernel linear"},
      {linear + " --scale 0.5", "--scale does not go with --kernel linear: linear attention has no softmax"},
      {linear + " --lse lse.npy", "--lse does not go with --kernel linear"},
      {linear + " --paged 16", "--paged does not go with --kernel linear"},
      {linear + " --block-size 8", "--block-size does not go with --kernel linear"},
      {"run --mask-mod causal", "no mod file given (only --kernel linear runs without one)"},
      {mods + " --paged 48", "--paged takes a page size of 16, 32, 64 or 128 tokens, got '48'"},
      {mods + " --paged 256", "--paged takes a page size of 16, 32, 64 or 128 tokens"},
      {mods + " --paged 16 --kernel standard", "--paged does not go with --kernel standard: the paged path runs the "
                                               "decode family"},
      {mods + " --paged 16 --kernel ring", "--paged does not go with --kernel ring"},
      {mods + " --seed 7", "--seed chooses --paged's block table; pass --paged too"},
      {mods + " --paged 16 --seed -1", "--seed takes a number from 0 to 2147483647"},
      {mods + " --q-offset -1", "--q-offset takes a position from 0 to 2147483647, got '-1'"},
      {mods + " --q-offset 3000000000", "--q-offset takes a position from 0 to 2147483647"},
      {mods + " --q-offset ten", "--q-offset takes a position"},
      {mods + " --q-offset 1 --q-offset 2", "--q-offset is given 2 times"},
      {mods + " --kernel decode --device cuda", "--kernel decode is a CPU kernel; with --device cuda the runtime picks"},
      {mods + " --kernel ring --device cuda", "--kernel ring is a CPU kernel"},
      {mods + " --kernel memory-efficient --device cuda", "--kernel memory-efficient is a CPU kernel"},
  }));
  CAPTURE(args);
  Result r = run_attnc(args + inputs, scratch.path());
  CHECK(r.status == 2);
  CHECK_THAT(r.err, Catch::Contains(message));
  CHECK_THAT(r.err, !Catch::Contains("nope-q.npy"));
  CHECK(r.out.empty());
  CHECK_FALSE(fs::exists(out));
}

TEST_CASE("attnc run --help lists the kernels and the options they take", "[cli][run][usage]") {
  attnc_test::TempDirectory scratch("attnc-run-options");
  Result help = run_attnc("run --help", scratch.path());
  CHECK(help.status == 0);
  for (const char* text : {"decode", "memory-efficient", "linear", "ring", "mpirun -np P", "--q-offset N",
                           "--mask FILE", "--block-size N", "--causal", "--paged PAGE_SIZE", "--seed N"}) {
    CAPTURE(text);
    CHECK_THAT(help.out, Catch::Contains(text));
  }
}
