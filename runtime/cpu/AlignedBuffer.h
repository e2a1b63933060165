#pragma once
// Scratch memory aligned to a cache line, so vector loads never split lines needlessly, for the CPU
// kernels' packed operands and per-worker tiles.

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <string>

#include "runtime/core/RuntimeError.h"

namespace attnc::cpu {

template <typename T>
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  // `count` elements, uninitialised; RuntimeError when the memory is not there.
  explicit AlignedBuffer(size_t count) {
    const size_t bytes = std::max<size_t>(64, (count * sizeof(T) + 63) / 64 * 64);
    data_.reset(static_cast<T*>(std::aligned_alloc(64, bytes)));
    if (!data_) throw RuntimeError("out of memory for " + std::to_string(bytes) + " bytes of kernel scratch");
  }
  T* get() const { return data_.get(); }

 private:
  struct Free {
    void operator()(T* p) const { std::free(p); }
  };
  std::unique_ptr<T, Free> data_;
};

}  // namespace attnc::cpu
