#include "tools/attnc/RunLinear.h"

#include "distributed/Sharding.h"
#include "runtime/Attention.h"

namespace attnc::cli {

LinearPlacement place_linear_queries(bool causal, int32_t q_offset, int64_t kv_len) {
  if (!causal || q_offset == 0) return {0, causal};
  // Query 0 at q_offset >= kv_len - 1 already sees every key, and so does every later one.
  if (q_offset >= kv_len - 1) return {0, false};
  return {q_offset, true};
}

Tensor pad_query_rows(const Tensor& q, int64_t rows) {
  if (rows == 0) return q;
  Tensor padded = Tensor::zeros(q.dtype(), {q.size(0), q.size(1), rows + q.size(2), q.size(3)});
  distributed::copy_into(q, distributed::narrow(padded, 2, rows, q.size(2)));
  return padded;
}

void drop_query_rows(const Tensor& padded, int64_t rows, const Tensor& out) {
  distributed::copy_into(distributed::narrow(padded, 2, rows, out.size(2)), out);
}

void run_linear_cpu(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out, const Tensor& mask, bool causal,
                    int32_t q_offset) {
  const LinearPlacement placement = place_linear_queries(causal, q_offset, k.rank() == 4 ? k.size(2) : 0);
  LinearAttentionOptions options;
  options.causal = placement.causal;
  options.mask = mask;
  if (placement.pad_rows == 0) {
    linear_attention(q, k, v, out, options);
    return;
  }
  const Tensor padded_q = pad_query_rows(q, placement.pad_rows);
  Tensor padded_out = Tensor::empty(out.dtype(), {out.size(0), out.size(1), padded_q.size(2), out.size(3)});
  linear_attention(padded_q, k, v, padded_out, options);
  drop_query_rows(padded_out, placement.pad_rows, out);
}

}  // namespace attnc::cli
