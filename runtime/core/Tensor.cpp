#include "runtime/core/Tensor.h"

#include <cstdlib>
#include <cstring>
#include <limits>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include <fmt/format.h>

#include "runtime/core/RuntimeError.h"

namespace attnc {

namespace {

// The element count of `shape`, checking each extent and that the count fits int64.
int64_t checked_numel(const std::vector<int64_t>& shape) {
  int64_t count = 1;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] < 0) {
      throw RuntimeError(
          fmt::format("tensor shape {} has a negative extent in dimension {}", shape_to_string(shape), d));
    }
    if (shape[d] != 0 && count > std::numeric_limits<int64_t>::max() / shape[d]) {
      throw RuntimeError(fmt::format("tensor shape {} has more elements than fit in 64 bits", shape_to_string(shape)));
    }
    count *= shape[d];
  }
  return count;
}

// Large tensors (KV caches and pools above all) start on a 2 MiB boundary and ask Linux for
// transparent huge pages. Decoding streams such tensors from memory, and with 4 KiB pages every 4 KiB
// of a paged cache is a TLB miss and a point where the hardware prefetchers stop: on the 2-core Zen 4
// build machine, bf16 decode over 16-token pages took 11.6-12.0 ms instead of 14.6-16.2 ms (B=4,
// H_kv=8, 16384 keys, D=128), contiguous 10.0-10.5 instead of 10.9-12.0. Where the system has huge
// pages off (or set to "never"), madvise is a no-op and the tensor is an ordinary allocation.
constexpr size_t kHugePage = size_t{2} << 20;
constexpr size_t kHugePageThreshold = size_t{8} << 20;  // the rounding wastes at most 1/4 above this

std::shared_ptr<void> allocate_huge(size_t bytes, bool zero) {
  const size_t rounded = (bytes + kHugePage - 1) / kHugePage * kHugePage;
  void* memory = std::aligned_alloc(kHugePage, rounded);
  if (!memory) throw RuntimeError(fmt::format("cannot allocate {} bytes for a tensor", bytes));
#if defined(__linux__)
  madvise(memory, rounded, MADV_HUGEPAGE);
#endif
  if (zero) std::memset(memory, 0, bytes);
  return std::shared_ptr<void>(memory, [](void* p) { std::free(p); });
}

// Allocation that keeps at least one byte so an empty tensor still has a non-null pointer.
std::shared_ptr<void> allocate(size_t bytes, bool zero) {
  if (bytes >= kHugePageThreshold) return allocate_huge(bytes, zero);
  void* memory = zero ? std::calloc(bytes == 0 ? 1 : bytes, 1) : std::malloc(bytes == 0 ? 1 : bytes);
  if (!memory) throw RuntimeError(fmt::format("cannot allocate {} bytes for a tensor", bytes));
  return std::shared_ptr<void>(memory, [](void* p) { std::free(p); });
}

size_t byte_count(DType dtype, int64_t numel) {
  if (numel > std::numeric_limits<int64_t>::max() / static_cast<int64_t>(dtype_size(dtype))) {
    throw RuntimeError(fmt::format("a tensor of {} {} elements is too large", numel, dtype_name(dtype)));
  }
  return static_cast<size_t>(numel) * dtype_size(dtype);
}

}  // namespace

const char* device_name(Device device) { return device == Device::Cpu ? "cpu" : "cuda"; }

std::string shape_to_string(std::span<const int64_t> shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(shape[i]);
  }
  return out + "]";
}

std::vector<int64_t> Tensor::contiguous_strides(const std::vector<int64_t>& shape) {
  std::vector<int64_t> strides(shape.size());
  int64_t stride = 1;
  for (size_t d = shape.size(); d-- > 0;) {
    strides[d] = stride;
    stride *= shape[d] > 0 ? shape[d] : 1;
  }
  return strides;
}

Tensor Tensor::from_storage(std::shared_ptr<void> storage, void* data, DType dtype, std::vector<int64_t> shape,
                            std::vector<int64_t> strides, Device device) {
  int64_t numel = checked_numel(shape);
  if (strides.empty() && !shape.empty()) strides = contiguous_strides(shape);
  if (strides.size() != shape.size()) {
    throw RuntimeError(fmt::format("tensor of shape {} (rank {}) given {} strides {}", shape_to_string(shape),
                                   shape.size(), strides.size(), shape_to_string(strides)));
  }
  if (!data && numel > 0) {
    throw RuntimeError(
        fmt::format("tensor of shape {} with {} elements has a null data pointer", shape_to_string(shape), numel));
  }
  Tensor t;
  t.storage_ = std::move(storage);
  t.data_ = data;
  t.dtype_ = dtype;
  t.dtype_set_ = true;
  t.device_ = device;
  t.shape_ = std::move(shape);
  t.strides_ = std::move(strides);
  return t;
}

