// The flash-attention template's device path, compiled by nvcc in FlashTemplateTest ("[nvcc]") to
// check that it builds for the GPU and that ptxas reports no spills. The mod code mirrors what
// compiler/CudaCodegen generates for a causal mask and an ALiBi-style score mod (the heaviest
// path: a score mod on every element and a mask on PARTIAL tiles), in the tile configurations
// runtime/families/flash/TileConfig.cpp chooses (8 warps at head dims 64 and 128: 4 warps with 32
// rows each sit at the 255-register ceiling, which is why TileConfig does not use them).
#include "flash_attention.cuh"

namespace attnc_gen {
struct ModParams {
  attnc_abi::TensorParam p0;  // ALiBi slopes [H]
};
constexpr bool kHasScoreMod = true, kHasMaskMod = true, kCheckBounds = false;
ATTNC_DEVICE float score_mod(float score, const attnc_abi::ModPoint& p, const ModParams& params,
                             attnc_abi::BoundsReport*) {
  const int64_t at[1] = {p.h};
  const float slope =
      attnc_abi::element_float<attnc_abi::Storage::F32>(params.p0, attnc_abi::clamped_offset<1>(params.p0, at));
  return attnc_abi::sub_f32(
      score,
      attnc_abi::mul_f32(slope, attnc_abi::i32_to_f32(attnc_abi::abs_i32(attnc_abi::sub_i32(p.q_idx, p.kv_idx)))));
}
ATTNC_DEVICE bool mask_mod(const attnc_abi::ModPoint& p, const ModParams&, attnc_abi::BoundsReport*) {
  return p.kv_idx <= p.q_idx;
}
ATTNC_DEVICE int tile_class(const attnc_abi::TileBox& t, const attnc_abi::ModPoint&, const ModParams&) {
  return t.kv_first > t.q_last ? 0 : (t.kv_last <= t.q_first ? 1 : 2);
}
}  // namespace attnc_gen

#include "generated_mods.cuh"

ATTNC_INSTANTIATE_FLASH_FORWARD(flash_bf16_d64, attnc_abi::GeneratedMods, attnc_dev::bf16_t, 64, 64, 128, 64, 8)
ATTNC_INSTANTIATE_FLASH_FORWARD(flash_fp16_d64, attnc_abi::GeneratedMods, attnc_dev::f16_t, 64, 64, 128, 64, 8)
ATTNC_INSTANTIATE_FLASH_FORWARD(flash_bf16_d128, attnc_abi::GeneratedMods, attnc_dev::bf16_t, 128, 128, 128, 64, 8)
ATTNC_INSTANTIATE_FLASH_FORWARD(flash_fp16_d128, attnc_abi::GeneratedMods, attnc_dev::f16_t, 128, 128, 128, 64, 8)
