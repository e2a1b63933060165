#pragma once
// Packs bound mod arguments into the bytes of the generated `attnc_gen::ModParams`
// (compiler/CudaCodegen.h): the kernel parameter a launch passes by value, and what the host
// emulation and the tests reinterpret as the struct. Tensors may live anywhere (host or device
// memory): only their pointer, extents and strides are copied.

#include <span>
#include <vector>

#include "compiler/CudaCodegen.h"
#include "compiler/Interpreter.h"
#include "runtime/core/Mod.h"
#include "runtime/core/ModSpec.h"
#include "runtime/kernels/mod_abi.cuh"

namespace attnc::cuda {

// `score_args` and `mask_args` are indexed like the mods' parameters (as ir::Environment::params).
// RuntimeError when an argument does not fit its field: a scalar of another type, a tensor where a
// scalar is expected or the reverse, or a tensor of another rank or storage type. The buffer is
// params_size bytes (zero padding), from operator new, so it is aligned for the struct.
std::vector<unsigned char> pack_mod_params(const ir::CudaModSource& mods, std::span<const ir::ParamBinding> score_args,
                                           std::span<const ir::ParamBinding> mask_args);

// The ModParams bytes for a launch of a kernel compiled for `score_spec` and `mask_spec` (whose
// generated code is `mods`): checks that the launch's mods have the compiled signatures (both
// absent or both present), are fully bound, and bind CUDA tensors. RuntimeErrors start with
// `function`.
std::vector<unsigned char> pack_launch_mods(const char* function, const ir::CudaModSource& mods, const Mod* score,
                                            const ModSpec& score_spec, const Mod* mask, const ModSpec& mask_spec);

// The arguments of a fully bound `mod` as pack_mod_params takes them, for a kernel whose generated
// parameters include more than the mod's own (a tile-map pre-pass adds its summaries):
// RuntimeError, prefixed with `function`, for a tensor argument that is not a CUDA tensor.
std::vector<ir::ParamBinding> launch_mod_bindings(const char* function, const Mod& mod);

// The message for a bounds report a launch filled (report.failed != 0): the mod, parameter, index,
// extent and position, as runtime/core/AttentionChecks.h's out_of_range_message writes it.
std::string bounds_report_message(const char* function, const ir::CudaModSource& mods,
                                  const attnc_abi::BoundsReport& report, const Mod* score, const Mod* mask);

}  // namespace attnc::cuda
