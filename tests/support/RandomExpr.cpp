#include "tests/support/RandomExpr.h"

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "dsl/Errors.h"

namespace attnc::ir::test {

namespace {

constexpr Op kIntArithmetic[] = {Op::Add, Op::Sub, Op::Mul, Op::Div, Op::Mod, Op::Min, Op::Max};
constexpr Op kComparisons[] = {Op::Lt, Op::Le, Op::Gt, Op::Ge, Op::Eq, Op::Ne};
constexpr Op kUnaryFunctions[] = {Op::Abs,  Op::Exp,     Op::Exp2, Op::Log, Op::Log2,  Op::Sqrt, Op::Rsqrt,
                                  Op::Tanh, Op::Sigmoid, Op::Sin,  Op::Cos, Op::Floor, Op::Ceil, Op::Round};

template <typename T, size_t N>
T pick(std::mt19937& rng, const T (&items)[N]) {
  return items[std::uniform_int_distribution<size_t>(0, N - 1)(rng)];
}

int pick_index(std::mt19937& rng, size_t count) {
  return std::uniform_int_distribution<int>(0, static_cast<int>(count) - 1)(rng);
}

bool chance(std::mt19937& rng, double probability) {
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng) < probability;
}

int32_t random_int(std::mt19937& rng, double edge_probability) {
  static constexpr int32_t kEdges[] = {0,
                                       1,
                                       -1,
                                       2,
                                       -2,
                                       3,
                                       7,
                                       16,
                                       std::numeric_limits<int32_t>::min(),
                                       std::numeric_limits<int32_t>::max(),
                                       std::numeric_limits<int32_t>::min() + 1,
                                       1 << 24,
                                       (1 << 24) + 1};
  if (chance(rng, edge_probability)) return pick(rng, kEdges);
  if (chance(rng, 0.7)) return std::uniform_int_distribution<int32_t>(-20, 20)(rng);
  return static_cast<int32_t>(rng());
}

int64_t random_int64(std::mt19937& rng, double edge_probability) {
  static constexpr int64_t kEdges[] = {0,
                                       1,
                                       -1,
                                       std::numeric_limits<int64_t>::min(),
                                       std::numeric_limits<int64_t>::max(),
                                       std::numeric_limits<int32_t>::min(),
                                       std::numeric_limits<int32_t>::max(),
                                       int64_t{1} << 32};
  if (chance(rng, edge_probability)) return pick(rng, kEdges);
  if (chance(rng, 0.7)) return std::uniform_int_distribution<int64_t>(-20, 20)(rng);
  return static_cast<int64_t>((static_cast<uint64_t>(rng()) << 32) | rng());
}

float random_float(std::mt19937& rng, double edge_probability) {
  static const float kEdges[] = {0.0f,
                                 -0.0f,
                                 1.0f,
                                 -1.0f,
                                 0.5f,
                                 -0.5f,
                                 2.5f,
                                 -2.5f,
                                 std::numeric_limits<float>::quiet_NaN(),
                                 std::numeric_limits<float>::infinity(),
                                 -std::numeric_limits<float>::infinity(),
                                 std::numeric_limits<float>::max(),
                                 std::numeric_limits<float>::lowest(),
                                 std::numeric_limits<float>::denorm_min(),
                                 std::numeric_limits<float>::min(),
                                 2147483648.0f,
                                 -2147483648.0f,
                                 16777217.0f};
  if (chance(rng, edge_probability)) return pick(rng, kEdges);
  if (chance(rng, 0.5)) return static_cast<float>(std::uniform_int_distribution<int>(-8, 8)(rng)) * 0.5f;
  return std::uniform_real_distribution<float>(-100.0f, 100.0f)(rng);
}

// One random expression tree. Keeps the subexpressions made so far, per type, for reuse.
class Generator {
 public:
  Generator(std::mt19937& rng, const RandomExprOptions& options) : rng_(rng), options_(options) {}

