// The backward family's compile side (runtime/families/flash_backward/FlashBackwardSource.h):
// plans and keys, the generated derivative, and the translation unit compiled by NVRTC to cubin for
// sm_80 and sm_90 (no GPU needed) with ptxas reporting no spills in any of the three kernels
// (`test_runtime "The backward kernels compile*" -s` shows each kernel's registers).

#include "runtime/families/flash_backward/FlashBackwardSource.h"

#include <regex>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "runtime/core/RuntimeError.h"
#include "runtime/cuda/Nvrtc.h"
#include "tests/support/CudaTesting.h"
#include "tests/support/TestMods.h"

using namespace attnc;
using namespace attnc::cuda;
using namespace attnc::flash_backward;
using namespace attnc::test;

namespace {

FlashBackwardSpec spec_of(const char* score, const char* mask, DType dtype, int head_dim, const char* arch) {
  FlashBackwardSpec spec;
  spec.score = mod_spec_named(score);
  spec.mask = mod_spec_named(mask);
  spec.dtype = dtype;
  spec.head_dim = spec.head_dim_v = head_dim;
  spec.arch = arch;
  return spec;
}

struct KernelResources {
  std::string name;
  int registers = -1;
  int spill_stores = -1, spill_loads = -1;
};

// ptxas -v's report, per function: "Compiling entry function 'NAME'", then "N bytes stack frame, S
// bytes spill stores, L bytes spill loads" and "Used R registers".
std::vector<KernelResources> resources(const std::string& log) {
  std::vector<KernelResources> out;
  const std::regex function("Compiling entry function '([A-Za-z0-9_]+)'");
  const std::regex spills("([0-9]+) bytes spill stores, ([0-9]+) bytes spill[ \n]+loads");
  const std::regex registers("Used ([0-9]+) registers");
  std::smatch m;
  size_t start = 0;
  std::string line;
  while (start < log.size()) {
    size_t end = log.find('\n', start);
    if (end == std::string::npos) end = log.size();
    line = log.substr(start, end - start);
    start = end + 1;
    if (std::regex_search(line, m, function)) {
      out.push_back({m[1], -1, -1, -1});
    } else if (!out.empty() && std::regex_search(line, m, spills)) {
      out.back().spill_stores = std::stoi(m[1]);
      out.back().spill_loads = std::stoi(m[2]);
    } else if (!out.empty() && std::regex_search(line, m, registers)) {
      out.back().registers = std::stoi(m[1]);
    }
  }
  return out;
}

}  // namespace

TEST_CASE("Backward tiles and shared memory follow the head dim", "[flash_backward]") {
  CHECK(choose_backward_tile_config(64, 64) == BackwardTile{32, 64, 4});
  CHECK(choose_backward_tile_config(128, 128) == BackwardTile{16, 64, 4});
  CHECK(choose_backward_tile_config(64, 128) == BackwardTile{16, 64, 4});
  CHECK_THROWS_AS(choose_backward_tile_config(256, 256), RuntimeError);
  CHECK_THROWS_AS(choose_backward_tile_config(72, 72), RuntimeError);
  // K, V, dS^T and two stages of Q, dO, LSE and delta, rows padded by 8 elements.
  CHECK(flash_backward_shared_bytes({32, 64, 4}, 64, 64) == 9216 + 9216 + 5120 + 2 * (4608 + 4608 + 256));
  CHECK(flash_backward_shared_bytes({16, 64, 4}, 128, 128) == 17408 + 17408 + 3072 + 2 * (4352 + 4352 + 128));
}

