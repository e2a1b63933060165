// attnc bench as a user runs it: a small suite run as a process, checking that every case ran the
// real kernel with the right mod (its dumped output against the reference attention), that the
// kept pairs behind GFLOP/s are exactly what the mask keeps, and the usage errors.

#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>

#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "runtime/core/Mods.h"
#include "runtime/core/Npy.h"
#include "runtime/reference/ReferenceAttention.h"
#include "tests/support/TestPaths.h"

namespace fs = std::filesystem;

namespace {

struct BenchResult {
  int status = -1;
  std::string out, err;
};

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

fs::path bench_dir() {
  fs::path dir = fs::temp_directory_path() / ("attnc-bench-test-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return dir;
}

BenchResult run_bench(const std::string& args) {
  fs::path dir = bench_dir();
  std::string command = std::string("'") + attnc::test::attnc_binary() + "' bench " + args + " >'" + (dir / "out.txt").string() +
                        "' 2>'" + (dir / "err.txt").string() + "'";
  int raw = std::system(command.c_str());
  BenchResult r;
  r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  r.out = read_text(dir / "out.txt");
  r.err = read_text(dir / "err.txt");
  return r;
}

// The JSON object of case `id` (null when there is none).
nlohmann::json case_object(const nlohmann::json& json, const std::string& id) {
  for (const nlohmann::json& c : json["cases"]) {
    if (c["id"] == id) return c;
  }
  return nullptr;
}

double number_field(const nlohmann::json& object, const std::string& field) {
  return object.contains(field) && object[field].is_number() ? object[field].get<double>() : NAN;
}

std::string string_field(const nlohmann::json& object, const std::string& field) {
  return object.contains(field) && object[field].is_string() ? object[field].get<std::string>() : "<missing>";
}

}  // namespace

TEST_CASE("attnc bench runs each mod for real and counts exactly the pairs its mask keeps", "[cli][bench]") {
  // S = 1100: longer than the 1024 sliding window, not a multiple of the tile size, and 8
  // documents of unequal lengths (137 or 138 tokens).
  constexpr int kSeq = 1100, kHeads = 2, kHeadDim = 16;
  fs::path dir = bench_dir();
  fs::path json_path = dir / "bench.json", dump = dir / "dump";
  BenchResult r = run_bench(
      "--seq 1100 --head-dim 16 --dtype fp32 --heads 2 --repeat 2 --mod all --no-ceiling"
      " --json '" +
      json_path.string() + "' --dump '" + dump.string() + "'");
  CAPTURE(r.out, r.err);
  REQUIRE(r.status == 0);
  nlohmann::json json = nlohmann::json::parse(read_text(json_path));

  fs::path inputs = dump / "fp32-S1100-D16";
  attnc::Tensor q = attnc::read_npy((inputs / "q.npy").string());
  attnc::Tensor k = attnc::read_npy((inputs / "k.npy").string());
  attnc::Tensor v = attnc::read_npy((inputs / "v.npy").string());
  REQUIRE(q.shape() == std::vector<int64_t>{1, kHeads, kSeq, kHeadDim});

  std::vector<int32_t> ids(kSeq);
  for (int i = 0; i < kSeq; ++i) ids[i] = i * 8 / kSeq;
  attnc::Tensor document_ids = attnc::Tensor::from_vector(ids, {1, kSeq});

  struct Expected {
    std::string mod;
    std::optional<attnc::Mod> score, mask;
  };
  std::vector<Expected> cases = {
      {"none", std::nullopt, std::nullopt},
      {"causal", std::nullopt, attnc::causal_mod()},
      {"alibi-causal", attnc::alibi_mod(kHeads), attnc::causal_mod()},
      {"sliding-window", std::nullopt, attnc::sliding_window_mod(1024, true)},
      {"document", std::nullopt, attnc::document_mask_mod(document_ids)},
      {"softcap", attnc::softcap_mod(50.0f), std::nullopt},
  };
  for (const Expected& expected : cases) {
    std::string id = expected.mod + "-fp32-S1100-D16";
    CAPTURE(id);
    nlohmann::json object = case_object(json, id);
    REQUIRE_FALSE(object.is_null());
    CHECK(string_field(object, "error").empty());

    // Kept pairs by brute force over the boolean mask.
    int64_t kept = int64_t(kHeads) * kSeq * kSeq;
    if (expected.mask) {
      attnc::Tensor mask = attnc::mask_mod_to_boolean_mask(*expected.mask, 1, kHeads, kSeq, kSeq);
      kept = 0;
      for (float x : mask.to_float_vector()) kept += x != 0.0f;
    }
    CHECK(number_field(object, "kept_pairs") == double(kept));
    CHECK(number_field(object, "flops") == 4.0 * kHeadDim * double(kept));  // kept counts every head
    double median_ms = number_field(object, "median_ms");
    CHECK(median_ms > 0);
    CHECK(number_field(object, "gflops") == Approx(4.0 * kHeadDim * double(kept) / median_ms * 1e-6));

    // The dumped output is the attention with this mod, so the timed call did the real work.
    attnc::AttentionOptions options;
    options.score_mod = expected.score ? &*expected.score : nullptr;
    options.mask_mod = expected.mask ? &*expected.mask : nullptr;
    std::vector<float> want = attnc::standard_attention(q, k, v, options).to_float_vector();
    std::vector<float> got = attnc::read_npy(string_field(object, "output")).to_float_vector();
    REQUIRE(got.size() == want.size());
    float worst = 0;
    for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::fabs(got[i] - want[i]));
    CHECK(worst < 1e-4f);
  }
  // The masked cases skip tiles; the dense ones cannot. The window drops keys 1024 behind the
  // last queries, so it skips a few more tiles than causal alone.
  double causal_skipped = number_field(case_object(json, "causal-fp32-S1100-D16"), "tiles_skipped");
  CHECK(causal_skipped > 0);
  CHECK(number_field(case_object(json, "sliding-window-fp32-S1100-D16"), "tiles_skipped") > causal_skipped);
  CHECK(number_field(case_object(json, "none-fp32-S1100-D16"), "tiles_skipped") == 0);
  CHECK(number_field(case_object(json, "softcap-fp32-S1100-D16"), "tiles_skipped") == 0);
  CHECK(r.out.find("causal") != std::string::npos);
  CHECK(r.out.find("GFLOP/s") != std::string::npos);
}

