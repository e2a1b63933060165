#pragma once
// The key / value cache of autoregressive decoding, as MultiHeadAttention (nn/MultiHeadAttention.h)
// uses it: append a call's new keys and values, read the whole cached sequence back.
//
// KVCache is the small interface the module needs; ContiguousKVCache the minimal implementation it
// has today: one preallocated (B, Hkv, capacity, D) buffer each for keys and values, filled in
// order. The runtime's own caches (contiguous and paged, runtime/core/KVCache*) are being written
// on another branch; when they land, MultiHeadAttention takes them through this interface (the paged
// one with the paged kernel) and ContiguousKVCache goes (docs/nn.md).

#include <cstdint>

#include "runtime/core/Tensor.h"

namespace attnc::nn {

class KVCache {
 public:
  virtual ~KVCache() = default;
  // Positions cached so far: the next appended token is at this position.
  virtual int64_t length() const = 0;
  // Appends k (B, Hkv, T, D) and v (B, Hkv, T, Dv) after the cached positions. RuntimeError when
  // they do not fit (shape, capacity).
  virtual void append(const Tensor& k, const Tensor& v) = 0;
  // The cached keys (B, Hkv, length, D) and values (B, Hkv, length, Dv): views, valid until the next
  // append or reset.
  virtual Tensor keys() const = 0;
  virtual Tensor values() const = 0;
  // Forgets every position.
  virtual void reset() = 0;
};

class ContiguousKVCache final : public KVCache {
 public:
  // fp32 CPU buffers of `capacity` positions. RuntimeError for negative sizes.
  ContiguousKVCache(int64_t batch, int64_t kv_heads, int64_t capacity, int64_t head_dim, int64_t value_dim);

  int64_t capacity() const { return keys_.size(2); }
  int64_t length() const override { return length_; }
  void append(const Tensor& k, const Tensor& v) override;
  Tensor keys() const override;
  Tensor values() const override;
  void reset() override { length_ = 0; }

 private:
  Tensor keys_, values_;  // (B, Hkv, capacity, D) and (B, Hkv, capacity, Dv)
  int64_t length_ = 0;
};

}  // namespace attnc::nn
