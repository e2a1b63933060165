// The mod probe family (runtime/families/probe/ModProbe.h): every built-in mod and some
// compositions compile through the probe's translation unit to PTX and cubin for sm_80 and sm_90;
// the probe's key names only its own templates; its CPU counterpart agrees with the interpreter;
// and on a GPU, the device agrees with the CPU point by point (skipped, with a WARN, without one).

#include "runtime/families/probe/ModProbe.h"

#include <random>
#include <string>

#include <catch2/catch.hpp>

#include "compiler/Interpreter.h"
#include "runtime/core/Mods.h"
#include "runtime/cuda/CompileThroughCache.h"
#include "runtime/cuda/DeviceTensor.h"
#include "runtime/cuda/Nvrtc.h"
#include "tests/support/CudaTesting.h"
#include "tests/support/TestMods.h"

using namespace attnc;
using namespace attnc::probe;
using namespace attnc::test;

TEST_CASE("Every built-in mod and some compositions compile to PTX and cubin for sm_80 and sm_90", "[nvrtc][cuda]") {
  if (!nvrtc_or_warn()) return;
  auto [score_name, mask_name] = GENERATE(table<const char*, const char*>({
      {"", ""},
      {"", "causal"},
      {"", "causal_bottom_right"},
      {"", "sliding_window_causal"},
      {"", "sliding_window_symmetric"},
      {"alibi", ""},
      {"", "prefix_lm"},
      {"", "document"},
      {"additive_bias", ""},
      {"softcap", ""},
      {"softcap", "causal"},
      {"softcap_alibi", "document_causal"},
      {"alibi", "window_or_sink"},
      {"everything", "prefix_lm"},
  }));
  const std::string arch = GENERATE("sm_80", "sm_90");
  const bool check_bounds = GENERATE(false, true);
  CAPTURE(score_name, mask_name, arch, check_bounds);
  const ProbePlan plan =
      plan_probe_kernel(ProbeSpec{mod_spec_named(score_name), mod_spec_named(mask_name), arch, check_bounds});
  const cuda::KernelProgram program = probe_program(plan, probe_mods(plan.spec));
  cuda::CompiledKernel kernel = cuda::Nvrtc::get().compile(program, probe_nvrtc_options(plan.spec));
  INFO(kernel.log);
  CHECK(kernel.ptx.find(std::string(".entry ") + kEntry) != std::string::npos);
  CHECK(kernel.ptx.find(".target " + arch) != std::string::npos);
  REQUIRE(kernel.cubin.size() > 4);
  CHECK(std::string(kernel.cubin.data() + 1, 3) == "ELF");  // a device ELF image
  CHECK(kernel.arch == arch);
  CHECK(kernel.options.front() == "--gpu-architecture=" + arch);
  CHECK(kernel.source == program.source);
}

TEST_CASE("the probe's key is its own family's, with only its own templates hashed", "[cuda][probe]") {
  const ProbePlan plan = plan_probe_kernel(ProbeSpec{{}, mod_spec_named("causal"), "sm_90a", false});
  CHECK(plan.key.family == "probe");
  CHECK(*plan.key.find("nvrtc") == cuda::kAnyNvrtcVersion);
  CHECK(*plan.key.find("arch") == "sm_90a");
  CHECK(*plan.key.find("mask_mod") == mod_spec_named("causal").signature()->hex());
  const cuda::KernelProgram program = probe_program(plan, probe_mods(plan.spec));
  for (const cuda::SourceHeader& header : program.headers) {
    CAPTURE(header.name);
    CHECK(header.name != "flash_attention.cuh");
  }
  CHECK_THROWS_WITH(plan_probe_kernel(ProbeSpec{mod_spec_named("causal"), {}, "sm_80", false}),
                    Catch::Contains("is not a score mod"));
  CHECK_THROWS_WITH(plan_probe_kernel(ProbeSpec{{}, {}, "sm_75", false}), Catch::Contains("unknown GPU architecture"));
}

