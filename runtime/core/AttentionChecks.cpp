#include "runtime/core/AttentionChecks.h"

#include <algorithm>
#include <limits>
#include <string>
#include <variant>
#include <vector>

#include <fmt/format.h>

#include "runtime/core/RuntimeError.h"

namespace attnc {

namespace {

struct Checker {
  const char* function;
  const TensorRule& rule;

  [[noreturn]] void fail(const std::string& message) const {
    throw RuntimeError(*function == '\0' ? message : fmt::format("{}: {}", function, message));
  }

  // `dtype`: the element type this role must have whatever the rule says (lse: fp32 on CUDA).
  void require(const Tensor& t, const char* role, std::optional<DType> dtype = std::nullopt) const {
    if (!t.defined()) fail(fmt::format("{} is undefined", role));
    if (t.device() != rule.device) {
      fail(fmt::format("{} is on {}; {} runs on {} tensors ({})", role, device_name(t.device()),
                       *function == '\0' ? "this call" : function, device_name(rule.device), t.describe()));
    }
    if (dtype && t.dtype() != *dtype) {
      fail(fmt::format("{} must be {}, got {}", role, dtype_name(*dtype), t.describe()));
    } else if (!dtype && rule.dtype && t.dtype() != *rule.dtype) {
      fail(fmt::format("{} must be {} (the kernel's dtype), got {}", role, dtype_name(*rule.dtype), t.describe()));
    } else if (!dtype && !rule.dtype && !dtype_is_float(t.dtype())) {
      fail(fmt::format("{} must be fp32, fp16 or bf16, not {} ({})", role, dtype_name(t.dtype()), t.describe()));
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

void check_attention_inputs(const char* function, const Tensor& q, const Tensor& v, const TensorRule& rule) {
  Checker c{function, rule};
  c.require(q, "q");
  c.require(v, "v");
  c.require_rank(q, 4, "q", "(B, H, S, D)");
  c.require_rank(v, 4, "v", "(B, Hkv, Skv, Dv)");
}

AttentionShape check_attention_args(const char* function, const Tensor& q, const Tensor& k, const Tensor& v,
                                    const Tensor& out, const AttentionOptions& options, Tensor* lse,
                                    const TensorRule& rule) {
  Checker c{function, rule};
  c.require(q, "q");
  c.require(k, "k");
  c.require(v, "v");
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
  if (options.q_offset < 0 || options.q_offset > std::numeric_limits<int32_t>::max() - s.q_len) {
    c.fail(fmt::format("q_offset {} must be >= 0, with q_offset + q_len ({}) within the int range of mod indices",
                       options.q_offset, s.q_len));
  }

  c.require(out, "out");
  std::vector<int64_t> out_shape{s.batch, s.heads, s.q_len, s.value_dim};
  if (out.shape() != out_shape) {
    c.fail(fmt::format("out must have shape {} (B, H, S, Dv), got {}", shape_to_string(out_shape), out.describe()));
  }
  if (lse) {
    std::vector<int64_t> lse_shape{s.batch, s.heads, s.q_len};
    if (!lse->defined() && rule.device == Device::Cpu) *lse = Tensor::empty(DType::F32, lse_shape);
    c.require(*lse, "lse", rule.dtype ? std::optional<DType>(DType::F32) : std::nullopt);
    if (lse->shape() != lse_shape) {
      c.fail(fmt::format("lse must have shape {} (B, H, S), got {}", shape_to_string(lse_shape), lse->describe()));
    }
  }

  c.require_mod(options.score_mod, dsl::ModKind::Score, "score_mod");
  c.require_mod(options.mask_mod, dsl::ModKind::Mask, "mask_mod");
  return s;
}

KeyMask check_key_mask(const char* function, const Tensor& mask, const AttentionShape& shape, const TensorRule& rule) {
  KeyMask key_mask;
  if (!mask.defined()) return key_mask;
  Checker c{function, rule};
  if (mask.device() != rule.device) {
    c.fail(fmt::format("mask is on {}; {} runs on {} tensors ({})", device_name(mask.device()), function,
                       device_name(rule.device), mask.describe()));
  }
  if (!dtype_is_boolean(mask.dtype()) && !dtype_is_integer(mask.dtype())) {
    c.fail(fmt::format("mask must be bool, uint8, int32 or int64, got {}", mask.describe()));
  }
  const std::vector<int64_t> target{shape.batch, shape.heads, shape.q_len, shape.kv_len};
  if (mask.rank() < 1 || mask.rank() > 4) {
    c.fail(fmt::format("mask must have rank 1 to 4, broadcastable to {} (B, H, Sq, Skv), got {}",
                       shape_to_string(target), mask.describe()));
  }
  int64_t strides[4] = {0, 0, 0, 0};
  const size_t skip = 4 - mask.rank();
  for (size_t d = 0; d < mask.rank(); ++d) {
    const int64_t extent = mask.size(d), wanted = target[skip + d];
    if (extent != 1 && extent != wanted) {
      c.fail(fmt::format("mask {} does not broadcast to {} (B, H, Sq, Skv)", mask.describe(), shape_to_string(target)));
    }
    strides[skip + d] = extent == 1 ? 0 : mask.stride(d);
  }
  key_mask.data = mask.data();
  key_mask.dtype = mask.dtype();
  key_mask.batch_stride = strides[0];
  key_mask.head_stride = strides[1];
  key_mask.kv_stride = strides[3];
  return key_mask;
}

std::vector<int64_t> attention_out_shape(const Tensor& q, const Tensor& v) {
  return {q.shape()[0], q.shape()[1], q.shape()[2], v.shape()[3]};
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

AttentionShape check_kv_source_args(const char* function, const Tensor& q, const KvSource& kv,
                                    std::span<const KvBatchRow> rows, const Tensor& out,
                                    const AttentionOptions& options, Tensor* lse, const TensorRule& rule) {
  Checker c{function, rule};
  c.require(q, "q");
  c.require(kv.k, "k");
  c.require(kv.v, "v");
  c.require_rank(q, 4, "q", "(B, H, S, D)");
  const char* k_layout = kv.paged() ? "(pages, Hkv, page_size, D)" : "(N, Hkv, S, D)";
  const char* v_layout = kv.paged() ? "(pages, Hkv, page_size, Dv)" : "(N, Hkv, S, Dv)";
  c.require_rank(kv.k, 4, "k", k_layout);
  c.require_rank(kv.v, 4, "v", v_layout);
  const Tensor &k = kv.k, &v = kv.v;
  AttentionShape s;
  s.batch = q.size(0), s.heads = q.size(1), s.q_len = q.size(2), s.head_dim = q.size(3);
  s.kv_heads = k.size(1), s.value_dim = v.size(3);
  if (k.size(3) != s.head_dim) {
    c.fail(fmt::format("q and k head dims differ: q {}, k {}", shape_to_string(q.shape()), shape_to_string(k.shape())));
  }
  if (v.size(0) != k.size(0) || v.size(1) != k.size(1) || v.size(2) != k.size(2)) {
    c.fail(fmt::format("k and v differ in {}: k {}, v {}",
                       kv.paged() ? "pages, heads or page size" : "rows, heads or length", shape_to_string(k.shape()),
                       shape_to_string(v.shape())));
  }
  if (s.kv_heads == 0 ? s.heads != 0 : s.heads % s.kv_heads != 0) {
    c.fail(fmt::format("the {} query heads are not a multiple of the {} key/value heads", s.heads, s.kv_heads));
  }
  for (int64_t extent : {s.batch, s.heads, s.q_len, s.kv_heads}) {
    if (extent > std::numeric_limits<int32_t>::max()) {
      c.fail(fmt::format("sizes q {}, k {} exceed the int range of mod indices", shape_to_string(q.shape()),
                         shape_to_string(k.shape())));
    }
  }
  if (s.head_dim == 0) c.fail(fmt::format("the head dim of q {} is 0", shape_to_string(q.shape())));
  if (static_cast<int64_t>(rows.size()) != s.batch) {
    c.fail(fmt::format("{} KV rows were given for the {} batch rows of q {}", rows.size(), s.batch,
                       shape_to_string(q.shape())));
  }

  int64_t row_count = k.size(0), capacity = k.size(2);
  std::span<const int32_t> table;
  int64_t table_stride = 0;
  if (kv.paged()) {
    const Tensor& t = kv.block_table;
    if (t.dtype() != DType::I32 || t.rank() != 2) {
      c.fail(fmt::format("the block table must be an int32 (rows, max_pages) tensor, got {}", t.describe()));
    }
    if (t.device() != k.device()) {
      c.fail(fmt::format("the block table is on {} but k is on {}", device_name(t.device()), device_name(k.device())));
    }
    if (kv.page_size <= 0 || (kv.page_size & (kv.page_size - 1)) != 0 || kv.page_size != k.size(2)) {
      c.fail(fmt::format("the page size {} must be a power of two equal to the pools' page extent, k {}", kv.page_size,
                         shape_to_string(k.shape())));
    }
    if (t.size(1) > 1 && t.stride(1) != 1) {
      c.fail(fmt::format("the block table's rows must be contiguous, got {}", t.describe()));
    }
    row_count = t.size(0);
    capacity = t.size(1) * kv.page_size;
    if (!kv.host_block_table.empty()) {
      if (static_cast<int64_t>(kv.host_block_table.size()) != t.size(0) * t.size(1)) {
        c.fail(fmt::format("the host copy of the block table has {} entries, the table {}", kv.host_block_table.size(),
                           t.describe()));
      }
      table = kv.host_block_table;
      table_stride = t.size(1);
    } else if (t.device() == Device::Cpu) {
      table =
          std::span<const int32_t>(static_cast<const int32_t*>(t.data()),
                                   static_cast<size_t>(t.size(0) == 0 ? 0 : (t.size(0) - 1) * t.stride(0) + t.size(1)));
      table_stride = t.stride(0);
    }
  }
  for (size_t b = 0; b < rows.size(); ++b) {
    const KvBatchRow& r = rows[b];
    if (r.kv_row < 0 || r.kv_row >= row_count) {
      c.fail(fmt::format("batch row {} reads KV row {}, outside the {} {}", b, r.kv_row, row_count,
                         kv.paged() ? "rows of the block table" : "sequences of k"));
    }
    if (r.kv_len < 0 || r.kv_len > capacity) {
      c.fail(fmt::format("batch row {} has {} keys; {} must be between 0 and {} ({})", b, r.kv_len, "its length",
                         capacity, kv.paged() ? "the block table's pages times the page size" : "the length of k"));
    }
    if (r.q_offset < 0 || r.q_offset > std::numeric_limits<int32_t>::max() - s.q_len) {
      c.fail(
          fmt::format("batch row {}: q_offset {} must be >= 0, with q_offset + q_len ({}) within the int range of "
                      "mod indices",
                      b, r.q_offset, s.q_len));
    }
    s.kv_len = std::max<int64_t>(s.kv_len, r.kv_len);
    if (!table.empty()) {
      const int64_t pages = (int64_t{r.kv_len} + kv.page_size - 1) / kv.page_size;
      for (int64_t i = 0; i < pages; ++i) {
        const int32_t page = table[static_cast<size_t>(r.kv_row * table_stride + i)];
        if (page < 0 || page >= k.size(0)) {
          c.fail(fmt::format("block table row {} entry {} is page {}, outside the pool of {} pages (batch row {})",
                             r.kv_row, i, page, k.size(0), b));
        }
      }
    }
  }

  c.require(out, "out");
  std::vector<int64_t> out_shape{s.batch, s.heads, s.q_len, s.value_dim};
  if (out.shape() != out_shape) {
    c.fail(fmt::format("out must have shape {} (B, H, S, Dv), got {}", shape_to_string(out_shape), out.describe()));
  }
  if (lse) {
    std::vector<int64_t> lse_shape{s.batch, s.heads, s.q_len};
    if (!lse->defined() && rule.device == Device::Cpu) *lse = Tensor::empty(DType::F32, lse_shape);
    c.require(*lse, "lse", rule.dtype ? std::optional<DType>(DType::F32) : std::nullopt);
    if (lse->shape() != lse_shape) {
      c.fail(fmt::format("lse must have shape {} (B, H, S), got {}", shape_to_string(lse_shape), lse->describe()));
    }
  }
  c.require_mod(options.score_mod, dsl::ModKind::Score, "score_mod");
  c.require_mod(options.mask_mod, dsl::ModKind::Mask, "mask_mod");
  return s;
}

void check_mods_on_device(const char* function, Device device, const AttentionOptions& options) {
  for (const Mod* mod : {options.score_mod, options.mask_mod}) {
    if (mod == nullptr) continue;
    for (size_t i = 0; i < mod->def().params.size(); ++i) {
      const auto& argument = mod->argument(i);
      if (!argument) continue;
      if (const Tensor* tensor = std::get_if<Tensor>(&*argument); tensor != nullptr && tensor->device() != device) {
        throw RuntimeError(fmt::format(
            "{}: q is on {} but {}'s parameter '{}' is on {}; move every tensor to one device", function,
            device_name(device), mod->describe(), mod->def().params[i].name, device_name(tensor->device())));
      }
    }
  }
}

}  // namespace attnc
