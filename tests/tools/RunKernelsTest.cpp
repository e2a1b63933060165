// attnc run's local kernels (tools/attnc/RunKernels.cpp), as a process: --kernel decode,
// memory-efficient and linear, --q-offset and --mask on every softmax kernel, each checked against
// the reference computed in this process (standard_attention, or a float64 sum for linear
// attention), and the errors of inputs that do not fit the chosen kernel.

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "tests/support/AttentionComparison.h"
#include "tests/tools/AttncProcess.h"
#include "tests/tools/RunTestFiles.h"

#include "compiler/Frontend.h"
#include "runtime/core/Mod.h"
#include "runtime/core/Mods.h"
#include "runtime/core/Npy.h"
#include "runtime/reference/ReferenceAttention.h"

namespace fs = std::filesystem;

namespace {

using attnc_test::quoted;
using attnc_test::run_attnc;
using attnc_test::RunInputs;
using Result = attnc_test::AttncResult;

const fs::path kSeedMods = fs::path(ATTNC_SOURCE_DIR) / "examples" / "seed.attn";

// phi(x) = elu(x) + 1
double phi(double x) { return x > 0 ? x + 1 : std::exp(x); }

// Linear attention in float64 straight from its definition, queries at q_offset + i: query i sees
// keys j <= q_offset + i when causal, every key otherwise; keys with keep[b, j] == 0 are dropped.
attnc::Tensor linear_expected(const attnc::Tensor& q, const attnc::Tensor& k, const attnc::Tensor& v, bool causal,
                              int64_t q_offset, const std::vector<std::vector<bool>>& keep = {}) {
  const int64_t B = q.size(0), H = q.size(1), S = q.size(2), D = q.size(3), G = H / k.size(1), L = k.size(2);
  attnc::Tensor out = attnc::Tensor::empty(attnc::DType::F32, {B, H, S, v.size(3)});
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t h = 0; h < H; ++h) {
      for (int64_t i = 0; i < S; ++i) {
        std::vector<double> numerator(static_cast<size_t>(v.size(3)), 0.0);
        double denominator = 0;
        for (int64_t j = 0; j < L; ++j) {
          if (causal && j > q_offset + i) break;
          if (!keep.empty() && !keep[static_cast<size_t>(b)][static_cast<size_t>(j)]) continue;
          double weight = 0;
          for (int64_t d = 0; d < D; ++d) weight += phi(q.get_float({b, h, i, d})) * phi(k.get_float({b, h / G, j, d}));
          denominator += weight;
          for (int64_t d = 0; d < v.size(3); ++d) numerator[static_cast<size_t>(d)] += weight * v.get_float({b, h / G, j, d});
        }
        for (int64_t d = 0; d < v.size(3); ++d) {
          out.set_float({b, h, i, d}, static_cast<float>(numerator[static_cast<size_t>(d)] / (denominator + 1e-6)));
        }
      }
    }
  }
  return out;
}

}  // namespace

