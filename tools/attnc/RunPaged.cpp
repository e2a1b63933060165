#include "tools/attnc/RunPaged.h"

#include <algorithm>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "runtime/Decoding.h"
#include "runtime/core/RuntimeError.h"
#include "runtime/families/decode/DecodeCpu.h"
#include "runtime/families/decode/DecodeCuda.h"

namespace attnc::cli {

namespace {

// The pages of the first sequences, enough to see that the table is scattered.
std::string table_summary(const PagedKVCache& cache, int64_t sequences) {
  constexpr int64_t kSequencesShown = 4, kPagesShown = 12;
  std::string text;
  for (int32_t s = 0; s < std::min(sequences, kSequencesShown); ++s) {
    const std::span<const int32_t> pages = cache.pages(s);
    const size_t shown = std::min<size_t>(pages.size(), kPagesShown);
    text += fmt::format("  sequence {}: pages {}{}\n", s, fmt::join(pages.subspan(0, shown), " "),
                        pages.size() > shown ? " ..." : "");
  }
  if (sequences > kSequencesShown) text += fmt::format("  ({} more sequences)\n", sequences - kSequencesShown);
  return text;
}

}  // namespace

std::vector<int32_t> random_page_order(int64_t num_pages, uint32_t seed) {
  std::vector<int32_t> order(static_cast<size_t>(num_pages));
  std::iota(order.begin(), order.end(), 0);
  std::mt19937 rng(seed);
  // Not std::shuffle: its use of the generator differs between standard libraries. The modulo's
  // bias (below 2^-22 for pools under 1024 pages) does not matter for scattering pages.
  for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng() % i]);
  return order;
}

void run_paged(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out, const AttentionOptions& options,
               Tensor* lse, int page_size, uint32_t seed, std::FILE* log) {
  const int64_t batch = k.size(0), kv_len = k.size(2);
  PagedKVCacheConfig config;
  config.page_size = page_size;
  config.kv_heads = k.size(1);
  config.head_dim = k.size(3);
  config.value_dim = v.size(3);
  config.dtype = k.dtype();
  config.device = q.device();
  config.max_sequences = batch;
  config.max_pages_per_sequence = std::max<int64_t>(1, (kv_len + page_size - 1) / page_size);
  config.num_pages = batch * config.max_pages_per_sequence;
  PagedKVCache cache = init_paged_kv_cache(config);
  cache.reorder_free_pages(random_page_order(config.num_pages, seed));
  std::vector<int32_t> sequences(static_cast<size_t>(batch));
  std::iota(sequences.begin(), sequences.end(), 0);
  for (int32_t s : sequences) allocate_blocks(cache, s, kv_len);
  append_kv(cache, 0, sequences, k, v);

  const int64_t pages = (kv_len + page_size - 1) / page_size;
  fmt::print(log,
             "attnc run: paged KV cache of {} sequence{} x {} tokens in {}-token pages ({} per sequence{}), "
             "handed out in a random order from seed {} (--seed):\n{}",
             batch, batch == 1 ? "" : "s", kv_len, page_size, pages,
             kv_len % page_size != 0 ? fmt::format(", the last holding {}", kv_len % page_size) : "", seed,
             table_summary(cache, batch));

  // Every row reads its own sequence at the call's query position, as the contiguous path does
  // (paged_attention would place the queries at the end of the sequence instead).
  std::vector<KvBatchRow> rows;
  for (int32_t s : sequences) rows.push_back({s, cache.length(0, s), options.q_offset});
  AttentionOptions row_options = options;
  row_options.q_offset = 0;  // the rows carry it
  if (q.device() == Device::Cpu) {
    decode::decode_attention(q, cache.source(0), rows, out, row_options, lse);
    return;
  }
  if (!decode::decode_cuda_supports(k.dtype(), k.size(3), v.size(3))) {
    throw RuntimeError(
        fmt::format("--paged on cuda runs the decode kernel, which takes fp16 or bf16 caches with the "
                    "head dims it fits on this GPU; got k {}, v {}",
                    k.describe(), v.describe()));
  }
  decode::decode_attention_cuda(q, cache.source(0), rows, out, row_options, lse);
}

}  // namespace attnc::cli
