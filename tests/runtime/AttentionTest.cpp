// The one-call API (runtime/Attention.h) on CPU tensors: the boolean-mask overload and linear
// attention's dispatch. Its CUDA side is tested with each family (tests/runtime/families/*/).

#include "runtime/Attention.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "runtime/core/Mods.h"
#include "runtime/reference/LinearReference.h"
#include "runtime/reference/ReferenceAttention.h"
#include "tests/support/AttentionComparison.h"
#include "tests/support/TestTensors.h"

using namespace attnc;
using namespace attnc::test;

TEST_CASE("attention() takes attnax's boolean mask and dispatches linear attention", "[attention][mask]") {
  const Tensor q = uniform_tensor(71, DType::F32, {1, 2, 30, 16});
  const Tensor k = uniform_tensor(72, DType::F32, {1, 2, 30, 16});
  const Tensor v = uniform_tensor(73, DType::F32, {1, 2, 30, 16});
  std::vector<int32_t> bits(900);
  for (int i = 0; i < 30; ++i)
    for (int j = 0; j < 30; ++j) bits[size_t(i * 30 + j)] = (i + j) % 4 != 0 && i != 7;  // row 7 sees nothing
  const Tensor mask = Tensor::from_vector(bits, {30, 30}, DType::Bool);
  const Mod causal = causal_mod();
  AttentionOptions options;
  options.mask_mod = &causal;
  Tensor out = Tensor::empty(DType::F32, {1, 2, 30, 16}), lse;
  attention(q, k, v, out, mask, options, &lse);
  Tensor ref_lse;
  const Tensor ref = standard_attention(q, k, v, with_mask(options, mask), &ref_lse);
  CHECK(attnc_test::relative_error(out, ref) <= 1e-5);
  CHECK(attnc_test::lse_mismatches(lse, ref_lse) == 0);
  CHECK(lse.get_float({0, 1, 7}) == -INFINITY);

  LinearAttentionOptions linear;
  linear.chunk_size = 7;
  linear_attention(q, k, v, out, linear);
  CHECK(attnc_test::relative_error(out, linear_attention_reference(q, k, v, linear)) <= 1e-5);
}
