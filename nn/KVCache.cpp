#include "nn/KVCache.h"

#include <memory>
#include <vector>

#include <fmt/format.h>

#include "distributed/Sharding.h"
#include "runtime/core/RuntimeError.h"

namespace attnc::nn {

namespace {

// Positions [first, first + count) of a (B, Hkv, capacity, D) buffer, as a view.
Tensor positions(const Tensor& buffer, int64_t first, int64_t count) {
  std::shared_ptr<Tensor> keep = std::make_shared<Tensor>(buffer);
  float* data = static_cast<float*>(buffer.data()) + first * buffer.stride(2);
  return Tensor::from_storage(std::shared_ptr<void>(keep, data), data, DType::F32,
                              {buffer.size(0), buffer.size(1), count, buffer.size(3)}, buffer.strides());
}

}  // namespace

ContiguousKVCache::ContiguousKVCache(int64_t batch, int64_t kv_heads, int64_t capacity, int64_t head_dim,
                                     int64_t value_dim) {
  if (batch < 0 || kv_heads < 0 || capacity < 0 || head_dim < 0 || value_dim < 0) {
    throw RuntimeError(fmt::format("KV cache: sizes must be non-negative, not B={} Hkv={} capacity={} D={} Dv={}",
                                   batch, kv_heads, capacity, head_dim, value_dim));
  }
  keys_ = Tensor::zeros(DType::F32, {batch, kv_heads, capacity, head_dim});
  values_ = Tensor::zeros(DType::F32, {batch, kv_heads, capacity, value_dim});
}

void ContiguousKVCache::append(const Tensor& k, const Tensor& v) {
  auto fits = [&](const Tensor& t, const Tensor& buffer) {
    return t.defined() && t.rank() == 4 && t.device() == Device::Cpu && dtype_is_float(t.dtype()) &&
           t.size(0) == buffer.size(0) && t.size(1) == buffer.size(1) && t.size(3) == buffer.size(3);
  };
  if (!fits(k, keys_) || !fits(v, values_) || k.size(2) != v.size(2)) {
    throw RuntimeError(
        fmt::format("KV cache: k and v must be float CPU tensors {} and {} with T positions, got {} and {}",
                    shape_to_string(std::vector<int64_t>{keys_.size(0), keys_.size(1), -1, keys_.size(3)}),
                    shape_to_string(std::vector<int64_t>{values_.size(0), values_.size(1), -1, values_.size(3)}),
                    k.defined() ? k.describe() : "undefined", v.defined() ? v.describe() : "undefined"));
  }
  const int64_t count = k.size(2);
  if (length_ + count > capacity()) {
    throw RuntimeError(
        fmt::format("KV cache: {} more positions do not fit: {} of {} are used", count, length_, capacity()));
  }
  distributed::copy_into(k, positions(keys_, length_, count));
  distributed::copy_into(v, positions(values_, length_, count));
  length_ += count;
}

Tensor ContiguousKVCache::keys() const { return positions(keys_, 0, length_); }

Tensor ContiguousKVCache::values() const { return positions(values_, 0, length_); }

}  // namespace attnc::nn
