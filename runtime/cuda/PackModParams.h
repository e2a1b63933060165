#pragma once
// Packs bound mod arguments into the bytes of the generated `attnc_gen::ModParams`
// (compiler/CudaCodegen.h): the kernel parameter a launch passes by value, and what the host
// emulation and the tests reinterpret as the struct. Tensors may live anywhere (host or device
// memory): only their pointer, extents and strides are copied.

#include <span>
#include <vector>

#include "compiler/CudaCodegen.h"
#include "compiler/Interpreter.h"

namespace attnc::cuda {

// `score_args` and `mask_args` are indexed like the mods' parameters (as ir::Environment::params).
// RuntimeError when an argument does not fit its field: a scalar of another type, a tensor where a
// scalar is expected or the reverse, or a tensor of another rank or storage type. The buffer is
// params_size bytes (zero padding), from operator new, so it is aligned for the struct.
std::vector<unsigned char> pack_mod_params(const ir::CudaModSource& mods, std::span<const ir::ParamBinding> score_args,
                                           std::span<const ir::ParamBinding> mask_args);

}  // namespace attnc::cuda
