#pragma once
// What the CUDA tests share: saying once why a test could not run (no NVRTC, no driver, no GPU),
// and asking for a flash kernel in one line.

#include <memory>
#include <string>

#include "compiler/DType.h"
#include "runtime/cache/KernelCache.h"
#include "runtime/core/Mod.h"
#include "runtime/families/flash/FlashCuda.h"

namespace attnc::test {

// Whether NVRTC can be loaded; otherwise one WARN line saying why, and false.
bool nvrtc_or_warn();
// Whether NVRTC, the CUDA driver and a GPU are all here (device 0 is then current); otherwise one
// WARN line saying what is missing, and false.
bool gpu_or_warn();

// A copy of `mod` whose tensor arguments are copied to the current device.
Mod on_device(const Mod& mod);

// The flash spec for bound or unbound mods (storage from their bound tensors).
flash::FlashSpec flash_spec(const Mod* score, const Mod* mask, DType dtype, int head_dim, const std::string& arch,
                            bool check_bounds = false);
// plan_flash_kernel, then load_flash_kernel through `cache`.
std::shared_ptr<const flash::FlashKernel> load_flash(const flash::FlashSpec& spec, KernelCache& cache);

}  // namespace attnc::test
