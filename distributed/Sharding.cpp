#include "distributed/Sharding.h"

#include <algorithm>
#include <cstring>
#include <memory>

#include <fmt/format.h>

#include "runtime/core/RuntimeError.h"

namespace attnc::distributed {

const char* shard_layout_name(ShardLayout layout) { return layout == ShardLayout::ZigZag ? "zigzag" : "contiguous"; }

Sharding::Sharding(int64_t length, int ranks, ShardLayout layout) : length_(length), layout_(layout) {
  if (ranks < 1) throw RuntimeError(fmt::format("sharding: the ring needs at least one rank, not {}", ranks));
  if (length < 0) throw RuntimeError(fmt::format("sharding: a sequence cannot have length {}", length));
  const int chunks = layout == ShardLayout::ZigZag ? 2 * ranks : ranks;
  auto bound = [&](int i) { return length * i / chunks; };
  segments_.resize(static_cast<size_t>(ranks));
  for (int r = 0; r < ranks; ++r) {
    std::vector<int> owned{r};
    if (layout == ShardLayout::ZigZag) owned.push_back(chunks - 1 - r);
    int64_t local = 0;
    for (int chunk : owned) {
      const Segment segment{bound(chunk), local, bound(chunk + 1) - bound(chunk)};
      if (segment.length == 0) continue;
      segments_[static_cast<size_t>(r)].push_back(segment);
      local += segment.length;
    }
  }
}

const std::vector<Sharding::Segment>& Sharding::segments(int rank) const {
  if (rank < 0 || rank >= ranks()) {
    throw RuntimeError(fmt::format("sharding: rank {} is not in a ring of {}", rank, ranks()));
  }
  return segments_[static_cast<size_t>(rank)];
}

int64_t Sharding::shard_length(int rank) const {
  int64_t total = 0;
  for (const Segment& segment : segments(rank)) total += segment.length;
  return total;
}

int64_t Sharding::max_shard_length() const {
  int64_t most = 0;
  for (int r = 0; r < ranks(); ++r) most = std::max(most, shard_length(r));
  return most;
}

Tensor narrow(const Tensor& t, size_t axis, int64_t first, int64_t count) {
  if (axis >= t.rank() || first < 0 || count < 0 || first + count > t.size(axis)) {
    throw RuntimeError(
        fmt::format("narrow: rows [{}, {}) along axis {} are not in {}", first, first + count, axis, t.describe()));
  }
  std::vector<int64_t> shape = t.shape();
  shape[axis] = count;
  const size_t element = dtype_size(t.dtype());
  auto* data = static_cast<char*>(t.data()) + first * t.stride(axis) * static_cast<int64_t>(element);
  std::shared_ptr<Tensor> keep = std::make_shared<Tensor>(t);
  return Tensor::from_storage(std::shared_ptr<void>(keep, data), data, t.dtype(), std::move(shape), t.strides(),
                              t.device());
}

// Rows along the last axis are copied as bytes when both are unit-stride there with one dtype,
// converted element by element through float otherwise.
void copy_into(const Tensor& from, const Tensor& to) {
  if (from.shape() != to.shape()) {
    throw RuntimeError(fmt::format("copy: shapes differ: {} and {}", from.describe(), to.describe()));
  }
  const bool same = from.dtype() == to.dtype();
  if (!same && !(dtype_is_float(from.dtype()) && dtype_is_float(to.dtype()))) {
    throw RuntimeError(fmt::format("copy: cannot convert {} to {}", from.describe(), to.describe()));
  }
  if (from.numel() == 0) return;
  const size_t rank = from.rank();
  const int64_t row = rank == 0 ? 1 : from.size(rank - 1);
  const bool bytes = same && (rank == 0 || (from.stride(rank - 1) == 1 && to.stride(rank - 1) == 1));
  const auto element = static_cast<int64_t>(dtype_size(from.dtype()));
  std::vector<int64_t> index(rank, 0);
  for (int64_t i = 0, rows = from.numel() / row; i < rows; ++i) {
    if (bytes) {
      std::memcpy(static_cast<char*>(to.data()) + to.offset(index) * element,
                  static_cast<const char*>(from.data()) + from.offset(index) * element,
                  static_cast<size_t>(row * element));
    } else {
      for (int64_t j = 0; j < row; ++j) {
        if (rank > 0) index[rank - 1] = j;
        to.set_float(index, from.get_float(index));
      }
      if (rank > 0) index[rank - 1] = 0;
    }
    for (size_t d = rank == 0 ? 0 : rank - 1; d-- > 0;) {  // the next row: count up the leading axes
      if (++index[d] < from.size(d)) break;
      index[d] = 0;
    }
  }
}

Tensor contiguous_as(const Tensor& t, DType dtype) {
  if (t.dtype() == dtype) return t.contiguous_copy();
  Tensor out = Tensor::empty(dtype, t.shape());
  copy_into(t, out);
  return out;
}

Tensor Sharding::extract(const Tensor& full, int rank, size_t axis) const {
  if (axis >= full.rank() || full.size(axis) != length_) {
    throw RuntimeError(
        fmt::format("sharding: expected {} positions along axis {} of {}", length_, axis, full.describe()));
  }
  std::vector<int64_t> shape = full.shape();
  shape[axis] = shard_length(rank);
  Tensor shard = Tensor::empty(full.dtype(), shape);
  for (const Segment& segment : segments(rank)) {
    copy_into(narrow(full, axis, segment.global_first, segment.length),
              narrow(shard, axis, segment.local_first, segment.length));
  }
  return shard;
}

void Sharding::place(const Tensor& shard, int rank, Tensor& full, size_t axis) const {
  if (axis >= full.rank() || full.size(axis) != length_ || shard.rank() != full.rank() ||
      shard.size(axis) != shard_length(rank)) {
    throw RuntimeError(fmt::format("sharding: rank {}'s shard {} does not fit {} along axis {}", rank, shard.describe(),
                                   full.describe(), axis));
  }
  for (const Segment& segment : segments(rank)) {
    copy_into(narrow(shard, axis, segment.local_first, segment.length),
              narrow(full, axis, segment.global_first, segment.length));
  }
}

}  // namespace attnc::distributed