  Expr make(Type type, int depth) {
    ATTNC_ASSERT(type != Type::Int64 || options_.use_int64, "Int64 expressions need use_int64");
    std::vector<Expr>& pool = pools_[static_cast<int>(type)];
    if (!pool.empty() && chance(rng_, options_.reuse_probability)) return pool[pick_index(rng_, pool.size())];
    Expr e = depth <= 0 || chance(rng_, options_.leaf_probability) ? leaf(type) : interior(type, depth - 1);
    pool.push_back(e);
    return e;
  }

 private:
  Expr constant(Type type) {
    const double edge = options_.edge_value_probability;
    switch (type) {
      case Type::Bool: return make_bool(chance(rng_, 0.5));
      case Type::Int: return make_int(random_int(rng_, edge));
      case Type::Int64: return make_int64(random_int64(rng_, edge));
      case Type::Float: return make_float(random_float(rng_, edge));
    }
    return nullptr;
  }

  // Parameters of `elem`, scalars or tensors.
  std::vector<uint32_t> params_of(Type elem, bool tensor) const {
    std::vector<uint32_t> found;
    for (uint32_t i = 0; i < options_.params.size(); ++i) {
      const RandomParam& p = options_.params[i];
      if (p.elem == elem && p.shape.empty() != tensor) found.push_back(i);
    }
    return found;
  }

  std::vector<uint32_t> tensors() const {
    std::vector<uint32_t> found;
    for (uint32_t i = 0; i < options_.params.size(); ++i) {
      if (!options_.params[i].shape.empty()) found.push_back(i);
    }
    return found;
  }

  Expr leaf(Type type) {
    std::vector<Expr> choices{constant(type), constant(type)};
    for (uint32_t p : params_of(type, false)) choices.push_back(make_param(p, type));
    if (type == Type::Int) {
      for (int b = 0; b < kBuiltinCount; ++b) {
        const auto builtin = static_cast<Builtin>(b);
        const bool is_tile = builtin >= Builtin::QTileFirst;
        if (builtin_type(builtin) == Type::Int && (!is_tile || options_.use_tile_builtins)) {
          choices.push_back(make_builtin(builtin));
        }
      }
      for (uint32_t t : tensors()) {
        choices.push_back(make_extent(t, pick_index(rng_, options_.params[t].shape.size())));
      }
    }
    if (type == Type::Float && options_.use_score) {
      choices.push_back(make_builtin(Builtin::Score));
      choices.push_back(make_builtin(Builtin::Score));
    }
    if (type == Type::Int64) choices.push_back(make_cast(Type::Int64, leaf(Type::Int)));
    return choices[pick_index(rng_, choices.size())];
  }

  Expr load(Type elem, int depth) {
    std::vector<uint32_t> candidates = params_of(elem, true);
    if (candidates.empty()) return nullptr;
    const uint32_t t = candidates[pick_index(rng_, candidates.size())];
    std::vector<Expr> indices;
    for (size_t d = 0; d < options_.params[t].shape.size(); ++d) indices.push_back(make(Type::Int, depth));
    return make_load(t, elem, std::move(indices));
  }

  Expr load_range(Type elem, int depth) {
    std::vector<uint32_t> candidates = params_of(elem, true);
    if (candidates.empty()) return nullptr;
    const uint32_t t = candidates[pick_index(rng_, candidates.size())];
    std::vector<Expr> first, last;
    for (size_t d = 0; d < options_.params[t].shape.size(); ++d) {
      first.push_back(make(Type::Int64, depth));
      last.push_back(make(Type::Int64, depth));
    }
    return make_load_range(chance(rng_, 0.5) ? Op::Min : Op::Max, t, elem, std::move(first), std::move(last));
  }

  // A numeric type other than `type` to convert from.
  Type cast_source(Type type) {
    std::vector<Type> sources;
    for (Type t : {Type::Bool, Type::Int, Type::Float, Type::Int64}) {
      if (t != type && (t != Type::Int64 || options_.use_int64)) sources.push_back(t);
    }
    return sources[pick_index(rng_, sources.size())];
  }