TEST_CASE("every softmax kernel of attnc run places queries at --q-offset and ands --mask into the mask mod",
          "[cli][run][kernels]") {
  attnc_test::TempDirectory scratch("attnc-run-kernels");
  // GQA 2:1, 13 query rows (decode takes up to 16) at positions 10..22 over 29 keys.
  RunInputs in(scratch.path(), 2, 4, 2, 13, 29, 32, 7);
  const attnc::Tensor mask = attnc_test::write_mask(scratch.path() / "mask.npy", {1, 1, 13, 29}, 3);
  const std::string run = "run " + quoted(kSeedMods) +
                          " --mask-mod sliding_window --arg window=9 --score-mod softcap --arg cap=20" + in.args +
                          " --q-offset 10 --mask " + quoted(scratch.path() / "mask.npy");

  const attnc::ir::Module module = attnc::ir::load_module_file(kSeedMods.string());
  attnc::Mod window = attnc::Mod::from_module(module, "sliding_window"), softcap = attnc::Mod::from_module(module, "softcap");
  window.bind("window", 9);
  softcap.bind("cap", 20.0f);
  attnc::AttentionOptions options;
  options.mask_mod = &window;
  options.score_mod = &softcap;
  options.q_offset = 10;
  attnc::Tensor expected = attnc::Tensor::empty(attnc::DType::F32, {2, 4, 13, 32}), expected_lse;
  attnc::standard_attention(in.q, in.k, in.v, expected, attnc::with_mask(options, mask), &expected_lse);
  // Both the offset and the mask change the answer, so a kernel that ignored either would fail.
  attnc::Tensor unshifted = attnc::Tensor::empty(attnc::DType::F32, {2, 4, 13, 32});
  attnc::AttentionOptions at_zero = options;
  at_zero.q_offset = 0;
  attnc::standard_attention(in.q, in.k, in.v, unshifted, attnc::with_mask(at_zero, mask));
  REQUIRE(attnc_test::relative_error(unshifted, expected) > 0.1);
  attnc::Tensor unmasked = attnc::Tensor::empty(attnc::DType::F32, {2, 4, 13, 32});
  attnc::standard_attention(in.q, in.k, in.v, unmasked, options);
  REQUIRE(attnc_test::relative_error(unmasked, expected) > 0.1);

  const auto [kernel, tolerance] = GENERATE(table<std::string, double>({
      {"standard", 0.0},
      {"flash", 2e-6},
      {"decode", 2e-6},
      {"memory-efficient --block-size 8", 2e-6},
      {"memory-efficient", 2e-6},
  }));
  CAPTURE(kernel);
  const fs::path out = scratch.path() / "out.npy", lse = scratch.path() / "lse.npy";
  Result r = run_attnc(run + " --kernel " + kernel + " -o " + quoted(out) + " --lse " + quoted(lse), scratch.path());
  CAPTURE(r.err);
  REQUIRE(r.status == 0);
  const attnc::Tensor got = attnc::read_npy(out.string());
  if (tolerance == 0) {
    CHECK(attnc_test::slurp(out) == attnc::serialize_npy(expected));
  } else {
    CHECK(attnc_test::relative_error(got, expected) < tolerance);
  }
  CHECK(attnc_test::lse_mismatches(attnc::read_npy(lse.string()), expected_lse) == 0);
}

TEST_CASE("attnc run --kernel decode says its limit of 16 query rows", "[cli][run][kernels]") {
  attnc_test::TempDirectory scratch("attnc-run-kernels");
  RunInputs in(scratch.path(), 1, 2, 2, 17, 40, 16, 9);
  const fs::path out = scratch.path() / "out.npy";
  Result r = run_attnc("run " + quoted(kSeedMods) + " --mask-mod causal --kernel decode" + in.args + " -o " + quoted(out),
                       scratch.path());
  CHECK(r.status == 3);
  CHECK_THAT(r.err, Catch::Contains("--kernel decode takes at most 16 query rows") && Catch::Contains("has 17"));
  CHECK_FALSE(fs::exists(out));
}

TEST_CASE("attnc run --kernel linear needs no mod file and matches the float64 formula, causal at any offset",
          "[cli][run][kernels][linear]") {
  attnc_test::TempDirectory scratch("attnc-run-linear");
  RunInputs in(scratch.path(), 2, 4, 2, 11, 23, 16, 21);
  const fs::path out = scratch.path() / "out.npy";
  const auto [flags, causal, q_offset] = GENERATE(table<std::string, bool, int>({
      {"", false, 0},
      {" --q-offset 5", false, 5},  // no positions without causal: the same as offset 0
      {" --causal", true, 0},
      {" --causal --q-offset 5", true, 5},
      {" --causal --q-offset 22", true, 22},  // the first query already sees every key
      {" --causal --q-offset 1000", true, 1000},
  }));
  CAPTURE(flags);
  Result r = run_attnc("run --kernel linear" + in.args + flags + " -o " + quoted(out), scratch.path());
  CAPTURE(r.err);
  REQUIRE(r.status == 0);
  const attnc::Tensor expected = linear_expected(in.q, in.k, in.v, causal, q_offset);
  CHECK(attnc_test::relative_error(attnc::read_npy(out.string()), expected) < 1e-5);
  if (causal && q_offset == 5) {
    // The offset matters: it is not the answer at offset 0.
    CHECK(attnc_test::relative_error(expected, linear_expected(in.q, in.k, in.v, true, 0)) > 1e-2);
  }
}

