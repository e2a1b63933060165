#pragma once
// How the kernel tests compare an attention output and LSE with the reference's, shared by the
// host-emulated template tests and the GPU tests.

#include <algorithm>
#include <cmath>
#include <vector>

#include <catch2/catch.hpp>

#include "runtime/core/Tensor.h"

namespace attnc_test {

// ||out - ref|| / ||ref|| over all elements; NaN (an unwritten or poisoned element) gives infinity.
inline double relative_error(const attnc::Tensor& out, const attnc::Tensor& ref) {
  const std::vector<float> a = out.to_float_vector(), b = ref.to_float_vector();
  REQUIRE(a.size() == b.size());
  double diff = 0, norm = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(a[i])) return INFINITY;
    diff += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    norm += double(b[i]) * b[i];
  }
  return norm == 0 ? std::sqrt(diff) : std::sqrt(diff / norm);
}

// LSE entries that are not -inf (or NaN) exactly where the reference's are, or not within 2e-3
// relative elsewhere; the first three are reported.
inline int lse_mismatches(const attnc::Tensor& lse, const attnc::Tensor& ref) {
  const std::vector<float> a = lse.to_float_vector(), b = ref.to_float_vector();
  int mismatches = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const bool ok = std::isnan(b[i])   ? std::isnan(a[i])
                    : std::isinf(b[i]) ? (a[i] == b[i])
                                       : std::fabs(a[i] - b[i]) <= 2e-3f * std::max(1.0f, std::fabs(b[i]));
    if (!ok && mismatches++ < 3) UNSCOPED_INFO("lse[" << i << "] = " << a[i] << ", reference " << b[i]);
  }
  return mismatches;
}

// Elements that are NaN in exactly one of the two tensors (a row that should be NaN and is not, or
// the reverse); the first three are reported.
inline int nan_mismatches(const attnc::Tensor& got, const attnc::Tensor& ref) {
  const std::vector<float> a = got.to_float_vector(), b = ref.to_float_vector();
  REQUIRE(a.size() == b.size());
  int mismatches = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(a[i]) != std::isnan(b[i]) && mismatches++ < 3) {
      UNSCOPED_INFO("element " << i << " = " << a[i] << ", reference " << b[i]);
    }
  }
  return mismatches;
}

// relative_error over the elements where the reference is not NaN.
inline double relative_error_where_defined(const attnc::Tensor& out, const attnc::Tensor& ref) {
  const std::vector<float> a = out.to_float_vector(), b = ref.to_float_vector();
  REQUIRE(a.size() == b.size());
  double diff = 0, norm = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(b[i])) continue;
    if (std::isnan(a[i])) return INFINITY;
    diff += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    norm += double(b[i]) * b[i];
  }
  return norm == 0 ? std::sqrt(diff) : std::sqrt(diff / norm);
}

}  // namespace attnc_test
