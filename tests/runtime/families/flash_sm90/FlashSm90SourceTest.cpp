// The Hopper family's compile side (runtime/families/flash_sm90/FlashSm90Source.h): plans and keys,
// and the translation unit compiled by NVRTC for sm_90a on this machine (no GPU needed): every
// built-in mod and composition at head dims 64 and 128, and the widest ones at 256, without register
// spills or ptxas performance advisories, with wgmma and tensor-map copies in the PTX: 32 compiles,
// 20-30 s of CPU on the 2-core build machine (two at a time).
//
// ATTNC_PTXAS_REPORT=FILE appends one line per compiled configuration (registers, spills, time);
// docs/cuda-backend.md's Hopper table comes from it.

#include "runtime/families/flash_sm90/FlashSm90Source.h"

#include <sys/resource.h>
#include <algorithm>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <future>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "runtime/core/Mods.h"
#include "runtime/core/RuntimeError.h"
#include "runtime/cuda/CompileThroughCache.h"
#include "runtime/cuda/KernelSource.h"
#include "runtime/cuda/Nvrtc.h"
#include "runtime/families/flash/FlashSource.h"
#include "tests/support/CudaTesting.h"

using namespace attnc;
using namespace attnc::flash_sm90;

namespace {

struct ModPair {
  std::string name;
  std::optional<Mod> score, mask;
};

// Every built-in mod, alone, and the compositions models use.
std::vector<ModPair> built_in_mods() {
  Tensor prefix = Tensor::from_vector(std::vector<int32_t>{3, 5}, {2});
  Tensor ids = Tensor::from_vector(std::vector<int32_t>(2 * 64, 0), {2, 64});
  Tensor bias = Tensor::from_vector(std::vector<float>(64 * 64, 0.5f), {1, 1, 64, 64});
  return {
      {"none", std::nullopt, std::nullopt},
      {"causal", std::nullopt, causal_mod()},
      {"causal_bottom_right", std::nullopt, causal_bottom_right_mod()},
      {"sliding_window", std::nullopt, sliding_window_mod(16, true)},
      {"sliding_window_symmetric", std::nullopt, sliding_window_mod(16, false)},
      {"prefix_lm", std::nullopt, prefix_lm_mod(prefix)},
      {"document", std::nullopt, document_mask_mod(ids)},
      {"alibi", alibi_mod(8), std::nullopt},
      {"additive_bias", additive_bias_mod(bias), std::nullopt},
      {"softcap", softcap_mod(50.0f), std::nullopt},
      {"alibi+causal", alibi_mod(8), causal_mod()},
      {"softcap+sliding_window", softcap_mod(50.0f), sliding_window_mod(4096, true)},
      {"document&causal", std::nullopt, and_masks({document_mask_mod(ids), causal_mod()})},
      {"alibi.softcap+document&causal", compose_score_mods({alibi_mod(8), softcap_mod(30.0f)}),
       and_masks({document_mask_mod(ids), causal_mod()})},
  };
}

FlashSm90Spec spec_of(const ModPair& pair, DType dtype, int head_dim) {
  FlashSm90Spec spec;
  spec.score = ModSpec::of(pair.score ? &*pair.score : nullptr);
  spec.mask = ModSpec::of(pair.mask ? &*pair.mask : nullptr);
  spec.dtype = dtype;
  spec.head_dim = spec.head_dim_v = head_dim;
  return spec;
}

struct Compiled {
  cuda::CompiledKernel kernel;
  double seconds = 0;  // wall clock
  double cpu_seconds =
      0;  // the process's CPU time (NVRTC may use helper threads): what the compile costs on idle cores
};

double thread_cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         1e-6 * double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec);
}

Compiled compile_with_report(const FlashSm90Plan& plan) {
  cuda::NvrtcOptions options = flash_sm90_nvrtc_options(plan.spec);
  options.extra = {"--ptxas-options=-v"};
  const cuda::KernelProgram program = flash_sm90_program(plan, flash_sm90_mods(plan.spec));
  const auto start = std::chrono::steady_clock::now();
  const double cpu_start = thread_cpu_seconds();
  Compiled compiled{cuda::Nvrtc::get().compile(program, options), 0, 0};
  compiled.cpu_seconds = thread_cpu_seconds() - cpu_start;
  compiled.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return compiled;
}

}  // namespace

