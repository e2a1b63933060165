// attnc run, as a process: bf16 inputs, where the outputs go, the checks of the inputs and their
// messages, and files too large to read.

#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "tests/tools/AttncProcess.h"

#include "runtime/core/Npy.h"
#include "runtime/core/Tensor.h"

namespace fs = std::filesystem;

namespace {

using attnc_test::quoted;
using attnc_test::run_attnc;
using attnc_test::slurp;
using Result = attnc_test::AttncResult;

struct TempDirectory : attnc_test::TempDirectory {
  TempDirectory() : attnc_test::TempDirectory("attnc-run-cli") {}
};

const std::string kInputs = " --q examples/inputs/q.npy --k examples/inputs/k.npy --v examples/inputs/v.npy";
const std::string kMistral = "run examples/mistral.attn --mask-mod sliding_window --arg window=16";

fs::path write_file(const fs::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

// A .npy header (version 1.0) for `shape_text` of fp32, padded as numpy pads it.
std::string npy_header(const std::string& shape_text) {
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape_text + ", }";
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string out = "\x93NUMPY";
  out += '\x01';
  out += '\x00';
  out += static_cast<char>(header.size() & 0xFF);
  out += static_cast<char>(header.size() >> 8);
  return out + header;
}

}  // namespace

TEST_CASE("attnc run reads bf16 inputs with --dtype bf16: the round trip from bench --dump", "[cli][run][bf16]") {
  TempDirectory scratch;
  fs::path dump = scratch.path() / "dump";
  Result bench = run_attnc(
      "bench --seq 130 --head-dim 16 --heads 2 --dtype bf16 --mod causal --repeat 1 --no-ceiling"
      " --dump " +
          quoted(dump),
      scratch.path());
  CAPTURE(bench.out, bench.err);
  REQUIRE(bench.status == 0);
  fs::path inputs = dump / "bf16-S130-D16";
  fs::path mods = write_file(scratch.path() / "causal.attn", "mask_mod causal = kv_idx <= q_idx;\n");
  fs::path out = scratch.path() / "out.npy";
  std::string args = "run " + quoted(mods) + " --mask-mod causal --q " + quoted(inputs / "q.npy") + " --k " +
                     quoted(inputs / "k.npy") + " --v " + quoted(inputs / "v.npy") + " -o " + quoted(out);

  Result refused = run_attnc(args, scratch.path());
  CHECK(refused.status == 3);
  CHECK_THAT(refused.err, Catch::Contains("q.npy") && Catch::Contains("bf16"));

  Result r = run_attnc(args + " --dtype bf16", scratch.path());
  CAPTURE(r.err);
  REQUIRE(r.status == 0);
  CHECK_THAT(slurp(out), Catch::Contains("'descr': '<u2'"));  // written as bf16 bits, like its inputs
  attnc::Tensor ours = attnc::read_npy(out.string(), attnc::DType::BF16);
  attnc::Tensor benches = attnc::read_npy((inputs / "out-causal.npy").string(), attnc::DType::BF16);
  REQUIRE(ours.shape() == benches.shape());
  std::vector<float> a = ours.to_float_vector(), b = benches.to_float_vector();
  for (size_t i = 0; i < a.size(); ++i) REQUIRE(std::fabs(a[i] - b[i]) <= 1e-2f * (1 + std::fabs(b[i])));

  Result mismatch = run_attnc(args + " --dtype fp16", scratch.path());
  CHECK(mismatch.status == 3);
  CHECK_THAT(mismatch.err, Catch::Contains("q.npy") && Catch::Contains("'<u2'"));
  CHECK(run_attnc(args + " --dtype fp64", scratch.path()).status == 2);
}

TEST_CASE("attnc run checks every output location before it reads or computes anything", "[cli][run][outputs]") {
  TempDirectory scratch;
  fs::path out = scratch.path() / "out.npy";
  SECTION("an output in a directory that does not exist") {
    // Inputs that do not exist either: the output is what must be reported, first.
    Result r = run_attnc("run examples/mistral.attn --q nope.npy --k nope.npy --v nope.npy -o " +
                             quoted(scratch.path() / "missing" / "out.npy"),
                         scratch.path());
    CHECK(r.status == 3);
    CHECK_THAT(r.err, Catch::Contains("missing") && Catch::Contains("does not exist"));
    CHECK_THAT(r.err, !Catch::Contains("nope.npy"));
  }
  SECTION("an output that is a directory") {
    Result r = run_attnc(kMistral + kInputs + " -o " + quoted(scratch.path()), scratch.path());
    CHECK(r.status == 3);
    CHECK_THAT(r.err, Catch::Contains("is a directory"));
  }
  SECTION("an unwritable --lse leaves no half-written set: -o is not written either") {
    Result r = run_attnc(
        kMistral + kInputs + " -o " + quoted(out) + " --lse " + quoted(scratch.path() / "missing" / "lse.npy"),
        scratch.path());
    CHECK(r.status == 3);
    CHECK_THAT(r.err, Catch::Contains("lse.npy"));
    CHECK_FALSE(fs::exists(out));
  }
  SECTION("-o and --lse naming the same file") {
    Result r = run_attnc(kMistral + kInputs + " -o " + quoted(out) + " --lse " + quoted(out), scratch.path());
    CHECK(r.status == 2);
  }
  SECTION("outputs that can be written are written whole, and nothing else is left beside them") {
    Result r = run_attnc(kMistral + kInputs + " -o " + quoted(out) + " --lse " + quoted(scratch.path() / "lse.npy"),
                         scratch.path());
    CAPTURE(r.err);
    REQUIRE(r.status == 0);
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(scratch.path())) {
      std::string name = entry.path().filename().string();
      if (name.ends_with(".npy")) names.push_back(name);
      CHECK_FALSE(name.ends_with(".tmp"));
    }
    CHECK(names.size() == 2);
  }
}

