#include "runtime/llvm/LlvmCodegen.h"

#include <algorithm>
#include <array>
#include <cstddef>
#include <limits>
#include <string>
#include <unordered_map>
#include <vector>

#include <llvm/ADT/APFloat.h>
#include <llvm/IR/Constants.h>
#include <llvm/IR/DerivedTypes.h>
#include <llvm/IR/Function.h>
#include <llvm/IR/IRBuilder.h>
#include <llvm/IR/Intrinsics.h>
#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/Module.h>

#include "compiler/IRMutator.h"
#include "compiler/Signature.h"
#include "compiler/TileClassifier.h"
#include "dsl/Errors.h"
#include "runtime/core/CpuModAbi.h"

namespace attnc::jit {

namespace {

using ir::Builtin;
using ir::Expr;
using ir::Kind;
using ir::Node;
using ir::Op;
using ir::Type;
using LValue = llvm::Value;

// Byte offsets of the runtime structs' fields, taken from the C++ definitions so that the generated
// code and runtime/core/CpuModAbi.h cannot drift apart.
template <typename Struct, typename Field>
uint64_t offset_of(Field Struct::*member) {
  const Struct probe{};
  return static_cast<uint64_t>(reinterpret_cast<const char*>(&(probe.*member)) - reinterpret_cast<const char*>(&probe));
}

// Values that depend on nothing, on the row (q_idx) or on the key (kv_idx, score): the tile loop
// computes each at the outermost place it can, so a slope lookup runs once per call, not per key.
enum Level : int { kPerCall = 0, kPerRow = 1, kPerKey = 2 };

// Where a checked load reports: the element being evaluated.
struct Position {
  LValue* b = nullptr;
  LValue* h = nullptr;
  LValue* q_idx = nullptr;
  LValue* kv_idx = nullptr;
};

// A tensor parameter's pointer, extents and strides, loaded once at function entry.
struct TensorView {
  LValue* data = nullptr;  // i8*
  std::vector<LValue*> shape, strides;
};

// Lowers IR nodes to LLVM instructions at the builder's insertion point. A value is either uniform
// (a scalar) or varying (a vector of `width` lanes, one per key); operations splat uniform operands
// where they meet varying ones. Every operation reproduces compiler/Semantics.h.
class Lowering {
 public:
  Lowering(llvm::Module& module, llvm::IRBuilder<>& builder, std::span<const DType> storage, int width)
      : module_(module), b_(builder), ctx_(module.getContext()), storage_(storage), width_(width) {
    i1_ = llvm::Type::getInt1Ty(ctx_);
    i8_ = llvm::Type::getInt8Ty(ctx_);
    i16_ = llvm::Type::getInt16Ty(ctx_);
    i32_ = llvm::Type::getInt32Ty(ctx_);
    i64_ = llvm::Type::getInt64Ty(ctx_);
    f32_ = llvm::Type::getFloatTy(ctx_);
  }

  llvm::Type* i1() const { return i1_; }
  llvm::Type* i32() const { return i32_; }
  llvm::Type* i64() const { return i64_; }
  llvm::Type* f32() const { return f32_; }
  int width() const { return width_; }
  void set_width(int width) { width_ = width; }
  // Whether 16-lane transcendental functions call libmvec's AVX-512 variants (see libm()).
  void set_vector_math(bool enabled) { vector_math_ = enabled; }

  // `params` is the CpuParam array (as i8*). Loads the views of every tensor `root` reads, here.
  void bind_params(LValue* params, const Expr& root) {
    params_ = params;
    ir::for_each_node(root, [&](const Expr& node) {
      if (node->kind == Kind::Load || node->kind == Kind::LoadRange || node->kind == Kind::Extent) view(node->index);
    });
  }

  void set_builtin(Builtin builtin, LValue* value) { builtins_[static_cast<int>(builtin)] = value; }

  // On checked paths (scalar only): a load whose index is out of range writes *report when `enabled`
  // is true and report->failed is still 0, then goes on with the clamped index.
  void enable_bounds_checks(LValue* enabled, LValue* report, const Position& at) {
    check_enabled_ = enabled;
    report_ = report;
    position_ = at;
  }
  void disable_bounds_checks() { check_enabled_ = nullptr; }

  void forget_values() { values_.clear(); }
  LValue* value_of(const Node* node) const {
    auto found = values_.find(node);
    ATTNC_ASSERT(found != values_.end(), "LLVM codegen: operand lowered after its user");
    return found->second;
  }

  // Lowers `node` (its operands already lowered) and remembers the result.
  LValue* lower(const Node& node) {
    LValue* result = compute(node);
    values_[&node] = result;
    return result;
  }

  LValue* splat(LValue* v) {
    if (width_ <= 1 || v->getType()->isVectorTy()) return v;
    return b_.CreateVectorSplat(width_, v);
  }

  // A struct field of `base` (i8*) at byte `offset`, as a pointer to `type`.
  LValue* field(LValue* base, uint64_t offset, llvm::Type* type) {
    LValue* at = b_.CreateConstInBoundsGEP1_64(i8_, base, offset);
    return b_.CreateBitCast(at, llvm::PointerType::getUnqual(type));
  }
  LValue* load_field(LValue* base, uint64_t offset, llvm::Type* type) {
    return b_.CreateAlignedLoad(type, field(base, offset, type), llvm::Align(1));
  }

 private:
  // ---- Types and constants. ----
  static bool varying(const LValue* v) { return v->getType()->isVectorTy(); }

  // `scalar` with the lane count of `like` (a vector type when `like` is varying).
  llvm::Type* shaped(llvm::Type* scalar, const LValue* like) const {
    if (auto* vector = llvm::dyn_cast<llvm::FixedVectorType>(like->getType())) {
      return llvm::FixedVectorType::get(scalar, vector->getNumElements());
    }
    return scalar;
  }
  llvm::Type* scalar_type(Type type) const {
    switch (type) {
      case Type::Bool: return i1_;
      case Type::Int: return i32_;
      case Type::Int64: return i64_;
      case Type::Float: return f32_;
    }
    return nullptr;
  }
  // ConstantInt::get and ConstantFP::get splat over vector types.
  llvm::Constant* int_like(const LValue* like, int64_t value) {
    return llvm::ConstantInt::get(like->getType(), static_cast<uint64_t>(value), true);
  }
  llvm::Constant* int_of(llvm::Type* scalar, const LValue* like, int64_t value) {
    return llvm::ConstantInt::get(shaped(scalar, like), static_cast<uint64_t>(value), true);
  }
  llvm::Constant* float_of(const LValue* like, float value) {
    return llvm::ConstantFP::get(shaped(f32_, like), static_cast<double>(value));
  }
  void unify(LValue*& a, LValue*& b) {
    if (varying(a) && !varying(b))
      b = b_.CreateVectorSplat(llvm::cast<llvm::FixedVectorType>(a->getType())->getNumElements(), b);
    if (varying(b) && !varying(a))
      a = b_.CreateVectorSplat(llvm::cast<llvm::FixedVectorType>(b->getType())->getNumElements(), a);
  }

