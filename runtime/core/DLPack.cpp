// Tensor::from_dlpack and Tensor::to_dlpack (declared in runtime/core/Tensor.h): the only file that
// includes DLPack's header. CMake defines ATTNC_HAVE_DLPACK when it finds dlpack/dlpack.h (Debian:
// libdlpack-dev); without it both functions throw, so the API is the same in every build.
#include "runtime/core/Tensor.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <fmt/format.h>

#include "runtime/core/RuntimeError.h"

#if ATTNC_HAVE_DLPACK
#include <dlpack/dlpack.h>
#endif

namespace attnc {

#if ATTNC_HAVE_DLPACK

namespace {

// kDLBool came with DLPack 0.8 (PyTorch 2.1 and NumPy 1.25 export bool with it); Debian's header is 0.6.
constexpr uint8_t kDLBoolCode = 6;

const char* device_type_name(int type) {
  switch (type) {
    case kDLCPU: return "cpu (kDLCPU)";
    case kDLCUDA: return "cuda (kDLCUDA)";
    case kDLCUDAHost: return "cuda_host (kDLCUDAHost)";
    case kDLOpenCL: return "opencl (kDLOpenCL)";
    case kDLVulkan: return "vulkan (kDLVulkan)";
    case kDLMetal: return "metal (kDLMetal)";
    case kDLVPI: return "vpi (kDLVPI)";
    case kDLROCM: return "rocm (kDLROCM)";
    case kDLROCMHost: return "rocm_host (kDLROCMHost)";
    case kDLExtDev: return "ext_dev (kDLExtDev)";
    case kDLCUDAManaged: return "cuda_managed (kDLCUDAManaged)";
    case 14: return "oneapi (kDLOneAPI)";  // the codes below came after DLPack 0.6
    case 15: return "webgpu (kDLWebGPU)";
    case 16: return "hexagon (kDLHexagon)";
    default: return "unknown";
  }
}

// "float64", "int8x4", "code 9 with 8 bits", for error messages.
std::string dtype_description(DLDataType type) {
  std::string name;
  switch (type.code) {
    case kDLInt: name = fmt::format("int{}", type.bits); break;
    case kDLUInt: name = fmt::format("uint{}", type.bits); break;
    case kDLFloat: name = fmt::format("float{}", type.bits); break;
    case kDLBfloat: name = fmt::format("bfloat{}", type.bits); break;
    case kDLComplex: name = fmt::format("complex{}", type.bits); break;
    case kDLOpaqueHandle: name = fmt::format("opaque handle of {} bits", type.bits); break;
    case kDLBoolCode: name = fmt::format("bool of {} bits", type.bits); break;
    default: name = fmt::format("code {} with {} bits", type.code, type.bits); break;
  }
  if (type.lanes != 1) name += fmt::format("x{}", type.lanes);
  return name;
}

std::optional<DType> dtype_from_dlpack(DLDataType type) {
  if (type.lanes != 1) return std::nullopt;
  switch (type.code) {
    case kDLFloat:
      if (type.bits == 32) return DType::F32;
      if (type.bits == 16) return DType::F16;
      return std::nullopt;
    case kDLBfloat: return type.bits == 16 ? std::optional(DType::BF16) : std::nullopt;
    case kDLInt:
      if (type.bits == 32) return DType::I32;
      if (type.bits == 64) return DType::I64;
      return std::nullopt;
    case kDLUInt: return type.bits == 8 ? std::optional(DType::U8) : std::nullopt;
    case kDLBoolCode: return type.bits == 8 ? std::optional(DType::Bool) : std::nullopt;
    default: return std::nullopt;
  }
}

DLDataType dtype_to_dlpack(DType dtype) {
  switch (dtype) {
    case DType::F32: return {kDLFloat, 32, 1};
    case DType::F16: return {kDLFloat, 16, 1};
    case DType::BF16: return {kDLBfloat, 16, 1};
    case DType::I32: return {kDLInt, 32, 1};
    case DType::I64: return {kDLInt, 64, 1};
    case DType::U8: return {kDLUInt, 8, 1};
    case DType::Bool: return {kDLBoolCode, 8, 1};
  }
  return {kDLOpaqueHandle, 0, 1};
}

Device device_from_dlpack(DLDevice device) {
  if (device.device_type == kDLCPU) return Device::Cpu;
  if (device.device_type == kDLCUDA) {
    // A Tensor has no device index and attention() launches on device 0, so a tensor on another
    // device would be read through the wrong context.
    if (device.device_id != 0) {
      throw RuntimeError(fmt::format(
          "from_dlpack: the tensor is on CUDA device {}, but attnc runs on CUDA device 0 only", device.device_id));
    }
    return Device::Cuda;
  }
  throw RuntimeError(
      fmt::format("from_dlpack: DLPack device type {} = {} is not supported; attnc takes kDLCPU and "
                  "kDLCUDA tensors",
                  static_cast<int>(device.device_type), device_type_name(device.device_type)));
}

// The storage of a Tensor made by from_dlpack: the producer's deleter runs when the last copy goes.
struct DlpackOwner {
  DLManagedTensor* managed = nullptr;
  DlpackOwner() = default;
  DlpackOwner(const DlpackOwner&) = delete;
  DlpackOwner& operator=(const DlpackOwner&) = delete;
  ~DlpackOwner() {
    if (managed != nullptr && managed->deleter != nullptr) managed->deleter(managed);
  }
};

// What to_dlpack hands out: the DLManagedTensor (its manager_ctx points back here), the Tensor it
// views, which keeps the storage alive, and the arrays its shape and strides point at.
struct DlpackExport {
  DLManagedTensor managed{};
  Tensor tensor;
  std::vector<int64_t> shape;
  std::vector<int64_t> strides;
};

}  // namespace

Tensor Tensor::from_dlpack(DLManagedTensor* managed) {
  // Everything that can throw happens before ownership is taken, so a refusal leaves `managed` to
  // the caller.
  if (managed == nullptr) throw RuntimeError("from_dlpack of a null DLManagedTensor");
  const DLTensor& dl = managed->dl_tensor;
  Device device = device_from_dlpack(dl.device);
  std::optional<DType> dtype = dtype_from_dlpack(dl.dtype);
  if (!dtype) {
    throw RuntimeError(
        fmt::format("from_dlpack: DLPack dtype {} is not supported; attnc takes float32, float16, "
                    "bfloat16, int32, int64, uint8 and bool, one lane each",
                    dtype_description(dl.dtype)));
  }
  if (dl.ndim < 0) throw RuntimeError(fmt::format("from_dlpack: the tensor has a negative rank {}", dl.ndim));
  if (dl.ndim > 0 && dl.shape == nullptr) {
    throw RuntimeError(fmt::format("from_dlpack: a rank-{} tensor with a null shape pointer", dl.ndim));
  }
  std::vector<int64_t> shape(dl.shape, dl.shape + dl.ndim);
  std::vector<int64_t> strides;
  if (dl.strides != nullptr) strides.assign(dl.strides, dl.strides + dl.ndim);
  void* data = nullptr;
  if (dl.data != nullptr) {
    data = static_cast<char*>(dl.data) + dl.byte_offset;
    if (reinterpret_cast<uintptr_t>(data) % dtype_size(*dtype) != 0) {
      throw RuntimeError(
          fmt::format("from_dlpack: element 0 (data {} + byte_offset {}) is not aligned to {} bytes for "
                      "{} elements",
                      dl.data, dl.byte_offset, dtype_size(*dtype), dtype_name(*dtype)));
    }
  }
  // from_data checks the extents, the stride count and a null pointer with elements to point at.
  Tensor tensor = from_data(data, *dtype, std::move(shape), std::move(strides), device);
  auto owner = std::make_shared<DlpackOwner>();
  owner->managed = managed;  // taken: nothing below throws
  tensor.storage_ = std::move(owner);
  return tensor;
}

DLManagedTensor* Tensor::to_dlpack() const {
  if (!defined()) throw RuntimeError("to_dlpack of an undefined tensor");
  auto context = std::make_unique<DlpackExport>();
  context->tensor = *this;
  context->shape = shape_;
  context->strides = strides_;
  DLTensor& dl = context->managed.dl_tensor;
  dl.data = data_;
  dl.device = DLDevice{device_ == Device::Cuda ? kDLCUDA : kDLCPU, 0};
  dl.ndim = static_cast<int>(shape_.size());
  dl.dtype = dtype_to_dlpack(dtype_);
  dl.shape = context->shape.data();
  dl.strides = context->strides.data();
  dl.byte_offset = 0;
  context->managed.manager_ctx = context.get();
  context->managed.deleter = [](DLManagedTensor* self) { delete static_cast<DlpackExport*>(self->manager_ctx); };
  return &context.release()->managed;
}

#else  // !ATTNC_HAVE_DLPACK

Tensor Tensor::from_dlpack(DLManagedTensor*) {
  throw RuntimeError("from_dlpack: attnc was built without DLPack's header (dlpack/dlpack.h, Debian libdlpack-dev)");
}

DLManagedTensor* Tensor::to_dlpack() const {
  throw RuntimeError("to_dlpack: attnc was built without DLPack's header (dlpack/dlpack.h, Debian libdlpack-dev)");
}

#endif

}  // namespace attnc
