#include "tests/support/CudaTesting.h"

#include <catch2/catch.hpp>

#include "runtime/cuda/CudaDriver.h"
#include "runtime/cuda/DeviceTensor.h"
#include "runtime/cuda/Nvrtc.h"

namespace attnc::test {

bool nvrtc_or_warn() {
  if (cuda::Nvrtc::available()) return true;
  WARN("NVRTC is not available, so no CUDA kernel was compiled: " << cuda::Nvrtc::unavailable_reason());
  return false;
}

bool gpu_or_warn() {
  if (!cuda::CudaDriver::available()) {
    WARN("no CUDA driver (libcuda.so.1) on this machine: the GPU tests did not run");
    return false;
  }
  if (cuda::CudaDriver::get().device_count() == 0) {
    WARN("the CUDA driver sees no GPU: the GPU tests did not run");
    return false;
  }
  if (!nvrtc_or_warn()) return false;
  cuda::CudaDriver::get().use_device(0);
  return true;
}

Mod on_device(const Mod& mod) {
  Mod copy = mod;
  for (size_t i = 0; i < mod.def().params.size(); ++i) {
    const auto& argument = mod.argument(i);
    if (!argument) continue;
    if (const Tensor* t = std::get_if<Tensor>(&*argument)) copy.bind(mod.def().params[i].name, cuda::to_device(*t));
  }
  return copy;
}

flash::FlashSpec flash_spec(const Mod* score, const Mod* mask, DType dtype, int head_dim, const std::string& arch,
                            bool check_bounds) {
  flash::FlashSpec spec;
  spec.score = ModSpec::of(score);
  spec.mask = ModSpec::of(mask);
  spec.dtype = dtype;
  spec.head_dim = spec.head_dim_v = head_dim;
  spec.arch = arch;
  spec.check_bounds = check_bounds;
  return spec;
}

std::shared_ptr<const flash::FlashKernel> load_flash(const flash::FlashSpec& spec, KernelCache& cache) {
  return flash::load_flash_kernel(flash::plan_flash_kernel(spec), cache);
}

}  // namespace attnc::test