  LValue* operand(const Node& node, size_t i) const { return value_of(node.operands[i].get()); }

  LValue* compute(const Node& node) {
    switch (node.kind) {
      case Kind::Const: return constant(node);
      case Kind::Builtin: {
        LValue* v = builtins_[static_cast<int>(node.builtin)];
        ATTNC_ASSERT(v != nullptr, std::string("LLVM codegen: built-in '") + ir::builtin_spelling(node.builtin) +
                                       "' is not available in this function");
        return v;
      }
      case Kind::Param: return scalar_param(node);
      case Kind::Extent: return b_.CreateTrunc(view(node.index).shape.at(node.dim), i32_);
      case Kind::Cast: return cast(node.type, node.operands[0]->type, operand(node, 0));
      case Kind::Unary: return unary(node.op, node.type, operand(node, 0));
      case Kind::Binary: return binary(node.op, node.operands[0]->type, operand(node, 0), operand(node, 1));
      case Kind::Select: {
        LValue* c = operand(node, 0);
        LValue* x = operand(node, 1);
        LValue* y = operand(node, 2);
        unify(x, y);
        if (varying(c)) {
          x = splat(x);
          y = splat(y);
        }
        return b_.CreateSelect(c, x, y);
      }
      case Kind::Call: return call(node);
      case Kind::Load: return load(node);
      case Kind::LoadRange: return load_range(node);
      case Kind::TensorRef:
      case Kind::ModCall: break;
    }
    ATTNC_ASSERT(false, std::string("LLVM codegen: ") + ir::kind_name(node.kind) + " node left in optimised IR");
    return nullptr;
  }

  LValue* constant(const Node& node) {
    switch (node.type) {
      case Type::Bool: return llvm::ConstantInt::get(i1_, node.int_value != 0 ? 1 : 0);
      case Type::Int: return llvm::ConstantInt::get(i32_, static_cast<uint64_t>(node.int_value), true);
      case Type::Int64: return llvm::ConstantInt::get(i64_, static_cast<uint64_t>(node.int_value), true);
      case Type::Float: return llvm::ConstantFP::get(ctx_, llvm::APFloat(node.float_value));  // keeps NaN bits, -0
    }
    return nullptr;
  }

  LValue* scalar_param(const Node& node) {
    LValue* base = param_base(node.index);
    switch (node.type) {
      case Type::Int: return load_field(base, offset_of(&CpuParam::int_value), i32_);
      case Type::Float: return load_field(base, offset_of(&CpuParam::float_value), f32_);
      case Type::Bool: return b_.CreateICmpNE(load_field(base, offset_of(&CpuParam::bool_value), i32_), b_.getInt32(0));
      case Type::Int64: break;
    }
    ATTNC_ASSERT(false, "LLVM codegen: scalar parameters are bool, int or float");
    return nullptr;
  }

  LValue* param_base(uint32_t index) {
    ATTNC_ASSERT(params_ != nullptr, "LLVM codegen: parameters read before they are bound");
    return b_.CreateConstInBoundsGEP1_64(i8_, params_, static_cast<uint64_t>(index) * sizeof(CpuParam));
  }

  TensorView& view(uint32_t index) {
    auto found = views_.find(index);
    if (found != views_.end()) return found->second;
    TensorView v;
    LValue* base = param_base(index);
    v.data = load_field(base, offset_of(&CpuParam::data), llvm::PointerType::getUnqual(i8_));
    int32_t rank = rank_of(index);
    for (int32_t d = 0; d < rank; ++d) {
      v.shape.push_back(load_field(base, offset_of(&CpuParam::shape) + 8 * static_cast<uint64_t>(d), i64_));
      v.strides.push_back(load_field(base, offset_of(&CpuParam::strides) + 8 * static_cast<uint64_t>(d), i64_));
    }
    return views_.emplace(index, std::move(v)).first->second;
  }

 public:
  // The rank each tensor parameter is used with (from its Load / LoadRange / Extent nodes).
  void note_ranks(const Expr& root) {
    ir::for_each_node(root, [&](const Expr& node) {
      int32_t rank = -1;
      if (node->kind == Kind::Load) rank = static_cast<int32_t>(node->operands.size());
      if (node->kind == Kind::LoadRange) rank = static_cast<int32_t>(node->operands.size() / 2);
      if (node->kind == Kind::Extent) rank = static_cast<int32_t>(node->dim) + 1;
      if (rank < 0) return;
      int32_t& known = ranks_[node->index];
      if (rank > known) known = rank;
    });
  }

 private:
  int32_t rank_of(uint32_t index) const {
    auto found = ranks_.find(index);
    return found == ranks_.end() ? 0 : found->second;
  }

  // ---- Conversions. ----
  LValue* cast(Type to, Type from, LValue* v) {
    if (to == from) return v;
    switch (to) {
      case Type::Bool:
        if (from == Type::Float) return b_.CreateFCmpUNE(v, float_of(v, 0.0f));  // NaN != 0 is true, as in C
        return b_.CreateICmpNE(v, int_like(v, 0));
      case Type::Int:
      case Type::Int64: {
        llvm::Type* target = shaped(scalar_type(to), v);
        if (from == Type::Bool) return b_.CreateZExt(v, target);
        if (from == Type::Float) {
          // Truncates, saturates at the range, NaN -> 0: exactly Semantics' float_to_int.
          return b_.CreateIntrinsic(llvm::Intrinsic::fptosi_sat, {target, v->getType()}, {v});
        }
        return to == Type::Int ? b_.CreateTrunc(v, target) : b_.CreateSExt(v, target);
      }
      case Type::Float:
        if (from == Type::Bool) return b_.CreateUIToFP(v, shaped(f32_, v));
        return b_.CreateSIToFP(v, shaped(f32_, v));  // rounds to nearest, as C
    }
    return nullptr;
  }

  // ---- Operators. ----
  LValue* unary(Op op, Type type, LValue* x) {
    if (op == Op::Not) return b_.CreateNot(x);
    ATTNC_ASSERT(op == Op::Neg, "LLVM codegen: unary operator");
    if (type == Type::Float) return b_.CreateFNeg(x);
    return b_.CreateSub(int_like(x, 0), x);  // wraps: -INT_MIN == INT_MIN
  }

