#pragma once
// Named backward-pass configurations shared by the reference backward's finite-difference test and
// the backward kernels' tests: every built-in mod, compositions, a learned relative-bias table, a
// mask that leaves rows empty, random score and mask mods, with GQA, odd lengths and q_len != kv_len.

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "runtime/core/Dropout.h"
#include "runtime/core/Mod.h"

namespace attnc::test {

struct GradientCase {
  std::string name;
  int64_t batch = 1, heads = 2, kv_heads = 1, q_len = 5, kv_len = 7, head_dim = 4, value_dim = 3;
  std::optional<Mod> score_mod, mask_mod;
  int32_t q_offset = 0;
  Dropout dropout;
};

// Cases of the given sizes (heads a multiple of kv_heads); `random_count` random score / mask mods
// drawn from `seed` are appended after the fixed ones.
std::vector<GradientCase> gradient_cases(int64_t batch, int64_t heads, int64_t kv_heads, int64_t q_len, int64_t kv_len,
                                         int64_t head_dim, int64_t value_dim, int random_count, uint32_t seed);

}  // namespace attnc::test
