#include "runtime/cuda/BoundsReport.h"

namespace attnc::cuda {

std::optional<attnc_abi::BoundsReport> launch_with_bounds_report(bool check, CuStream stream,
                                                                 const std::function<void(void* report)>& launch) {
  if (!check) {
    launch(nullptr);
    return std::nullopt;
  }
  CudaDriver& driver = CudaDriver::get();
  struct DeviceReport {
    CuDevicePtr pointer;
    ~DeviceReport() {
      try {
        CudaDriver::get().free(pointer);
      } catch (...) {  // a failed free leaks 48 bytes; it must not replace the error in flight
      }
    }
  } report{driver.allocate(sizeof(attnc_abi::BoundsReport))};
  driver.memset(report.pointer, 0, sizeof(attnc_abi::BoundsReport));
  launch(reinterpret_cast<void*>(report.pointer));
  attnc_abi::BoundsReport found{};
  driver.synchronize(stream);
  driver.copy_to_host(&found, report.pointer, sizeof found);
  return found;
}

}  // namespace attnc::cuda
