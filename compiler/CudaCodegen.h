#pragma once
// IR -> CUDA C++: the score mod, the mask mod and the mask's tile classifier as device functions on
// a generated parameter struct, for the kernel templates of runtime/kernels/ (which include it as
// "attnc_mods.cuh"). The contract, with every helper the text calls, is runtime/kernels/mod_abi.cuh.
//
// A pure function: IR in, text out. The text is straight-line and deterministic: one
// `const T tN = ...;` per distinct non-leaf subexpression, numbered in visit order, so identical IR
// gives byte-identical text (golden files and kernel caches rely on it). Parameters become fields
// p0, p1, ... (the score mod's, then the mask mod's); no user-chosen name reaches the code, and the
// only place one may appear is a `//` comment, sanitised (annotate_names below) so it cannot end the
// comment or splice a line.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "compiler/DType.h"
#include "compiler/IR.h"
#include "compiler/Module.h"

namespace attnc::ir {

// One field of the generated `struct ModParams`, with its host-side layout (LP64, as both nvcc and
// NVRTC lay it out), so the runtime can pack arguments into bytes the device reads.
struct CudaParamField {
  enum class Kind : uint8_t { Int, Float, Bool, Tensor };  // Int/Float/Bool: 4-byte scalars
  Kind kind = Kind::Int;
  bool from_mask = false;      // a parameter of the mask mod (else of the score mod)
  uint32_t param = 0;          // index in that mod's ModDef::params
  uint32_t rank = 0;           // tensors
  DType storage = DType::F32;  // tensors
  size_t offset = 0;           // byte offset in ModParams
};

// The layout of the attnc_abi structs the fields use (checked by static_asserts in the text).
constexpr size_t kCudaTensorParamSize = 144;  // const void*, int32 rank (+4 padding), int64[8] x 2
constexpr size_t kCudaTensorParamAlign = 8;

struct CudaModSource {
  std::string text;                    // the header: #include "mod_abi.cuh" and namespace attnc_gen
  std::vector<CudaParamField> fields;  // in field order: p0, p1, ...
  size_t params_size = 1;              // sizeof(attnc_gen::ModParams) (1 when empty)
  size_t params_align = 1;
  bool has_score = false, has_mask = false, check_bounds = false;
};

struct CudaCodegenOptions {
  bool check_bounds = false;  // loads record out-of-range indices into the BoundsReport
  // Name the mods and parameters in comments (sanitised). Off by default so that mods that differ
  // only in names give byte-identical text; attnc compile turns it on for readers.
  bool annotate_names = false;
};

// The generated header for an optimised score mod and mask mod (compiler/Pipeline.h); either may be
// null (identity / keep-all, tile class FULL). `*_storage` gives each tensor parameter's storage
// type, indexed like the mod's params (missing entries default as in ir::default_storage). A
// storage type that cannot hold the parameter's elements is an InternalError: Mod binding refuses it.
CudaModSource generate_cuda_mods(const ModDef* score, std::span<const DType> score_storage, const ModDef* mask,
                                 std::span<const DType> mask_storage, const CudaCodegenOptions& options = {});

// One expression as `ATTNC_DEVICE T NAME(float score, const attnc_abi::ModPoint& p,
// const attnc_abi::TileBox& tile, const ModParams& params, attnc_abi::BoundsReport* report)` with T
// bool, int32_t, int64_t or float, reading parameter #i from field p<i>, to be placed inside
// namespace attnc_gen after a ModParams whose fields match `params`. The same emitter as
// generate_cuda_mods; it exists so tests can check single expressions of every type (including
// tile builtins and Int64) against the interpreter.
std::string generate_cuda_expr_function(const Expr& expr, std::string_view name, std::span<const ParamDecl> params,
                                        std::span<const DType> storage, bool check_bounds);

// `text` made safe for a `//` comment: only letters, digits, spaces and a few punctuation marks
// survive (others become '_'), at most 80 characters. Nothing in it can end the comment.
std::string sanitize_cuda_comment(std::string_view text);

}  // namespace attnc::ir
