#pragma once
// The Mods traits of flash_attention.cuh over the generated code (namespace attnc_gen, see
// mod_abi.cuh). Include it after the generated code, before ATTNC_INSTANTIATE_FLASH_FORWARD; the
// template itself never names attnc_gen, so tests can run it with hand-written traits instead.

#include "mod_abi.cuh"

namespace attnc_flash {

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

}  // namespace attnc_flash
