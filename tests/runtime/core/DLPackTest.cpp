// Tensor::from_dlpack and Tensor::to_dlpack (runtime/core/DLPack.cpp) on DLManagedTensors built by
// hand, as PyTorch, JAX or CuPy would hand them over: no copies, every dtype and both devices, the
// producer's deleter called exactly once, and refusals that leave the tensor to its caller.
#include "runtime/core/Tensor.h"

#include <catch2/catch.hpp>

#include <cstdint>
#include <memory>
#include <numeric>
#include <vector>

#include "runtime/core/RuntimeError.h"

#if ATTNC_HAVE_DLPACK
#include <dlpack/dlpack.h>
#endif

using namespace attnc;

#if ATTNC_HAVE_DLPACK

namespace {

constexpr uint8_t kDLBoolCode = 6;  // DLPack 0.8's kDLBool; Debian's header is 0.6

// A producer's DLManagedTensor: it owns its shape and stride arrays, and its deleter counts calls
// in `*deletions` before freeing it (the memory it points at belongs to the test).
struct Produced {
  DLManagedTensor managed{};
  std::vector<int64_t> shape;
  std::vector<int64_t> strides;
  int* deletions = nullptr;
};

struct Spec {
  void* data = nullptr;
  DLDevice device{kDLCPU, 0};
  DLDataType dtype{kDLFloat, 32, 1};
  std::vector<int64_t> shape{};
  std::vector<int64_t> strides{};  // empty: a null strides pointer (C order)
  uint64_t byte_offset = 0;
};

DLManagedTensor* produce(const Spec& spec, int* deletions) {
  auto* produced = new Produced;
  produced->shape = spec.shape;
  produced->strides = spec.strides;
  produced->deletions = deletions;
  DLTensor& dl = produced->managed.dl_tensor;
  dl.data = spec.data;
  dl.device = spec.device;
  dl.ndim = static_cast<int>(spec.shape.size());
  dl.dtype = spec.dtype;
  dl.shape = produced->shape.empty() ? nullptr : produced->shape.data();
  dl.strides = produced->strides.empty() ? nullptr : produced->strides.data();
  dl.byte_offset = spec.byte_offset;
  produced->managed.manager_ctx = produced;
  produced->managed.deleter = [](DLManagedTensor* self) {
    auto* owner = static_cast<Produced*>(self->manager_ctx);
    ++*owner->deletions;
    delete owner;
  };
  return &produced->managed;
}

std::vector<float> iota_floats(size_t n) {
  std::vector<float> values(n);
  std::iota(values.begin(), values.end(), 0.0f);
  return values;
}

}  // namespace

TEST_CASE("from_dlpack views a CPU tensor without copying and deletes it when the last copy goes",
          "[runtime][dlpack]") {
  std::vector<float> buffer = iota_floats(6);
  int deletions = 0;
  Tensor t = Tensor::from_dlpack(produce({.data = buffer.data(), .shape = {2, 3}}, &deletions));
  CHECK(t.data() == buffer.data());
  CHECK(t.dtype() == DType::F32);
  CHECK(t.device() == Device::Cpu);
  CHECK(t.shape() == std::vector<int64_t>{2, 3});
  CHECK(t.strides() == std::vector<int64_t>{3, 1});  // null strides: C order
  CHECK(t.owns_storage());
  CHECK(t.get_float({1, 2}) == 5.0f);
  t.set_float({0, 1}, -1.0f);
  CHECK(buffer[1] == -1.0f);

  Tensor copy = t;
  std::vector<Tensor> more(3, copy);
  t = Tensor();
  copy = Tensor();
  CHECK(deletions == 0);
  more.clear();
  CHECK(deletions == 1);
}