TEST_CASE("attnc run leaves the shape checks to the runtime, which name the tensor and its shape",
          "[cli][run][shapes]") {
  TempDirectory scratch;
  fs::path rank3 = scratch.path() / "rank3.npy";
  attnc::write_npy(rank3.string(), attnc::Tensor::zeros(attnc::DType::F32, {4, 100, 64}));
  fs::path out = scratch.path() / "out.npy";
  Result q = run_attnc(
      kMistral + " --q " + quoted(rank3) + " --k examples/inputs/k.npy --v examples/inputs/v.npy -o " + quoted(out),
      scratch.path());
  CHECK(q.status == 3);
  CHECK_THAT(q.err, Catch::Contains("q must have rank 4") && Catch::Contains("[4, 100, 64]"));
  CHECK_THAT(q.err, !Catch::Contains("q and v"));
  Result v = run_attnc(
      kMistral + " --q examples/inputs/q.npy --k examples/inputs/k.npy --v " + quoted(rank3) + " -o " + quoted(out),
      scratch.path());
  CHECK(v.status == 3);
  CHECK_THAT(v.err, Catch::Contains("v must have rank 4") && Catch::Contains("[4, 100, 64]"));
  // The user called no library function: the messages carry no entry point's name.
  CHECK_THAT(q.err + v.err, !Catch::Contains("flash_attention") && !Catch::Contains("standard_attention"));
}

TEST_CASE("attnc run says a float argument is out of range, as it does for ints", "[cli][run][arguments]") {
  TempDirectory scratch;
  std::string run =
      "run examples/gemma2.attn --score-mod logit_softcap" + kInputs + " -o " + quoted(scratch.path() / "out.npy");
  auto [args, message] = GENERATE(table<std::string, std::string>({
      {" --arg cap=1e40", "'1e40' is out of range for a float"},
      {" --arg cap=-1e40", "'-1e40' is out of range for a float"},
      {" --arg cap=1e-50", "'1e-50' is out of range for a float"},
      {" --arg cap=1e999", "'1e999' is out of range for a float"},
      {" --arg cap=30 --scale 1e40", "--scale: '1e40' is out of range for a float"},
      {" --arg cap=thirty", "'thirty' is not a number"},
  }));
  CAPTURE(args);
  Result r = run_attnc(run + args, scratch.path());
  CHECK(r.status == 2);
  CHECK_THAT(r.err, Catch::Contains(message));
  Result fine = run_attnc(run + " --arg cap=3e38", scratch.path());
  CHECK(fine.status == 0);
  Result huge_int = run_attnc("run examples/gemma2.attn --mask-mod local_attention --arg window=99999999999999999999" +
                                  kInputs + " -o " + quoted(scratch.path() / "out.npy"),
                              scratch.path());
  CHECK(huge_int.status == 2);
  CHECK_THAT(huge_int.err, Catch::Contains("does not fit a 32-bit int"));
}