Tensor Tensor::from_data(void* data, DType dtype, std::vector<int64_t> shape, std::vector<int64_t> strides,
                         Device device) {
  return from_storage(nullptr, data, dtype, std::move(shape), std::move(strides), device);
}

Tensor Tensor::empty(DType dtype, std::vector<int64_t> shape) {
  auto storage = allocate(byte_count(dtype, checked_numel(shape)), false);
  void* data = storage.get();
  return from_storage(std::move(storage), data, dtype, std::move(shape));
}

Tensor Tensor::zeros(DType dtype, std::vector<int64_t> shape) {
  auto storage = allocate(byte_count(dtype, checked_numel(shape)), true);
  void* data = storage.get();
  return from_storage(std::move(storage), data, dtype, std::move(shape));
}

Tensor Tensor::from_vector(const std::vector<float>& values, std::vector<int64_t> shape, DType dtype) {
  if (!dtype_is_float(dtype)) {
    throw RuntimeError(fmt::format("from_vector of floats needs a float dtype, not {}", dtype_name(dtype)));
  }
  if (shape.empty()) shape = {static_cast<int64_t>(values.size())};
  if (checked_numel(shape) != static_cast<int64_t>(values.size())) {
    throw RuntimeError(
        fmt::format("from_vector: {} values do not fill shape {}", values.size(), shape_to_string(shape)));
  }
  Tensor t = empty(dtype, std::move(shape));
  for (size_t i = 0; i < values.size(); ++i) {
    switch (dtype) {
      case DType::F32: static_cast<float*>(t.data_)[i] = values[i]; break;
      case DType::F16: static_cast<uint16_t*>(t.data_)[i] = float_to_half(values[i]); break;
      default: static_cast<uint16_t*>(t.data_)[i] = float_to_bfloat16(values[i]); break;
    }
  }
  return t;
}

Tensor Tensor::from_vector(const std::vector<int32_t>& values, std::vector<int64_t> shape, DType dtype) {
  if (dtype_is_float(dtype)) {
    throw RuntimeError(fmt::format("from_vector of ints needs an int, uint8 or bool dtype, not {}", dtype_name(dtype)));
  }
  if (shape.empty()) shape = {static_cast<int64_t>(values.size())};
  if (checked_numel(shape) != static_cast<int64_t>(values.size())) {
    throw RuntimeError(
        fmt::format("from_vector: {} values do not fill shape {}", values.size(), shape_to_string(shape)));
  }
  Tensor t = empty(dtype, std::move(shape));
  for (size_t i = 0; i < values.size(); ++i) {
    switch (dtype) {
      case DType::I32: static_cast<int32_t*>(t.data_)[i] = values[i]; break;
      case DType::I64: static_cast<int64_t*>(t.data_)[i] = values[i]; break;
      case DType::U8: static_cast<uint8_t*>(t.data_)[i] = static_cast<uint8_t>(values[i]); break;
      default: static_cast<uint8_t*>(t.data_)[i] = values[i] != 0 ? 1 : 0; break;
    }
  }
  return t;
}

int64_t Tensor::size(size_t dim) const {
  if (dim >= shape_.size()) {
    throw RuntimeError(fmt::format("dimension {} of a rank-{} tensor does not exist", dim, shape_.size()));
  }
  return shape_[dim];
}

int64_t Tensor::stride(size_t dim) const {
  if (dim >= strides_.size()) {
    throw RuntimeError(fmt::format("dimension {} of a rank-{} tensor does not exist", dim, strides_.size()));
  }
  return strides_[dim];
}

int64_t Tensor::numel() const {
  if (!defined()) return 0;
  int64_t count = 1;
  for (int64_t extent : shape_) count *= extent;
  return count;
}

bool Tensor::is_contiguous() const {
  int64_t expected = 1;
  for (size_t d = shape_.size(); d-- > 0;) {
    if (shape_[d] == 0) return true;  // an empty tensor has no elements to be out of place
    if (shape_[d] != 1 && strides_[d] != expected) return false;
    expected *= shape_[d];
  }
  return true;
}

int64_t Tensor::offset(std::span<const int64_t> index) const {
  if (index.size() != shape_.size()) {
    throw RuntimeError(fmt::format("index {} has {} components for a rank-{} tensor", shape_to_string(index),
                                   index.size(), shape_.size()));
  }
  int64_t off = 0;
  for (size_t d = 0; d < index.size(); ++d) {
    if (index[d] < 0 || index[d] >= shape_[d]) {
      throw RuntimeError(fmt::format("index {} is out of range for shape {} (dimension {})", shape_to_string(index),
                                     shape_to_string(shape_), d));
    }
    off += index[d] * strides_[d];
  }
  return off;
}

