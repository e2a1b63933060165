// The CPU micro-kernels (runtime/cpu/CpuMicroKernels.h), each instruction set this CPU runs against
// the portable scalar set (and the bf16 products against their scalar definition): register-block
// tails in every direction, accumulate or not, the softmax step's -inf and NaN rows, the rounding
// to bf16. Sets the CPU lacks are skipped with a WARN.

#include "runtime/cpu/CpuMicroKernels.h"

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include <catch2/catch.hpp>

#include "compiler/DType.h"
#include "runtime/core/Dropout.h"

using namespace attnc;
using namespace attnc::cpu;

namespace {

std::vector<const CpuMicroKernels*> vectorised_sets() {
  std::vector<const CpuMicroKernels*> sets;
  for (CpuIsa isa : {CpuIsa::Avx512Bf16, CpuIsa::Avx512, CpuIsa::Avx2}) {
    if (const CpuMicroKernels* kernels = micro_kernels(isa)) {
      sets.push_back(kernels);
    } else {
      WARN("this CPU cannot run the " << cpu_isa_name(isa) << " micro-kernels: not tested");
    }
  }
  return sets;
}

std::vector<float> random_floats(std::mt19937& rng, size_t n, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

double max_relative(const std::vector<float>& got, const std::vector<float>& want) {
  double worst = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::isnan(want[i]) != std::isnan(got[i])) return INFINITY;
    if (std::isnan(want[i])) continue;
    worst = std::max(worst, std::fabs(double(got[i]) - want[i]) / (1.0 + std::fabs(want[i])));
  }
  return worst;
}

}  // namespace

TEST_CASE("the instruction sets are named, parsed and ordered", "[runtime][cpu][kernels]") {
  for (CpuIsa isa : {CpuIsa::Avx512Bf16, CpuIsa::Avx512, CpuIsa::Avx2, CpuIsa::Scalar}) {
    CHECK(parse_cpu_isa(cpu_isa_name(isa)) == isa);
    if (const CpuMicroKernels* kernels = micro_kernels(isa)) {
      CHECK(kernels->isa == isa);
      CHECK(std::string(kernels->name) == cpu_isa_name(isa));
      CHECK((kernels->gemm_bf16 != nullptr) == (isa == CpuIsa::Avx512Bf16));
    }
  }
  CHECK_FALSE(parse_cpu_isa("sse2"));
  CHECK(cpu_supports(CpuIsa::Scalar));
  CHECK(&scalar_micro_kernels() == micro_kernels(CpuIsa::Scalar));
}

TEST_CASE("every set's gemm agrees with the scalar gemm over block tails", "[runtime][cpu][kernels]") {
  std::mt19937 rng(5);
  for (const CpuMicroKernels* kernels : vectorised_sets()) {
    for (auto [m, n, k] : {std::tuple{1, 1, 1}, {6, 64, 128}, {7, 65, 3}, {13, 17, 64}, {64, 128, 64}, {5, 200, 0}}) {
      for (bool accumulate : {false, true}) {
        CAPTURE(kernels->name, m, n, k, accumulate);
        const int64_t lda = k + 3, ldb = n + 5, ldc = n + 7;
        std::vector<float> a = random_floats(rng, size_t(m * lda)), b = random_floats(rng, size_t(k * ldb) + 1);
        std::vector<float> c = random_floats(rng, size_t(m * ldc)), want = c;
        kernels->gemm(m, n, k, a.data(), lda, b.data(), ldb, c.data(), ldc, accumulate);
        scalar_micro_kernels().gemm(m, n, k, a.data(), lda, b.data(), ldb, want.data(), ldc, accumulate);
        CHECK(max_relative(c, want) < 1e-5);  // padding columns are untouched, so compared too
      }
    }
  }
}

TEST_CASE("every set's gemm_at equals gemm on the explicit transpose, the scalar set's included",
          "[runtime][cpu][kernels]") {
  std::mt19937 rng(7);
  std::vector<const CpuMicroKernels*> sets = vectorised_sets();
  sets.push_back(&scalar_micro_kernels());
  for (const CpuMicroKernels* kernels : sets) {
    for (auto [m, n, k] : {std::tuple{1, 1, 1}, {6, 64, 128}, {7, 65, 3}, {64, 128, 64}, {61, 128, 37}, {5, 200, 0}}) {
      for (bool accumulate : {false, true}) {
        CAPTURE(kernels->name, m, n, k, accumulate);
        const int64_t lda = m + 3, ldb = n + 5, ldc = n + 7;  // a is stored k x m
        std::vector<float> a = random_floats(rng, size_t(k * lda) + 1), b = random_floats(rng, size_t(k * ldb) + 1);
        std::vector<float> at(size_t(m) * size_t(std::max(k, 1)));  // the explicit transpose, m x k
        for (int i = 0; i < m; ++i) {
          for (int kk = 0; kk < k; ++kk) at[size_t(i * k + kk)] = a[size_t(kk * lda + i)];
        }
        std::vector<float> c = random_floats(rng, size_t(m * ldc)), want = c;
        kernels->gemm_at(m, n, k, a.data(), lda, b.data(), ldb, c.data(), ldc, accumulate);
        scalar_micro_kernels().gemm(m, n, k, at.data(), std::max(k, 1), b.data(), ldb, want.data(), ldc, accumulate);
        CHECK(max_relative(c, want) < 1e-5);
      }
    }
  }
}

