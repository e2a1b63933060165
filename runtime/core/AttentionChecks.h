#pragma once
// The argument checks every attention entry point shares (standard_attention, the CPU and CUDA
// kernels of every family), so all of them refuse the same inputs with the same messages. Messages
// start with the name of the entry point ("flash_attention: q must have rank 4 ..."), unless it is
// given as "" (a tool checking its user's inputs before it calls an entry point).

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "runtime/core/AttentionOptions.h"
#include "runtime/core/KvSource.h"
#include "runtime/core/Mod.h"
#include "runtime/core/Tensor.h"

namespace attnc {

// The sizes of one attention call, once checked.
struct AttentionShape {
  int64_t batch = 0, heads = 0, q_len = 0, head_dim = 0;  // q (B, H, S, D)
  int64_t kv_heads = 0, kv_len = 0, value_dim = 0;        // k (B, Hkv, Skv, D), v (B, Hkv, Skv, Dv)
};

// Where an entry point's tensors must live and what they may hold.
struct TensorRule {
  Device device = Device::Cpu;
  // One element type for q, k, v and out (a compiled CUDA kernel's); none: each may be fp32, fp16
  // or bf16 (the CPU kernels convert on load).
  std::optional<DType> dtype;
};

// Checks q, k, v, out and (when given) lse against each other and `rule`, and the mods' kinds. An
// undefined *lse is allocated as fp32 (B, H, S) on the CPU; on another device it must be given.
// `function` prefixes every message. RuntimeError on a mismatch: undefined tensors, a device or
// dtype against the rule, ranks, batch / head dim / length mismatches, H not a multiple of Hkv,
// sizes beyond int32 (mods index with int), D == 0, out or lse of the wrong shape, a mod of the
// wrong kind. Binding problems of the mods are reported where the mods are prepared.
AttentionShape check_attention_args(const char* function, const Tensor& q, const Tensor& k, const Tensor& v,
                                    const Tensor& out, const AttentionOptions& options, Tensor* lse,
                                    const TensorRule& rule = {});

// Linear attention's key mask (LinearAttentionOptions::mask) resolved to (b, h, kv) strides in
// elements, 0 along broadcast axes, at query row 0. An undefined mask keeps every key.
struct KeyMask {
  const void* data = nullptr;
  DType dtype = DType::Bool;
  int64_t batch_stride = 0, head_stride = 0, kv_stride = 0;

  bool defined() const { return data != nullptr; }
  // Host memory only.
  bool keeps(int64_t b, int64_t h, int64_t kv) const {
    return data == nullptr || load_as_int(data, dtype, b * batch_stride + h * head_stride + kv * kv_stride) != 0;
  }
};

// Checks a linear attention mask against the call's shape (`function` prefixes the messages):
// bool, uint8, int32 or int64, on rule.device, rank 1 to 4, broadcastable to (B, H, Sq, Skv) from
// the right (every extent 1 or the call's).
KeyMask check_key_mask(const char* function, const Tensor& mask, const AttentionShape& shape,
                       const TensorRule& rule = {});

// The checks of q and v alone, for the overloads that allocate `out` from their shapes.
void check_attention_inputs(const char* function, const Tensor& q, const Tensor& v, const TensorRule& rule = {});

// The shape of out, (B, H, S, Dv), for q and v that passed check_attention_inputs.
std::vector<int64_t> attention_out_shape(const Tensor& q, const Tensor& v);

// The message for an out-of-range tensor index met while evaluating `mod` with bounds checking:
// "mod 'm': index 3 is out of range for dimension 0 of parameter 't' (extent 3) at (b=0, h=0,
// q_idx=0, kv_idx=3)", prefixed with `function`.
std::string out_of_range_message(const char* function, const Mod& mod, uint32_t param, int32_t dim, int64_t index,
                                 int64_t extent, int32_t b, int32_t h, int32_t q_idx, int32_t kv_idx);

// The checks of a call whose keys and values come from a KvSource (runtime/core/KvSource.h): q
// (B, H, q_len, D) and out / lse as in check_attention_args; k and v of rank 4 with equal first three
// extents, k's head dim D; H a multiple of Hkv; one row per batch row; for each row a kv_row inside
// the source (a sequence of k, or a row of the block table), 0 <= kv_len <= its capacity (S, or
// max_pages x page_size), q_offset >= 0 with q_offset + q_len within int32, and, paged, an int32
// rank-2 block table, a page size that is a power of two, and every page the row reads (the first
// ceil(kv_len / page_size) entries of its row, read from host_block_table or a CPU block_table)
// inside the pool. options.q_offset is not used: the rows carry the positions. The returned shape has
// kv_len = the longest row's.
AttentionShape check_kv_source_args(const char* function, const Tensor& q, const KvSource& kv,
                                    std::span<const KvBatchRow> rows, const Tensor& out,
                                    const AttentionOptions& options, Tensor* lse, const TensorRule& rule = {});

// Every tensor bound to the options' mods must be on `device` (where q is): RuntimeError
// "{function}: q is on cuda but mod 'document''s parameter 'ids' is on cpu; move every tensor to one
// device". Unbound parameters are left to the kernels.
void check_mods_on_device(const char* function, Device device, const AttentionOptions& options);

}  // namespace attnc