  LValue* binary(Op op, Type type, LValue* a, LValue* b) {
    unify(a, b);
    switch (op) {
      case Op::And: return b_.CreateAnd(a, b);
      case Op::Or: return b_.CreateOr(a, b);
      default: break;
    }
    if (type == Type::Bool) {
      ATTNC_ASSERT(op == Op::Eq || op == Op::Ne, "LLVM codegen: bools compare only for equality");
      return op == Op::Eq ? b_.CreateICmpEQ(a, b) : b_.CreateICmpNE(a, b);
    }
    if (type == Type::Float) return float_binary(op, a, b);
    return integer_binary(op, a, b);
  }

  LValue* float_binary(Op op, LValue* a, LValue* b) {
    switch (op) {
      case Op::Add: return b_.CreateFAdd(a, b);
      case Op::Sub: return b_.CreateFSub(a, b);
      case Op::Mul: return b_.CreateFMul(a, b);
      case Op::Div: return b_.CreateFDiv(a, b);
      case Op::Mod: return b_.CreateFRem(a, b);  // frem is C fmod
      case Op::Min: return float_min_max(true, a, b);
      case Op::Max: return float_min_max(false, a, b);
      case Op::Lt: return b_.CreateFCmpOLT(a, b);
      case Op::Le: return b_.CreateFCmpOLE(a, b);
      case Op::Gt: return b_.CreateFCmpOGT(a, b);
      case Op::Ge: return b_.CreateFCmpOGE(a, b);
      case Op::Eq: return b_.CreateFCmpOEQ(a, b);
      case Op::Ne: return b_.CreateFCmpUNE(a, b);
      default: break;
    }
    ATTNC_ASSERT(false, std::string("LLVM codegen: operator '") + ir::op_spelling(op) + "' on floats");
    return nullptr;
  }

  // Semantics' float_min / float_max: a NaN operand is ignored and -0 is below +0. Built from
  // compares and selects because llvm.minnum leaves the order of zeros open.
  LValue* float_min_max(bool is_min, LValue* a, LValue* b) {
    LValue* a_nan = b_.CreateFCmpUNO(a, a);
    LValue* b_nan = b_.CreateFCmpUNO(b, b);
    LValue* a_first = is_min ? b_.CreateFCmpOLT(a, b) : b_.CreateFCmpOGT(a, b);
    LValue* equal = b_.CreateFCmpOEQ(a, b);
    LValue* a_negative = b_.CreateICmpSLT(b_.CreateBitCast(a, shaped(i32_, a)), int_of(i32_, a, 0));
    // Equal values differ only for +0 / -0: min takes the negative one, max the other.
    LValue* on_tie = is_min ? b_.CreateSelect(a_negative, a, b) : b_.CreateSelect(a_negative, b, a);
    LValue* r = b_.CreateSelect(a_first, a, b);
    r = b_.CreateSelect(equal, on_tie, r);
    r = b_.CreateSelect(b_nan, a, r);
    return b_.CreateSelect(a_nan, b, r);
  }

  LValue* integer_binary(Op op, LValue* a, LValue* b) {
    switch (op) {
      case Op::Add: return b_.CreateAdd(a, b);  // plain add/sub/mul wrap (no nsw)
      case Op::Sub: return b_.CreateSub(a, b);
      case Op::Mul: return b_.CreateMul(a, b);
      case Op::Div: return int_div(a, b);
      case Op::Mod: return int_mod(a, b);
      case Op::Min: return b_.CreateSelect(b_.CreateICmpSLT(a, b), a, b);
      case Op::Max: return b_.CreateSelect(b_.CreateICmpSGT(a, b), a, b);
      case Op::Lt: return b_.CreateICmpSLT(a, b);
      case Op::Le: return b_.CreateICmpSLE(a, b);
      case Op::Gt: return b_.CreateICmpSGT(a, b);
      case Op::Ge: return b_.CreateICmpSGE(a, b);
      case Op::Eq: return b_.CreateICmpEQ(a, b);
      case Op::Ne: return b_.CreateICmpNE(a, b);
      default: break;
    }
    ATTNC_ASSERT(false, std::string("LLVM codegen: operator '") + ir::op_spelling(op) + "' on integers");
    return nullptr;
  }

  LValue* min_of(const LValue* like) {
    unsigned bits = like->getType()->getScalarSizeInBits();
    return int_like(like, bits == 32 ? std::numeric_limits<int32_t>::min() : std::numeric_limits<int64_t>::min());
  }

  // x / 0 == 0 and MIN / -1 == MIN. sdiv by 0 or MIN / -1 is undefined behaviour in LLVM, so the
  // divisor is replaced by 1 first: MIN / 1 is the MIN the rule asks for, and the 0 case is
  // selected afterwards.
  LValue* int_div(LValue* a, LValue* b) {
    LValue* zero = b_.CreateICmpEQ(b, int_like(b, 0));
    LValue* overflow = b_.CreateAnd(b_.CreateICmpEQ(a, min_of(a)), b_.CreateICmpEQ(b, int_like(b, -1)));
    LValue* safe = b_.CreateSelect(b_.CreateOr(zero, overflow), int_like(b, 1), b);
    return b_.CreateSelect(zero, int_like(a, 0), b_.CreateSDiv(a, safe));
  }

  // x % 0 == 0 and x % -1 == 0 (which covers MIN % -1): both become x % 1, which is 0.
  LValue* int_mod(LValue* a, LValue* b) {
    LValue* trivial = b_.CreateOr(b_.CreateICmpEQ(b, int_like(b, 0)), b_.CreateICmpEQ(b, int_like(b, -1)));
    return b_.CreateSRem(a, b_.CreateSelect(trivial, int_like(b, 1), b));
  }

  // ---- Math functions. ----
  LValue* call(const Node& node) {
    LValue* x = operand(node, 0);
    switch (node.op) {
      case Op::Abs:
        if (node.type == Type::Float) return b_.CreateUnaryIntrinsic(llvm::Intrinsic::fabs, x);
        return b_.CreateSelect(b_.CreateICmpSLT(x, int_like(x, 0)), b_.CreateSub(int_like(x, 0), x), x);
      case Op::Sqrt: return b_.CreateUnaryIntrinsic(llvm::Intrinsic::sqrt, x);  // correctly rounded, like sqrtf
      case Op::Rsqrt: return b_.CreateFDiv(float_of(x, 1.0f), b_.CreateUnaryIntrinsic(llvm::Intrinsic::sqrt, x));
      case Op::Floor: return b_.CreateUnaryIntrinsic(llvm::Intrinsic::floor, x);
      case Op::Ceil: return b_.CreateUnaryIntrinsic(llvm::Intrinsic::ceil, x);
      case Op::Round: return b_.CreateUnaryIntrinsic(llvm::Intrinsic::rint, x);  // default mode: half to even
      case Op::Exp: return libm("expf", {x});
      case Op::Exp2: return libm("exp2f", {x});
      case Op::Log: return libm("logf", {x});
      case Op::Log2: return libm("log2f", {x});
      case Op::Tanh: return libm("tanhf", {x});
      case Op::Sin: return libm("sinf", {x});
      case Op::Cos: return libm("cosf", {x});
      case Op::Sigmoid: {
        LValue* e = libm("expf", {b_.CreateFNeg(x)});
        return b_.CreateFDiv(float_of(x, 1.0f), b_.CreateFAdd(float_of(x, 1.0f), e));
      }
      case Op::Pow: {
        LValue* y = operand(node, 1);
        unify(x, y);
        return libm("powf", {x, y});
      }
      default: break;
    }
    ATTNC_ASSERT(false, std::string("LLVM codegen: '") + ir::op_spelling(node.op) + "' is not a math function");
    return nullptr;
  }