TEST_CASE("attnc bench measures the sgemm ceiling in the same run, or says it has none", "[cli][bench]") {
  BenchResult r = run_bench("--seq 256 --head-dim 64 --dtype bf16 --mod none,causal --repeat 1");
  CAPTURE(r.out, r.err);
  REQUIRE(r.status == 0);
  std::regex ceiling("S=256 D=64: sgemm ceiling ([0-9.]+) GFLOP/s");
  std::smatch m;
  if (std::regex_search(r.out, m, ceiling)) {
    CHECK(std::stod(m[1]) > 0);
    CHECK(r.out.find("OpenBLAS") != std::string::npos);
  } else {
    CHECK(r.out.find("S=256 D=64: no ceiling") != std::string::npos);
  }
  CHECK(r.out.find("causal          bf16") != std::string::npos);
}

TEST_CASE("attnc bench rejects wrong command lines with exit status 2", "[cli][bench]") {
  using Row = std::tuple<std::string, std::string>;
  auto [args, message] = GENERATE(table<std::string, std::string>({
      Row{"--mod nope", "unknown mod 'nope'"},
      Row{"--repeat 0", "--repeat takes a positive integer"},
      Row{"--seq 1024,,2048", "empty item"},
      Row{"--dtype fp64", "--dtype takes fp32, bf16 or fp16"},
      Row{"--frobnicate", "unknown option '--frobnicate'"},
  }));
  CAPTURE(args);
  BenchResult r = run_bench(args);
  CHECK(r.status == 2);
  CHECK(r.err.find(message) != std::string::npos);
  BenchResult help = run_bench("--help");
  CHECK(help.status == 0);
  CHECK(help.out.find("sliding-window") != std::string::npos);
}

TEST_CASE("attnc bench checks where its results go before the first case runs", "[cli][bench][outputs]") {
  fs::path dir = bench_dir();
  std::ofstream(dir / "a-file") << "x";
  auto [args, message] = GENERATE_COPY(table<std::string, std::string>({
      {"--json '" + (dir / "missing" / "b.json").string() + "'", "does not exist"},
      {"--json '" + dir.string() + "'", "is a directory"},
      {"--dump '" + (dir / "a-file" / "dump").string() + "'", "is not a directory"},
  }));
  CAPTURE(args);
  BenchResult r = run_bench("--seq 64 --head-dim 16 --dtype fp32 --mod none --repeat 1 --no-ceiling " + args);
  CHECK(r.status == 3);
  CHECK(r.err.find(message) != std::string::npos);
  CHECK(r.out.empty());  // not even the header: nothing ran
}

TEST_CASE("attnc bench prints the BLAS kernel of its ceiling and the FMA peaks of the cores", "[cli][bench]") {
  fs::path json_path = bench_dir() / "references.json";
  // The environment pins an old OpenBLAS kernel; the ceiling's child process must not inherit it.
  std::string command = "OPENBLAS_CORETYPE=Prescott '" + attnc::test::attnc_binary() +
                        "' bench --seq 128 --head-dim 16 --heads 2 --dtype fp32,bf16 --mod none --repeat 1 --json '" +
                        json_path.string() + "' >'" + (bench_dir() / "refs.out").string() + "' 2>&1";
  REQUIRE(std::system(command.c_str()) == 0);
  std::string out = read_text(bench_dir() / "refs.out");
  CAPTURE(out);
  CHECK(out.find("FMA peak on") != std::string::npos);
  CHECK(out.find("avx512-fp32") != std::string::npos);
  CHECK(out.find("avx2-fp32") != std::string::npos);
  CHECK(out.find("avx512-bf16") != std::string::npos);
  CHECK(out.find("fp32pk%") != std::string::npos);
  CHECK(out.find("bf16pk%") != std::string::npos);
  nlohmann::json json = nlohmann::json::parse(read_text(json_path));
  CHECK(json["fma_peaks"]["loops"].size() == 3);
  CHECK(json["blas_overrides_in_environment"]["OPENBLAS_CORETYPE"] == "Prescott");
  if (json["ceilings"].empty()) {
    CHECK(out.find("no ceiling") != std::string::npos);
  } else {
    CHECK(out.find("OpenBLAS core ") != std::string::npos);
    CHECK(json["ceilings"][0]["core"] != "Prescott");
    CHECK(json["cases"][0]["ceiling_ratio"].is_number());
  }
  nlohmann::json bf16_case = case_object(json, "none-bf16-S128-D16");
  CHECK(bf16_case["bf16_peak_ratio"].is_number() == json["fma_peaks"]["bf16_gflops"].is_number());
  CHECK(case_object(json, "none-fp32-S128-D16")["bf16_peak_ratio"].is_null());
}

