#include "bench/suite/KeptPairs.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <vector>

#include "runtime/cpu/CpuModProgram.h"

namespace attnc::bench {

int64_t kept_pairs_formula(BenchMod which, const CaseMods& mods, int batch, int heads, int seq) {
  int64_t s = seq, per_head = 0;
  switch (which) {
    case BenchMod::None:
    case BenchMod::Softcap: per_head = s * s; break;
    case BenchMod::Causal:
    case BenchMod::AlibiCausal: per_head = s * (s + 1) / 2; break;
    case BenchMod::SlidingWindow: {
      // Row i keeps keys i - w + 1 .. i: min(i + 1, w) of them.
      int64_t w = std::min<int64_t>(kWindow, s);
      per_head = w * (w + 1) / 2 + (s - w) * kWindow;
      break;
    }
    case BenchMod::Document: {
      // Each document of n tokens keeps n * n pairs; summed per batch, so no per-head form.
      int64_t total = 0;
      std::vector<float> ids = mods.document_ids->to_float_vector();
      for (int b = 0; b < batch; ++b) {
        std::map<int, int64_t> sizes;
        for (int i = 0; i < seq; ++i) ++sizes[int(ids[size_t(b) * seq + i])];
        for (const auto& [id, n] : sizes) total += n * n;
      }
      return total * heads;
    }
  }
  return per_head * batch * heads;
}

int64_t kept_pairs_counted(const Mod& mask, int batch, int heads, int seq) {
  std::shared_ptr<const CpuModProgram> program = compile_cpu_program(mask);
  CpuModArgs args = CpuModArgs::pack(mask, /*check_bounds=*/false);
  constexpr int32_t kTile = 64;
  std::vector<float> tile(size_t(kTile) * kTile);
  int64_t kept = 0;
  for (int b = 0; b < batch; ++b) {
    for (int h = 0; h < heads; ++h) {
      TilePosition at{b, h, seq, seq, heads, heads};
      for (int32_t q0 = 0; q0 < seq; q0 += kTile) {
        int32_t rows = std::min(kTile, seq - q0);
        for (int32_t k0 = 0; k0 < seq; k0 += kTile) {
          int32_t cols = std::min(kTile, seq - k0);
          ir::TileClass cls = program->classify(q0, q0 + rows - 1, k0, k0 + cols - 1, at, args);
          if (cls == ir::TileClass::Empty) continue;
          if (cls == ir::TileClass::Full) {
            kept += int64_t(rows) * cols;
            continue;
          }
          std::fill(tile.begin(), tile.end(), 0.0f);
          program->apply(tile.data(), kTile, rows, cols, q0, k0, at, args, nullptr);
          for (int32_t r = 0; r < rows; ++r) {
            for (int32_t col = 0; col < cols; ++col) kept += tile[size_t(r) * kTile + col] != -INFINITY;
          }
        }
      }
    }
  }
  return kept;
}

}  // namespace attnc::bench
