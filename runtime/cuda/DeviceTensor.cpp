#include "runtime/cuda/DeviceTensor.h"

#include <algorithm>
#include <memory>
#include <utility>

#include "runtime/core/RuntimeError.h"
#include "runtime/cuda/CudaDriver.h"

namespace attnc::cuda {

namespace {

size_t byte_size(const Tensor& t) { return static_cast<size_t>(t.numel()) * dtype_size(t.dtype()); }

void require_contiguous_device(const Tensor& t, const char* what) {
  if (!t.defined() || t.device() != Device::Cuda || !t.is_contiguous()) {
    throw RuntimeError(std::string(what) + " takes a contiguous CUDA tensor, got " + t.describe());
  }
}

}  // namespace

Tensor empty_device_tensor(DType dtype, std::vector<int64_t> shape) {
  CudaDriver& driver = CudaDriver::get();
  int64_t count = 1;
  for (int64_t extent : shape) count *= extent;
  // One byte at least, so an empty tensor still has a distinct, freeable pointer.
  const size_t bytes = std::max<size_t>(1, static_cast<size_t>(count) * dtype_size(dtype));
  CuDevicePtr pointer = driver.allocate(bytes);
  std::shared_ptr<void> storage(reinterpret_cast<void*>(pointer),
                                [](void* p) { CudaDriver::get().free(reinterpret_cast<CuDevicePtr>(p)); });
  return Tensor::from_storage(storage, storage.get(), dtype, std::move(shape), {}, Device::Cuda);
}

Tensor to_device(const Tensor& host) {
  if (!host.defined() || host.device() != Device::Cpu) {
    throw RuntimeError("to_device takes a CPU tensor, got " + host.describe());
  }
  const Tensor contiguous = host.is_contiguous() ? host : host.contiguous_copy();
  Tensor device = empty_device_tensor(host.dtype(), host.shape());
  if (byte_size(contiguous) > 0) {
    CudaDriver::get().copy_to_device(reinterpret_cast<CuDevicePtr>(device.data()), contiguous.data(),
                                     byte_size(contiguous));
  }
  return device;
}

Tensor to_host(const Tensor& device) {
  require_contiguous_device(device, "to_host");
  Tensor host = Tensor::empty(device.dtype(), device.shape());
  if (byte_size(host) > 0) {
    CudaDriver::get().copy_to_host(host.data(), reinterpret_cast<CuDevicePtr>(device.data()), byte_size(host));
  }
  return host;
}

void fill_device_bytes(const Tensor& device, uint8_t byte) {
  require_contiguous_device(device, "fill_device_bytes");
  if (byte_size(device) > 0) {
    CudaDriver::get().memset(reinterpret_cast<CuDevicePtr>(device.data()), byte, byte_size(device));
  }
}

}  // namespace attnc::cuda