  // A call of the C library's float function `name`. Uniform arguments call libm itself; varying
  // ones call it lane by lane, or, with vector_math_ and 16 lanes, call glibc's libmvec AVX-512
  // variant once per vector (_ZGVeN16v_<name>, "vv" for two arguments: the x86-64 vector function
  // ABI, arguments and result in zmm registers). Scalar libm calls carry `nobuiltin`, so LLVM
  // neither constant-folds them (its folding rounds a double result and can differ from libm by an
  // ulp) nor swaps in other code: they agree bit for bit with the interpreter. libmvec agrees within
  // a few ulp and handles NaN, infinities and zeros as libm does; a 16-call lane loop was what made
  // softcap (a tanh per score) several times slower than no mod.
  LValue* libm(const char* name, std::vector<LValue*> args) {
    auto* vector = llvm::dyn_cast<llvm::FixedVectorType>(args[0]->getType());
    if (vector != nullptr && vector_math_ && vector->getNumElements() == 16) {
      std::string vector_name = std::string("_ZGVeN16") + std::string(args.size(), 'v') + "_" + name;
      auto* type = llvm::FunctionType::get(vector, std::vector<llvm::Type*>(args.size(), vector), false);
      llvm::FunctionCallee callee = module_.getOrInsertFunction(vector_name, type);
      if (auto* function = llvm::dyn_cast<llvm::Function>(callee.getCallee())) {
        function->setDoesNotThrow();
        function->setDoesNotAccessMemory();
        function->addFnAttr(llvm::Attribute::WillReturn);
      }
      llvm::CallInst* c = b_.CreateCall(callee, args);
      c->setDoesNotAccessMemory();
      return c;
    }
    std::vector<llvm::Type*> params(args.size(), f32_);
    auto* type = llvm::FunctionType::get(f32_, params, false);
    llvm::FunctionCallee callee = module_.getOrInsertFunction(name, type);
    if (auto* function = llvm::dyn_cast<llvm::Function>(callee.getCallee())) {
      function->setDoesNotThrow();
      function->setDoesNotAccessMemory();  // errno is never read
      function->addFnAttr(llvm::Attribute::WillReturn);
    }
    auto scalar_call = [&](std::vector<LValue*> scalar_args) {
      llvm::CallInst* c = b_.CreateCall(callee, scalar_args);
      c->addFnAttr(llvm::Attribute::NoBuiltin);
      c->setDoesNotAccessMemory();
      return c;
    };
    if (vector == nullptr) return scalar_call(args);
    LValue* result = llvm::UndefValue::get(vector);
    for (unsigned lane = 0; lane < vector->getNumElements(); ++lane) {
      std::vector<LValue*> lane_args;
      for (LValue* a : args) lane_args.push_back(b_.CreateExtractElement(a, lane));
      result = b_.CreateInsertElement(result, scalar_call(lane_args), lane);
    }
    return result;
  }

  // ---- Tensor loads. ----
  DType storage_of(uint32_t param, Type elem) const {
    return param < storage_.size() ? storage_[param] : ir::default_storage(elem);
  }

  llvm::Type* storage_type(DType dtype) const {
    switch (dtype) {
      case DType::F32: return f32_;
      case DType::F16:
      case DType::BF16: return i16_;
      case DType::I32: return i32_;
      case DType::I64: return i64_;
      case DType::U8:
      case DType::Bool: return i8_;
    }
    return nullptr;
  }

  // `index` (Int, or Int64 for LoadRange bounds) clamped into [0, extent), as an i64.
  LValue* clamp(LValue* index, LValue* extent) {
    if (index->getType()->getScalarSizeInBits() != 64) index = b_.CreateSExt(index, shaped(i64_, index));
    LValue* last = b_.CreateSub(extent, b_.getInt64(1));
    if (varying(index))
      last = b_.CreateVectorSplat(llvm::cast<llvm::FixedVectorType>(index->getType())->getNumElements(), last);
    LValue* zero = int_like(index, 0);
    LValue* low = b_.CreateSelect(b_.CreateICmpSLT(index, zero), zero, index);
    return b_.CreateSelect(b_.CreateICmpSGT(low, last), last, low);
  }

  // The element at `offset` (i64, uniform or varying) of tensor `param`, as IR type `elem`.
  LValue* element(uint32_t param, Type elem, LValue* offset) {
    DType dtype = storage_of(param, elem);
    ATTNC_ASSERT(ir::storage_fits(elem, dtype), std::string("LLVM codegen: ") + ir::type_name(elem) +
                                                    " tensor stored as " + std::string(dtype_name(dtype)));
    llvm::Type* stored = storage_type(dtype);
    LValue* base = b_.CreateBitCast(view(param).data, llvm::PointerType::getUnqual(stored));
    LValue* address = b_.CreateInBoundsGEP(stored, base, offset);
    LValue* raw;
    if (varying(offset)) {
      // Every lane's index is clamped, so all lanes may be read; tail lanes are simply not stored.
      auto lanes = llvm::cast<llvm::FixedVectorType>(offset->getType())->getNumElements();
      raw = b_.CreateMaskedGather(llvm::FixedVectorType::get(stored, lanes), address, llvm::Align(1));
    } else {
      raw = b_.CreateAlignedLoad(stored, address, llvm::Align(1));
    }
    switch (dtype) {
      case DType::F32: return raw;
      case DType::F16: return half_to_float(raw);
      case DType::BF16:
        return b_.CreateBitCast(b_.CreateShl(b_.CreateZExt(raw, shaped(i32_, raw)), 16), shaped(f32_, raw));
      case DType::I32: return raw;
      case DType::I64: return b_.CreateTrunc(raw, shaped(i32_, raw));  // wraps, as the interpreter
      case DType::U8:
      case DType::Bool: return b_.CreateICmpNE(raw, int_like(raw, 0));
    }
    return nullptr;
  }

