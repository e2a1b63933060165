#include "tests/support/TestTensors.h"

namespace attnc::test {

namespace {

template <typename Distribution>
Tensor draw(std::mt19937& rng, Distribution& distribution, DType dtype, std::vector<int64_t> shape) {
  int64_t count = 1;
  for (int64_t extent : shape) count *= extent;
  std::vector<float> values(static_cast<size_t>(count));
  for (float& x : values) x = distribution(rng);
  return Tensor::from_vector(values, std::move(shape), dtype);
}

}  // namespace

Tensor uniform_tensor(std::mt19937& rng, DType dtype, std::vector<int64_t> shape, float lo, float hi) {
  std::uniform_real_distribution<float> distribution(lo, hi);
  return draw(rng, distribution, dtype, std::move(shape));
}

Tensor uniform_tensor(uint32_t seed, DType dtype, std::vector<int64_t> shape, float lo, float hi) {
  std::mt19937 rng(seed);
  return uniform_tensor(rng, dtype, std::move(shape), lo, hi);
}

Tensor normal_tensor(uint32_t seed, DType dtype, std::vector<int64_t> shape) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> distribution(0.0f, 1.0f);
  return draw(rng, distribution, dtype, std::move(shape));
}

}  // namespace attnc::test