TEST_CASE("a Hopper plan checks its spec and derives every key field from it", "[cuda][flash_sm90]") {
  const ModPair pair{"alibi+causal", alibi_mod(8), causal_mod()};
  const FlashSm90Plan plan = plan_flash_sm90_kernel(spec_of(pair, DType::F16, 128));
  CHECK(plan.key.family == "flash_sm90");
  CHECK(*plan.key.find("score_mod") == pair.score->signature().hex());
  CHECK(*plan.key.find("mask_mod") == pair.mask->signature().hex());
  CHECK(*plan.key.find("dtype") == "fp16");
  CHECK(*plan.key.find("block_n") == "128");
  CHECK(*plan.key.find("stages") == "2");
  CHECK(*plan.key.find("arch") == "sm_90a");
  CHECK(*plan.key.find("option") == "--gpu-architecture=sm_90a");
  CHECK(plan.tiles == choose_sm90_tiles(128, 128));
  // Only the Hopper templates (and what they include) are hashed into the key.
  const cuda::KernelProgram program = flash_sm90_program(plan, flash_sm90_mods(plan.spec));
  std::vector<cuda::SourceHeader> templates(program.headers.begin(), program.headers.end() - 1);
  CHECK(*plan.key.find("template") == cuda::template_hash(templates));
  std::vector<std::string> names;
  for (const cuda::SourceHeader& header : templates) names.push_back(header.name);
  CHECK(std::find(names.begin(), names.end(), "hopper_primitives.cuh") != names.end());
  CHECK(std::find(names.begin(), names.end(), "flash_attention.cuh") == names.end());

  CHECK(choose_sm90_tiles(64, 64) == Sm90Tiles{128, 3});
  CHECK(choose_sm90_tiles(256, 256) == Sm90Tiles{80, 2});
  for (int d : {64, 128, 192, 256}) {
    CHECK(flash_sm90_shared_bytes(choose_sm90_tiles(d, d), d, d) <= 227 * 1024);
  }
  CHECK(supports_flash_sm90(DType::BF16, 64, 64));
  CHECK_FALSE(supports_flash_sm90(DType::BF16, 96, 96));
  CHECK_FALSE(supports_flash_sm90(DType::F32, 64, 64));
  CHECK_THROWS_WITH(plan_flash_sm90_kernel(spec_of(ModPair{"", causal_mod(), std::nullopt}, DType::BF16, 64)),
                    Catch::Contains("is not a score mod"));
  CHECK_THROWS_WITH(plan_flash_sm90_kernel(spec_of(ModPair{}, DType::F32, 64)), Catch::Contains("bf16 or fp16"));
  CHECK_THROWS_WITH(plan_flash_sm90_kernel(spec_of(ModPair{}, DType::BF16, 96)), Catch::Contains("head dims 64, 128"));
}