  // Binary16 bits to float by integer arithmetic, bit for bit as compiler/DType.cpp's half_to_float
  // (NaN payloads included), and without needing F16C or a compiler-rt helper.
  LValue* half_to_float(LValue* raw) {
    LValue* h = b_.CreateZExt(raw, shaped(i32_, raw));
    auto k = [&](int64_t v) { return int_like(h, v); };
    LValue* sign = b_.CreateShl(b_.CreateAnd(h, k(0x8000)), 16);
    LValue* exponent = b_.CreateAnd(b_.CreateLShr(h, 10), k(0x1f));
    LValue* mantissa = b_.CreateAnd(h, k(0x3ff));
    LValue* shifted = b_.CreateShl(mantissa, 13);
    LValue* normal = b_.CreateOr(sign, b_.CreateOr(b_.CreateShl(b_.CreateAdd(exponent, k(112)), 23), shifted));
    LValue* special = b_.CreateOr(sign, b_.CreateOr(k(0x7f800000), shifted));
    // Zero or subnormal: mantissa * 2^-24 is exact in binary32; the sign bit is then or-ed in.
    LValue* magnitude = b_.CreateFMul(b_.CreateUIToFP(mantissa, shaped(f32_, h)), float_of(h, 0x1p-24f));
    LValue* subnormal = b_.CreateOr(b_.CreateBitCast(magnitude, h->getType()), sign);
    LValue* bits = b_.CreateSelect(b_.CreateICmpEQ(exponent, k(0)), subnormal,
                                   b_.CreateSelect(b_.CreateICmpEQ(exponent, k(0x1f)), special, normal));
    return b_.CreateBitCast(bits, shaped(f32_, h));
  }

  LValue* load(const Node& node) {
    TensorView& v = view(node.index);
    size_t rank = node.operands.size();
    std::vector<LValue*> raw(rank), clamped(rank);
    for (size_t d = 0; d < rank; ++d) {
      raw[d] = operand(node, d);
      clamped[d] = clamp(raw[d], v.shape[d]);
    }
    if (check_enabled_ != nullptr) check_bounds(node.index, raw, v.shape);
    LValue* offset = b_.getInt64(0);
    for (size_t d = 0; d < rank; ++d) {
      LValue* stride = v.strides[d];
      LValue* index = clamped[d];
      unify(index, stride);
      LValue* term = b_.CreateMul(index, stride);
      unify(offset, term);
      offset = b_.CreateAdd(offset, term);
    }
    return element(node.index, node.type, offset);
  }

  // Records the first out-of-range dimension of a load (dimensions in order, as the interpreter
  // checks them) into the report, unless the report already holds a failure.
  void check_bounds(uint32_t param, const std::vector<LValue*>& indices, const std::vector<LValue*>& extents) {
    ATTNC_ASSERT(width_ == 1, "LLVM codegen: bounds checks run on the scalar path");
    LValue* any = b_.getFalse();
    LValue* dim = b_.getInt32(0);
    LValue* index = b_.getInt64(0);
    LValue* extent = b_.getInt64(0);
    for (size_t d = indices.size(); d-- > 0;) {
      LValue* i = b_.CreateSExt(indices[d], i64_);
      LValue* outside = b_.CreateOr(b_.CreateICmpSLT(i, b_.getInt64(0)), b_.CreateICmpSGE(i, extents[d]));
      dim = b_.CreateSelect(outside, b_.getInt32(static_cast<uint32_t>(d)), dim);
      index = b_.CreateSelect(outside, i, index);
      extent = b_.CreateSelect(outside, extents[d], extent);
      any = b_.CreateOr(any, outside);
    }
    llvm::Function* function = b_.GetInsertBlock()->getParent();
    auto* record = llvm::BasicBlock::Create(ctx_, "bounds.record", function);
    auto* write = llvm::BasicBlock::Create(ctx_, "bounds.write", function);
    auto* next = llvm::BasicBlock::Create(ctx_, "bounds.next", function);
    b_.CreateCondBr(b_.CreateAnd(any, check_enabled_), record, next);
    b_.SetInsertPoint(record);
    LValue* failed = load_field(report_, offset_of(&CpuBoundsReport::failed), i32_);
    b_.CreateCondBr(b_.CreateICmpEQ(failed, b_.getInt32(0)), write, next);
    b_.SetInsertPoint(write);
    auto store = [&](LValue* value, uint64_t offset) {
      b_.CreateAlignedStore(value, field(report_, offset, value->getType()), llvm::Align(1));
    };
    store(b_.getInt32(1), offset_of(&CpuBoundsReport::failed));
    store(b_.getInt32(param), offset_of(&CpuBoundsReport::param));
    store(dim, offset_of(&CpuBoundsReport::dim));
    store(index, offset_of(&CpuBoundsReport::index));
    store(extent, offset_of(&CpuBoundsReport::extent));
    store(position_.b, offset_of(&CpuBoundsReport::b));
    store(position_.h, offset_of(&CpuBoundsReport::h));
    store(position_.q_idx, offset_of(&CpuBoundsReport::q_idx));
    store(position_.kv_idx, offset_of(&CpuBoundsReport::kv_idx));
    b_.CreateBr(next);
    b_.SetInsertPoint(next);
  }

  // min / max of a tensor over a box of indices (Int64 bounds, clamped like loads, never checked),
  // by nested loops over the box: the interpreter's odometer, last dimension innermost. Float
  // results start from NaN and skip NaN elements, so an all-NaN box gives NaN.
  LValue* load_range(const Node& node) {
    ATTNC_ASSERT(width_ == 1 || std::none_of(node.operands.begin(), node.operands.end(),
                                             [&](const Expr& e) { return varying(value_of(e.get())); }),
                 "LLVM codegen: LoadRange with per-key bounds");
    ATTNC_ASSERT(node.type == Type::Int || node.type == Type::Float, "LLVM codegen: LoadRange of bools");
    TensorView& v = view(node.index);
    size_t rank = node.operands.size() / 2;
    std::vector<LValue*> from(rank), to(rank);
    for (size_t d = 0; d < rank; ++d) {
      LValue* a = clamp(operand(node, d), v.shape[d]);
      LValue* b = clamp(operand(node, rank + d), v.shape[d]);
      LValue* a_first = b_.CreateICmpSLE(a, b);
      from[d] = b_.CreateSelect(a_first, a, b);
      to[d] = b_.CreateSelect(a_first, b, a);
    }
    bool is_min = node.op == Op::Min;
    LValue* initial;
    if (node.type == Type::Float) {
      initial = llvm::ConstantFP::get(ctx_, llvm::APFloat(std::numeric_limits<float>::quiet_NaN()));
    } else {
      initial = b_.getInt32(
          static_cast<uint32_t>(is_min ? std::numeric_limits<int32_t>::max() : std::numeric_limits<int32_t>::min()));
    }
    return box_loop(node, 0, from, to, b_.getInt64(0), initial);
  }

