// The attnc command line as a user meets it: each subcommand run as a process, checking exit
// status, stdout and stderr. The binary's path comes from CMake (ATTNC_BINARY).

#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>

#include <catch2/catch.hpp>

#include "tests/tools/AttncProcess.h"

#include "compiler/Frontend.h"
#include "runtime/core/Mod.h"
#include "runtime/core/Npy.h"
#include "runtime/reference/ReferenceAttention.h"

namespace fs = std::filesystem;

namespace {

using attnc_test::slurp;
using Result = attnc_test::AttncResult;

fs::path scratch_dir() {
  fs::path dir = fs::temp_directory_path() / ("attnc-cli-test-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return dir;
}

Result run_attnc(const std::string& args) { return attnc_test::run_attnc(args, scratch_dir()); }

fs::path write_file(const std::string& name, const std::string& text) {
  fs::path path = scratch_dir() / name;
  std::ofstream(path) << text;
  return path;
}

std::string signature_of(const Result& r) {
  std::smatch m;
  std::regex pattern("signature: ([0-9a-f]{32})");
  REQUIRE(std::regex_search(r.out, m, pattern));
  return m[1];
}

}  // namespace

TEST_CASE("attnc --help lists the commands and exit codes; no arguments is a usage error", "[cli]") {
  Result help = run_attnc("--help");
  CHECK(help.status == 0);
  CHECK(help.out.find("check FILE") != std::string::npos);
  CHECK(help.out.find("Exit status") != std::string::npos);
  CHECK(run_attnc("").status == 2);
  Result unknown = run_attnc("frobnicate");
  CHECK(unknown.status == 2);
  CHECK(unknown.err.find("unknown command 'frobnicate'") != std::string::npos);
  auto command = GENERATE(as<std::string>{}, "check", "ir", "run");
  CAPTURE(command);
  Result sub = run_attnc(command + " --help");
  CHECK(sub.status == 0);
  CHECK(sub.out.find("Usage: attnc " + command) != std::string::npos);
}

TEST_CASE("every example mod file passes attnc check", "[cli][examples]") {
  int files = 0;
  for (const auto& entry : fs::directory_iterator(fs::path(attnc::test::source_dir()) / "examples")) {
    if (entry.path().extension() != ".attn") continue;
    ++files;
    std::string relative = "examples/" + entry.path().filename().string();
    CAPTURE(relative);
    Result r = run_attnc("check " + relative);
    CAPTURE(r.err);
    CHECK(r.status == 0);
    CHECK(r.out.find("no errors") != std::string::npos);
  }
  CHECK(files >= 5);  // seed, gemma2, mistral, bloom, packed documents
}

TEST_CASE("attnc check reports every error with file, line, column and caret, and exits 1", "[cli]") {
  fs::path bad = write_file("bad.attn",
                            "mask_mod sliding_window(window: int) = q_idx >= kv && q_idx - kv < window;\n"
                            "score_mod s = score + true;\n");
  Result r = run_attnc("check '" + bad.string() + "'");
  CHECK(r.status == 1);
  CHECK(r.err.find("bad.attn:1:49: error: unknown name 'kv'; did you mean 'kv_idx'?") != std::string::npos);
  CHECK(r.err.find("bad.attn:2:") != std::string::npos);  // the second definition's error too
  CHECK(r.err.find("^~") != std::string::npos);
  CHECK(run_attnc("check /nonexistent/file.attn").status == 3);
}

TEST_CASE("attnc ir prints the optimised IR and a signature shared by equivalent mods", "[cli]") {
  fs::path a = write_file("a.attn", "mask_mod w(window: int) = q_idx >= kv_idx && q_idx - kv_idx < window;\n");
  fs::path b = write_file("b.attn",
                          "# the same mask, written differently\n"
                          "mask_mod other(size: int) =\n"
                          "  let d = q_idx - kv_idx;\n"
                          "  d < size && kv_idx <= q_idx;\n");
  fs::path c = write_file("c.attn", "mask_mod w(window: int) = q_idx >= kv_idx && q_idx - kv_idx <= window;\n");
  Result ra = run_attnc("ir '" + a.string() + "' --mod w");
  Result rb = run_attnc("ir '" + b.string() + "' --mod other");
  Result rc = run_attnc("ir '" + c.string() + "' --mod w");
  REQUIRE(ra.status == 0);
  REQUIRE(rb.status == 0);
  REQUIRE(rc.status == 0);
  CHECK(signature_of(ra) == signature_of(rb));
  CHECK(signature_of(ra) != signature_of(rc));

  Result passes = run_attnc("ir '" + a.string() + "' --mod w --print-after-all");
  CHECK(passes.status == 0);
  for (const char* pass : {"inline-calls", "fold-constants", "simplify", "canonicalize", "share-subexpressions"}) {
    CAPTURE(pass);
    CHECK(passes.out.find(std::string("; after ") + pass) != std::string::npos);
  }
  Result classifier = run_attnc("ir '" + a.string() + "' --mod w --tile-classifier");
  CHECK(classifier.out.find("tile classifier:") != std::string::npos);
  CHECK(classifier.out.find("q_tile_first") != std::string::npos);

  Result missing = run_attnc("ir '" + a.string() + "' --mod nope");
  CHECK(missing.status == 3);
  CHECK(missing.err.find("it defines: w") != std::string::npos);
  CHECK(run_attnc("ir '" + a.string() + "'").status == 2);
}

TEST_CASE("attnc run writes the reference attention of the example inputs", "[cli][run]") {
  fs::path out = scratch_dir() / "out.npy";
  fs::path lse = scratch_dir() / "lse.npy";
  fs::path flash_out = scratch_dir() / "flash_out.npy";
  const std::string command =
      "run examples/mistral.attn --mask-mod sliding_window --arg window=16 "
      "--q examples/inputs/q.npy --k examples/inputs/k.npy --v examples/inputs/v.npy";
  Result r = run_attnc(command + " --kernel standard -o '" + out.string() + "' --lse '" + lse.string() + "'");
  CAPTURE(r.err);
  REQUIRE(r.status == 0);
  // The default kernel is flash: fp32, so equal to the fp64 reference within fp32 rounding.
  Result flash = run_attnc(command + " -o '" + flash_out.string() + "'");
  CAPTURE(flash.err);
  REQUIRE(flash.status == 0);
  CHECK(run_attnc(command + " --kernel fast -o '" + flash_out.string() + "'").status == 2);

  // The same computation in-process must give the same bytes.
  attnc::ir::Module module = attnc::ir::load_module_file(attnc::test::source_dir() + "/examples/mistral.attn");
  attnc::Mod mask = attnc::Mod::from_module(module, "sliding_window");
  mask.bind("window", 16);
  std::string inputs = attnc::test::source_dir() + "/examples/inputs/";
  attnc::Tensor q = attnc::read_npy(inputs + "q.npy"), k = attnc::read_npy(inputs + "k.npy"),
                v = attnc::read_npy(inputs + "v.npy");
  attnc::AttentionOptions options;
  options.mask_mod = &mask;
  attnc::Tensor expected = attnc::Tensor::empty(attnc::DType::F32, q.shape());
  attnc::standard_attention(q, k, v, expected, options);
  CHECK(slurp(out) == attnc::serialize_npy(expected));
  std::vector<float> flash_values = attnc::read_npy(flash_out.string()).to_float_vector();
  std::vector<float> expected_values = expected.to_float_vector();
  REQUIRE(flash_values.size() == expected_values.size());
  for (size_t i = 0; i < flash_values.size(); ++i) {
    CAPTURE(i);
    REQUIRE(flash_values[i] == Approx(expected_values[i]).margin(1e-5).epsilon(1e-5));
  }
  attnc::Tensor written_lse = attnc::read_npy(lse.string());
  CHECK(written_lse.shape() == std::vector<int64_t>{q.shape()[0], q.shape()[1], q.shape()[2]});
}

TEST_CASE("attnc run explains bad arguments with the documented exit codes", "[cli][run]") {
  const std::string inputs = "--q examples/inputs/q.npy --k examples/inputs/k.npy --v examples/inputs/v.npy";
  fs::path out = scratch_dir() / "bad_out.npy";
  SECTION("missing inputs is a usage error") { CHECK(run_attnc("run examples/mistral.attn -o x.npy").status == 2); }
  SECTION("an unknown parameter is a usage error") {
    Result r = run_attnc("run examples/mistral.attn --mask-mod sliding_window --arg wndow=3 " + inputs + " -o '" +
                         out.string() + "'");
    CHECK(r.status == 2);
    CHECK(r.err.find("wndow") != std::string::npos);
  }
  SECTION("an unbound parameter is a run-time error naming it") {
    Result r =
        run_attnc("run examples/mistral.attn --mask-mod sliding_window " + inputs + " -o '" + out.string() + "'");
    CHECK(r.status == 3);
    CHECK(r.err.find("window") != std::string::npos);
  }
  SECTION("a missing input file is a run-time error") {
    Result r = run_attnc("run examples/mistral.attn --q nope.npy --k nope.npy --v nope.npy -o '" + out.string() + "'");
    CHECK(r.status == 3);
    CHECK(r.err.find("nope.npy") != std::string::npos);
  }
  SECTION("--check-bounds turns an out-of-range index into an error naming the mod and parameter") {
    fs::path mods =
        write_file("oob.attn", "mask_mod shifted(ids: int[B, S]) = ids[b, q_idx + 1000] == ids[b, kv_idx];\n");
    std::string run = "run '" + mods.string() + "' --mask-mod shifted --arg ids=examples/inputs/doc_ids.npy " + inputs +
                      " -o '" + out.string() + "'";
    CHECK(run_attnc(run).status == 0);  // clamped by default
    Result r = run_attnc(run + " --check-bounds");
    CHECK(r.status == 3);
    CHECK(r.err.find("shifted") != std::string::npos);
    CHECK(r.err.find("ids") != std::string::npos);
    CHECK(r.err.find("1000") != std::string::npos);
  }
}

TEST_CASE("every command rejects a wrong command line before doing anything, with exit status 2", "[cli][usage]") {
  fs::path out = scratch_dir() / "usage-out.npy";
  const std::string run =
      "run examples/mistral.attn --mask-mod sliding_window --arg window=16 "
      "--q examples/inputs/q.npy --k examples/inputs/k.npy --v examples/inputs/v.npy -o '" +
      out.string() + "'";
  auto [args, message] = GENERATE_COPY(table<std::string, std::string>({
      // An unknown option after arguments that would do work: nothing is done, nothing printed.
      {"check examples/mistral.attn --bogus", "unknown option '--bogus'"},
      {"ir examples/mistral.attn --mod causal --bogus", "unknown option '--bogus'"},
      {run + " --bogus", "unknown option '--bogus'"},
      {"compile examples/mistral.attn --dtype bf16 --head-dim 64 --arch sm_80 --emit cuda -o x.cu --bogus",
       "unknown option '--bogus'"},
      {"warmup examples/warmup.json --bogus", "unknown option '--bogus'"},
      {"cache stats --bogus", "unknown option '--bogus'"},
      {"bench --seq 64 --bogus", "unknown option '--bogus'"},
      // A single-value option given twice is a mistake, not "the last one wins".
      {"ir examples/mistral.attn --mod causal --mod sliding_window", "--mod is given 2 times"},
      {run + " --q examples/inputs/k.npy", "--q is given 2 times"},
      {run + " --kernel flash --kernel standard", "--kernel is given 2 times"},
      {"bench --repeat 1 --repeat 2", "--repeat is given 2 times"},
      {"warmup examples/warmup.json --jobs 1 --jobs 2", "--jobs is given 2 times"},
      // An option without its value.
      {"ir examples/mistral.attn --mod", "--mod needs a value"},
  }));
  CAPTURE(args);
  fs::remove(out);
  Result r = run_attnc(args);
  CHECK(r.status == 2);
  CHECK_THAT(r.err, Catch::Contains(message));
  CHECK(r.out.empty());
  CHECK_FALSE(fs::exists(out));
}

TEST_CASE("every command has a --help that names it, and the top-level help is true to the commands", "[cli][usage]") {
  for (const char* command : {"check", "ir", "run", "compile", "warmup", "cache", "bench"}) {
    CAPTURE(command);
    Result help = run_attnc(std::string(command) + " --help");
    CHECK(help.status == 0);
    CHECK_THAT(help.out, Catch::StartsWith("Usage: attnc " + std::string(command)));
    CHECK_THAT(help.out, Catch::Contains("--help"));
    CHECK(help.err.empty());
  }
  Result prune = run_attnc("cache prune --help");
  CHECK(prune.status == 0);
  CHECK_THAT(prune.out, Catch::Contains("--max-size N") && Catch::Contains("K, M, G or T"));
  Result main_help = run_attnc("--help");
  CHECK_THAT(main_help.out, Catch::Contains("run FILE ...") && Catch::Contains("--device cuda"));
  Result version = run_attnc("--version");
  CHECK(version.status == 0);
  CHECK_THAT(version.out, Catch::StartsWith("attnc "));
}

TEST_CASE("a directory given as a mod file is refused, not read as an empty file", "[cli]") {
  fs::path dir = scratch_dir() / "a-directory.attn";
  fs::create_directories(dir);
  Result check = run_attnc("check '" + dir.string() + "'");
  CHECK(check.status == 3);
  CHECK_THAT(check.err, Catch::Contains(dir.string()) && Catch::Contains("is a directory"));
  CHECK(check.out.empty());
  Result run = run_attnc("run '" + dir.string() +
                         "' --q examples/inputs/q.npy --k examples/inputs/k.npy --v examples/inputs/v.npy -o '" +
                         (scratch_dir() / "dir-out.npy").string() + "'");
  CHECK(run.status == 3);
  CHECK_THAT(run.err, Catch::Contains("is a directory"));
  CHECK(run_attnc("ir '" + dir.string() + "' --mod causal").status == 3);
}
