// The seam between kernel families: a throw-away third family, written entirely in the test tree
// (row_stats.cuh), that touches nothing in runtime/cache/ or in the other families. It builds its
// key from the generic pieces (a family name, its own fields, the CUDA fields with the hash of its
// own templates), compiles through the unchanged kernel cache with NVRTC to a cubin, and runs its
// template on the CPU under the host emulation with generated mod code, against the interpreter.

#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "attnc_test_mods.cuh"
#include "compiler/CudaCodegen.h"
#include "compiler/Interpreter.h"
#include "runtime/cache/KernelCache.h"
#include "runtime/core/ModSpec.h"
#include "runtime/core/Mods.h"
#include "runtime/cuda/CompileThroughCache.h"
#include "runtime/cuda/KernelSource.h"
#include "runtime/cuda/PackModParams.h"
#include "runtime/emulation/HostEmulation.h"
#include "runtime/families/flash/FlashSource.h"
#include "tests/runtime/families/third/row_stats.cuh"
#include "tests/support/CudaTesting.h"
#include "tests/support/TestPaths.h"
#include "tests/support/TestTensors.h"

using namespace attnc;

namespace {

// ---- The family: everything a family defines, and nothing else ----

constexpr const char* kFamily = "row_stats";
constexpr const char* kEntry = "attnc_row_stats";

std::string template_text() {
  std::ifstream in(attnc::test::source_dir() + "/tests/runtime/families/third/row_stats.cuh");
  std::stringstream text;
  text << in.rdbuf();
  REQUIRE_FALSE(text.str().empty());
  return text.str();
}

// The embedded shared headers the template includes, then the template itself.
std::vector<cuda::SourceHeader> family_headers() {
  std::vector<cuda::SourceHeader> headers = cuda::embedded_headers({"device_primitives.cuh", "generated_mods.cuh"});
  headers.push_back({"row_stats.cuh", template_text(), false});
  return headers;
}

cuda::NvrtcOptions options_for(const std::string& arch) {
  cuda::NvrtcOptions options;
  options.arch = arch;
  return options;
}

KernelKey row_stats_key(const ModSpec& score, const ModSpec& mask, const std::string& arch) {
  KernelKey key;
  key.family = kFamily;
  key.add("score_mod", score ? score.signature()->hex() : "none");
  key.add("mask_mod", mask ? mask.signature()->hex() : "none");
  cuda::add_cuda_key_fields(key, options_for(arch), cuda::template_hash(family_headers()));
  return key;
}

cuda::KernelProgram row_stats_program(const ir::CudaModSource& mods) {
  cuda::KernelProgram program;
  program.headers = family_headers();
  program.headers.push_back({cuda::kGeneratedModsHeader, mods.text, true});
  program.source = "#include \"attnc_mods.cuh\"\n#include \"generated_mods.cuh\"\n#include \"row_stats.cuh\"\n";
  return program;
}

// ---- The expected results: the interpreter at every point ----

struct Stats {
  std::vector<float> total, count;
  std::vector<float> magnitude;  // the sum of |value| per row (interpreted only), for error bounds
};

Stats interpreted(const Tensor& scores, const Mod* score, const Mod* mask) {
  const int64_t B = scores.size(0), H = scores.size(1), Q = scores.size(2), K = scores.size(3);
  const std::vector<float> s = scores.to_float_vector();
  Stats stats;
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t h = 0; h < H; ++h) {
      for (int64_t q = 0; q < Q; ++q) {
        double total = 0, magnitude = 0;
        float count = 0;
        for (int64_t kv = 0; kv < K; ++kv) {
          const float value = s[static_cast<size_t>(((b * H + h) * Q + q) * K + kv)];
          auto at = [&](const Mod& mod, float score_value) {
            ir::Environment env = mod.environment(int32_t(Q), int32_t(K), int32_t(H), int32_t(H));
            env.set_point(int32_t(b), int32_t(h), int32_t(q), int32_t(kv), score_value);
            return ir::evaluate(mod.def().body, env);
          };
          if (mask && !at(*mask, 0.0f).as_bool()) continue;
          const float modded = score ? at(*score, value).f : value;
          total += modded;
          magnitude += std::fabs(modded);
          count += 1;
        }
        stats.total.push_back(float(total));
        stats.magnitude.push_back(float(magnitude));
        stats.count.push_back(count);
      }
    }
  }
  return stats;
}

std::vector<ir::ParamBinding> host_bindings(const Mod* mod) {
  if (mod == nullptr) return {};
  ir::Environment env;
  mod->bind_into(env);
  return env.params;
}