TEST_CASE("from_dlpack maps every dtype attnc stores", "[runtime][dlpack]") {
  auto [dl_dtype, dtype] = GENERATE(table<DLDataType, DType>({
      {{kDLFloat, 32, 1}, DType::F32},
      {{kDLFloat, 16, 1}, DType::F16},
      {{kDLBfloat, 16, 1}, DType::BF16},
      {{kDLInt, 32, 1}, DType::I32},
      {{kDLInt, 64, 1}, DType::I64},
      {{kDLUInt, 8, 1}, DType::U8},
      {{kDLBoolCode, 8, 1}, DType::Bool},
  }));
  CAPTURE(dtype_name(dtype));
  alignas(8) unsigned char bytes[64] = {};
  bytes[3 * dtype_size(dtype)] = 1;  // element 3's lowest byte (little-endian): 1 in every dtype but floats
  int deletions = 0;
  Tensor t = Tensor::from_dlpack(produce({.data = bytes, .dtype = dl_dtype, .shape = {4}}, &deletions));
  CHECK(t.dtype() == dtype);
  CHECK(t.data() == bytes);
  if (!dtype_is_float(dtype)) CHECK(t.get_int({3}) == 1);
  CHECK(t.get_bool({3}));
  CHECK_FALSE(t.get_bool({2}));

  // ... and to_dlpack gives the same DLPack dtype back.
  DLManagedTensor* exported = t.to_dlpack();
  CHECK(exported->dl_tensor.dtype.code == dl_dtype.code);
  CHECK(exported->dl_tensor.dtype.bits == dl_dtype.bits);
  CHECK(exported->dl_tensor.dtype.lanes == 1);
  exported->deleter(exported);
  t = Tensor();
  CHECK(deletions == 1);
}

TEST_CASE("from_dlpack keeps strides in elements, byte_offset and rank 0", "[runtime][dlpack]") {
  std::vector<float> buffer = iota_floats(24);
  int deletions = 0;

  SECTION("a transposed view") {
    // The (2, 3, 4) buffer seen as (4, 3, 2), as x.permute(2, 1, 0) would export it.
    Tensor t =
        Tensor::from_dlpack(produce({.data = buffer.data(), .shape = {4, 3, 2}, .strides = {1, 4, 12}}, &deletions));
    CHECK_FALSE(t.is_contiguous());
    CHECK(t.strides() == std::vector<int64_t>{1, 4, 12});
    for (int64_t i = 0; i < 4; ++i)
      for (int64_t j = 0; j < 3; ++j)
        for (int64_t k = 0; k < 2; ++k) {
          CAPTURE(i, j, k);
          CHECK(t.get_float({i, j, k}) == buffer[k * 12 + j * 4 + i]);
        }
  }
  SECTION("broadcast and reversed strides") {
    // Row 2 of the (6, 4) buffer, reversed, repeated 3 times: x[2].flip(0).expand(3, 4).
    Tensor t = Tensor::from_dlpack(produce(
        {.data = buffer.data(), .shape = {3, 4}, .strides = {0, -1}, .byte_offset = (2 * 4 + 3) * sizeof(float)},
        &deletions));
    CHECK(t.to_float_vector() == std::vector<float>{11, 10, 9, 8, 11, 10, 9, 8, 11, 10, 9, 8});
  }
  SECTION("byte_offset moves element 0") {
    Tensor t = Tensor::from_dlpack(
        produce({.data = buffer.data(), .shape = {2, 2}, .byte_offset = 5 * sizeof(float)}, &deletions));
    CHECK(t.data() == buffer.data() + 5);
    CHECK(t.to_float_vector() == std::vector<float>{5, 6, 7, 8});
  }
  SECTION("a rank-0 tensor with a null shape") {
    Tensor t = Tensor::from_dlpack(produce({.data = buffer.data() + 7, .shape = {}}, &deletions));
    CHECK(t.rank() == 0);
    CHECK(t.numel() == 1);
    CHECK(t.get_float({}) == 7.0f);
  }
  SECTION("an empty tensor with a null data pointer") {
    Tensor t = Tensor::from_dlpack(produce({.data = nullptr, .shape = {0, 5}}, &deletions));
    CHECK(t.numel() == 0);
    CHECK(t.data() == nullptr);
  }
  CHECK(deletions == 1);
}