  LValue* box_loop(const Node& node, size_t d, const std::vector<LValue*>& from, const std::vector<LValue*>& to,
                   LValue* base_offset, LValue* accumulator) {
    TensorView& v = view(node.index);
    llvm::Function* function = b_.GetInsertBlock()->getParent();
    llvm::BasicBlock* before = b_.GetInsertBlock();
    auto* loop = llvm::BasicBlock::Create(ctx_, "box.loop", function);
    auto* after = llvm::BasicBlock::Create(ctx_, "box.after", function);
    b_.CreateBr(loop);
    b_.SetInsertPoint(loop);
    llvm::PHINode* i = b_.CreatePHI(i64_, 2);
    llvm::PHINode* acc = b_.CreatePHI(accumulator->getType(), 2);
    i->addIncoming(from[d], before);
    acc->addIncoming(accumulator, before);
    LValue* offset = b_.CreateAdd(base_offset, b_.CreateMul(i, v.strides[d]));
    LValue* updated;
    if (d + 1 < from.size()) {
      updated = box_loop(node, d + 1, from, to, offset, acc);
    } else {
      LValue* x = element(node.index, node.type, offset);
      bool is_min = node.op == Op::Min;
      if (node.type == Type::Float) {
        updated = float_min_max(is_min, acc, x);
      } else {
        updated = b_.CreateSelect(is_min ? b_.CreateICmpSLT(acc, x) : b_.CreateICmpSGT(acc, x), acc, x);
      }
    }
    llvm::BasicBlock* latch = b_.GetInsertBlock();
    i->addIncoming(b_.CreateAdd(i, b_.getInt64(1)), latch);
    acc->addIncoming(updated, latch);
    b_.CreateCondBr(b_.CreateICmpSLT(i, to[d]), loop, after);
    b_.SetInsertPoint(after);
    return updated;
  }

  llvm::Module& module_;
  llvm::IRBuilder<>& b_;
  llvm::LLVMContext& ctx_;
  std::span<const DType> storage_;
  int width_;
  bool vector_math_ = false;
  llvm::Type *i1_, *i8_, *i16_, *i32_, *i64_, *f32_;
  LValue* params_ = nullptr;
  std::array<LValue*, ir::kBuiltinCount> builtins_{};
  std::unordered_map<const Node*, LValue*> values_;  // lookup only; never iterated
  std::unordered_map<uint32_t, TensorView> views_;   // lookup only; never iterated
  std::unordered_map<uint32_t, int32_t> ranks_;      // lookup only; never iterated
  LValue* check_enabled_ = nullptr;
  LValue* report_ = nullptr;
  Position position_;
};

void set_function_attributes(llvm::Function* function, const CodegenTarget& target) {
  function->addFnAttr(llvm::Attribute::NoUnwind);
  if (!target.cpu.empty()) function->addFnAttr("target-cpu", target.cpu);
  if (!target.features.empty()) function->addFnAttr("target-features", target.features);
  if (target.vector_width >= 16) {
    // The tile loop is written with 512-bit vectors; without these the backend would split them
    // into 256-bit halves on CPUs that prefer 256-bit code by default.
    function->addFnAttr("prefer-vector-width", "512");
    function->addFnAttr("min-legal-vector-width", "512");
  }
}

std::unique_ptr<llvm::Module> new_module(llvm::LLVMContext& context, const std::string& name,
                                         const CodegenTarget& target) {
  auto module = std::make_unique<llvm::Module>(name, context);
  if (!target.triple.empty()) module->setTargetTriple(target.triple);
  if (!target.data_layout.empty()) module->setDataLayout(target.data_layout);
  return module;
}

std::vector<const Node*> nodes_in_order(const Expr& root) {
  std::vector<const Node*> order;
  ir::for_each_node(root, [&](const Expr& node) { order.push_back(node.get()); });
  return order;
}

class TileEmitter {
 public:
  TileEmitter(llvm::Module& module, const ir::ModDef& def, std::span<const DType> storage, const CodegenTarget& target)
      : module_(module),
        def_(def),
        target_(target),
        b_(module.getContext()),
        lower_(module, b_, storage, target.vector_width) {
    lower_.set_vector_math(target.vector_math);
  }

  void emit(const std::string& name) {
    auto& ctx = module_.getContext();
    llvm::Type* i8p = llvm::Type::getInt8PtrTy(ctx);
    llvm::Type* f32p = llvm::Type::getFloatPtrTy(ctx);
    auto* type = llvm::FunctionType::get(
        llvm::Type::getVoidTy(ctx),
        {f32p, lower_.i64(), lower_.i32(), lower_.i32(), lower_.i32(), lower_.i32(), i8p, i8p, lower_.i32(), i8p},
        false);
    function_ = llvm::Function::Create(type, llvm::Function::ExternalLinkage, name, module_);
    set_function_attributes(function_, target_);
    auto arg = function_->arg_begin();
    scores_ = arg++;
    ld_ = arg++;
    rows_ = arg++;
    cols_ = arg++;
    q_first_ = arg++;
    kv_first_ = arg++;
    LValue* at = arg++;
    LValue* params = arg++;
    LValue* check_bounds = arg++;
    LValue* report = arg++;

    auto* entry = llvm::BasicBlock::Create(ctx, "entry", function_);
    b_.SetInsertPoint(entry);
    lower_.note_ranks(def_.body);
    lower_.bind_params(params, def_.body);
    auto position = [&](int32_t TilePosition::*member) {
      return lower_.load_field(at, offset_of(member), lower_.i32());
    };
    b_value_ = position(&TilePosition::b);
    h_value_ = position(&TilePosition::h);
    lower_.set_builtin(Builtin::Batch, b_value_);
    lower_.set_builtin(Builtin::Head, h_value_);
    lower_.set_builtin(Builtin::QLen, position(&TilePosition::q_len));
    lower_.set_builtin(Builtin::KvLen, position(&TilePosition::kv_len));
    lower_.set_builtin(Builtin::NumHeads, position(&TilePosition::num_heads));
    lower_.set_builtin(Builtin::NumKvHeads, position(&TilePosition::num_kv_heads));

    order_ = nodes_in_order(def_.body);
    bool has_loads = false;
    for (const Node* node : order_) {
      int level = kPerCall;
      for (const Expr& operand : node->operands) level = std::max(level, level_.at(operand.get()));
      if (node->kind == Kind::Builtin) {
        if (node->builtin == Builtin::QIdx) level = kPerRow;
        if (node->builtin == Builtin::KvIdx || node->builtin == Builtin::Score) level = kPerKey;
      }
      if (node->kind == Kind::Builtin && node->builtin == Builtin::Score) uses_score_ = true;
      if (node->kind == Kind::Load) has_loads = true;
      level_[node] = level;
    }

    auto* exit = llvm::BasicBlock::Create(ctx, "exit", function_);
    if (has_loads) {
      // Bounds checking evaluates element by element in the interpreter's order, so the first
      // failure it reports is the interpreter's; the fast path never checks.
      auto* fast = llvm::BasicBlock::Create(ctx, "fast", function_);
      auto* checked = llvm::BasicBlock::Create(ctx, "checked", function_);
      LValue* wanted =
          b_.CreateAnd(b_.CreateICmpNE(check_bounds, b_.getInt32(0)),
                       b_.CreateICmpNE(report, llvm::ConstantPointerNull::get(llvm::cast<llvm::PointerType>(i8p))));
      b_.CreateCondBr(wanted, checked, fast);
      b_.SetInsertPoint(checked);
      lower_.enable_bounds_checks(b_.getTrue(), report, {});
      emit_loops(1, false, report);
      b_.CreateBr(exit);
      lower_.disable_bounds_checks();
      b_.SetInsertPoint(fast);
    }
    emit_loops(std::max(1, target_.vector_width), true, nullptr);
    b_.CreateBr(exit);
    b_.SetInsertPoint(exit);
    b_.CreateRetVoid();
  }

