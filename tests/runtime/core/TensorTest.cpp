#include "runtime/core/Tensor.h"

#include <catch2/catch.hpp>

#include <numeric>

#include "runtime/core/RuntimeError.h"

using namespace attnc;

TEST_CASE("empty tensors are contiguous, owning and sized by their shape", "[runtime][tensor]") {
  Tensor t = Tensor::empty(DType::F32, {2, 3, 4});
  CHECK(t.defined());
  CHECK(t.owns_storage());
  CHECK(t.rank() == 3);
  CHECK(t.numel() == 24);
  CHECK(t.strides() == std::vector<int64_t>{12, 4, 1});
  CHECK(t.is_contiguous());
  CHECK(t.device() == Device::Cpu);
  CHECK(t.offset({1, 2, 3}) == 12 + 8 + 3);
  CHECK(t.size(1) == 3);
  CHECK_THROWS_AS(t.size(3), RuntimeError);

  Tensor scalar = Tensor::empty(DType::I32, {});
  CHECK(scalar.rank() == 0);
  CHECK(scalar.numel() == 1);
  scalar.set_int({}, 42);
  CHECK(scalar.get_int({}) == 42);

  Tensor none = Tensor::empty(DType::F16, {0, 5});
  CHECK(none.numel() == 0);
  CHECK(none.is_contiguous());

  CHECK_FALSE(Tensor().defined());
  CHECK(Tensor().numel() == 0);
}

TEST_CASE("zeros fills every element with zero", "[runtime][tensor]") {
  auto dtype = GENERATE(DType::F32, DType::F16, DType::BF16, DType::I32, DType::I64, DType::U8, DType::Bool);
  CAPTURE(dtype_name(dtype));
  Tensor t = Tensor::zeros(dtype, {3, 5});
  for (float x : t.to_float_vector()) CHECK(x == 0.0f);
}

TEST_CASE("from_data views caller memory without copying, with any strides", "[runtime][tensor]") {
  // A (B=2, S=3, H=4, D=5) buffer viewed as (B, H, S, D), as a PyTorch transpose(1, 2) would.
  std::vector<float> buffer(2 * 3 * 4 * 5);
  std::iota(buffer.begin(), buffer.end(), 0.0f);
  Tensor view = Tensor::from_data(buffer.data(), DType::F32, {2, 4, 3, 5}, {60, 5, 20, 1});
  CHECK_FALSE(view.owns_storage());
  CHECK_FALSE(view.is_contiguous());
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t h = 0; h < 4; ++h)
      for (int64_t s = 0; s < 3; ++s)
        for (int64_t d = 0; d < 5; ++d) {
          CAPTURE(b, h, s, d);
          CHECK(view.get_float({b, h, s, d}) == buffer[((b * 3 + s) * 4 + h) * 5 + d]);
        }
  view.set_float({1, 2, 0, 4}, -7.0f);
  CHECK(buffer[((1 * 3 + 0) * 4 + 2) * 5 + 4] == -7.0f);

  Tensor copy = view.contiguous_copy();
  CHECK(copy.is_contiguous());
  CHECK(copy.owns_storage());
  CHECK(copy.get_float({1, 2, 0, 4}) == -7.0f);
  CHECK(copy.get_float({1, 3, 2, 1}) == view.get_float({1, 3, 2, 1}));
  CHECK(copy.to_float_vector() == view.to_float_vector());
}

TEST_CASE("zero and negative strides describe broadcast and reversed views", "[runtime][tensor]") {
  std::vector<int32_t> values{10, 20, 30};
  Tensor broadcast = Tensor::from_data(values.data(), DType::I32, {4, 3}, {0, 1});
  CHECK(broadcast.get_int({3, 2}) == 30);
  CHECK_FALSE(broadcast.is_contiguous());
  Tensor reversed = Tensor::from_data(values.data() + 2, DType::I32, {3}, {-1});
  CHECK(reversed.get_int({0}) == 30);
  CHECK(reversed.get_int({2}) == 10);
  CHECK(reversed.to_float_vector() == std::vector<float>{30, 20, 10});
}

TEST_CASE("extent-1 dimensions may have any stride and stay contiguous", "[runtime][tensor]") {
  float x[6] = {};
  CHECK(Tensor::from_data(x, DType::F32, {1, 6}, {999, 1}).is_contiguous());
  CHECK_FALSE(Tensor::from_data(x, DType::F32, {2, 3}, {1, 2}).is_contiguous());
}