// Runs row_stats.cuh with the generated traits `Gen` under the host emulation.
template <class Gen>
Stats emulated(const Tensor& scores, const Mod* score, const Mod* mask) {
  REQUIRE(std::string(Gen::kScoreSignature) == (score ? score->signature().hex() : "none"));
  REQUIRE(std::string(Gen::kMaskSignature) == (mask ? mask->signature().hex() : "none"));
  const int32_t B = int32_t(scores.size(0)), H = int32_t(scores.size(1)), Q = int32_t(scores.size(2)),
                K = int32_t(scores.size(3));
  Stats stats;
  stats.total.assign(size_t(B) * H * Q, NAN);
  stats.count.assign(size_t(B) * H * Q, NAN);
  const ir::CudaModSource layout =
      ir::generate_cuda_mods(score ? &score->def() : nullptr, score ? score->storage_types() : std::vector<DType>{},
                             mask ? &mask->def() : nullptr, mask ? mask->storage_types() : std::vector<DType>{});
  REQUIRE(layout.params_size == sizeof(typename Gen::Params));
  const std::vector<unsigned char> bytes = cuda::pack_mod_params(layout, host_bindings(score), host_bindings(mask));
  row_stats_family::RowStatsParams<typename Gen::Params> p{};
  std::memcpy(static_cast<void*>(&p.mods), bytes.data(), bytes.size());
  p.scores = static_cast<const float*>(scores.data());
  p.total = stats.total.data();
  p.count = stats.count.data();
  p.batch = B, p.num_heads = H, p.q_len = Q, p.kv_len = K;
  host_emulation::launch({uint32_t(Q), uint32_t(H), uint32_t(B)}, {32, 1, 1}, 0,
                         [&] { row_stats_family::row_stats<Gen>(p); });
  return stats;
}

// `relative_per_value`: the error each score mod value may carry (tanh.approx's 2^-11 for softcap,
// runtime/kernels/fast_math.cuh), on top of the sums' rounding.
void check_same(const Stats& got, const Stats& expected, float relative_per_value = 0.0f) {
  REQUIRE(got.total.size() == expected.total.size());
  for (size_t i = 0; i < got.total.size(); ++i) {
    CAPTURE(i);
    CHECK(got.count[i] == expected.count[i]);
    CHECK(std::fabs(got.total[i] - expected.total[i]) <=
          1e-4f * std::max(1.0f, std::fabs(expected.total[i])) + relative_per_value * expected.magnitude[i]);
  }
}

}  // namespace

TEST_CASE("a third family, added in the test tree, keys, compiles through the cache and runs emulated",
          "[family][cuda]") {
  const Tensor ids =
      Tensor::from_vector(std::vector<int32_t>{0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
                                               2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2},
                          {1, 40});
  const Mod window = sliding_window_mod(8, true);
  const Mod composed_score = compose_score_mods({alibi_mod(4), softcap_mod(5.0f)});
  const Mod composed_mask = and_masks({causal_mod(), document_mask_mod(ids)});
  const Tensor scores = test::normal_tensor(3, DType::F32, {1, 4, 37, 40});

  SECTION("its template runs under the host emulation with generated mod code") {
    check_same(emulated<Gen_window_causal>(scores, nullptr, &window), interpreted(scores, nullptr, &window));
    check_same(emulated<Gen_composition>(scores, &composed_score, &composed_mask),
               interpreted(scores, &composed_score, &composed_mask), std::exp2(-10.9f));
  }

  SECTION("its key is its own: another family's fields and templates do not enter it") {
    const KernelKey key = row_stats_key({}, ModSpec::of(&window), "sm_80");
    CHECK(key.family == "row_stats");
    flash::FlashSpec flash_spec;
    flash_spec.mask = ModSpec::of(&window);
    flash_spec.arch = "sm_80";
    const KernelKey flash_key = flash::plan_flash_kernel(flash_spec).key;
    CHECK(key.hash_hex() != flash_key.hash_hex());
    CHECK(*key.find("template") != *flash_key.find("template"));
    CHECK(*key.find("mask_mod") == *flash_key.find("mask_mod"));  // the same mod, the same signature
  }

  SECTION("it compiles through the kernel cache to a cubin, once") {
    if (!test::nvrtc_or_warn()) return;
    KernelCacheOptions memory;
    memory.use_disk = false;
    KernelCache cache(memory);
    const ModSpec score = ModSpec::of(&composed_score), mask = ModSpec::of(&composed_mask);
    const KernelKey key = row_stats_key(score, mask, "sm_90");
    const ir::CudaModSource mods = ir::generate_cuda_mods(score.get(), score.storage, mask.get(), mask.storage);
    auto make_program = [&] { return row_stats_program(mods); };
    const cuda::CudaBinary first = cuda::compile_through_cache(cache, key, kEntry, make_program, options_for("sm_90"));
    CHECK(first.source == CacheSource::Compiled);
    CHECK(first.key.family == "row_stats");
    CHECK(*first.key.find("nvrtc") != cuda::kAnyNvrtcVersion);
    REQUIRE(first.kernel->payload.size() > 4);
    CHECK(first.kernel->payload.substr(1, 3) == "ELF");
    CHECK(first.kernel->metadata == "entry=attnc_row_stats\n");
    const cuda::CudaBinary second = cuda::compile_through_cache(cache, key, kEntry, make_program, options_for("sm_90"));
    CHECK(second.source == CacheSource::Memory);
    CHECK(cache.stats().compiles == 1);
  }
}