namespace {

// Random points over sizes small enough that every mask mod has kept and dropped points.
ProbeInputs random_inputs(uint32_t seed, int count) {
  std::mt19937 rng(seed);
  ProbeInputs inputs;
  for (int i = 0; i < count; ++i) {
    const int32_t q_len = 1 + static_cast<int32_t>(rng() % 40), kv_len = 1 + static_cast<int32_t>(rng() % 40);
    const int32_t q = static_cast<int32_t>(rng() % q_len), kv = static_cast<int32_t>(rng() % kv_len);
    inputs.points.push_back(
        {static_cast<int32_t>(rng() % 2), static_cast<int32_t>(rng() % 4), q, kv, q_len, kv_len, 4, 2});
    inputs.scores.push_back(std::uniform_real_distribution<float>(-8.0f, 8.0f)(rng));
    const int32_t q_last = q + static_cast<int32_t>(rng() % (q_len - q)),
                  kv_last = kv + static_cast<int32_t>(rng() % (kv_len - kv));
    inputs.tiles.push_back({q, q_last, kv, kv_last});
  }
  return inputs;
}

}  // namespace

TEST_CASE("the probe's CPU counterpart agrees with the interpreter point by point", "[probe]") {
  const Tensor ids =
      Tensor::from_vector(std::vector<int32_t>{0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3,
                                               3, 3, 3, 3, 3, 3, 3, 3, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 5, 5},
                          {1, 40});
  const Mod score = compose_score_mods({alibi_mod(4), softcap_mod(3.0f)});
  const Mod mask = and_masks({document_mask_mod(ids), causal_mod()});
  ProbeInputs inputs = random_inputs(7, 300);
  for (auto& point : inputs.points) point.b = 0;  // the ids have one batch row
  const ProbeResults results = probe_on_cpu(inputs, &score, &mask, /*check_bounds=*/true);
  REQUIRE(results.scores.size() == inputs.points.size());
  REQUIRE(results.classes.size() == inputs.tiles.size());
  int kept = 0;
  for (size_t i = 0; i < inputs.points.size(); ++i) {
    const attnc_abi::ModPoint& p = inputs.points[i];
    CAPTURE(i, p.b, p.h, p.q_idx, p.kv_idx, p.q_len, p.kv_len);
    ir::Environment env = score.environment(p.q_len, p.kv_len, p.num_heads, p.num_kv_heads);
    env.set_point(p.b, p.h, p.q_idx, p.kv_idx, inputs.scores[i]);
    CHECK(results.scores[i] == ir::evaluate(score.def().body, env).f);
    ir::Environment mask_env = mask.environment(p.q_len, p.kv_len, p.num_heads, p.num_kv_heads);
    mask_env.set_point(p.b, p.h, p.q_idx, p.kv_idx, 0.0f);
    const bool keep = ir::evaluate(mask.def().body, mask_env).as_bool();
    CHECK(results.keep[i] == (keep ? 1 : 0));
    kept += keep;
  }
  CHECK(kept > 10);
  CHECK(kept < 290);
  SECTION("and reports an out-of-range index as the GPU does") {
    ProbeInputs beyond;
    beyond.points.push_back({0, 0, 45, 45, 50, 50, 4, 2});
    beyond.scores.push_back(0.0f);
    CHECK_THROWS_WITH(probe_on_cpu(beyond, nullptr, &mask, true),
                      Catch::Contains("index 45 is out of range for dimension 1 of parameter 'ids' (extent 40)"));
  }
  SECTION("and refuses inputs that do not fit together") {
    inputs.scores.pop_back();
    CHECK_THROWS_WITH(probe_on_cpu(inputs, &score, &mask, false), Catch::Contains("one score per point"));
  }
}

TEST_CASE("on a GPU, the probe agrees with its CPU counterpart point by point", "[cuda][gpu][probe]") {
  if (!gpu_or_warn()) return;
  const Mod score = compose_score_mods({alibi_mod(4), softcap_mod(3.0f)});
  const Mod mask = sliding_window_mod(7, true);
  const ProbeInputs inputs = random_inputs(11, 1000);
  const ProbeResults expected = probe_on_cpu(inputs, &score, &mask, false);
  KernelCacheOptions memory;
  memory.use_disk = false;
  KernelCache cache(memory);
  ProbeSpec spec{ModSpec::of(&score), ModSpec::of(&mask), cuda::CudaDriver::get().device_info(0).arch(), false};
  auto kernel = load_probe_kernel(plan_probe_kernel(spec), cache);
  const Mod score_device = on_device(score);
  const ProbeResults got = kernel->run(inputs, &score_device, &mask);
  CHECK(got.keep == expected.keep);
  CHECK(got.classes == expected.classes);
  REQUIRE(got.scores.size() == expected.scores.size());
  int far = 0;
  for (size_t i = 0; i < got.scores.size(); ++i) far += std::abs(got.scores[i] - expected.scores[i]) > 1e-5f;
  CHECK(far == 0);
}
