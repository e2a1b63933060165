#pragma once
// A tensor as the runtime sees it: a strided view of memory that can describe PyTorch, JAX and
// NumPy layouts without copying (data pointer, storage dtype, shape, strides in elements, device),
// optionally owning its storage. Tensors are cheap to copy: copies share the storage.
//
// Strides are in elements, not bytes, and may be zero (broadcast) or negative (reversed views);
// the data pointer points at element (0, ..., 0).
//
// DLPack, the exchange format of PyTorch, JAX, CuPy and NumPy, converts both ways without copies
// (from_dlpack, to_dlpack; written in runtime/core/DLPack.cpp). This header only declares
// DLManagedTensor: callers that build or read one include <dlpack/dlpack.h> (DLPack 0.6 or newer,
// or a framework's copy of it: the unversioned DLManagedTensor has not changed since). A library
// built without DLPack's header (ATTNC_HAVE_DLPACK undefined) has both, throwing RuntimeError.

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "compiler/DType.h"
#include "compiler/Interpreter.h"

struct DLManagedTensor;  // <dlpack/dlpack.h>

namespace attnc {

enum class Device { Cpu, Cuda };

const char* device_name(Device device);  // "cpu", "cuda"

class Tensor {
 public:
  // An undefined tensor (no data, rank 0 but not a scalar): `defined()` is false.
  Tensor() = default;

  // Contiguous (C order), owning, on the CPU; contents uninitialised / zero.
  static Tensor empty(DType dtype, std::vector<int64_t> shape);
  static Tensor zeros(DType dtype, std::vector<int64_t> shape);

  // A non-owning view of memory the caller keeps alive. Empty `strides` means contiguous.
  static Tensor from_data(void* data, DType dtype, std::vector<int64_t> shape, std::vector<int64_t> strides = {},
                          Device device = Device::Cpu);
  // The same, keeping `storage` alive for as long as the view (and its copies) live.
  static Tensor from_storage(std::shared_ptr<void> storage, void* data, DType dtype, std::vector<int64_t> shape,
                             std::vector<int64_t> strides = {}, Device device = Device::Cpu);

  // A view of a DLPack tensor, without copying: strides in elements (null: C order), element 0 at
  // data + byte_offset. Takes float32/16, bfloat16, int32/64, uint8 and bool (DLPack 0.8's kDLBool,
  // 8 bits) with one lane, on kDLCPU (Device::Cpu) or kDLCUDA device 0 (Device::Cuda; attnc runs
  // on CUDA device 0). On success the tensor owns `managed`: the storage its copies share holds it,
  // and its deleter (unless null) runs exactly once, when the last copy goes. On failure
  // (RuntimeError naming what was refused: a null tensor, another device, dtype or lane count, a
  // negative extent, a null shape or data pointer, a data pointer not aligned to its element) nothing
  // is taken: the caller still owns `managed` and calls its deleter, as a Python binding does by
  // renaming the capsule "used_dltensor" only once this returns.
  static Tensor from_dlpack(DLManagedTensor* managed);

  // Owning CPU copies of host values, converted to `dtype` (a float dtype for float values; int32,
  // int64, uint8 or bool for int values). `shape` defaults to {values.size()}.
  static Tensor from_vector(const std::vector<float>& values, std::vector<int64_t> shape = {},
                            DType dtype = DType::F32);
  static Tensor from_vector(const std::vector<int32_t>& values, std::vector<int64_t> shape = {},
                            DType dtype = DType::I32);

  // C-order strides of `shape`.
  static std::vector<int64_t> contiguous_strides(const std::vector<int64_t>& shape);

  bool defined() const { return dtype_set_; }
  void* data() const { return data_; }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  const std::vector<int64_t>& shape() const { return shape_; }
  const std::vector<int64_t>& strides() const { return strides_; }
  size_t rank() const { return shape_.size(); }
  int64_t size(size_t dim) const;    // RuntimeError when dim >= rank
  int64_t stride(size_t dim) const;  // RuntimeError when dim >= rank
  int64_t numel() const;
  bool is_contiguous() const;  // C order (dims of extent 1 may have any stride)
  bool owns_storage() const { return storage_ != nullptr; }

  // The element offset (in elements from data()) of `index`, which must be in range (RuntimeError).
  int64_t offset(std::span<const int64_t> index) const;
  int64_t offset(std::initializer_list<int64_t> index) const { return offset(std::span(index.begin(), index.size())); }

  // Typed element access on CPU tensors, converting. get_float reads any dtype; set_float writes a
  // float dtype (rounding to fp16/bf16 to nearest even). get_int/set_int take integer, uint8 and bool
  // dtypes (set_int narrows to the storage type as C does). get_bool is "!= 0" of any dtype.
  float get_float(std::span<const int64_t> index) const;
  float get_float(std::initializer_list<int64_t> index) const { return get_float(span_of(index)); }
  void set_float(std::span<const int64_t> index, float value) const;
  void set_float(std::initializer_list<int64_t> index, float value) const { set_float(span_of(index), value); }
  int64_t get_int(std::span<const int64_t> index) const;
  int64_t get_int(std::initializer_list<int64_t> index) const { return get_int(span_of(index)); }
  void set_int(std::span<const int64_t> index, int64_t value) const;
  void set_int(std::initializer_list<int64_t> index, int64_t value) const { set_int(span_of(index), value); }
  bool get_bool(std::span<const int64_t> index) const;
  bool get_bool(std::initializer_list<int64_t> index) const { return get_bool(span_of(index)); }

  // All elements in C order, converted to float (any dtype; CPU only).
  std::vector<float> to_float_vector() const;

  // A contiguous owning CPU copy with the same dtype (also of a non-contiguous view).
  Tensor contiguous_copy() const;

  // The view as the interpreter takes it (CPU only; RuntimeError for CUDA tensors).
  ir::TensorArg to_interpreter_arg() const;

  // This tensor as a DLPack tensor, without copying: shape, strides (in elements, always given),
  // dtype (bool as kDLBool), device (kDLCPU or kDLCUDA 0), byte_offset 0. Its manager_ctx holds a
  // copy of this Tensor, so the storage stays alive until the consumer calls the deleter, exactly
  // once, which frees the DLManagedTensor. A view made by from_data owns nothing: its memory must
  // outlive the DLPack tensor too. RuntimeError for an undefined tensor.
  DLManagedTensor* to_dlpack() const;

  // "fp32[2, 3] (strides [3, 1], cpu)", for error messages.
  std::string describe() const;

 private:
  static std::span<const int64_t> span_of(std::initializer_list<int64_t> list) {
    return std::span(list.begin(), list.size());
  }
  void require_cpu(const char* what) const;

  std::shared_ptr<void> storage_;
  void* data_ = nullptr;
  DType dtype_ = DType::F32;
  bool dtype_set_ = false;
  Device device_ = Device::Cpu;
  std::vector<int64_t> shape_;
  std::vector<int64_t> strides_;
};

// "[2, 3, 4]"
std::string shape_to_string(std::span<const int64_t> shape);

}  // namespace attnc
