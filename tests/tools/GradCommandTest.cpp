// attnc grad, as a process: its gradients against the library's reference backward pass, parameter
// gradients, dropout's reproducibility, and the command-line mistakes it refuses.

#include <filesystem>
#include <fstream>
#include <string>

#include <catch2/catch.hpp>

#include "tests/tools/AttncProcess.h"

#include "compiler/Frontend.h"
#include "runtime/core/Mod.h"
#include "runtime/core/Mods.h"
#include "runtime/core/Npy.h"
#include "runtime/reference/ReferenceBackward.h"
#include "tests/support/AttentionComparison.h"
#include "tests/support/TestTensors.h"

namespace fs = std::filesystem;

namespace {

using attnc_test::quoted;
using attnc_test::run_attnc;
using attnc_test::slurp;

struct TempDirectory : attnc_test::TempDirectory {
  TempDirectory() : attnc_test::TempDirectory("attnc-grad-cli") {}
};

constexpr const char* kMods = R"(
score_mod relative_bias(table: float[NH, R]) =
    let d = clamp(q_idx - kv_idx + R / 2, 0, R - 1);
    score + table[h, d];
mask_mod causal = kv_idx <= q_idx;
)";

// The examples' inputs (4 query heads, 2 KV heads, 100 positions, D 64), a dO and a bias table.
struct Files {
  fs::path mods, dout, table;
  std::string inputs;
  explicit Files(const fs::path& dir) {
    mods = dir / "mods.attn";
    std::ofstream(mods) << kMods;
    dout = dir / "do.npy";
    attnc::write_npy(dout.string(), attnc::test::uniform_tensor(3, attnc::DType::F32, {1, 4, 100, 64}));
    table = dir / "table.npy";
    attnc::write_npy(table.string(), attnc::test::uniform_tensor(4, attnc::DType::F32, {4, 9}));
    inputs = " --q examples/inputs/q.npy --k examples/inputs/k.npy --v examples/inputs/v.npy --do " + quoted(dout);
  }
  std::string outputs(const fs::path& dir) const {
    return " --dq " + quoted(dir / "dq.npy") + " --dk " + quoted(dir / "dk.npy") + " --dv " + quoted(dir / "dv.npy");
  }
};

}  // namespace

TEST_CASE("attnc grad writes the reference's gradients, parameter gradients included", "[cli][grad]") {
  TempDirectory scratch;
  const Files files(scratch.path());
  const fs::path dtable = scratch.path() / "dtable.npy";
  const attnc_test::AttncResult r = run_attnc(
      "grad " + quoted(files.mods) + " --score-mod relative_bias --mask-mod causal --arg table=" + quoted(files.table) +
          " --darg table=" + quoted(dtable) + files.inputs + files.outputs(scratch.path()),
      scratch.path());
  CAPTURE(r.err);
  REQUIRE(r.status == 0);

  const attnc::ir::Module module = attnc::ir::load_module_text("mods.attn", kMods);
  attnc::Mod bias = attnc::Mod::from_module(module, "relative_bias");
  bias.bind("table", attnc::read_npy(files.table.string()));
  const attnc::Mod causal = attnc::Mod::from_module(module, "causal");
  attnc::AttentionOptions options;
  options.score_mod = &bias;
  options.mask_mod = &causal;
  attnc::AttentionGradients want;
  const std::string dir = std::string(ATTNC_SOURCE_DIR) + "/examples/inputs/";
  attnc::standard_attention_backward(attnc::read_npy(dir + "q.npy"), attnc::read_npy(dir + "k.npy"),
                                     attnc::read_npy(dir + "v.npy"), attnc::read_npy(files.dout.string()), want,
                                     options);
  CHECK(attnc_test::relative_error(attnc::read_npy((scratch.path() / "dq.npy").string()), want.dq) < 2e-4);
  CHECK(attnc_test::relative_error(attnc::read_npy((scratch.path() / "dk.npy").string()), want.dk) < 2e-4);
  CHECK(attnc_test::relative_error(attnc::read_npy((scratch.path() / "dv.npy").string()), want.dv) < 2e-4);
  CHECK(attnc_test::relative_error(attnc::read_npy(dtable.string()), want.dparams.at("table")) < 2e-4);
}

TEST_CASE("attnc grad with dropout gives the same gradients for the same seed", "[cli][grad][dropout]") {
  TempDirectory scratch;
  const Files files(scratch.path());
  const fs::path first = scratch.path() / "first", second = scratch.path() / "second";
  fs::create_directories(first);
  fs::create_directories(second);
  const std::string args = "grad " + quoted(files.mods) + " --mask-mod causal --dropout 0.25 --seed 99" + files.inputs;
  REQUIRE(run_attnc(args + files.outputs(first), scratch.path()).status == 0);
  REQUIRE(run_attnc(args + files.outputs(second), scratch.path()).status == 0);
  for (const char* name : {"dq.npy", "dk.npy", "dv.npy"}) {
    CHECK(slurp(first / name) == slurp(second / name));
  }
}

TEST_CASE("attnc grad refuses mistakes before it computes anything", "[cli][grad]") {
  TempDirectory scratch;
  const Files files(scratch.path());
  const std::string base = "grad " + quoted(files.mods) + files.inputs + files.outputs(scratch.path());
  SECTION("a --darg that is not a float tensor parameter of the score mod") {
    const auto r =
        run_attnc(base + " --mask-mod causal --darg table=" + quoted(scratch.path() / "x.npy"), scratch.path());
    CHECK(r.status == 2);
    CHECK_THAT(r.err, Catch::Contains("no float tensor parameter 'table'"));
  }
  SECTION("--seed without --dropout") {
    const auto r = run_attnc(base + " --seed 3", scratch.path());
    CHECK(r.status == 2);
    CHECK_THAT(r.err, Catch::Contains("--seed goes with --dropout"));
  }
  SECTION("a dropout rate of 1") {
    const auto r = run_attnc(base + " --dropout 1", scratch.path());
    CHECK(r.status == 2);
    CHECK_THAT(r.err, Catch::Contains("[0, 1)"));
  }
  SECTION("--device cuda") {
    const auto r = run_attnc(base + " --device cuda", scratch.path());
    CHECK(r.status == 3);
    CHECK_THAT(r.err, Catch::Contains("CPU only"));
  }
  SECTION("a missing --do") {
    const auto r = run_attnc("grad " + quoted(files.mods) +
                                 " --q examples/inputs/q.npy --k examples/inputs/k.npy --v examples/inputs/v.npy" +
                                 files.outputs(scratch.path()),
                             scratch.path());
    CHECK(r.status == 2);
  }
  CHECK_FALSE(fs::exists(scratch.path() / "dq.npy"));
}
