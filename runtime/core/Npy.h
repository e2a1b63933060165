#pragma once
// Reading and writing NumPy .npy files, the interchange format of the CLI and the tests (inputs
// from PyTorch/JAX are saved with numpy.save).
//
// Read: format versions 1.0, 2.0 (and 3.0, which differs only in the header's encoding),
// little-endian, C order or Fortran order (a Fortran-order file becomes a tensor with column-major
// strides, not a copy). Write: version 1.0, C order (a non-contiguous tensor is written in C order).
//
// dtypes: '<f4' fp32, '<f2' fp16, '<i4' int32, '<i8' int64, '|b1' bool, '|u1' uint8.
// bf16 convention: NumPy has no bfloat16, so a bf16 tensor is written as its raw 16-bit patterns
// with descr '<u2' (load it with `torch.from_numpy(a).view(torch.bfloat16)` or
// `a.view(ml_dtypes.bfloat16)`). Reading gives bf16 only when the caller asks for it
// (`expected = DType::BF16`); then '<u2' and '<V2' (what numpy.save writes for
// ml_dtypes.bfloat16) are taken as bf16 bit patterns. Without that request a '<u2' file is refused,
// since attnc has no uint16 dtype and guessing would silently misread real uint16 data.
//
// Every failure (unreadable file, bad magic, truncated header or data, malformed header dict,
// big-endian or unsupported dtype) is a RuntimeError naming the file and what was wrong.

#include <optional>
#include <string>
#include <string_view>

#include "compiler/DType.h"
#include "runtime/core/Tensor.h"

namespace attnc {

// Reads `path` into an owning CPU tensor. With `expected` set, the file's dtype must be that one
// (RuntimeError otherwise); it is also how a bf16 file is requested (see above).
Tensor read_npy(const std::string& path, std::optional<DType> expected = std::nullopt);

// The same for the bytes of a .npy file already in memory; `name` is used in error messages.
Tensor parse_npy(std::string_view bytes, std::optional<DType> expected = std::nullopt,
                 const std::string& name = "<memory>");

// Writes `tensor` (a CPU tensor of any layout) as a version 1.0, C-order .npy file.
void write_npy(const std::string& path, const Tensor& tensor);

// The bytes write_npy would write.
std::string serialize_npy(const Tensor& tensor);

}  // namespace attnc
