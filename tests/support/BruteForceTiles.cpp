#include "tests/support/BruteForceTiles.h"

#include <algorithm>

#include "compiler/Interpreter.h"

namespace attnc::test {

std::vector<int> classify_tiles_by_elements(const Mod& mask, const TileMapShape& s, int32_t b, int32_t h) {
  const ir::CompiledExpr body(mask.def().body);
  ir::Environment env = mask.environment(s.q_len, s.kv_len, s.heads, s.kv_heads);
  std::vector<int> classes;
  for (int32_t qt = 0; qt < s.q_tiles(); ++qt) {
    for (int32_t kt = 0; kt < s.kv_tiles(); ++kt) {
      bool any = false, all = true;
      for (int32_t q = qt * s.block_m; q < std::min(s.q_len, (qt + 1) * s.block_m); ++q) {
        for (int32_t kv = kt * s.block_n; kv < std::min(s.kv_len, (kt + 1) * s.block_n); ++kv) {
          env.set_point(b, h, s.q_offset + q, kv);
          const bool kept = body.evaluate(env).as_bool();
          any = any || kept;
          all = all && kept;
        }
      }
      classes.push_back(!any ? 0 : all ? 1 : 2);
    }
  }
  return classes;
}

int64_t count_kept_elements(const Mod& mask, const TileMapShape& s, int32_t b, int32_t h) {
  const ir::CompiledExpr body(mask.def().body);
  ir::Environment env = mask.environment(s.q_len, s.kv_len, s.heads, s.kv_heads);
  int64_t kept = 0;
  for (int32_t q = 0; q < s.q_len; ++q) {
    for (int32_t kv = 0; kv < s.kv_len; ++kv) {
      env.set_point(b, h, s.q_offset + q, kv);
      kept += body.evaluate(env).as_bool();
    }
  }
  return kept;
}

}  // namespace attnc::test
