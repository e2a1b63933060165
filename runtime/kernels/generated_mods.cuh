#pragma once
// The Mods traits every kernel template takes (flash_attention.cuh's header states the contract),
// over the generated code (namespace attnc_gen, see mod_abi.cuh). A family's main file includes it
// after the generated code, before instantiating its entry point; templates themselves never name
// attnc_gen, so tests can run them with hand-written traits instead.

#include "mod_abi.cuh"

namespace attnc_abi {

struct GeneratedMods {
  using Params = attnc_gen::ModParams;
  static constexpr bool kHasScoreMod = attnc_gen::kHasScoreMod;
  static constexpr bool kHasMaskMod = attnc_gen::kHasMaskMod;
  static constexpr bool kCheckBounds = attnc_gen::kCheckBounds;

  static ATTNC_DEVICE float score_mod(float score, const attnc_abi::ModPoint& point, const Params& params,
                                      attnc_abi::BoundsReport* report) {
    return attnc_gen::score_mod(score, point, params, report);
  }
  static ATTNC_DEVICE bool mask_mod(const attnc_abi::ModPoint& point, const Params& params,
                                    attnc_abi::BoundsReport* report) {
    return attnc_gen::mask_mod(point, params, report);
  }
  static ATTNC_DEVICE int tile_class(const attnc_abi::TileBox& tile, const attnc_abi::ModPoint& point,
                                     const Params& params) {
    return attnc_gen::tile_class(tile, point, params);
  }
};

}  // namespace attnc_abi