 private:
  // The loops over rows and, inside, over keys `width` at a time. With `hoist`, per-call and per-row
  // values are computed outside the key loop; `report` is set on the checked path.
  void emit_loops(int width, bool hoist, LValue* report) {
    auto& ctx = module_.getContext();
    lower_.forget_values();
    lower_.set_width(width);
    auto emit_level = [&](int level) {
      for (const Node* node : order_) {
        if (!hoist || level_.at(node) == level) lower_.lower(*node);
      }
    };
    if (hoist) emit_level(kPerCall);

    LValue* rows = b_.CreateSExt(rows_, lower_.i64());
    LValue* cols = b_.CreateSExt(cols_, lower_.i64());
    llvm::BasicBlock* before_rows = b_.GetInsertBlock();
    auto* row_head = llvm::BasicBlock::Create(ctx, "row.head", function_);
    auto* row_body = llvm::BasicBlock::Create(ctx, "row.body", function_);
    auto* key_head = llvm::BasicBlock::Create(ctx, "key.head", function_);
    auto* key_body = llvm::BasicBlock::Create(ctx, "key.body", function_);
    auto* row_next = llvm::BasicBlock::Create(ctx, "row.next", function_);
    auto* done = llvm::BasicBlock::Create(ctx, "rows.done", function_);
    b_.CreateBr(row_head);

    b_.SetInsertPoint(row_head);
    llvm::PHINode* r = b_.CreatePHI(lower_.i64(), 2, "r");
    r->addIncoming(b_.getInt64(0), before_rows);
    b_.CreateCondBr(b_.CreateICmpSLT(r, rows), row_body, done);

    b_.SetInsertPoint(row_body);
    LValue* q_idx = b_.CreateAdd(q_first_, b_.CreateTrunc(r, lower_.i32()), "q_idx");  // wraps like Int
    LValue* row = b_.CreateGEP(lower_.f32(), scores_, b_.CreateMul(r, ld_));
    lower_.set_builtin(Builtin::QIdx, q_idx);
    if (hoist) emit_level(kPerRow);
    llvm::BasicBlock* before_keys = b_.GetInsertBlock();
    b_.CreateBr(key_head);

    b_.SetInsertPoint(key_head);
    llvm::PHINode* c = b_.CreatePHI(lower_.i64(), 2, "c");
    c->addIncoming(b_.getInt64(0), before_keys);
    b_.CreateCondBr(b_.CreateICmpSLT(c, cols), key_body, row_next);

    b_.SetInsertPoint(key_body);
    LValue* first_key = b_.CreateAdd(kv_first_, b_.CreateTrunc(c, lower_.i32()));
    LValue* address = b_.CreateGEP(lower_.f32(), row, c);
    LValue* active = nullptr;
    LValue* kv_idx = first_key;
    llvm::Type* row_type = lower_.f32();
    if (width > 1) {
      std::vector<llvm::Constant*> lanes;
      for (int lane = 0; lane < width; ++lane) lanes.push_back(b_.getInt32(static_cast<uint32_t>(lane)));
      llvm::Constant* lane_ids = llvm::ConstantVector::get(lanes);
      kv_idx = b_.CreateAdd(b_.CreateVectorSplat(width, first_key), lane_ids, "kv_idx");
      LValue* left = b_.CreateTrunc(b_.CreateSub(cols, c), lower_.i32());  // >= 1 here
      left = b_.CreateSelect(b_.CreateICmpSGT(b_.CreateSub(cols, c), b_.getInt64(width)), b_.getInt32(width), left);
      active = b_.CreateICmpSLT(lane_ids, b_.CreateVectorSplat(width, left), "active");
      row_type = llvm::FixedVectorType::get(lower_.f32(), width);
      address = b_.CreateBitCast(address, llvm::PointerType::getUnqual(row_type));
    }
    lower_.set_builtin(Builtin::KvIdx, kv_idx);
    LValue* old = nullptr;
    if (uses_score_ || def_.kind == dsl::ModKind::Mask) {
      if (width > 1) {
        old = b_.CreateMaskedLoad(row_type, address, llvm::Align(4), active, llvm::Constant::getNullValue(row_type));
      } else {
        old = b_.CreateAlignedLoad(row_type, address, llvm::Align(4));
      }
      lower_.set_builtin(Builtin::Score, old);
    }
    if (report != nullptr) lower_.enable_bounds_checks(b_.getTrue(), report, {b_value_, h_value_, q_idx, kv_idx});
    emit_level(kPerKey);
    LValue* result = lower_.value_of(def_.body.get());
    if (def_.kind == dsl::ModKind::Mask) {
      LValue* minus_inf = llvm::ConstantFP::getInfinity(row_type, true);
      if (width > 1) {
        LValue* drop = b_.CreateAnd(active, lower_.splat(b_.CreateNot(result)));
        b_.CreateMaskedStore(minus_inf, address, llvm::Align(4), drop);
      } else {
        b_.CreateAlignedStore(b_.CreateSelect(result, old, minus_inf), address, llvm::Align(4));
      }
    } else if (width > 1) {
      b_.CreateMaskedStore(lower_.splat(result), address, llvm::Align(4), active);
    } else {
      b_.CreateAlignedStore(result, address, llvm::Align(4));
    }
    llvm::BasicBlock* key_end = b_.GetInsertBlock();
    c->addIncoming(b_.CreateAdd(c, b_.getInt64(width)), key_end);
    b_.CreateBr(key_head);

    b_.SetInsertPoint(row_next);
    r->addIncoming(b_.CreateAdd(r, b_.getInt64(1)), row_next);
    b_.CreateBr(row_head);

    b_.SetInsertPoint(done);
  }

