#include "bench/suite/BenchInputs.h"

namespace attnc::bench {

Tensor make_input(DType dtype, const std::vector<int64_t>& shape, uint64_t seed) {
  Tensor t = Tensor::empty(dtype, shape);
  int64_t n = t.numel();
  uint64_t state = seed * 0x9E3779B97F4A7C15ull + 1;
  auto next = [&state] {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  };
  for (int64_t i = 0; i < n; ++i) {
    float value = float(int64_t(next() >> 40) - (int64_t(1) << 23)) / float(1 << 23);
    switch (dtype) {
      case DType::F32: static_cast<float*>(t.data())[i] = value; break;
      case DType::F16: static_cast<uint16_t*>(t.data())[i] = float_to_half(value); break;
      default: static_cast<uint16_t*>(t.data())[i] = float_to_bfloat16(value); break;
    }
  }
  return t;
}

Tensor make_document_ids(int batch, int seq, int documents) {
  std::vector<int32_t> ids(size_t(batch) * size_t(seq));
  for (int b = 0; b < batch; ++b) {
    for (int i = 0; i < seq; ++i) ids[size_t(b) * seq + i] = int32_t(int64_t(i) * documents / seq);
  }
  return Tensor::from_vector(ids, {batch, seq});
}

}  // namespace attnc::bench
