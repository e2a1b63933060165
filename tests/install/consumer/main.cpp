// A C++ program built against an installed attnc (tests/install/run_consumer_test.sh): the causal
// mod, attention() on small CPU tensors, checked against the reference attention. Exits 1 on a
// mismatch or an error, 0 when everything agrees.
#include <cmath>
#include <cstdio>
#include <exception>
#include <vector>

#include "runtime/Attention.h"
#include "runtime/core/Mods.h"
#include "runtime/reference/ReferenceAttention.h"

#if ATTNC_HAVE_LLVM
constexpr int kHaveLlvm = 1;
#else
constexpr int kHaveLlvm = 0;
#endif
#if ATTNC_HAVE_DLPACK
constexpr int kHaveDlpack = 1;
#else
constexpr int kHaveDlpack = 0;
#endif

namespace {

// Deterministic values in [-1, 1] (a consumer has no test-support library).
attnc::Tensor filled(std::vector<int64_t> shape, float frequency) {
  attnc::Tensor t = attnc::Tensor::empty(attnc::DType::F32, std::move(shape));
  auto* values = static_cast<float*>(t.data());
  for (int64_t i = 0; i < t.numel(); ++i) values[i] = std::sin(frequency * static_cast<float>(i + 1));
  return t;
}

bool expect(bool condition, const char* what) {
  if (!condition) std::fprintf(stderr, "consumer: FAILED: %s\n", what);
  return condition;
}

}  // namespace

int main() {
  using namespace attnc;
  bool ok = true;
#ifdef EXPECT_LLVM
  ok &= expect(kHaveLlvm == EXPECT_LLVM, "attnc::runtime's ATTNC_HAVE_LLVM matches the build");
#endif
#ifdef EXPECT_DLPACK
  ok &= expect(kHaveDlpack == EXPECT_DLPACK, "attnc::runtime's ATTNC_HAVE_DLPACK matches the build");
#endif
  try {
    // (B, H, S, D) with two query heads per key head and a kv length that is not a tile multiple.
    Tensor q = filled({1, 4, 37, 16}, 0.37f);
    Tensor k = filled({1, 2, 37, 16}, 0.61f);
    Tensor v = filled({1, 2, 37, 16}, 0.89f);
    Mod causal = causal_mod();
    AttentionOptions options;
    options.mask_mod = &causal;

    Tensor out = Tensor::zeros(DType::F32, {1, 4, 37, 16});
    attention(q, k, v, out, options);
    Tensor expected = standard_attention(q, k, v, options);

    std::vector<float> got = out.to_float_vector(), want = expected.to_float_vector();
    float worst = 0.0f;
    for (size_t i = 0; i < got.size(); ++i) worst = std::fmax(worst, std::fabs(got[i] - want[i]));
    ok &= expect(got.size() == want.size() && worst < 1e-4f, "attention() agrees with standard_attention");
    // Row 0 sees only key 0, so it is v[0, 0, 0, :] exactly: the mask was applied.
    ok &= expect(std::fabs(out.get_float({0, 0, 0, 3}) - v.get_float({0, 0, 0, 3})) < 1e-6f,
                 "the causal mask hides every key after the query");
    std::printf("consumer: causal attention on (1, 4, 37, 16), max |attention - reference| = %g (LLVM JIT: %s)\n",
                worst, kHaveLlvm ? "yes" : "no");

    if (kHaveDlpack) {
      // A DLPack round trip needs no DLPack header here: Tensor.h declares DLManagedTensor.
      Tensor again = Tensor::from_dlpack(q.to_dlpack());
      ok &= expect(again.data() == q.data() && again.shape() == q.shape(), "a DLPack round trip shares the data");
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "consumer: FAILED: %s\n", e.what());
    return 1;
  }
  return ok ? 0 : 1;
}
