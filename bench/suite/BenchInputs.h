#pragma once
// The suite's inputs: the same values on every run and every machine, so times compare and a
// dumped input can be fed to another library (bench/peers/).

#include <cstdint>
#include <vector>

#include "runtime/core/Tensor.h"

namespace attnc::bench {

// A tensor of `dtype` (fp32, fp16 or bf16) with values uniform in [-1, 1) from `seed`
// (splitmix64).
Tensor make_input(DType dtype, const std::vector<int64_t>& shape, uint64_t seed);

// [batch, seq] int32 ids of `documents` contiguous documents of (up to rounding) equal length:
// token i of seq is in document floor(documents * i / seq).
Tensor make_document_ids(int batch, int seq, int documents);

}  // namespace attnc::bench