TEST_CASE("a CUDA DLPack tensor is wrapped without touching its memory", "[runtime][dlpack]") {
  // An address no process maps: reading it would crash the test.
  void* device_pointer = reinterpret_cast<void*>(uintptr_t{0xdead0000});
  int deletions = 0;
  Tensor t = Tensor::from_dlpack(
      produce({.data = device_pointer, .device = {kDLCUDA, 0}, .dtype = {kDLBfloat, 16, 1}, .shape = {2, 8, 128, 64}},
              &deletions));
  CHECK(t.device() == Device::Cuda);
  CHECK(t.data() == device_pointer);
  CHECK(t.dtype() == DType::BF16);
  CHECK(t.strides() == std::vector<int64_t>{8 * 128 * 64, 128 * 64, 64, 1});
  CHECK_THROWS_WITH(t.get_float({0, 0, 0, 0}), Catch::Contains("cuda"));

  DLManagedTensor* exported = t.to_dlpack();
  CHECK(exported->dl_tensor.device.device_type == kDLCUDA);
  CHECK(exported->dl_tensor.device.device_id == 0);
  CHECK(exported->dl_tensor.data == device_pointer);
  t = Tensor();
  CHECK(deletions == 0);  // the exported tensor still holds it
  exported->deleter(exported);
  CHECK(deletions == 1);
}

TEST_CASE("to_dlpack exports the view and keeps the storage alive until its deleter runs", "[runtime][dlpack]") {
  std::vector<float> buffer = iota_floats(12);
  int frees = 0;
  std::shared_ptr<void> storage(buffer.data(), [&frees](void*) { ++frees; });
  Tensor t = Tensor::from_storage(std::move(storage), buffer.data() + 1, DType::F32, {3, 2}, {4, 2});

  DLManagedTensor* exported = t.to_dlpack();
  const DLTensor& dl = exported->dl_tensor;
  CHECK(dl.data == buffer.data() + 1);
  CHECK(dl.byte_offset == 0);
  CHECK(dl.device.device_type == kDLCPU);
  CHECK(dl.ndim == 2);
  CHECK(std::vector<int64_t>(dl.shape, dl.shape + 2) == std::vector<int64_t>{3, 2});
  CHECK(std::vector<int64_t>(dl.strides, dl.strides + 2) == std::vector<int64_t>{4, 2});
  CHECK(dl.dtype.code == kDLFloat);
  CHECK(dl.dtype.bits == 32);
  CHECK(exported->manager_ctx != nullptr);

  t = Tensor();
  CHECK(frees == 0);
  exported->deleter(exported);
  CHECK(frees == 1);

  CHECK_THROWS_WITH(Tensor().to_dlpack(), Catch::Contains("undefined"));
}

TEST_CASE("a round trip to_dlpack -> from_dlpack shares the data and deletes the producer's tensor once",
          "[runtime][dlpack]") {
  std::vector<float> buffer = iota_floats(8);
  int deletions = 0;
  Tensor first = Tensor::from_dlpack(produce({.data = buffer.data(), .shape = {2, 4}}, &deletions));
  Tensor second = Tensor::from_dlpack(first.to_dlpack());
  Tensor third = Tensor::from_dlpack(second.to_dlpack());
  CHECK(third.data() == buffer.data());
  CHECK(third.shape() == first.shape());
  CHECK(third.strides() == first.strides());

  Tensor copy = second;
  first = Tensor();
  second = Tensor();
  CHECK(deletions == 0);
  third = Tensor();
  CHECK(deletions == 0);
  copy = Tensor();
  CHECK(deletions == 1);
}

