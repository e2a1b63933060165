#pragma once
// Writing new tokens into a KV cache, on the CPU or the GPU: the decode family's append
// (runtime/families/decode/kv_append.cuh on CUDA), over the descriptions of runtime/core/KvSource.h
// and runtime/core/KvCache.h. The caches' bookkeeping (positions, capacity, pages) is theirs; this
// writes what a plan says and checks that it stays inside the buffers.

#include <span>
#include <string>

#include "runtime/cache/KernelCache.h"
#include "runtime/cache/KernelKey.h"
#include "runtime/core/KvCache.h"
#include "runtime/core/KvSource.h"
#include "runtime/cuda/Nvrtc.h"

namespace attnc::decode {

inline constexpr const char* kAppendFamily = "kv_append";
inline constexpr const char* kAppendEntry = "attnc_kv_append";

// Row n of k_new (N, Hkv, T, D) and v_new (N, Hkv, T, Dv) writes its first rows[n].count tokens at
// positions rows[n].start, ... of KV row rows[n].kv_row of `dst` (through the block table when
// paged). On CPU tensors the rows are copied; on CUDA tensors the kv_append kernel runs (compiled once
// per architecture through cuda::default_kernel_cache()) and the call waits for it. RuntimeError,
// before anything is written, for new tokens of another dtype, device, head count or head dim than
// the cache, a row count other than N, counts outside [0, T], positions outside a sequence's
// capacity (its length in the contiguous layout, its pages' tokens when paged), pages outside the
// pool, and on CUDA rows that are not 16-byte aligned with 16-byte multiple strides.
void append_kv(const KvSource& dst, const Tensor& k_new, const Tensor& v_new, std::span<const KvAppendRow> rows);

// The append kernel's cache key for an architecture (fields: the CUDA fields only) and its program.
KernelKey kv_append_key(const std::string& arch);
cuda::KernelProgram kv_append_program();

}  // namespace attnc::decode
