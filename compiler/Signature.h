#pragma once
// A mod's signature: a stable 128-bit hash of its canonical IR (compiler/Printer.h, Canonical style)
// plus each parameter's element type, rank and storage type. It keys the kernel caches, so it
// must be equal for equivalent mods, different for different meaning, and independent of pointer
// values, std::hash and build flags. Scalar values and tensor extents/contents are not part of it.

#include <compare>
#include <cstdint>
#include <span>
#include <string>

#include "compiler/DType.h"
#include "compiler/Module.h"

namespace attnc::ir {

struct Signature {
  uint64_t high = 0;
  uint64_t low = 0;
  std::string hex() const;  // 32 lowercase hex digits
  auto operator<=>(const Signature&) const = default;
};

// `def` should be optimised (compiler/Pipeline.h). `storage` gives each tensor parameter's storage
// type, indexed like def.params (entries for scalars are ignored); when empty or short, the
// defaults are fp32 for float tensors, int32 for int and bool for bool.
Signature compute_signature(const ModDef& def, std::span<const DType> storage = {});

// The storage type a tensor parameter gets when none is given.
DType default_storage(Type elem);

// Whether tensor elements of IR type `elem` may be stored as `storage`: fp32, fp16 or bf16 for
// float; int32 or int64 for int; bool or uint8 for bool. The one statement of the rule: binding,
// code generation, the interpreter and the command line all ask here.
bool storage_fits(Type elem, DType storage);

}  // namespace attnc::ir