TEST_CASE("a DLPack tensor with a null deleter is wrapped and never deleted", "[runtime][dlpack]") {
  std::vector<float> buffer = iota_floats(4);
  DLManagedTensor managed{};
  int64_t shape[] = {4};
  managed.dl_tensor = DLTensor{buffer.data(), {kDLCPU, 0}, 1, {kDLFloat, 32, 1}, shape, nullptr, 0};
  Tensor t = Tensor::from_dlpack(&managed);
  CHECK(t.get_float({3}) == 3.0f);
  t = Tensor();  // nothing to call
}

TEST_CASE("from_dlpack refuses what attnc cannot hold and leaves the tensor to its caller", "[runtime][dlpack]") {
  alignas(8) static float buffer[16] = {};  // static: the generator outlives each run of the test case
  struct Refusal {
    const char* what;
    Spec spec;
    const char* message;
  };
  auto refusal = GENERATE(values<Refusal>({
      {"a ROCm tensor", {.data = buffer, .device = {kDLROCM, 0}, .shape = {4}}, "rocm (kDLROCM)"},
      {"pinned host memory", {.data = buffer, .device = {kDLCUDAHost, 0}, .shape = {4}}, "cuda_host (kDLCUDAHost)"},
      {"a tensor on CUDA device 1", {.data = buffer, .device = {kDLCUDA, 1}, .shape = {4}}, "CUDA device 1"},
      {"float64", {.data = buffer, .dtype = {kDLFloat, 64, 1}, .shape = {4}}, "float64"},
      {"int8", {.data = buffer, .dtype = {kDLInt, 8, 1}, .shape = {4}}, "int8"},
      {"complex64", {.data = buffer, .dtype = {kDLComplex, 64, 1}, .shape = {4}}, "complex64"},
      {"a one-bit bool", {.data = buffer, .dtype = {kDLBoolCode, 1, 1}, .shape = {4}}, "bool of 1 bits"},
      {"four lanes", {.data = buffer, .dtype = {kDLFloat, 32, 4}, .shape = {4}}, "float32x4"},
      {"a negative extent", {.data = buffer, .shape = {2, -3}}, "negative extent"},
      {"a null data pointer", {.data = nullptr, .shape = {4}}, "null data"},
      {"a misaligned element 0", {.data = buffer, .shape = {4}, .byte_offset = 2}, "not aligned to 4 bytes"},
  }));
  CAPTURE(refusal.what);
  int deletions = 0;
  DLManagedTensor* managed = produce(refusal.spec, &deletions);
  CHECK_THROWS_WITH(Tensor::from_dlpack(managed), Catch::Contains(refusal.message));
  CHECK(deletions == 0);
  managed->deleter(managed);  // still ours
  CHECK(deletions == 1);
}

TEST_CASE("from_dlpack refuses a null tensor, a negative rank and a missing shape", "[runtime][dlpack]") {
  CHECK_THROWS_WITH(Tensor::from_dlpack(nullptr), Catch::Contains("null DLManagedTensor"));
  float x = 0.0f;
  int deletions = 0;
  DLManagedTensor* managed = produce({.data = &x, .shape = {}}, &deletions);
  managed->dl_tensor.ndim = -1;
  CHECK_THROWS_WITH(Tensor::from_dlpack(managed), Catch::Contains("negative rank"));
  managed->dl_tensor.ndim = 2;  // with a null shape pointer
  CHECK_THROWS_WITH(Tensor::from_dlpack(managed), Catch::Contains("null shape"));
  CHECK(deletions == 0);
  managed->deleter(managed);
  CHECK(deletions == 1);
}

#else  // !ATTNC_HAVE_DLPACK

TEST_CASE("without DLPack's header, from_dlpack and to_dlpack say so", "[runtime][dlpack]") {
  CHECK_THROWS_WITH(Tensor::from_dlpack(nullptr), Catch::Contains("without DLPack"));
  CHECK_THROWS_WITH(Tensor::zeros(DType::F32, {2}).to_dlpack(), Catch::Contains("without DLPack"));
}

#endif