TEST_CASE("attnc run speaks in its user's terms: mods, parameters and tensors, no internal names",
          "[cli][run][messages]") {
  TempDirectory scratch;
  fs::path out = scratch.path() / "out.npy";
  SECTION("an out-of-range index with --check-bounds, with either kernel") {
    fs::path mods = write_file(scratch.path() / "oob.attn",
                               "mask_mod shifted(ids: int[B, S]) = ids[b, q_idx + 1000] == ids[b, kv_idx];\n");
    std::string run = "run " + quoted(mods) + " --mask-mod shifted --arg ids=examples/inputs/doc_ids.npy" + kInputs +
                      " --check-bounds -o " + quoted(out);
    for (const char* kernel : {"", " --kernel standard"}) {
      Result r = run_attnc(run + kernel, scratch.path());
      CHECK(r.status == 3);
      CHECK_THAT(r.err, Catch::StartsWith("attnc run: error: mod 'shifted': index 1000 is out of range"));
    }
  }
  SECTION("a float tensor for an int parameter") {
    fs::path floats = scratch.path() / "ids.npy";
    attnc::write_npy(floats.string(), attnc::Tensor::zeros(attnc::DType::F32, {1, 100}));
    Result r = run_attnc("run examples/packed_documents.attn --mask-mod packed_causal --arg ids=" + quoted(floats) +
                             kInputs + " -o " + quoted(out),
                         scratch.path());
    CHECK(r.status == 3);
    CHECK_THAT(r.err, Catch::Contains("an int tensor must be stored as int32 or int64"));
  }
  SECTION("an unbound parameter says how to bind it") {
    Result r = run_attnc("run examples/mistral.attn --mask-mod sliding_window" + kInputs + " -o " + quoted(out),
                         scratch.path());
    CHECK(r.status == 3);
    CHECK_THAT(r.err, Catch::Contains("parameter window not bound; pass --arg window="));
  }
}

TEST_CASE("attnc run refuses an input too large for memory, naming the file and its size", "[cli][run][memory]") {
  TempDirectory scratch;
  fs::path out = scratch.path() / "out.npy";
  fs::path huge = scratch.path() / "huge.npy";
  // 2^28 floats: 1 GiB of zeros in a sparse file, read by a process limited to 768 MiB of address
  // space (ulimit -v), so that the allocation itself fails.
  std::string header = npy_header("(1, 1, 268435456, 1)");
  write_file(huge, header);
  REQUIRE(::truncate(huge.c_str(), static_cast<off_t>(header.size() + (uint64_t{1} << 30))) == 0);
  std::string run =
      kMistral + " --q " + quoted(huge) + " --k examples/inputs/k.npy --v examples/inputs/v.npy -o " + quoted(out);
  int raw = std::system(("cd " + quoted(fs::path(attnc::test::source_dir())) + " && (ulimit -v 786432; " +
                         attnc_test::attnc_command(run, scratch.path(), "limited") + ")")
                            .c_str());
  std::string err = slurp(scratch.path() / "limited.err");
  CAPTURE(err);
  CHECK(WIFEXITED(raw));
  CHECK(WEXITSTATUS(raw) == 3);
  CHECK_THAT(err, Catch::Contains(huge.string()) && Catch::Contains("1073741824 bytes") &&
                      Catch::Contains("more than could be allocated"));
  CHECK_THAT(err, !Catch::Contains("bad_alloc"));
}