TEST_CASE("every set's softmax backward step agrees with the scalar one and is 0 where P is 0",
          "[runtime][cpu][kernels]") {
  std::mt19937 rng(8);
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  for (const CpuMicroKernels* kernels : vectorised_sets()) {
    for (int cols : {1, 7, 16, 23, 64}) {
      CAPTURE(kernels->name, cols);
      const int rows = 5, ld = 70;
      std::vector<float> p = random_floats(rng, size_t(rows * ld), 0.0f, 1.0f), dp = random_floats(rng, size_t(rows * ld));
      for (int j = 0; j < cols; j += 3) p[size_t(j)] = 0.0f;  // row 0: masked elements
      dp[0] = nan;                                             // ... whose dP does not matter
      dp[3] = inf;
      const std::vector<float> delta = random_floats(rng, size_t(rows));
      std::vector<float> got(size_t(rows * ld), 7.0f), want = got;
      kernels->softmax_backward_tile(p.data(), dp.data(), ld, rows, cols, delta.data(), got.data());
      scalar_micro_kernels().softmax_backward_tile(p.data(), dp.data(), ld, rows, cols, delta.data(), want.data());
      CHECK(got == want);  // one multiply and one subtraction per element: bit-identical
      for (int j = 0; j < cols; j += 3) CHECK(got[size_t(j)] == 0.0f);
      CHECK(got[size_t(cols)] == 7.0f);  // nothing written past the tile
    }
  }
}

TEST_CASE("every set's softmax step agrees with the scalar one, -inf and NaN rows included",
          "[runtime][cpu][kernels]") {
  std::mt19937 rng(6);
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  for (const CpuMicroKernels* kernels : vectorised_sets()) {
    for (int cols : {1, 7, 16, 23, 64}) {
      CAPTURE(kernels->name, cols);
      const int rows = 6, lds = 70;
      std::vector<float> s = random_floats(rng, size_t(rows * lds), -20.0f, 5.0f);
      for (int j = 0; j < cols; ++j) s[size_t(1 * lds + j)] = -inf;  // row 1: nothing kept yet
      for (int j = 0; j < cols; ++j) s[size_t(2 * lds + j)] = j % 2 ? -inf : nan;  // row 2: kept NaN
      s[size_t(3 * lds)] = nan;                                                    // row 3: one NaN
      std::vector<float> want_s = s;
      std::vector<float> max = {-inf, -inf, -inf, 0.5f, -inf, 1.0f}, sum = {0, 0, 0, 2, 0, 3}, alpha(6);
      std::vector<float> want_max = max, want_sum = sum, want_alpha(6);
      const float c = 1.4426950408889634f;
      kernels->softmax_tile(s.data(), lds, rows, cols, c, max.data(), sum.data(), alpha.data());
      scalar_micro_kernels().softmax_tile(want_s.data(), lds, rows, cols, c, want_max.data(), want_sum.data(),
                                          want_alpha.data());
      CHECK(max_relative(s, want_s) < 1e-6);
      CHECK(max_relative(max, want_max) == 0);
      CHECK(max_relative(sum, want_sum) < 1e-6);
      CHECK(max_relative(alpha, want_alpha) < 1e-6);
      CHECK(std::isnan(max[2]));
      CHECK(max[1] == -inf);
      CHECK(alpha[1] == 1.0f);
    }
  }
}

TEST_CASE("every set scales exactly the rows whose alpha is not 1", "[runtime][cpu][kernels]") {
  std::mt19937 rng(7);
  for (const CpuMicroKernels* kernels : vectorised_sets()) {
    CAPTURE(kernels->name);
    std::vector<float> o = random_floats(rng, 5 * 40), want = o;
    const std::vector<float> alpha = {1.0f, 0.5f, 0.0f, 2.0f, 1.0f};
    kernels->scale_rows(o.data(), 40, 5, 37, alpha.data());
    scalar_micro_kernels().scale_rows(want.data(), 40, 5, 37, alpha.data());
    CHECK(o == want);
  }
}

