#include "runtime/core/Mods.h"

#include <cmath>
#include <map>
#include <mutex>
#include <set>

#include <fmt/format.h>

#include "compiler/Frontend.h"
#include "compiler/IRMutator.h"
#include "compiler/Interpreter.h"
#include "compiler/Prelude.h"
#include "compiler/Substitute.h"
#include "runtime/core/RuntimeError.h"

namespace attnc {

namespace {

// The optimised, unbound built-in `name`; optimised once per process, then copied (cheap).
Mod prelude_mod(const std::string& name) {
  static std::mutex mutex;
  static std::map<std::string, Mod> cache;
  std::lock_guard<std::mutex> lock(mutex);
  auto it = cache.find(name);
  if (it == cache.end()) it = cache.emplace(name, Mod::from_module(ir::prelude_module(), name)).first;
  return it->second;
}

const char* kind_word(dsl::ModKind kind) { return kind == dsl::ModKind::Score ? "score mod" : "mask mod"; }

// Builds one definition from several mods: concatenates their parameters (renumbering them and
// renaming clashes so every parameter and extent name stays unique) and remembers the bound
// arguments to carry over.
class Combiner {
 public:
  // Appends `mod`'s parameters and returns its body rewritten to the combined numbering.
  ir::Expr append(const Mod& mod) {
    const ir::ModDef& def = mod.def();
    uint32_t offset = static_cast<uint32_t>(params_.size());
    ir::Substitution renumber;
    renumber.scalar_params.resize(def.params.size());
    renumber.tensor_params.resize(def.params.size());
    std::map<std::string, std::string> extent_names;  // per mod: dims sharing a name keep sharing
    for (uint32_t i = 0; i < def.params.size(); ++i) {
      ir::ParamDecl param = def.params[i];
      param.name = unique(param.name);
      for (ir::TensorDim& dim : param.dims) {
        dim.first_param += offset;
        if (dim.size >= 0) continue;
        auto found = extent_names.find(dim.name);
        if (found == extent_names.end()) found = extent_names.emplace(dim.name, unique(dim.name)).first;
        dim.name = found->second;
      }
      renumber.tensor_params[i] = offset + i;
      if (!param.is_tensor()) renumber.scalar_params[i] = ir::make_param(offset + i, param.elem);
      if (mod.argument(i)) carried_.emplace_back(param.name, *mod.argument(i));
      params_.push_back(std::move(param));
    }
    return ir::substitute(def.body, renumber);
  }

  // Appends a new scalar int parameter (renamed on a clash) and returns its reference.
  ir::Expr add_int_param(const std::string& base, std::string& name) {
    ir::ParamDecl param;
    param.name = name = unique(base);
    param.elem = ir::Type::Int;
    params_.push_back(param);
    return ir::make_param(static_cast<uint32_t>(params_.size() - 1), ir::Type::Int);
  }

  // The combined mod, optimised, with the carried arguments bound.
  Mod finish(std::string name, dsl::ModKind kind, ir::Expr body) {
    ir::ModDef def;
    def.name = std::move(name);
    def.kind = kind;
    def.params = std::move(params_);
    def.body = std::move(body);
    Mod mod = Mod::from_def(def);
    for (const auto& [param_name, argument] : carried_) mod.bind(param_name, argument);
    return mod;
  }

 private:
  std::string unique(const std::string& base) {
    std::string name = base;
    for (int suffix = 2; used_.count(name); ++suffix) name = base + "_" + std::to_string(suffix);
    used_.insert(name);
    return name;
  }

