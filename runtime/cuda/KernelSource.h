#pragma once
// The complete CUDA translation unit for one kernel specialisation: the generated mods
// (compiler/CudaCodegen.h, as the header "attnc_mods.cuh"), the embedded kernel templates
// (runtime/kernels/*.cuh) as headers, and a main file that instantiates the entry point.
// `attnc compile --emit cuda` writes it flattened into one file; NVRTC compiles it as a program.

#include <string>

#include "compiler/CudaCodegen.h"
#include "compiler/DType.h"
#include "runtime/cuda/Nvrtc.h"
#include "runtime/cuda/TileConfig.h"

namespace attnc::cuda {

// What the entry point is specialised for besides the mods.
struct KernelSpec {
  DType dtype = DType::BF16;  // q, k, v and output: F16 or BF16
  int head_dim = 128;
  int head_dim_v = 0;  // 0: equal to head_dim
  std::string arch = "sm_80";
};

struct KernelTranslationUnit {
  KernelProgram program;  // main source, headers (templates + the generated mods)
  std::string entry;      // the extern "C" function to launch
  // Whether the entry is the flash-attention template's ("attnc_flash_forward", taking
  // attnc_flash::FlashParams<attnc_gen::ModParams>) or the mod probe's ("attnc_mod_probe",
  // runtime/kernels/mod_probe.cuh).
  bool flash_attention = false;
  TileConfig tile;  // the template's tiling (runtime/cuda/TileConfig.h); zero for the probe
};

// The name the generated header is included under.
inline constexpr const char* kGeneratedModsHeader = "attnc_mods.cuh";

// The flash-attention kernel with these mods (ATTNC_INSTANTIATE_FLASH_FORWARD, tiles from
// choose_tile_config). RuntimeError for a dtype other than fp16/bf16, a head dim the template does
// not support or an unknown architecture.
KernelTranslationUnit make_kernel_translation_unit(const ir::CudaModSource& mods, const KernelSpec& spec);

// The mod probe around these mods: the smallest kernel that calls all three hooks, for compiling
// and checking generated code alone (NVRTC tests, device-side semantics checks).
KernelTranslationUnit make_probe_translation_unit(const ir::CudaModSource& mods, const std::string& arch);

// The program as one self-contained file: each `#include "X"` of one of its headers replaced by the
// header's text (once; `#pragma once` lines dropped), for reading or for nvcc.
std::string flatten_program(const KernelProgram& program);

}  // namespace attnc::cuda