TEST_CASE("every built-in mod compiles into the Hopper template for sm_90a without spills",
          "[cuda][flash_sm90][ptxas]") {
  if (!test::nvrtc_or_warn()) return;
  struct Config {
    ModPair mods;
    DType dtype;
    int head_dim;
  };
  std::vector<Config> configs;
  for (const ModPair& pair : built_in_mods()) {
    for (int head_dim : {64, 128}) configs.push_back({pair, DType::BF16, head_dim});
  }
  // Head dim 256 (the tightest register budget) with no mod and the largest composition, and fp16.
  for (const ModPair& pair : built_in_mods()) {
    if (pair.name == "none" || pair.name.starts_with("alibi.softcap")) configs.push_back({pair, DType::BF16, 256});
    if (pair.name == "none") configs.push_back({pair, DType::BF16, 192});
    if (pair.name.starts_with("alibi.softcap")) configs.push_back({pair, DType::F16, 128});
  }
  // Two compiles at a time (the build machine has two cores).
  std::vector<std::future<Compiled>> compiled;
  std::vector<FlashSm90Plan> plans;
  for (const Config& c : configs) plans.push_back(plan_flash_sm90_kernel(spec_of(c.mods, c.dtype, c.head_dim)));
  std::ofstream report;
  if (const char* path = std::getenv("ATTNC_PTXAS_REPORT")) report.open(path, std::ios::app);
  for (size_t first = 0; first < plans.size(); first += 2) {
    std::vector<std::future<Compiled>> batch;
    for (size_t i = first; i < std::min(first + 2, plans.size()); ++i) {
      batch.push_back(std::async(std::launch::async, [&plans, i] { return compile_with_report(plans[i]); }));
    }
    for (size_t i = first; i < std::min(first + 2, plans.size()); ++i) {
      const Config& c = configs[i];
      const Compiled result = batch[i - first].get();
      CAPTURE(c.mods.name, dtype_name(c.dtype), c.head_dim);
      INFO(result.kernel.log);
      CHECK(result.kernel.ptx.find("wgmma.mma_async.sync.aligned") != std::string::npos);
      CHECK(result.kernel.ptx.find("cp.async.bulk.tensor.4d.shared::cluster.global") != std::string::npos);
      CHECK(result.kernel.ptx.find("setmaxnreg.inc.sync.aligned.u32 240") != std::string::npos);
      std::smatch match;
      REQUIRE(std::regex_search(
          result.kernel.log, match,
          std::regex(R"((\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads)")));
      CHECK(match[2] == "0");
      CHECK(match[3] == "0");
      // No performance advisories from ptxas (C75xx): serialised wgmmas, fences it had to insert,
      // setmaxnreg ignored.
      CHECK(result.kernel.log.find("(C75") == std::string::npos);
      std::smatch regs;
      REQUIRE(std::regex_search(result.kernel.log, regs, std::regex(R"(Used (\d+) registers)")));
      if (report.is_open()) {
        report << "sm_90a " << dtype_name(c.dtype) << " d" << c.head_dim << " " << c.mods.name << " regs=" << regs[1]
               << " stack=" << match[1] << " spill_st=" << match[2] << " spill_ld=" << match[3] << " tiles=m128_"
               << to_string(plans[i].tiles)
               << " smem=" << flash_sm90_shared_bytes(plans[i].tiles, c.head_dim, c.head_dim)
               << " seconds=" << result.seconds << "\n";
      }
    }
  }
}

// The cold compile time of one Hopper kernel (causal, bf16, D = 128): codegen, then NVRTC to cubin,
// three times. Run alone on a quiet machine: `test_runtime "[.compile-time]"`; the numbers go to
// ATTNC_PTXAS_REPORT when set (docs/cuda-backend.md quotes them).
TEST_CASE("the cold NVRTC compile time of one Hopper kernel", "[.compile-time]") {
  if (!test::nvrtc_or_warn()) return;
  const ModPair causal{"causal", std::nullopt, causal_mod()};
  std::ofstream report;
  if (const char* path = std::getenv("ATTNC_PTXAS_REPORT")) report.open(path, std::ios::app);
  for (int run = 0; run < 3; ++run) {
    const auto start = std::chrono::steady_clock::now();
    const double cpu_start = thread_cpu_seconds();
    const FlashSm90Plan plan = plan_flash_sm90_kernel(spec_of(causal, DType::BF16, 128));
    const cuda::CompiledKernel kernel = cuda::Nvrtc::get().compile(flash_sm90_program(plan, flash_sm90_mods(plan.spec)),
                                                                   flash_sm90_nvrtc_options(plan.spec));
    const double cpu = thread_cpu_seconds() - cpu_start;
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    CHECK(kernel.cubin.size() > 4);
    // The flash family's kernel for the same mod and sm_90, under the same load, for scale.
    const auto flash_start = std::chrono::steady_clock::now();
    const double flash_cpu_start = thread_cpu_seconds();
    flash::FlashSpec flash_spec;
    flash_spec.mask = ModSpec::of(&*causal.mask);
    flash_spec.arch = "sm_90";
    const flash::FlashPlan flash_plan = flash::plan_flash_kernel(flash_spec);
    cuda::Nvrtc::get().compile(flash::flash_program(flash_plan, flash::flash_mods(flash_plan.spec)),
                               flash::flash_nvrtc_options(flash_plan.spec));
    const double flash_cpu = thread_cpu_seconds() - flash_cpu_start;
    const double flash_wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - flash_start).count();
    WARN("Hopper causal bf16 D=128: " << wall << " s wall, " << cpu << " s CPU; the flash family's for sm_90: "
                                      << flash_wall << " s wall, " << flash_cpu << " s CPU");
    if (report.is_open()) {
      report << "compile causal bf16 d128 sm90a wall=" << wall << " cpu=" << cpu << " flash_sm90 wall=" << flash_wall
             << " cpu=" << flash_cpu << "\n";
    }
  }
}