  llvm::Module& module_;
  const ir::ModDef& def_;
  const CodegenTarget& target_;
  llvm::IRBuilder<> b_;
  Lowering lower_;
  llvm::Function* function_ = nullptr;
  LValue *scores_ = nullptr, *ld_ = nullptr, *rows_ = nullptr, *cols_ = nullptr;
  LValue *q_first_ = nullptr, *kv_first_ = nullptr, *b_value_ = nullptr, *h_value_ = nullptr;
  std::vector<const Node*> order_;
  std::unordered_map<const Node*, int> level_;  // lookup only; never iterated
  bool uses_score_ = false;
};

void emit_classifier(llvm::Module& module, const Expr& classifier, std::span<const DType> storage,
                     const CodegenTarget& target, const std::string& name) {
  ATTNC_ASSERT(classifier->type == Type::Int, "LLVM codegen: a tile classifier is an Int expression");
  auto& ctx = module.getContext();
  llvm::IRBuilder<> b(ctx);
  Lowering lower(module, b, storage, 1);
  llvm::Type* i8p = llvm::Type::getInt8PtrTy(ctx);
  auto* type =
      llvm::FunctionType::get(lower.i32(), {lower.i32(), lower.i32(), lower.i32(), lower.i32(), i8p, i8p}, false);
  auto* function = llvm::Function::Create(type, llvm::Function::ExternalLinkage, name, module);
  set_function_attributes(function, target);
  auto arg = function->arg_begin();
  lower.set_builtin(Builtin::QTileFirst, arg++);
  lower.set_builtin(Builtin::QTileLast, arg++);
  lower.set_builtin(Builtin::KvTileFirst, arg++);
  lower.set_builtin(Builtin::KvTileLast, arg++);
  LValue* at = arg++;
  LValue* params = arg++;
  b.SetInsertPoint(llvm::BasicBlock::Create(ctx, "entry", function));
  lower.note_ranks(classifier);
  lower.bind_params(params, classifier);
  auto position = [&](int32_t TilePosition::*member) { return lower.load_field(at, offset_of(member), lower.i32()); };
  lower.set_builtin(Builtin::Batch, position(&TilePosition::b));
  lower.set_builtin(Builtin::Head, position(&TilePosition::h));
  lower.set_builtin(Builtin::QLen, position(&TilePosition::q_len));
  lower.set_builtin(Builtin::KvLen, position(&TilePosition::kv_len));
  lower.set_builtin(Builtin::NumHeads, position(&TilePosition::num_heads));
  lower.set_builtin(Builtin::NumKvHeads, position(&TilePosition::num_kv_heads));
  for (const Node* node : nodes_in_order(classifier)) lower.lower(*node);
  b.CreateRet(lower.value_of(classifier.get()));
}

}  // namespace

std::unique_ptr<llvm::Module> generate_mod_module(llvm::LLVMContext& context, const ir::ModDef& def,
                                                  std::span<const DType> storage, const CodegenTarget& target,
                                                  const std::string& tile_name, const std::string& classify_name) {
  ATTNC_ASSERT(def.body != nullptr, "LLVM codegen: a mod without a body");
  auto module = new_module(context, "attnc." + def.name, target);
  TileEmitter(*module, def, storage, target).emit(tile_name);
  if (def.kind == dsl::ModKind::Mask) {
    emit_classifier(*module, ir::build_tile_classifier(def), storage, target, classify_name);
  }
  return module;
}

std::unique_ptr<llvm::Module> generate_point_module(llvm::LLVMContext& context, const ir::Expr& expr,
                                                    std::span<const DType> storage, const CodegenTarget& target,
                                                    const std::string& name) {
  ATTNC_ASSERT(expr != nullptr, "LLVM codegen: a null expression");
  auto module = new_module(context, "attnc.point", target);
  llvm::IRBuilder<> b(context);
  Lowering lower(*module, b, storage, 1);
  llvm::Type* i8p = llvm::Type::getInt8PtrTy(context);
  llvm::Type* i32p = llvm::Type::getInt32PtrTy(context);
  auto* type = llvm::FunctionType::get(llvm::Type::getVoidTy(context),
                                       {i32p, lower.f32(), i8p, lower.i32(), i8p, llvm::Type::getInt64PtrTy(context),
                                        llvm::Type::getFloatPtrTy(context)},
                                       false);
  auto* function = llvm::Function::Create(type, llvm::Function::ExternalLinkage, name, *module);
  set_function_attributes(function, target);
  auto arg = function->arg_begin();
  LValue* builtins = arg++;
  LValue* score = arg++;
  LValue* params = arg++;
  LValue* check_bounds = arg++;
  LValue* report = arg++;
  LValue* int_result = arg++;
  LValue* float_result = arg++;
  b.SetInsertPoint(llvm::BasicBlock::Create(context, "entry", function));
  lower.note_ranks(expr);
  lower.bind_params(params, expr);
  auto builtin = [&](Builtin which) {
    LValue* at = b.CreateConstInBoundsGEP1_64(lower.i32(), builtins, static_cast<uint64_t>(which));
    return b.CreateAlignedLoad(lower.i32(), at, llvm::Align(4));
  };
  Position position{builtin(Builtin::Batch), builtin(Builtin::Head), builtin(Builtin::QIdx), builtin(Builtin::KvIdx)};
  for (int i = 0; i < ir::kBuiltinCount; ++i) {
    auto which = static_cast<Builtin>(i);
    lower.set_builtin(which, which == Builtin::Score ? score : builtin(which));
  }
  LValue* wanted =
      b.CreateAnd(b.CreateICmpNE(check_bounds, b.getInt32(0)),
                  b.CreateICmpNE(report, llvm::ConstantPointerNull::get(llvm::cast<llvm::PointerType>(i8p))));
  lower.enable_bounds_checks(wanted, report, position);
  for (const Node* node : nodes_in_order(expr)) lower.lower(*node);
  LValue* result = lower.value_of(expr.get());
  switch (expr->type) {
    case Type::Float: b.CreateAlignedStore(result, float_result, llvm::Align(4)); break;
    case Type::Bool: b.CreateAlignedStore(b.CreateZExt(result, lower.i64()), int_result, llvm::Align(8)); break;
    case Type::Int: b.CreateAlignedStore(b.CreateSExt(result, lower.i64()), int_result, llvm::Align(8)); break;
    case Type::Int64: b.CreateAlignedStore(result, int_result, llvm::Align(8)); break;
  }
  b.CreateRetVoid();
  return module;
}

}  // namespace attnc::jit
