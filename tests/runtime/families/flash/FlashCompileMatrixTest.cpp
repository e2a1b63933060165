// The full compile matrix of the CUDA backend: every built-in mod and the compositions real models
// use, for each dtype, head dim and architecture, compiled through NVRTC into the real
// flash-attention template to cubin: 112 compiles at head dims 64 and 128, plus 36 at 32, 96 and
// 256; about a minute on the 2-core build machine
// (run alone with `test_runtime "[cuda-matrix]"`). Without a GPU this is as far as a kernel goes:
// it proves every specialisation is accepted by NVRTC and ptxas.

#include <optional>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "runtime/cache/KernelCache.h"
#include "runtime/core/Mods.h"
#include "runtime/cuda/Nvrtc.h"
#include "runtime/families/flash/FlashCuda.h"
#include "tests/support/CudaTesting.h"

using namespace attnc;

namespace {

struct ModPair {
  std::string name;
  std::optional<Mod> score, mask;
};

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
      {"alibi.softcap", compose_score_mods({alibi_mod(8), softcap_mod(30.0f)}), std::nullopt},
  };
}

}  // namespace

TEST_CASE("every built-in mod compiles into the flash template for each dtype, head dim and arch",
          "[cuda][cuda-matrix]") {
  if (!cuda::Nvrtc::available()) {
    WARN("NVRTC cannot be loaded here: " << cuda::Nvrtc::unavailable_reason());
    return;
  }
  KernelCache cache(KernelCacheOptions{{}, /*use_disk=*/false});
  int compiled = 0;
  for (const ModPair& mods : built_in_mods()) {
    for (DType dtype : {DType::BF16, DType::F16}) {
      for (int head_dim : {64, 128}) {
        for (const char* arch : {"sm_80", "sm_90"}) {
          CAPTURE(mods.name, dtype_name(dtype), head_dim, arch);
          auto kernel = test::load_flash(test::flash_spec(mods.score ? &*mods.score : nullptr,
                                                          mods.mask ? &*mods.mask : nullptr, dtype, head_dim, arch),
                                         cache);
          REQUIRE(kernel != nullptr);
          CHECK(kernel->cubin().size() > 1000);
          ++compiled;
        }
      }
    }
  }
  CHECK(compiled == static_cast<int>(built_in_mods().size()) * 8);
  WARN("compiled " << compiled << " kernels to cubin");
}

TEST_CASE("the other head dims the template supports compile with and without mods", "[cuda][cuda-matrix]") {
  if (!cuda::Nvrtc::available()) {
    WARN("NVRTC cannot be loaded here: " << cuda::Nvrtc::unavailable_reason());
    return;
  }
  KernelCache cache(KernelCacheOptions{{}, /*use_disk=*/false});
  Mod causal = causal_mod(), alibi = alibi_mod(8);
  struct Case {
    const char* name;
    const Mod* score;
    const Mod* mask;
  };
  const Case cases[] = {{"none", nullptr, nullptr}, {"causal", nullptr, &causal}, {"alibi+causal", &alibi, &causal}};
  int compiled = 0;
  for (const Case& c : cases) {
    for (DType dtype : {DType::BF16, DType::F16}) {
      for (int head_dim : {32, 96, 256}) {
        for (const char* arch : {"sm_80", "sm_90"}) {
          CAPTURE(c.name, dtype_name(dtype), head_dim, arch);
          REQUIRE(test::load_flash(test::flash_spec(c.score, c.mask, dtype, head_dim, arch), cache)->cubin().size() >
                  1000);
          ++compiled;
        }
      }
    }
  }
  CHECK(compiled == 36);
}
