#pragma once
// The GPU architectures attnc compiles for: the one list NVRTC, `attnc compile`, `attnc warmup`
// and the docs use. sm_90a is Hopper with its architecture-specific instructions (wgmma, setmaxnreg),
// which a Hopper-only template needs; code for it runs on compute capability 9.0 only.

#include <array>
#include <string>
#include <string_view>

namespace attnc::cuda {

inline constexpr std::array<std::string_view, 5> kCudaArchitectures = {"sm_80", "sm_86", "sm_89", "sm_90", "sm_90a"};

// Whether `arch` is in kCudaArchitectures.
bool is_cuda_arch(std::string_view arch);

// RuntimeError "unknown GPU architecture 'x'; expected sm_80, ..." unless is_cuda_arch(arch).
void check_cuda_arch(std::string_view arch);

// "sm_80, sm_86, sm_89, sm_90 or sm_90a", for messages and help texts.
std::string cuda_architecture_list();

// The compute capability of a known architecture as a number: "sm_90a" -> 90.
int sm_number(std::string_view arch);

}  // namespace attnc::cuda
