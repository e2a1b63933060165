#pragma once
// The Mods traits of the backward template (flash_backward.cuh's header states the contract): the
// forward's traits over the generated code (generated_mods.cuh) plus the score mod's derivative,
// which runtime/families/flash_backward/FlashBackwardSource.cpp generates into namespace attnc_gen
// as `kHasScoreGrad` and `d_score` (a generated expression function over the same ModParams), and
// the tensor-parameter gradient sites as `kNumGradSites`, `kNumGradTensors` and `grad_site`.

#include "generated_mods.cuh"

namespace attnc_abi {

struct GeneratedBackwardMods : GeneratedMods {
  static constexpr bool kHasScoreGrad = attnc_gen::kHasScoreGrad;

  static ATTNC_DEVICE float d_score(float score, const attnc_abi::ModPoint& point, const Params& params,
                                    attnc_abi::BoundsReport* report) {
    // The derivative reads no tile builtins; the one-element box keeps the signature uniform.
    const attnc_abi::TileBox box{point.q_idx, point.q_idx, point.kv_idx, point.kv_idx};
    return attnc_gen::d_score(score, point, box, params, report);
  }

  static constexpr int kNumGradSites = attnc_gen::kNumGradSites;
  static constexpr int kNumGradTensors = attnc_gen::kNumGradTensors;
  static ATTNC_DEVICE float grad_site(int site, float score, const attnc_abi::ModPoint& point, const Params& params,
                                      attnc_abi::BoundsReport* report, int32_t& slot, int64_t& offset) {
    return attnc_gen::grad_site(site, score, point, params, report, slot, offset);
  }
};

}  // namespace attnc_abi
