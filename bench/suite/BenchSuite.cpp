#include "bench/suite/BenchSuite.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <memory>
#include <thread>

#include <fmt/format.h>

#include "bench/suite/BenchInputs.h"
#include "bench/suite/KeptPairs.h"
#include "bench/suite/Timing.h"
#include "dsl/Errors.h"
#include "runtime/core/Npy.h"
#include "runtime/core/RuntimeError.h"
#include "runtime/cpu/CpuModProgram.h"

namespace fs = std::filesystem;

namespace attnc::bench {

int effective_threads(const BenchConfig& config) {
  if (config.threads > 0) return config.threads;
  return int(std::max(1u, std::thread::hardware_concurrency()));
}

bool BenchReport::failed() const {
  return std::any_of(cases.begin(), cases.end(), [](const CaseResult& r) { return !r.error.empty(); });
}

namespace {

fs::path dump_directory(const BenchConfig& c, DType dtype, int seq, int head_dim) {
  return fs::path(c.dump) / fmt::format("{}-S{}-D{}", dtype_name(dtype), seq, head_dim);
}

// One case from set-up to result; see run_bench_suite for why runs are interleaved.
class CaseRun {
 public:
  // Builds the mods, counts the kept pairs and makes the warm-up call (which compiles the mods).
  CaseRun(BenchMod which, DType dtype, int seq, int head_dim, const Tensor& q, const Tensor& k, const Tensor& v,
          const BenchConfig& c)
      : q_(q), k_(k), v_(v), config_(c) {
    r_.mod = which;
    r_.dtype = dtype;
    r_.seq = seq;
    r_.head_dim = head_dim;
    r_.id = fmt::format("{}-{}-S{}-D{}", mod_name(which), dtype_name(dtype), seq, head_dim);
    try {
      mods_ = make_mods(which, c.batch, c.heads, seq);
      r_.total = int64_t(c.batch) * c.heads * int64_t(seq) * seq;
      r_.kept = kept_pairs_formula(which, mods_, c.batch, c.heads, seq);
      if (mods_.mask) {
        int64_t counted = kept_pairs_counted(*mods_.mask, c.batch, c.heads, seq);
        if (counted != r_.kept) {
          throw InternalError(
              fmt::format("{}: the mask keeps {} pairs but the closed form says {}", r_.id, counted, r_.kept));
        }
      }
      // kept is summed over every (b, h) already: 4 * B * H * D * (kept pairs per head).
      r_.flops = 4.0 * head_dim * double(r_.kept);
      r_.backend = mods_.mask    ? compile_cpu_program(*mods_.mask)->backend()
                   : mods_.score ? compile_cpu_program(*mods_.score)->backend()
                                 : "-";
      out_ = Tensor::empty(dtype, {c.batch, c.heads, seq, head_dim});
      Clock::time_point start = Clock::now();
      call();
      r_.first_ms = to_ms(Clock::now() - start);
    } catch (const RuntimeError& e) {
      r_.error = e.what();
    }
  }
  CaseRun(const CaseRun&) = delete;
  CaseRun& operator=(const CaseRun&) = delete;

  void time_once() {
    if (!r_.error.empty()) return;
    try {
      Clock::time_point start = Clock::now();
      call();
      r_.times_ms.push_back(to_ms(Clock::now() - start));
    } catch (const RuntimeError& e) {
      r_.error = e.what();
    }
  }

  // Medians, the finiteness check and the dump.
  CaseResult finish() {
    if (!r_.error.empty()) return r_;
    r_.median_ms = median(r_.times_ms);
    r_.min_ms = *std::min_element(r_.times_ms.begin(), r_.times_ms.end());
    r_.gflops = r_.flops / r_.median_ms * 1e-6;
    int64_t non_finite = 0;
    for (float x : out_.to_float_vector()) {
      if (!std::isfinite(x))
        ++non_finite;
      else
        r_.checksum += std::fabs(x);
    }
    if (non_finite > 0) r_.error = fmt::format("{} of {} outputs are not finite", non_finite, out_.numel());
    if (!config_.dump.empty()) {
      fs::path dir = dump_directory(config_, r_.dtype, r_.seq, r_.head_dim);
      fs::path path = dir / fmt::format("out-{}.npy", mod_name(r_.mod));
      write_npy(path.string(), out_);
      r_.output_path = path.string();
      if (mods_.document_ids) write_npy((dir / "document_ids.npy").string(), *mods_.document_ids);
    }
    return r_;
  }

