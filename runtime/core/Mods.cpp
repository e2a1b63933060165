#include "runtime/core/Mods.h"

#include <cmath>
#include <map>
#include <mutex>
#include <set>

#include <fmt/format.h>

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

Mod additive_bias_mod(Tensor bias) {
  if (bias.defined() && bias.rank() >= 1 && bias.rank() < 4) {
    // Broadcast from the right: prepend axes of extent 1 (their stride never matters).
    std::vector<int64_t> shape = bias.shape();
    std::vector<int64_t> strides = bias.strides();
    shape.insert(shape.begin(), 4 - bias.rank(), 1);
    strides.insert(strides.begin(), 4 - bias.rank(), 0);
    std::shared_ptr<Tensor> keep = std::make_shared<Tensor>(bias);
    bias = Tensor::from_storage(std::shared_ptr<void>(keep, bias.data()), bias.data(), bias.dtype(), std::move(shape),
                                std::move(strides), bias.device());
  }
  return prelude_mod("additive_bias").bind("bias", std::move(bias));
}

Mod softcap_mod(float cap) {
  if (!(cap > 0.0f) || std::isinf(cap)) {
    throw RuntimeError(fmt::format("softcap_mod: the cap must be positive and finite, not {}", cap));
  }
  return prelude_mod("softcap").bind("cap", cap);
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
