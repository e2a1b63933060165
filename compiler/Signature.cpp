#include "compiler/Signature.h"

#include <fmt/format.h>

#include "compiler/Printer.h"
#include "compiler/StableHash.h"

namespace attnc::ir {

namespace {

// Bump when anything that feeds the hash changes meaning (printer format, IR semantics, the fields
// below): every cached kernel keyed by an old signature becomes unreachable, which is the point.
constexpr std::string_view kSignatureFormat = "attnc-signature-v1";

}  // namespace

std::string Signature::hex() const { return fmt::format("{:016x}{:016x}", high, low); }

DType default_storage(Type elem) {
  switch (elem) {
    case Type::Float: return DType::F32;
    case Type::Int: return DType::I32;
    case Type::Bool: return DType::Bool;
    case Type::Int64: break;
  }
  return DType::I64;  // no parameter has Int64 elements; kept total for the tile classifier's IR
}

bool storage_fits(Type elem, DType storage) {
  switch (elem) {
    case Type::Float: return dtype_is_float(storage);
    case Type::Int: return dtype_is_integer(storage);
    case Type::Bool: return dtype_is_boolean(storage);
    case Type::Int64: break;
  }
  return false;
}

Signature compute_signature(const ModDef& def, std::span<const DType> storage) {
  StableHash128 hash;
  hash.text(kSignatureFormat);
  hash.text(def.kind == ModKind::Score ? "score_mod" : "mask_mod");
  // The canonical text names no user identifier and spells out the parameter list and the body.
  hash.text(print_def(def, PrintStyle::Canonical));
  hash.u64(def.params.size());
  for (size_t i = 0; i < def.params.size(); ++i) {
    const ParamDecl& param = def.params[i];
    hash.text(param.is_tensor() ? "tensor" : "scalar");
    hash.text(type_name(param.elem));
    hash.u64(param.rank());
    if (param.is_tensor()) {
      // Extents are run-time values, so only the storage type enters: it changes the generated loads.
      const DType dtype = i < storage.size() ? storage[i] : default_storage(param.elem);
      hash.text(dtype_name(dtype));
    }
  }
  return {hash.high(), hash.low()};
}

}  // namespace attnc::ir