 private:
  void call() {
    AttentionOptions options;
    options.score_mod = mods_.score ? &*mods_.score : nullptr;
    options.mask_mod = mods_.mask ? &*mods_.mask : nullptr;
    FlashOptions flash;
    flash.num_threads = config_.threads;
    r_.stats = {};
    flash.stats = &r_.stats;
    flash_attention(q_, k_, v_, out_, options, flash);
  }

  const Tensor &q_, &k_, &v_;
  const BenchConfig& config_;
  CaseMods mods_;
  Tensor out_;
  CaseResult r_;
};

Ceiling measure_ceiling(const BenchConfig& c, int seq, int head_dim) {
  CeilingShape shape;
  shape.seq = seq;
  shape.head_dim = head_dim;
  shape.products = c.batch * c.heads;
  shape.repeat = c.repeat;
  shape.threads = effective_threads(c);
  if (!have_blas()) return measure_ceiling_here(shape);  // says why there is none
  return c.ceiling_command.empty() ? measure_ceiling_here(shape) : measure_ceiling_in_child(c.ceiling_command, shape);
}

// The case's ratios to the references of its shape.
void set_ratios(CaseResult& r, const Ceiling& ceiling, const std::optional<FmaPeaks>& peaks) {
  if (!r.error.empty()) return;
  if (ceiling.measured && ceiling.gflops > 0) r.ceiling_ratio = r.gflops / ceiling.gflops;
  if (!peaks) return;
  // Every case against the fp32 peak; bf16 cases, whose products run on vdpbf16ps where the CPU
  // has it (FlashCpuOperands), also against the bf16 dot-product peak, the one that bounds them.
  if (std::optional<double> fp32 = peaks->peak("fp32")) r.fp32_peak_ratio = r.gflops / *fp32;
  if (r.dtype == DType::BF16) {
    if (std::optional<double> bf16 = peaks->peak("bf16")) r.bf16_peak_ratio = r.gflops / *bf16;
  }
}

}  // namespace

BenchReport run_bench_suite(const BenchConfig& c, const BenchObserver& observer) {
  BenchReport report;
  report.threads = effective_threads(c);
  if (c.references) {
    report.peaks = measure_fma_peaks(report.threads);
    if (observer.peaks_measured) observer.peaks_measured(*report.peaks);
  }
  for (int seq : c.seqs) {
    for (int head_dim : c.head_dims) {
      Ceiling ceiling;
      if (c.references) {
        ceiling = measure_ceiling(c, seq, head_dim);
      } else {
        ceiling.reason = "not measured";
      }
      report.ceilings[{seq, head_dim}] = ceiling;
      if (observer.shape_started) observer.shape_started(seq, head_dim, ceiling);
      for (DType dtype : c.dtypes) {
        std::vector<int64_t> shape = {c.batch, c.heads, seq, head_dim};
        Tensor q = make_input(dtype, shape, 1), k = make_input(dtype, shape, 2), v = make_input(dtype, shape, 3);
        if (!c.dump.empty()) {
          fs::path dir = dump_directory(c, dtype, seq, head_dim);
          std::error_code error;
          fs::create_directories(dir, error);
          if (error) throw RuntimeError(fmt::format("cannot create '{}': {}", dir.string(), error.message()));
          write_npy((dir / "q.npy").string(), q);
          write_npy((dir / "k.npy").string(), k);
          write_npy((dir / "v.npy").string(), v);
        }
        std::vector<std::unique_ptr<CaseRun>> runs;
        for (BenchMod which : c.mods)
          runs.push_back(std::make_unique<CaseRun>(which, dtype, seq, head_dim, q, k, v, c));
        for (int rep = 0; rep < c.repeat; ++rep) {
          for (auto& run : runs) run->time_once();
        }
        std::optional<double> none_ms;
        for (auto& run : runs) {
          CaseResult r = run->finish();
          if (r.mod == BenchMod::None && r.error.empty()) none_ms = r.median_ms;
          if (none_ms && r.error.empty()) r.vs_none = r.median_ms / *none_ms;
          set_ratios(r, ceiling, report.peaks);
          if (observer.case_finished) observer.case_finished(r);
          report.cases.push_back(std::move(r));
        }
      }
    }
  }
  return report;
}

}  // namespace attnc::bench