void Tensor::require_cpu(const char* what) const {
  if (!defined()) throw RuntimeError(fmt::format("{} of an undefined tensor", what));
  if (device_ != Device::Cpu) {
    throw RuntimeError(fmt::format("{} needs a CPU tensor, but this one is on {}", what, device_name(device_)));
  }
}

float Tensor::get_float(std::span<const int64_t> index) const {
  require_cpu("get_float");
  return load_as_float(data_, dtype_, offset(index));
}

void Tensor::set_float(std::span<const int64_t> index, float value) const {
  require_cpu("set_float");
  int64_t off = offset(index);
  switch (dtype_) {
    case DType::F32: static_cast<float*>(data_)[off] = value; return;
    case DType::F16: static_cast<uint16_t*>(data_)[off] = float_to_half(value); return;
    case DType::BF16: static_cast<uint16_t*>(data_)[off] = float_to_bfloat16(value); return;
    default:
      throw RuntimeError(
          fmt::format("set_float on a {} tensor; use set_int for integer and bool tensors", dtype_name(dtype_)));
  }
}

int64_t Tensor::get_int(std::span<const int64_t> index) const {
  require_cpu("get_int");
  if (dtype_is_float(dtype_)) {
    throw RuntimeError(fmt::format("get_int on a {} tensor; use get_float", dtype_name(dtype_)));
  }
  return load_as_int(data_, dtype_, offset(index));
}

void Tensor::set_int(std::span<const int64_t> index, int64_t value) const {
  require_cpu("set_int");
  int64_t off = offset(index);
  switch (dtype_) {
    case DType::I32: static_cast<int32_t*>(data_)[off] = static_cast<int32_t>(value); return;
    case DType::I64: static_cast<int64_t*>(data_)[off] = value; return;
    case DType::U8: static_cast<uint8_t*>(data_)[off] = static_cast<uint8_t>(value); return;
    case DType::Bool: static_cast<uint8_t*>(data_)[off] = value != 0 ? 1 : 0; return;
    default: throw RuntimeError(fmt::format("set_int on a {} tensor; use set_float", dtype_name(dtype_)));
  }
}

bool Tensor::get_bool(std::span<const int64_t> index) const {
  require_cpu("get_bool");
  int64_t off = offset(index);
  if (dtype_is_float(dtype_)) return load_as_float(data_, dtype_, off) != 0.0f;
  return load_as_int(data_, dtype_, off) != 0;
}

namespace {

// Calls `visit(offset)` for every element in C order.
template <typename Visit>
void for_each_offset(const std::vector<int64_t>& shape, const std::vector<int64_t>& strides, Visit visit) {
  for (int64_t extent : shape) {
    if (extent == 0) return;
  }
  std::vector<int64_t> index(shape.size(), 0);
  int64_t off = 0;
  while (true) {
    visit(off);
    size_t d = shape.size();
    while (d > 0) {
      --d;
      if (++index[d] < shape[d]) {
        off += strides[d];
        break;
      }
      off -= (shape[d] - 1) * strides[d];
      index[d] = 0;
      if (d == 0) return;
    }
    if (shape.empty()) return;
  }
}

}  // namespace

std::vector<float> Tensor::to_float_vector() const {
  require_cpu("to_float_vector");
  std::vector<float> out;
  out.reserve(static_cast<size_t>(numel()));
  for_each_offset(shape_, strides_, [&](int64_t off) { out.push_back(load_as_float(data_, dtype_, off)); });
  return out;
}

Tensor Tensor::contiguous_copy() const {
  require_cpu("contiguous_copy");
  Tensor out = empty(dtype_, shape_);
  size_t element = dtype_size(dtype_);
  auto* dst = static_cast<unsigned char*>(out.data_);
  const auto* src = static_cast<const unsigned char*>(data_);
  for_each_offset(shape_, strides_, [&](int64_t off) {
    std::memcpy(dst, src + off * static_cast<int64_t>(element), element);
    dst += element;
  });
  return out;
}

ir::TensorArg Tensor::to_interpreter_arg() const {
  require_cpu("the interpreter");
  return ir::TensorArg{data_, dtype_, shape_, strides_};
}

std::string Tensor::describe() const {
  if (!defined()) return "undefined tensor";
  return fmt::format("{}{} (strides {}, {})", dtype_name(dtype_), shape_to_string(shape_), shape_to_string(strides_),
                     device_name(device_));
}

}  // namespace attnc