  Expr interior(Type type, int depth) {
    switch (type) {
      case Type::Bool: return interior_bool(depth);
      case Type::Float: return interior_float(depth);
      default: return interior_integer(type, depth);
    }
  }

  Expr interior_integer(Type type, int depth) {
    switch (pick_index(rng_, 8)) {
      case 0: return make_unary(Op::Neg, make(type, depth));
      case 1: return make_call(Op::Abs, {make(type, depth)});
      case 2: return make_select(make(Type::Bool, depth), make(type, depth), make(type, depth));
      case 3: return make_cast(type, make(cast_source(type), depth));
      case 4:
        if (type == Type::Int) {
          if (Expr e = load(Type::Int, depth)) return e;
        } else if (Expr e = load_range(Type::Int, depth)) {
          return make_cast(Type::Int64, e);
        }
        [[fallthrough]];
      default: return make_binary(pick(rng_, kIntArithmetic), make(type, depth), make(type, depth));
    }
  }

  Expr interior_float(int depth) {
    const Type f = Type::Float;
    switch (pick_index(rng_, 9)) {
      case 0: return make_unary(Op::Neg, make(f, depth));
      case 1:
      case 2: return make_call(pick(rng_, kUnaryFunctions), {make(f, depth)});
      case 3: return make_call(Op::Pow, {make(f, depth), make(f, depth)});
      case 4: return make_select(make(Type::Bool, depth), make(f, depth), make(f, depth));
      case 5: return make_cast(f, make(cast_source(f), depth));
      case 6:
        if (options_.use_int64 && chance(rng_, 0.3)) {
          if (Expr e = load_range(f, depth)) return e;
        }
        if (Expr e = load(f, depth)) return e;
        [[fallthrough]];
      default: return make_binary(pick(rng_, kIntArithmetic), make(f, depth), make(f, depth));
    }
  }

  Expr interior_bool(int depth) {
    switch (pick_index(rng_, 8)) {
      case 0: return make_unary(Op::Not, make(Type::Bool, depth));
      case 1:
        return make_binary(chance(rng_, 0.5) ? Op::And : Op::Or, make(Type::Bool, depth), make(Type::Bool, depth));
      case 2: return make_binary(chance(rng_, 0.5) ? Op::Eq : Op::Ne, make(Type::Bool, depth), make(Type::Bool, depth));
      case 3: return make_select(make(Type::Bool, depth), make(Type::Bool, depth), make(Type::Bool, depth));
      case 4: return make_cast(Type::Bool, make(cast_source(Type::Bool), depth));
      case 5:
        if (Expr e = load(Type::Bool, depth)) return e;
        [[fallthrough]];
      default: {
        Type operand = chance(rng_, 0.5) ? Type::Int : Type::Float;
        if (options_.use_int64 && chance(rng_, 0.2)) operand = Type::Int64;
        return make_binary(pick(rng_, kComparisons), make(operand, depth), make(operand, depth));
      }
    }
  }

  std::mt19937& rng_;
  const RandomExprOptions& options_;
  std::vector<Expr> pools_[4];  // indexed by Type
};

}  // namespace

std::vector<RandomParam> RandomExprOptions::default_params() {
  return {
      {Type::Int, {}, DType::I32},       {Type::Float, {}, DType::F32},   {Type::Bool, {}, DType::Bool},
      {Type::Float, {3}, DType::F32},    {Type::Int, {2, 3}, DType::I32}, {Type::Bool, {4}, DType::Bool},
      {Type::Float, {2, 2}, DType::F16}, {Type::Float, {5}, DType::BF16}, {Type::Int, {3}, DType::I64},
  };
}

Expr random_expr(std::mt19937& rng, Type type, int depth, const RandomExprOptions& options) {
  return Generator(rng, options).make(type, depth);
}