TEST_CASE("the bf16 products agree with their scalar definition, and rounding to bf16 is nearest-even",
          "[runtime][cpu][kernels][bf16]") {
  const CpuMicroKernels* kernels = micro_kernels(CpuIsa::Avx512Bf16);
  if (kernels == nullptr) {
    WARN("this CPU has no AVX512-BF16: the bf16 products were not tested");
    return;
  }
  std::mt19937 rng(8);
  auto random_pairs = [&](size_t n) {
    std::vector<uint32_t> pairs(n);
    for (uint32_t& p : pairs) {
      const std::vector<float> two = random_floats(rng, 2);
      p = uint32_t(float_to_bfloat16(two[0])) | uint32_t(float_to_bfloat16(two[1])) << 16;
    }
    return pairs;
  };
  for (auto [m, n, kp] : {std::tuple{1, 1, 1}, {6, 64, 64}, {7, 65, 3}, {64, 128, 32}, {13, 17, 0}}) {
    for (bool accumulate : {false, true}) {
      CAPTURE(m, n, kp, accumulate);
      const int64_t lda = kp + 1, ldb = n + 3, ldc = n + 2;
      std::vector<uint32_t> a = random_pairs(size_t(m * lda)), b = random_pairs(size_t(kp * ldb) + 1);
      std::vector<float> c = random_floats(rng, size_t(m * ldc)), want = c;
      kernels->gemm_bf16(m, n, kp, a.data(), lda, b.data(), ldb, c.data(), ldc, accumulate, 0.375f);
      gemm_bf16_reference(m, n, kp, a.data(), lda, b.data(), ldb, want.data(), ldc, accumulate, 0.375f);
      CHECK(max_relative(c, want) < 1e-6);
    }
  }
  std::vector<float> src = random_floats(rng, 3 * 40, -100.0f, 100.0f);
  src[5] = std::numeric_limits<float>::quiet_NaN();
  src[6] = -std::numeric_limits<float>::infinity();
  std::vector<uint16_t> dst(3 * 48, 0xAAAA);
  kernels->round_to_bf16(src.data(), 40, 3, 37, dst.data(), 48, 38);
  for (int r = 0; r < 3; ++r) {
    for (int j = 0; j < 48; ++j) {
      CAPTURE(r, j);
      const uint16_t got = dst[size_t(r * 48 + j)];
      if (j < 37) {
        const float x = src[size_t(r * 40 + j)];
        if (std::isnan(x)) {
          CHECK(std::isnan(bfloat16_to_float(got)));
        } else {
          CHECK(got == float_to_bfloat16(x));
        }
      } else if (j == 37) {
        CHECK(got == 0);  // padding to an even count
      } else {
        CHECK(got == 0xAAAA);  // past the padding: untouched
      }
    }
  }
}

TEST_CASE("every set's dropout decisions are dropout_keeps, bit for bit", "[runtime][cpu][kernels][dropout]") {
  std::vector<const CpuMicroKernels*> sets = vectorised_sets();
  sets.push_back(&scalar_micro_kernels());
  for (const CpuMicroKernels* kernels : sets) {
    for (auto [rate, seed] : {std::pair{0.1f, uint64_t{1}}, {0.5f, uint64_t{0x123456789ABCDEFull}}, {0.9f, uint64_t{7}}}) {
      for (auto [q_first, kv_first, rows, cols] :
           {std::tuple{0, 0, 64, 64}, {1000, 4096, 7, 37}, {-5, 2147483000, 3, 40}, {12, 3, 1, 1}}) {
        CAPTURE(kernels->name, rate, seed, q_first, kv_first, rows, cols);
        const uint32_t threshold = dropout_threshold(rate);
        std::vector<uint64_t> bits(size_t(rows), ~uint64_t{0});
        kernels->dropout_keep_bits(threshold, seed, 3, 5, q_first, rows, kv_first, cols, bits.data());
        for (int r = 0; r < rows; ++r) {
          for (int c = 0; c < 64; ++c) {
            const bool want = c < cols && dropout_keeps(threshold, seed, 3, 5, q_first + r, kv_first + c);
            if (((bits[size_t(r)] >> c & 1) != 0) != want) FAIL_CHECK("row " << r << " column " << c);
          }
        }
        // Applying the bits: kept elements scaled, dropped ones 0, nothing past the tile touched.
        const int ld = 70;
        std::vector<float> src(size_t(rows * ld)), got(size_t(rows * ld), 9.0f), want(size_t(rows * ld), 9.0f);
        for (size_t i = 0; i < src.size(); ++i) src[i] = 0.25f * float(i % 13) - 1.0f;
        kernels->dropout_apply(src.data(), got.data(), ld, rows, cols, bits.data(), 1.0f / (1.0f - rate));
        dropout_apply_scalar(src.data(), want.data(), ld, rows, cols, bits.data(), 1.0f / (1.0f - rate));
        CHECK(got == want);
        for (int r = 0; r < rows; ++r) {
          for (int c = 0; c < cols; ++c) {
            const float expected = (bits[size_t(r)] >> c & 1) != 0 ? src[size_t(r * ld + c)] / (1.0f - rate) : 0.0f;
            if (std::fabs(want[size_t(r * ld + c)] - expected) > 1e-6f) FAIL_CHECK("apply row " << r << " column " << c);
          }
          CHECK(got[size_t(r * ld + cols)] == 9.0f);
        }
      }
    }
  }
}