TEST_CASE("attnc bench --decode prints and writes each layout's rate and its ratio to the same-run ceiling",
          "[cli][bench][decode]") {
  fs::path json_path = bench_dir() / "decode.json";
  BenchResult r = run_bench(
      "--decode --batch 2 --heads 4 --kv-heads 2 --kv-len 200 --head-dim 16 --dtype fp32,bf16 --page-size 0,32 "
      "--repeat 1 --threads 2 --json '" +
      json_path.string() + "'");
  CAPTURE(r.out, r.err);
  REQUIRE(r.status == 0);
  CHECK(r.out.find("attnc bench --decode: B=2 H=4 H_kv=2 q_len=1 kv_len=200 D=16") != std::string::npos);
  for (const char* id : {"fp32-contiguous", "fp32-paged32", "bf16-contiguous", "bf16-paged32"}) {
    CAPTURE(id);
    CHECK(r.out.find(std::string("\n") + id + " ") != std::string::npos);
  }
  nlohmann::json json = nlohmann::json::parse(read_text(json_path));
  REQUIRE(json["cases"].size() == 4);
  for (const nlohmann::json& c : json["cases"]) {
    CAPTURE(c.dump());
    const double element = c["dtype"] == "fp32" ? 4 : 2;
    CHECK(number_field(c, "kv_bytes") == 2.0 * 2 * 2 * 200 * 16 * element);
    const double decode_gbps = number_field(c, "decode_gbps"), ceiling_gbps = number_field(c, "ceiling_gbps");
    CHECK(decode_gbps == Approx(number_field(c, "read_bytes") / (number_field(c, "decode_ms") * 1e-3) / 1e9));
    CHECK(ceiling_gbps == Approx(number_field(c, "kv_bytes") / (number_field(c, "ceiling_ms") * 1e-3) / 1e9));
    CHECK(number_field(c, "ratio") == Approx(decode_gbps / ceiling_gbps));
  }
}

TEST_CASE("attnc bench --linear prints and writes each variant's GFLOP/s and its ratio to the sgemm ceiling",
          "[cli][bench][linear]") {
  fs::path json_path = bench_dir() / "linear.json";
  BenchResult r =
      run_bench("--linear --heads 2 --seq 96 --head-dim 16 --dtype fp32 --chunk-size 32 --repeat 1 --json '" +
                json_path.string() + "'");
  CAPTURE(r.out, r.err);
  REQUIRE(r.status == 0);
  CHECK(r.out.find("attnc bench --linear: B=1 H=2 S=96 D=16 chunk 32") != std::string::npos);
  CHECK(r.out.find("\nfp32-causal ") != std::string::npos);
  CHECK(r.out.find("\nfp32-noncausal ") != std::string::npos);
  nlohmann::json json = nlohmann::json::parse(read_text(json_path));
  REQUIRE(json["cases"].size() == 2);
  for (const nlohmann::json& c : json["cases"]) {
    CAPTURE(c.dump());
    const double gflops = number_field(c, "gflops");
    CHECK(gflops == Approx(number_field(c, "flops") / (number_field(c, "median_ms") * 1e-3) / 1e9));
    CHECK(number_field(c, "ratio") == Approx(gflops / number_field(c, "sgemm_gflops")));
  }
}

TEST_CASE("attnc bench refuses options of another suite", "[cli][bench]") {
  auto [args, message] = GENERATE(table<std::string, std::string>({
      {"--decode --linear", "excludes"},
      {"--decode --mod causal", "--mod does not apply to --decode"},
      {"--decode --seq 128", "--seq does not apply to --decode"},
      {"--linear --page-size 16", "--page-size does not apply to --linear"},
      {"--kv-len 100", "--kv-len does not apply to the flash suite"},
      {"--decode --head-dim 64,128", "--head-dim takes one value with --decode or --linear"},
      {"--decode --heads 6 --kv-heads 4", "--heads (6) must be a multiple of --kv-heads (4)"},
      {"--decode --page-size x", "--page-size takes 0 (contiguous) or tokens per page"},
      {"--linear --variant sideways", "--variant takes causal or noncausal"},
  }));
  CAPTURE(args);
  BenchResult r = run_bench(args);
  CHECK(r.status == 2);
  CHECK(r.err.find(message) != std::string::npos);
  CHECK(r.out.empty());
}
