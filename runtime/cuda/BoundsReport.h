#pragma once
// Device-side bounds checking around one launch: every CUDA family compiled with check_bounds gets
// a zeroed attnc_abi::BoundsReport in device memory, fills it from the mods' loads, and the runtime
// reads it back after the launch to raise the error on the host.

#include <functional>
#include <optional>

#include "runtime/cuda/CudaDriver.h"
#include "runtime/kernels/mod_abi.cuh"

namespace attnc::cuda {

// Calls launch(report) with a zeroed device BoundsReport, synchronizes `stream` and returns the
// report when `check` is set; calls launch(nullptr) and returns nullopt, without waiting, when not.
// The report's memory is freed on every path.
std::optional<attnc_abi::BoundsReport> launch_with_bounds_report(bool check, CuStream stream,
                                                                 const std::function<void(void* report)>& launch);

}  // namespace attnc::cuda