TEST_CASE("attnc run --kernel linear takes --mask as a key mask", "[cli][run][kernels][linear]") {
  attnc_test::TempDirectory scratch("attnc-run-linear");
  RunInputs in(scratch.path(), 2, 2, 1, 9, 19, 8, 31);
  const fs::path out = scratch.path() / "out.npy";
  const attnc::Tensor mask = attnc_test::write_mask(scratch.path() / "keys.npy", {2, 1, 1, 19}, 5, attnc::DType::U8);
  std::vector<std::vector<bool>> keep(2, std::vector<bool>(19));
  for (int64_t b = 0; b < 2; ++b) {
    for (int64_t j = 0; j < 19; ++j) keep[static_cast<size_t>(b)][static_cast<size_t>(j)] = mask.get_int({b, 0, 0, j}) != 0;
  }
  Result r = run_attnc("run --kernel linear --causal --q-offset 3 --mask " + quoted(scratch.path() / "keys.npy") +
                           in.args + " -o " + quoted(out),
                       scratch.path());
  CAPTURE(r.err);
  REQUIRE(r.status == 0);
  CHECK(attnc_test::relative_error(attnc::read_npy(out.string()), linear_expected(in.q, in.k, in.v, true, 3, keep)) <
        1e-5);

  attnc_test::write_mask(scratch.path() / "rows.npy", {2, 1, 9, 19}, 5);
  Result rows = run_attnc("run --kernel linear --mask " + quoted(scratch.path() / "rows.npy") + in.args + " -o " +
                              quoted(out),
                          scratch.path());
  CHECK(rows.status == 3);
  CHECK_THAT(rows.err, Catch::Contains("with --kernel linear a mask drops keys") && Catch::Contains("rows.npy"));
}

TEST_CASE("attnc run refuses a --mask of another dtype or shape, naming the file", "[cli][run][kernels]") {
  attnc_test::TempDirectory scratch("attnc-run-kernels");
  RunInputs in(scratch.path(), 1, 2, 2, 12, 20, 16, 41);
  const fs::path out = scratch.path() / "out.npy";
  const std::string run = "run " + quoted(kSeedMods) + " --mask-mod causal" + in.args + " -o " + quoted(out);
  attnc::write_npy((scratch.path() / "ints.npy").string(), attnc::Tensor::zeros(attnc::DType::I32, {12, 20}));
  attnc_test::write_mask(scratch.path() / "wrong.npy", {1, 2, 11, 20}, 1);
  attnc_test::write_mask(scratch.path() / "rank5.npy", {1, 1, 1, 12, 20}, 1);
  const auto [file, message] = GENERATE(table<std::string, std::string>({
      {"ints.npy", "a mask holds bool ('|b1') or uint8 ('|u1') values, got int32[12, 20]"},
      {"wrong.npy", "does not broadcast to [1, 2, 12, 20] (B, H, S, S_kv)"},
      {"rank5.npy", "a mask has rank 1 to 4"},
  }));
  CAPTURE(file);
  for (const char* kernel : {"flash", "standard", "memory-efficient"}) {
    CAPTURE(kernel);
    Result r = run_attnc(run + " --kernel " + kernel + " --mask " + quoted(scratch.path() / file), scratch.path());
    CHECK(r.status == 3);
    CHECK_THAT(r.err, Catch::Contains(file) && Catch::Contains(message));
    CHECK_FALSE(fs::exists(out));
  }
}
