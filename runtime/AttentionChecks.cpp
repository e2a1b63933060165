#include "runtime/AttentionChecks.h"

#include <limits>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "runtime/RuntimeError.h"

namespace attnc {

namespace {

struct Checker {
  const char* function;

  [[noreturn]] void fail(const std::string& message) const {
    throw RuntimeError(fmt::format("{}: {}", function, message));
  }

  void require_float_cpu(const Tensor& t, const char* role) const {
    if (!t.defined()) fail(fmt::format("{} is undefined", role));
    if (!dtype_is_float(t.dtype())) {
      fail(fmt::format("{} must be fp32, fp16 or bf16, not {} ({})", role, dtype_name(t.dtype()), t.describe()));
    }
    if (t.device() != Device::Cpu) {
      fail(fmt::format("{} is on {}; {} runs on the CPU ({})", role, device_name(t.device()), function, t.describe()));
    }
  }

  void require_rank(const Tensor& t, size_t rank, const char* role, const char* layout) const {
    if (t.rank() != rank) fail(fmt::format("{} must have rank {} {}, got {}", role, rank, layout, t.describe()));
  }

  void require_mod(const Mod* mod, dsl::ModKind kind, const char* option) const {
    if (!mod) return;
    if (mod->kind() != kind) {
      fail(fmt::format("{} was passed as the {}, but it is a {}", mod->describe(), option,
                       kind == dsl::ModKind::Score ? "mask mod" : "score mod"));
    }
  }
};

}  // namespace

void check_attention_inputs(const char* function, const Tensor& q, const Tensor& v) {
  Checker c{function};
  c.require_float_cpu(q, "q");
  c.require_float_cpu(v, "v");
  c.require_rank(q, 4, "q", "(B, H, S, D)");
  c.require_rank(v, 4, "v", "(B, Hkv, Skv, Dv)");
}

AttentionShape check_attention_args(const char* function, const Tensor& q, const Tensor& k, const Tensor& v,
                                    const Tensor& out, const AttentionOptions& options, Tensor* lse) {
  Checker c{function};
  c.require_float_cpu(q, "q");
  c.require_float_cpu(k, "k");
  c.require_float_cpu(v, "v");
  c.require_rank(q, 4, "q", "(B, H, S, D)");
  c.require_rank(k, 4, "k", "(B, Hkv, Skv, D)");
  c.require_rank(v, 4, "v", "(B, Hkv, Skv, Dv)");
  AttentionShape s;
  s.batch = q.shape()[0], s.heads = q.shape()[1], s.q_len = q.shape()[2], s.head_dim = q.shape()[3];
  s.kv_heads = k.shape()[1], s.kv_len = k.shape()[2], s.value_dim = v.shape()[3];
  if (k.shape()[0] != s.batch || v.shape()[0] != s.batch) {
    c.fail(fmt::format("batch sizes differ: q {}, k {}, v {}", shape_to_string(q.shape()), shape_to_string(k.shape()),
                       shape_to_string(v.shape())));
  }
  if (k.shape()[3] != s.head_dim) {
    c.fail(fmt::format("q and k head dims differ: q {}, k {}", shape_to_string(q.shape()), shape_to_string(k.shape())));
  }
  if (v.shape()[1] != s.kv_heads || v.shape()[2] != s.kv_len) {
    c.fail(fmt::format("k and v differ in heads or length: k {}, v {}", shape_to_string(k.shape()),
                       shape_to_string(v.shape())));
  }
  if (s.kv_heads == 0 ? s.heads != 0 : s.heads % s.kv_heads != 0) {
    c.fail(fmt::format("the {} query heads are not a multiple of the {} key/value heads", s.heads, s.kv_heads));
  }
  for (int64_t extent : {s.batch, s.heads, s.q_len, s.kv_len, s.kv_heads}) {
    if (extent > std::numeric_limits<int32_t>::max()) {
      c.fail(fmt::format("sizes q {}, k {} exceed the int range of mod indices", shape_to_string(q.shape()),
                         shape_to_string(k.shape())));
    }
  }
  if (s.head_dim == 0) c.fail(fmt::format("the head dim of q {} is 0", shape_to_string(q.shape())));

  c.require_float_cpu(out, "out");
  std::vector<int64_t> out_shape{s.batch, s.heads, s.q_len, s.value_dim};
  if (out.shape() != out_shape) {
    c.fail(fmt::format("out must have shape {} (B, H, S, Dv), got {}", shape_to_string(out_shape), out.describe()));
  }
  if (lse) {
    std::vector<int64_t> lse_shape{s.batch, s.heads, s.q_len};
    if (!lse->defined()) *lse = Tensor::empty(DType::F32, lse_shape);
    c.require_float_cpu(*lse, "lse");
    if (lse->shape() != lse_shape) {
      c.fail(fmt::format("lse must have shape {} (B, H, S), got {}", shape_to_string(lse_shape), lse->describe()));
    }
  }

  c.require_mod(options.score_mod, dsl::ModKind::Score, "score_mod");
  c.require_mod(options.mask_mod, dsl::ModKind::Mask, "mask_mod");
  return s;
}

std::string out_of_range_message(const char* function, const Mod& mod, uint32_t param, int32_t dim, int64_t index,
                                 int64_t extent, int32_t b, int32_t h, int32_t q_idx, int32_t kv_idx) {
  const ir::ModDef& def = mod.def();
  std::string name = param < def.params.size() ? def.params[param].name : fmt::format("#{}", param);
  return fmt::format(
      "{}: {}: index {} is out of range for dimension {} of parameter '{}' (extent {}) at (b={}, h={}, q_idx={}, "
      "kv_idx={})",
      function, mod.describe(), index, dim, name, extent, b, h, q_idx, kv_idx);
}

}  // namespace attnc