TEST_CASE("typed access converts between float storage types", "[runtime][tensor]") {
  Tensor half = Tensor::from_vector(std::vector<float>{1.0f / 3.0f, 65504.0f, -2.5f}, {}, DType::F16);
  CHECK(half.get_float({0}) == 0.333251953125f);  // nearest fp16
  CHECK(half.get_float({1}) == 65504.0f);
  CHECK(half.get_float({2}) == -2.5f);
  Tensor bf = Tensor::from_vector(std::vector<float>{1.0f / 3.0f, 3.0e38f}, {2}, DType::BF16);
  CHECK(bf.get_float({0}) == 0.333984375f);  // nearest bf16
  CHECK(bf.get_float({1}) == Approx(3.0e38f).epsilon(0.01));
  bf.set_float({0}, 1.0f);
  CHECK(bf.get_float({0}) == 1.0f);
  CHECK(*static_cast<uint16_t*>(bf.data()) == 0x3F80);

  Tensor ints = Tensor::from_vector(std::vector<int32_t>{1, -2, 3, 4}, {2, 2}, DType::I64);
  CHECK(ints.get_int({1, 0}) == 3);
  CHECK(ints.get_float({0, 1}) == -2.0f);
  ints.set_int({0, 0}, int64_t{1} << 40);
  CHECK(ints.get_int({0, 0}) == int64_t{1} << 40);
  Tensor flags = Tensor::from_vector(std::vector<int32_t>{0, 5}, {}, DType::Bool);
  CHECK_FALSE(flags.get_bool({0}));
  CHECK(flags.get_bool({1}));
  CHECK(flags.get_int({1}) == 1);  // stored as 1, not 5

  CHECK_THROWS_AS(ints.set_float({0, 0}, 1.5f), RuntimeError);
  CHECK_THROWS_AS(half.get_int({0}), RuntimeError);
  CHECK_THROWS_AS(half.set_int({0}, 1), RuntimeError);
  CHECK_THROWS_AS(Tensor::from_vector(std::vector<float>{1.0f}, {}, DType::I32), RuntimeError);
  CHECK_THROWS_AS(Tensor::from_vector(std::vector<int32_t>{1}, {}, DType::F32), RuntimeError);
}

TEST_CASE("shape, stride and index mistakes are RuntimeErrors", "[runtime][tensor]") {
  float x[8] = {};
  SECTION("negative extent") {
    CHECK_THROWS_WITH(Tensor::empty(DType::F32, {2, -1}), Catch::Contains("negative extent"));
    CHECK_THROWS_AS(Tensor::from_data(x, DType::F32, {-3}), RuntimeError);
  }
  SECTION("strides of the wrong count") {
    CHECK_THROWS_WITH(Tensor::from_data(x, DType::F32, {2, 4}, {4}), Catch::Contains("1 strides"));
  }
  SECTION("null data with elements") {
    CHECK_THROWS_WITH(Tensor::from_data(nullptr, DType::F32, {2}), Catch::Contains("null data"));
    CHECK_NOTHROW(Tensor::from_data(nullptr, DType::F32, {0, 2}));
  }
  SECTION("element count overflow") {
    CHECK_THROWS_AS(Tensor::empty(DType::F32, {int64_t{1} << 40, int64_t{1} << 40}), RuntimeError);
  }
  SECTION("out-of-range and wrong-rank indices") {
    Tensor t = Tensor::from_data(x, DType::F32, {2, 4});
    CHECK_THROWS_WITH(t.get_float({2, 0}), Catch::Contains("out of range"));
    CHECK_THROWS_WITH(t.get_float({0, -1}), Catch::Contains("out of range"));
    CHECK_THROWS_WITH(t.get_float({0}), Catch::Contains("1 components"));
  }
  SECTION("vector sizes that do not fill the shape") {
    CHECK_THROWS_WITH(Tensor::from_vector(std::vector<float>{1, 2, 3}, {2, 2}), Catch::Contains("do not fill"));
  }
}

TEST_CASE("device tensors are described but not read on the host", "[runtime][tensor]") {
  float x[4] = {};
  Tensor gpu = Tensor::from_data(x, DType::F32, {4}, {}, Device::Cuda);
  CHECK(gpu.device() == Device::Cuda);
  CHECK(gpu.describe() == "fp32[4] (strides [1], cuda)");
  CHECK_THROWS_WITH(gpu.get_float({0}), Catch::Contains("cuda"));
  CHECK_THROWS_AS(gpu.to_interpreter_arg(), RuntimeError);
  CHECK_THROWS_AS(gpu.contiguous_copy(), RuntimeError);
}

TEST_CASE("to_interpreter_arg passes the view unchanged", "[runtime][tensor]") {
  int32_t x[6] = {};
  Tensor t = Tensor::from_data(x, DType::I32, {3, 2}, {1, 3});
  ir::TensorArg arg = t.to_interpreter_arg();
  CHECK(arg.data == x);
  CHECK(arg.dtype == DType::I32);
  CHECK(arg.shape == std::vector<int64_t>{3, 2});
  CHECK(arg.strides == std::vector<int64_t>{1, 3});
}