Value random_value(std::mt19937& rng, Type type, double edge_value_probability) {
  switch (type) {
    case Type::Bool: return Value::of_bool(chance(rng, 0.5));
    case Type::Int: return Value::of_int(random_int(rng, edge_value_probability));
    case Type::Int64: return Value::of_int64(random_int64(rng, edge_value_probability));
    case Type::Float: return Value::of_float(random_float(rng, edge_value_probability));
  }
  return {};
}

RandomEnvironment random_environment(std::mt19937& rng, const RandomExprOptions& options) {
  RandomEnvironment out;
  const double edge = options.edge_value_probability;
  for (int b = 0; b < kBuiltinCount; ++b) {
    const auto builtin = static_cast<Builtin>(b);
    if (builtin_type(builtin) == Type::Float) {
      out.env.set(builtin, random_value(rng, Type::Float, edge));
    } else {
      // Mostly realistic positions and sizes, sometimes values no real launch has: the IR is total.
      out.env.set(builtin, chance(rng, 0.8) ? Value::of_int(std::uniform_int_distribution<int32_t>(0, 64)(rng))
                                            : random_value(rng, Type::Int, edge));
    }
  }
  for (const RandomParam& param : options.params) {
    if (param.shape.empty()) {
      out.env.params.emplace_back(random_value(rng, param.elem, edge));
      continue;
    }
    TensorArg tensor;
    tensor.dtype = param.storage;
    tensor.shape = param.shape;
    tensor.strides.assign(param.shape.size(), 1);
    int64_t count = 1;
    for (size_t d = param.shape.size(); d-- > 0;) {
      tensor.strides[d] = count;
      count *= param.shape[d];
    }
    auto buffer = std::make_shared<std::vector<unsigned char>>(count * dtype_size(param.storage));
    for (int64_t i = 0; i < count; ++i) {
      unsigned char* element = buffer->data() + i * dtype_size(param.storage);
      switch (param.storage) {
        case DType::F32: {
          const float v = random_float(rng, edge);
          std::memcpy(element, &v, sizeof v);
          break;
        }
        case DType::F16:
        case DType::BF16: {
          // Random bit patterns cover every class of half value: NaNs, infinities, subnormals, -0.
          const auto v = static_cast<uint16_t>(chance(rng, 0.5) ? rng() : (chance(rng, 0.5) ? 0x8000 : 0x3c00));
          std::memcpy(element, &v, sizeof v);
          break;
        }
        case DType::I32: {
          const int32_t v = random_int(rng, edge);
          std::memcpy(element, &v, sizeof v);
          break;
        }
        case DType::I64: {
          const int64_t v = random_int64(rng, edge);
          std::memcpy(element, &v, sizeof v);
          break;
        }
        case DType::U8:
        case DType::Bool: *element = chance(rng, 0.5) ? 1 : 0; break;
      }
    }
    tensor.data = buffer->data();
    out.buffers.push_back(std::move(buffer));
    out.env.params.emplace_back(std::move(tensor));
  }
  return out;
}

std::vector<ParamDecl> random_param_decls(const RandomExprOptions& options) {
  std::vector<ParamDecl> decls;
  for (uint32_t i = 0; i < options.params.size(); ++i) {
    ParamDecl decl;
    decl.name = "p" + std::to_string(i);
    decl.elem = options.params[i].elem;
    for (uint32_t d = 0; d < options.params[i].shape.size(); ++d) {
      TensorDim dim;
      dim.name = decl.name + "_d" + std::to_string(d);
      dim.first_param = i;
      dim.first_dim = d;
      decl.dims.push_back(dim);
    }
    decls.push_back(std::move(decl));
  }
  return decls;
}

std::vector<DType> random_param_storage(const RandomExprOptions& options) {
  std::vector<DType> storage;
  for (const RandomParam& p : options.params) storage.push_back(p.storage);
  return storage;
}

bool same_result(const Value& a, const Value& b) {
  if (a.type == Type::Float && b.type == Type::Float && std::isnan(a.f) && std::isnan(b.f)) return true;
  return identical(a, b);
}

}  // namespace attnc::ir::test