TEST_CASE("Backward plans key every specialisation and refuse what the template cannot do", "[flash_backward]") {
  const FlashBackwardPlan a = plan_flash_backward_kernel(spec_of("", "causal", DType::BF16, 64, "sm_80"));
  const FlashBackwardPlan b = plan_flash_backward_kernel(spec_of("", "causal", DType::F16, 64, "sm_80"));
  const FlashBackwardPlan c = plan_flash_backward_kernel(spec_of("softcap", "causal", DType::BF16, 64, "sm_80"));
  CHECK(a.key.family == std::string(kFamily));
  CHECK(a.key.serialize() != b.key.serialize());
  CHECK(a.key.serialize() != c.key.serialize());
  CHECK(a.key.serialize() ==
        plan_flash_backward_kernel(spec_of("", "causal", DType::BF16, 64, "sm_80")).key.serialize());
  CHECK_THROWS_AS(plan_flash_backward_kernel(spec_of("", "", DType::F32, 64, "sm_80")), RuntimeError);
  CHECK_THROWS_AS(plan_flash_backward_kernel(spec_of("", "", DType::BF16, 256, "sm_80")), RuntimeError);
  CHECK_THROWS_AS(plan_flash_backward_kernel(spec_of("causal", "", DType::BF16, 64, "sm_80")), RuntimeError);
}

TEST_CASE("The generated derivative is the constant 1 only when the score mod adds to the score", "[flash_backward]") {
  const FlashBackwardSpec none = spec_of("", "", DType::BF16, 64, "sm_80");
  const FlashBackwardSpec alibi = spec_of("alibi", "", DType::BF16, 64, "sm_80");
  const FlashBackwardSpec softcap = spec_of("softcap", "", DType::BF16, 64, "sm_80");
  CHECK_THAT(flash_backward_mods(none).text, Catch::Contains("kHasScoreGrad = false"));
  CHECK_THAT(flash_backward_mods(alibi).text, Catch::Contains("kHasScoreGrad = false"));
  const std::string text = flash_backward_mods(softcap).text;
  CHECK_THAT(text, Catch::Contains("kHasScoreGrad = true"));
  CHECK_THAT(text, Catch::Contains("tanh"));  // d/ds cap tanh(s / cap) = 1 - tanh(s / cap)^2
}

TEST_CASE("The backward kernels compile to cubin without spills for sm_80 and sm_90", "[nvrtc][cuda][flash_backward]") {
  if (!nvrtc_or_warn()) return;
  auto [score_name, mask_name, dtype, head_dim, arch] =
      GENERATE(table<const char*, const char*, DType, int, const char*>({
          {"", "", DType::BF16, 64, "sm_80"},
          {"", "causal", DType::BF16, 128, "sm_80"},
          {"softcap", "sliding_window_causal", DType::F16, 64, "sm_90"},
          {"softcap_alibi", "document_causal", DType::BF16, 128, "sm_90"},
          {"alibi", "causal", DType::F16, 128, "sm_80"},
      }));
  CAPTURE(score_name, mask_name, dtype_name(dtype), head_dim, arch);
  const FlashBackwardPlan plan = plan_flash_backward_kernel(spec_of(score_name, mask_name, dtype, head_dim, arch));
  NvrtcOptions options = flash_backward_nvrtc_options(plan.spec);
  options.extra.push_back("--ptxas-options=-v");  // the resource report goes to the log
  CompiledKernel kernel = Nvrtc::get().compile(flash_backward_program(plan, flash_backward_mods(plan.spec)), options);
  INFO(kernel.log);
  for (const char* entry : {kPreprocessEntry, kEntry, kConvertEntry}) {
    CHECK(kernel.ptx.find(std::string(".entry ") + entry + "(") != std::string::npos);
  }
  REQUIRE(kernel.cubin.size() > 4);
  CHECK(std::string(kernel.cubin.data() + 1, 3) == "ELF");
  const std::vector<KernelResources> report = resources(kernel.log);
  CHECK(report.size() == 3);
  for (const KernelResources& r : report) {
    CAPTURE(r.name, r.registers);
    CHECK(r.spill_stores == 0);
    CHECK(r.spill_loads == 0);
    CHECK(r.registers > 0);
    CHECK(r.registers <= 255);
  }
}
