// Mods whose calls make them huge, through the attnc process: nineteen score mods that each apply
// the previous one twice, s_i = s_{i-1}(s_{i-1}(score)), check cleanly; s16 (65538 IR nodes, 65536
// additions deep) compiles and runs, and s18 (262146 nodes, past the documented limit of 100000)
// stops every command with a compile error. Before, `attnc ir`, `compile` and `run` on s18 died with
// SIGSEGV while the IR was freed recursively.

#include <fstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "tests/tools/AttncProcess.h"

#include "runtime/core/Npy.h"
#include "runtime/core/Tensor.h"

namespace {

using attnc_test::quoted;
using attnc_test::run_attnc;
using attnc_test::TempDirectory;

// s0 = score + 1.0, then s_i = s_{i-1}(s_{i-1}(score)) for i = 1..18.
std::string doubling_mods() {
  std::string text = "score_mod s0 = score + 1.0;\n";
  for (int i = 1; i < 19; ++i) {
    const std::string previous = "s" + std::to_string(i - 1);
    text += "score_mod s" + std::to_string(i) + " = " + previous + "(" + previous + "(score));\n";
  }
  return text;
}

struct DeepFiles {
  TempDirectory scratch{"attnc-deep-mods"};
  std::string mods, q, out;

  DeepFiles() {
    mods = quoted(scratch.path() / "deep.attn");
    std::ofstream(scratch.path() / "deep.attn") << doubling_mods();
    std::vector<float> values(1 * 1 * 8 * 16);
    for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(i % 5) * 0.1f;
    attnc::write_npy((scratch.path() / "q.npy").string(), attnc::Tensor::from_vector(values, {1, 1, 8, 16}));
    q = quoted(scratch.path() / "q.npy");
    out = quoted(scratch.path() / "out.npy");
  }

  std::string run_args(const std::string& mod) const {
    return "run " + mods + " --score-mod " + mod + " --q " + q + " --k " + q + " --v " + q + " -o " + out;
  }
  std::string compile_args(const std::string& mod) const {
    return "compile " + mods + " --score-mod " + mod + " --dtype fp16 --head-dim 64 --arch sm_80 --emit cuda -o " +
           quoted(scratch.path() / "out.cu");
  }
};

void check_too_large(const attnc_test::AttncResult& r) {
  CAPTURE(r.status, r.err);
  CHECK(r.status == 1);
  CHECK(r.err.find("'s18' is too large to compile") != std::string::npos);
  CHECK(r.err.find("100000") != std::string::npos);
  CHECK(r.err.find("deep.attn:19:1:") != std::string::npos);
}

}  // namespace

TEST_CASE("attnc check accepts nineteen score mods that each apply the previous one twice", "[cli][deep]") {
  DeepFiles files;
  attnc_test::AttncResult r = run_attnc("check " + files.mods, files.scratch.path());
  CAPTURE(r.err);
  CHECK(r.status == 0);
  CHECK(r.out.find("19 definitions, no errors") != std::string::npos);
}

TEST_CASE("attnc ir, compile and run stop at a mod past the node limit with a compile error", "[cli][deep]") {
  DeepFiles files;
  check_too_large(run_attnc("ir " + files.mods + " --mod s18", files.scratch.path()));
  check_too_large(run_attnc(files.compile_args("s18"), files.scratch.path()));
  check_too_large(run_attnc(files.run_args("s18"), files.scratch.path()));
}

TEST_CASE("attnc ir and compile handle a mod 65536 operations deep, and run one 4096 deep", "[cli][deep]") {
  DeepFiles files;
  attnc_test::AttncResult ir = run_attnc("ir " + files.mods + " --mod s16", files.scratch.path());
  CAPTURE(ir.status, ir.err);
  CHECK(ir.status == 0);
  CHECK(ir.out.find("signature: ") != std::string::npos);

  attnc_test::AttncResult compiled = run_attnc(files.compile_args("s16"), files.scratch.path());
  CAPTURE(compiled.status, compiled.err);
  CHECK(compiled.status == 0);

  // The CPU backend's LLVM JIT compiles the 4096-deep chain (s16 takes it about 10 s).
  attnc_test::AttncResult ran = run_attnc(files.run_args("s12"), files.scratch.path());
  CAPTURE(ran.status, ran.err);
  CHECK(ran.status == 0);
}