  std::vector<ir::ParamDecl> params_;
  std::set<std::string> used_;
  std::vector<std::pair<std::string, Mod::Argument>> carried_;
};

void require_kind(const std::vector<Mod>& mods, dsl::ModKind kind, const char* function) {
  if (mods.empty()) throw RuntimeError(fmt::format("{} needs at least one {}", function, kind_word(kind)));
  for (size_t i = 0; i < mods.size(); ++i) {
    if (mods[i].kind() != kind) {
      throw RuntimeError(fmt::format("{} takes {}s, but argument {} ({}) is a {}", function, kind_word(kind), i,
                                     mods[i].describe(), kind_word(mods[i].kind())));
    }
  }
}

std::string joined_names(const char* function, const std::vector<Mod>& mods) {
  std::vector<std::string> names;
  for (const Mod& mod : mods) names.push_back(mod.name());
  return fmt::format("{}({})", function, fmt::join(names, ", "));
}

Mod combine_masks(const std::vector<Mod>& masks, ir::Op op, const char* function) {
  require_kind(masks, dsl::ModKind::Mask, function);
  if (masks.size() == 1) return masks.front();
  Combiner combiner;
  ir::Expr body;
  for (const Mod& mask : masks) {
    ir::Expr part = combiner.append(mask);
    body = body ? ir::make_binary(op, body, part) : part;
  }
  return combiner.finish(joined_names(function, masks), dsl::ModKind::Mask, body);
}

}  // namespace

Mod causal_mod() { return prelude_mod("causal"); }

Mod causal_bottom_right_mod() { return prelude_mod("causal_bottom_right"); }

Mod sliding_window_mod(int window, bool causal) {
  if (window <= 0) throw RuntimeError(fmt::format("sliding_window_mod: the window must be positive, not {}", window));
  return prelude_mod(causal ? "sliding_window_causal" : "sliding_window_symmetric").bind("window", window);
}

std::vector<float> alibi_slopes(int num_heads) {
  if (num_heads <= 0) throw RuntimeError(fmt::format("alibi_slopes: num_heads must be positive, not {}", num_heads));
  // The schedule for a power of two n: 2^(-8 (i + 1) / n), i = 0 .. n-1.
  auto schedule = [](int n, int i) { return static_cast<float>(std::exp2(-8.0 * (i + 1) / n)); };
  int base = 1;
  while (base * 2 <= num_heads) base *= 2;
  std::vector<float> slopes;
  for (int i = 0; i < base; ++i) slopes.push_back(schedule(base, i));
  for (int i = 0; static_cast<int>(slopes.size()) < num_heads; i += 2) slopes.push_back(schedule(2 * base, i));
  return slopes;
}

Mod alibi_mod(int num_heads) {
  return prelude_mod("alibi").bind("slopes", Tensor::from_vector(alibi_slopes(num_heads)));
}

Mod prefix_lm_mod(Tensor prefix_lengths) { return prelude_mod("prefix_lm").bind("prefix", std::move(prefix_lengths)); }

Mod document_mask_mod(Tensor document_ids) { return prelude_mod("document").bind("ids", std::move(document_ids)); }

namespace {

// `t` with the axes a rank below 4 lacks prepended (extent 1, stride 0), as PyTorch broadcasts from the right.
Tensor broadcast_to_rank4(const Tensor& t) {
  if (!t.defined() || t.rank() < 1 || t.rank() >= 4) return t;
  std::vector<int64_t> shape = t.shape();
  std::vector<int64_t> strides = t.strides();
  shape.insert(shape.begin(), 4 - t.rank(), 1);
  strides.insert(strides.begin(), 4 - t.rank(), 0);
  std::shared_ptr<Tensor> keep = std::make_shared<Tensor>(t);
  return Tensor::from_storage(std::shared_ptr<void>(keep, t.data()), t.data(), t.dtype(), std::move(shape),
                              std::move(strides), t.device());
}

// A contiguous int32 copy of a bool / uint8 CPU tensor (1 where nonzero). Axes the view broadcasts
// (stride 0) are kept at extent 1, so an expanded mask is not materialised: clamped indices read
// the one element, as the view did.
Tensor to_int32_mask(const Tensor& mask) {
  std::vector<int64_t> shape = mask.shape();
  for (size_t d = 0; d < shape.size(); ++d) {
    if (mask.strides()[d] == 0) shape[d] = std::min<int64_t>(shape[d], 1);
  }
  Tensor out = Tensor::empty(DType::I32, shape);
  auto* data = static_cast<int32_t*>(out.data());
  std::vector<int64_t> index(shape.size(), 0);
  for (int64_t i = 0, n = out.numel(); i < n; ++i) {
    data[i] = mask.get_bool(index) ? 1 : 0;
    for (size_t d = shape.size(); d-- > 0;) {
      if (++index[d] < shape[d]) break;
      index[d] = 0;
    }
  }
  return out;
}

}  // namespace

Mod additive_bias_mod(Tensor bias) { return prelude_mod("additive_bias").bind("bias", broadcast_to_rank4(bias)); }

Mod softcap_mod(float cap) {
  if (!(cap > 0.0f) || std::isinf(cap)) {
    throw RuntimeError(fmt::format("softcap_mod: the cap must be positive and finite, not {}", cap));
  }
  return prelude_mod("softcap").bind("cap", cap);
}

Mod mask_tensor_mod(Tensor mask) {
  static const Mod unbound = [] {
    // Over an int tensor, not a bool one: the tile classifier summarises int tensors over a box.
    const ir::Module module = ir::load_module_text(
        "<mask_tensor_mod>", "mask_mod mask_tensor(keep: int[BB, BH, BQ, BK]) = keep[b, h, q_idx, kv_idx] != 0;\n");
    return Mod::from_module(module, "mask_tensor");
  }();
  if (!mask.defined()) throw RuntimeError("mask_tensor_mod: the mask is undefined");
  if (mask.rank() < 1 || mask.rank() > 4) {
    throw RuntimeError(fmt::format(
        "mask_tensor_mod: the mask must have rank 1 to 4, broadcastable to (B, H, Sq, Skv), got {}", mask.describe()));
  }
  switch (mask.dtype()) {
    case DType::I32:
    case DType::I64: break;
    case DType::Bool:
    case DType::U8:
      if (mask.device() != Device::Cpu) {
        throw RuntimeError(
            fmt::format("mask_tensor_mod: a {} mask must be on the CPU (it is copied into int32 there); on {} pass "
                        "an int32 mask, got {}",
                        dtype_name(mask.dtype()), device_name(mask.device()), mask.describe()));
      }
      mask = to_int32_mask(mask);
      break;
    default:
      throw RuntimeError(
          fmt::format("mask_tensor_mod: the mask must be bool, uint8, int32 or int64, got {}", mask.describe()));
  }
  return Mod(unbound).bind("keep", broadcast_to_rank4(mask));
}

MaskedOptions::MaskedOptions(const AttentionOptions& options, const Tensor& mask) : options_(options) {
  if (!mask.defined()) return;
  Mod tensor_mod = mask_tensor_mod(mask);
  mask_ = std::make_shared<const Mod>(options.mask_mod ? and_masks({*options.mask_mod, tensor_mod}) : tensor_mod);
  options_.mask_mod = mask_.get();
}

MaskedOptions with_mask(const AttentionOptions& options, const Tensor& mask) { return MaskedOptions(options, mask); }

Mod BlockMod::at(int32_t kv_offset_value, int32_t q_len, int32_t kv_len) const {
  Mod bound = mod;
  bound.bind(kv_offset, kv_offset_value);
  if (!seq_q_len.empty()) bound.bind(seq_q_len, q_len);
  if (!seq_kv_len.empty()) bound.bind(seq_kv_len, kv_len);
  return bound;
}

BlockMod block_view_mod(const Mod& mod) {
  bool reads_q_len = false, reads_kv_len = false;
  ir::for_each_node(mod.def().body, [&](const ir::Expr& node) {
    if (node->kind != ir::Kind::Builtin) return;
    reads_q_len = reads_q_len || node->builtin == ir::Builtin::QLen;
    reads_kv_len = reads_kv_len || node->builtin == ir::Builtin::KvLen;
  });
  Combiner combiner;
  ir::Expr body = combiner.append(mod);
  BlockMod result{mod, "", "", ""};
  const ir::Expr offset = combiner.add_int_param("kv_offset", result.kv_offset);
  const ir::Expr q_len = reads_q_len ? combiner.add_int_param("seq_q_len", result.seq_q_len) : nullptr;
  const ir::Expr kv_len = reads_kv_len ? combiner.add_int_param("seq_kv_len", result.seq_kv_len) : nullptr;
  const ir::Expr kv_idx = ir::make_binary(ir::Op::Add, ir::make_builtin(ir::Builtin::KvIdx), offset);
  body = ir::rewrite_bottom_up(body, [&](const ir::Expr& node) -> ir::Expr {
    if (node->kind != ir::Kind::Builtin) return node;
    switch (node->builtin) {
      case ir::Builtin::KvIdx: return kv_idx;
      case ir::Builtin::QLen: return q_len;
      case ir::Builtin::KvLen: return kv_len;
      default: return node;
    }
  });
  result.mod = combiner.finish(fmt::format("block_view_mod({})", mod.name()), mod.kind(), body);
  return result;
}

Mod compose_score_mods(const std::vector<Mod>& mods) {
  require_kind(mods, dsl::ModKind::Score, "compose_score_mods");
  if (mods.size() == 1) return mods.front();
  Combiner combiner;
  ir::Expr body;
  for (const Mod& mod : mods) {
    ir::Expr part = combiner.append(mod);
    if (body) {
      // The previous mods' result becomes this one's score.
      ir::Substitution apply;
      apply.score = body;
      part = ir::substitute(part, apply);
    }
    body = part;
  }
  return combiner.finish(joined_names("compose_score_mods", mods), dsl::ModKind::Score, body);
}

Mod and_masks(const std::vector<Mod>& masks) { return combine_masks(masks, ir::Op::And, "and_masks"); }

Mod or_masks(const std::vector<Mod>& masks) { return combine_masks(masks, ir::Op::Or, "or_masks"); }

Mod mask_mod_to_score_mod(const Mod& mask) {
  if (mask.kind() != dsl::ModKind::Mask) {
    throw RuntimeError(fmt::format("mask_mod_to_score_mod takes a mask mod, but {} is a score mod", mask.describe()));
  }
  Combiner combiner;
  ir::Expr keep = combiner.append(mask);
  ir::Expr body = ir::make_select(keep, ir::make_builtin(ir::Builtin::Score), ir::make_float(-INFINITY));
  return combiner.finish(fmt::format("mask_mod_to_score_mod({})", mask.name()), dsl::ModKind::Score, body);
}

Tensor mask_mod_to_boolean_mask(const Mod& mask, int batch, int heads, int q_len, int kv_len) {
  if (mask.kind() != dsl::ModKind::Mask) {
    throw RuntimeError(
        fmt::format("mask_mod_to_boolean_mask takes a mask mod, but {} is a score mod", mask.describe()));
  }
  if (batch < 0 || heads < 0 || q_len < 0 || kv_len < 0) {
    throw RuntimeError(fmt::format("mask_mod_to_boolean_mask: sizes must be non-negative, not [{}, {}, {}, {}]", batch,
                                   heads, q_len, kv_len));
  }
  ir::Environment env = mask.environment(q_len, kv_len, heads, heads);
  ir::CompiledExpr keep(mask.def().body);
  Tensor out = Tensor::empty(DType::Bool, {batch, heads, q_len, kv_len});
  auto* data = static_cast<uint8_t*>(out.data());
  for (int b = 0; b < batch; ++b) {
    for (int h = 0; h < heads; ++h) {
      for (int q = 0; q < q_len; ++q) {
        for (int kv = 0; kv < kv_len; ++kv) {
          env.set_point(b, h, q, kv);
          *data++ = keep.evaluate(env).as_bool() ? 1 : 0;
        }
      }
    }
  }
  return out;
}

}  // namespace attnc
