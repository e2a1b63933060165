#pragma once
// How ring attention cuts a sequence among its ranks (docs/distributed.md).
//
// ZigZag (the default): the sequence is cut into 2P chunks, chunk i holding positions
// [floor(i S / 2P), floor((i + 1) S / 2P)), and rank r holds chunks r and 2P - 1 - r, in that
// order. Under a causal mask the work of a query is proportional to its position, so pairing an
// early chunk with a late one gives every rank the same work: (r + 1) + (2P - r) = 2P + 1 chunk
// pairs of the 2P (2P + 1) / 2 that are not EMPTY. Contiguous: rank r holds [floor(r S / P),
// floor((r + 1) S / P)), one chunk; balanced without a mask, not under a causal one.
// Lengths that do not divide evenly give chunks (and shards) that differ by one position.
//
// A rank's shard is its segments concatenated along the sequence axis: local row 0 is the first
// position of its first segment.

#include <cstdint>
#include <vector>

#include "runtime/core/Tensor.h"

namespace attnc::distributed {

enum class ShardLayout { ZigZag, Contiguous };

const char* shard_layout_name(ShardLayout layout);  // "zigzag", "contiguous"

class Sharding {
 public:
  // A run of consecutive positions a rank holds: global [global_first, global_first + length),
  // local rows [local_first, local_first + length) of its shard.
  struct Segment {
    int64_t global_first = 0, local_first = 0, length = 0;
  };

  // RuntimeError for ranks < 1 or length < 0.
  Sharding(int64_t length, int ranks, ShardLayout layout = ShardLayout::ZigZag);

  int64_t length() const { return length_; }
  int ranks() const { return static_cast<int>(segments_.size()); }
  ShardLayout layout() const { return layout_; }

  // The segments of `rank`, in shard order; empty segments are left out.
  const std::vector<Segment>& segments(int rank) const;
  int64_t shard_length(int rank) const;
  int64_t max_shard_length() const;

  // A contiguous copy of `rank`'s rows of `full` along `axis` (full's other axes as they are).
  Tensor extract(const Tensor& full, int rank, size_t axis) const;
  // Writes `shard` (rank's rows, along `axis`) into their places in `full`, converting the dtype
  // as Tensor::set_float does. RuntimeError when the shapes do not fit.
  void place(const Tensor& shard, int rank, Tensor& full, size_t axis) const;

 private:
  int64_t length_ = 0;
  ShardLayout layout_;
  std::vector<std::vector<Segment>> segments_;  // per rank
};

// The view of rows [first, first + count) of `t` along `axis` (no copy; shares t's storage).
Tensor narrow(const Tensor& t, size_t axis, int64_t first, int64_t count);

// Copies every element of `from` into `to` (same shape, CPU tensors, any strides): bytes between
// equal dtypes, converted through float between float dtypes; RuntimeError otherwise.
void copy_into(const Tensor& from, const Tensor& to);

// A contiguous copy of `t` converted to `dtype` (its own dtype, or another float dtype).
Tensor contiguous_as(const Tensor& t, DType dtype);

}  // namespace attnc::distributed
