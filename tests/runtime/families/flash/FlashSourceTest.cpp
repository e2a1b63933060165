// The flash family's compile side (runtime/families/flash/FlashSource.h): plans and keys, the
// translation unit (flattened into one file, compiled by NVRTC without spills), and the seam
// between families: the key hashes only the flash templates.

#include "runtime/families/flash/FlashSource.h"

#include <string>

#include <catch2/catch.hpp>

#include "runtime/core/RuntimeError.h"
#include "runtime/cuda/CompileThroughCache.h"
#include "runtime/cuda/KernelSource.h"
#include "runtime/cuda/Nvrtc.h"
#include "tests/support/CudaTesting.h"
#include "tests/support/TestMods.h"

using namespace attnc;
using namespace attnc::cuda;
using namespace attnc::flash;
using namespace attnc::test;

namespace {

FlashSpec spec_of(const char* score, const char* mask, DType dtype, int head_dim, const char* arch) {
  FlashSpec spec;
  spec.score = mod_spec_named(score);
  spec.mask = mod_spec_named(mask);
  spec.dtype = dtype;
  spec.head_dim = spec.head_dim_v = head_dim;
  spec.arch = arch;
  return spec;
}

}  // namespace

TEST_CASE("Mods fused into the flash-attention template compile to PTX and cubin without spills",
          "[nvrtc][cuda][template]") {
  if (!nvrtc_or_warn()) return;
  auto [score_name, mask_name, dtype, head_dim, arch] =
      GENERATE(table<const char*, const char*, DType, int, const char*>({
          {"", "", DType::BF16, 128, "sm_80"},
          {"", "causal", DType::BF16, 128, "sm_90"},
          {"alibi", "sliding_window_causal", DType::F16, 64, "sm_80"},
          {"softcap_alibi", "document_causal", DType::BF16, 64, "sm_90"},
          {"", "causal", DType::BF16, 128, "sm_90a"},
          {"", "", DType::BF16, 256, "sm_80"},
          {"softcap_alibi", "document_causal", DType::F16, 256, "sm_90"},
      }));
  CAPTURE(score_name, mask_name, dtype_name(dtype), head_dim, arch);
  const FlashPlan plan = plan_flash_kernel(spec_of(score_name, mask_name, dtype, head_dim, arch));
  CHECK(plan.tile.block_m > 0);
  NvrtcOptions options = flash_nvrtc_options(plan.spec);
  options.extra = {"--ptxas-options=-v"};  // the resource report goes to the log
  CompiledKernel kernel = Nvrtc::get().compile(flash_program(plan, flash_mods(plan.spec)), options);
  INFO(kernel.log);
  CHECK(kernel.ptx.find(std::string(".entry ") + kEntry) != std::string::npos);
  REQUIRE(kernel.cubin.size() > 4);
  CHECK(std::string(kernel.cubin.data() + 1, 3) == "ELF");
  CHECK_THAT(kernel.log, Catch::Contains("0 bytes spill stores") && Catch::Contains("0 bytes spill loads"));
}

TEST_CASE("The kernel translation unit flattens into one self-contained file", "[nvrtc][cuda]") {
  const FlashPlan plan = plan_flash_kernel(spec_of("", "", DType::BF16, 128, "sm_80"));
  const KernelProgram program = flash_program(plan, flash_mods(plan.spec));
  std::string flat = flatten_program(program);
  for (const SourceHeader& header : program.headers) {  // every include of a program header was inlined
    CAPTURE(header.name);
    CHECK(flat.find("\n#include \"" + header.name + "\"") == std::string::npos);
  }
  CHECK(flat.find("#pragma once") == std::string::npos);
  CHECK(flat.find("namespace attnc_abi") != std::string::npos);
  CHECK(flat.find("namespace attnc_gen") != std::string::npos);
  CHECK(flat.find(kEntry) != std::string::npos);
  // mod_abi.cuh is included by the generated header and by the entry's template, but inlined once.
  const std::string marker = "struct TensorParam {";
  CHECK(flat.find(marker) == flat.rfind(marker));

  if (!nvrtc_or_warn()) return;
  SECTION("which NVRTC compiles as it is") {
    KernelProgram single;
    single.source = flat;
    CHECK_NOTHROW(Nvrtc::get().compile(single, NvrtcOptions{}));
  }
}

TEST_CASE("a flash plan checks its spec and derives every key field from it", "[cuda][flash]") {
  const FlashPlan plan = plan_flash_kernel(spec_of("alibi", "causal", DType::F16, 64, "sm_86"));
  CHECK(plan.key.family == "flash");
  CHECK(*plan.key.find("score_mod") == mod_spec_named("alibi").signature()->hex());
  CHECK(*plan.key.find("mask_mod") == mod_spec_named("causal").signature()->hex());
  CHECK(*plan.key.find("dtype") == "fp16");
  CHECK(*plan.key.find("head_dim") == "64");
  CHECK(*plan.key.find("block_m") == std::to_string(plan.tile.block_m));
  CHECK(*plan.key.find("arch") == "sm_86");
  CHECK(*plan.key.find("nvrtc") == kAnyNvrtcVersion);
  CHECK(*plan.key.find("option") == "--gpu-architecture=sm_86");
  // Nothing but the flash templates (and what they include) is hashed into the key.
  const KernelProgram program = flash_program(plan, flash_mods(plan.spec));
  std::vector<SourceHeader> templates(program.headers.begin(), program.headers.end() - 1);
  CHECK(*plan.key.find("template") == template_hash(templates));
  for (const SourceHeader& header : templates) {
    CAPTURE(header.name);
    CHECK(header.name != "mod_probe.cuh");
  }

  CHECK_THROWS_WITH(plan_flash_kernel(spec_of("causal", "", DType::BF16, 64, "sm_80")),
                    Catch::Contains("is not a score mod"));
  CHECK_THROWS_WITH(plan_flash_kernel(spec_of("", "", DType::F32, 64, "sm_80")), Catch::Contains("bf16 or fp16"));
  CHECK_THROWS_WITH(plan_flash_kernel(spec_of("", "", DType::BF16, 72, "sm_80")), Catch::Contains("head dims"));
  CHECK_THROWS_WITH(plan_flash_kernel(spec_of("", "", DType::BF16, 64, "sm_75")),
                    Catch::Contains("unknown GPU architecture"));
}
