// attnc bench: times the CPU flash kernel over a suite of shapes, dtypes and mods against the
// sgemm ceiling and the FMA peaks measured in the same run. The suite is bench/suite/ (the
// attnc_bench library); this command parses options, checks where results go, and prints.
// `attnc __sgemm-ceiling` is the child process the ceiling is measured in.

#include <climits>
#include <cstdio>
#include <cstdlib>

#include <fmt/format.h>

#include "bench/suite/BenchJson.h"
#include "bench/suite/BenchSuite.h"
#include "runtime/core/AtomicFile.h"
#include "runtime/cpu/CpuModProgram.h"
#include "tools/attnc/CommandLine.h"

namespace attnc::cli {

namespace {

using bench::BenchConfig;
using bench::BenchMod;

const char* const kDescription = R"(Times the CPU flash kernel over a suite of cases and prints, per case, the
median time over N runs (after one warm-up run, whose time includes compiling
the mods), GFLOP/s, and the ratios to references measured in the same run. The
runs of one shape's mods are interleaved (run 1 of each mod, then run 2, ...),
so a change of load on a shared machine weighs on every mod alike.

The full suite (the default): B=1, H=8, S in {1024, 4096, 16384}, D in {64, 128},
fp32 and bf16, and the mods
  none            no mod
  causal          the causal mask
  alibi-causal    ALiBi score mod (H slopes) with the causal mask
  sliding-window  causal sliding window of 1024 keys
  document        document mask, 8 equal documents
  softcap         50 * tanh(score / 50)
A dense S=16384, D=128 call is 1.1 TFLOP (S=4096: 69 GFLOP); select a subset
on small machines.

GFLOP/s count only unmasked work: 4 * D * kept, where kept is the number of
(b, h, q, kv) the mask keeps, counted from the compiled mask and checked
against a closed form. The references:
  ceil%     over the sgemm ceiling: OpenBLAS cblas_sgemm at the shapes of the
            kernel's two products, (S x D) x (D x S) and (S x S) x (S x D),
            B * H times each, with the same threads, in a child process
            started without OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE, so that
            OpenBLAS runs the machine's best kernel (its name is printed)
  fp32pk%   over the fp32 FMA peak of the cores: register-only vfmadd231ps
            loops (AVX-512 and AVX2, the better) on every bench thread
  bf16pk%   bf16 cases: over the bf16 dot-product peak (vdpbf16ps, AVX512-BF16)
bf16 and fp16 cases use the fp32 ceiling and peak, since the kernel computes in
fp32. Without OpenBLAS at build time no ceiling is printed; a loop the CPU
lacks is reported as unavailable. "x none" is the time over the same shape's
case without a mod, when that case ran. Every output is checked to be finite.
)";

int parse_positive(const std::string& text, const std::string& option) {
  std::optional<int> value = parse_int(text, 1, INT_MAX);
  if (!value) throw UsageError(fmt::format("{} takes a positive integer, got '{}'", option, text));
  return *value;
}

BenchConfig parse_options(Args args, std::string& json_path, bool& help) {
  BenchConfig c;
  std::string seqs, head_dims, dtypes, mods, repeat, threads, batch, heads;
  bool no_ceiling = false;
  CommandLine command_line("attnc bench",
                           R"(attnc bench [--seq LIST] [--head-dim LIST] [--dtype LIST] [--mod LIST]
                   [--repeat N] [--threads N] [--batch B] [--heads H]
                   [--json OUT.json] [--dump DIR] [--no-ceiling])",
                           kDescription,
                           R"(Exit status: 0 on success, 2 on usage errors, 3 when a case fails (an error, or
a non-finite output) or an output cannot be written.
)");
  CLI::App& app = command_line.app();
  app.add_option("--seq", seqs, "sequence lengths, comma-separated (q_len = kv_len)")->type_name("LIST");
  app.add_option("--head-dim", head_dims, "head dimensions (D = D_v)")->type_name("LIST");
  app.add_option("--dtype", dtypes, "fp32, bf16, fp16")->type_name("LIST");
  app.add_option("--mod", mods, "mod names from the list above, or 'all'")->type_name("LIST");
  app.add_option("--repeat", repeat, "timed runs per case (default 3); the median is reported")->type_name("N");
  app.add_option("--threads", threads, "worker threads for the kernel, the BLAS and the peaks\n(default: all)")
      ->type_name("N");
  app.add_option("--batch", batch, "batch size (default 1)")->type_name("B");
  app.add_option("--heads", heads, "heads (default 8)")->type_name("H");
  app.add_option("--json", json_path, "also write every case, its times and the references as\nJSON")
      ->type_name("FILE");
  app.add_option("--dump", c.dump,
                 "write inputs (q, k, v .npy, bf16 as raw '<u2') and each\ncase's output under DIR, for comparing "
                 "with other\nlibraries (and `attnc run --dtype bf16`)")
      ->type_name("DIR");
  app.add_flag("--no-ceiling", no_ceiling, "skip the references: the sgemm ceiling and the FMA\npeaks");
  help = !command_line.parse(args);
  if (help) return c;

  if (!seqs.empty()) {
    c.seqs.clear();
    for (const std::string& item : split_list(seqs, "--seq")) c.seqs.push_back(parse_positive(item, "--seq"));
  }
  if (!head_dims.empty()) {
    c.head_dims.clear();
    for (const std::string& item : split_list(head_dims, "--head-dim")) {
      c.head_dims.push_back(parse_positive(item, "--head-dim"));
    }
  }
  if (!dtypes.empty()) {
    c.dtypes.clear();
    for (const std::string& item : split_list(dtypes, "--dtype")) {
      if (item == "fp32")
        c.dtypes.push_back(DType::F32);
      else if (item == "bf16")
        c.dtypes.push_back(DType::BF16);
      else if (item == "fp16")
        c.dtypes.push_back(DType::F16);
      else
        throw UsageError("--dtype takes fp32, bf16 or fp16, got '" + item + "'");
    }
  }
  if (!mods.empty()) {
    c.mods.clear();
    for (const std::string& item : split_list(mods, "--mod")) {
      if (item == "all") {
        c.mods.assign(std::begin(bench::kAllMods), std::end(bench::kAllMods));
      } else if (std::optional<BenchMod> mod = bench::parse_mod_name(item)) {
        c.mods.push_back(*mod);
      } else {
        throw UsageError("unknown mod '" + item + "'; the suite has " + bench::mod_name_list());
      }
    }
  }
  if (!repeat.empty()) c.repeat = parse_positive(repeat, "--repeat");
  if (!threads.empty()) c.threads = parse_positive(threads, "--threads");
  if (!batch.empty()) c.batch = parse_positive(batch, "--batch");
  if (!heads.empty()) c.heads = parse_positive(heads, "--heads");
  c.references = !no_ceiling;
  // The ceiling's child process is this very program (bench/suite/Ceiling.h).
  c.ceiling_command = {"/proc/self/exe", "__sgemm-ceiling"};
  return c;
}

void print_peaks(const bench::FmaPeaks& peaks) {
  fmt::print("FMA peak on {} thread{}:", peaks.threads, peaks.threads == 1 ? "" : "s");
  for (const bench::FmaLoop& loop : peaks.loops) {
    if (loop.available) {
      fmt::print("  {} {:.1f} GFLOP/s ({})", loop.name, loop.gflops, loop.instruction);
    } else {
      fmt::print("  {} unavailable ({})", loop.name, loop.unavailable_reason);
    }
    if (&loop != &peaks.loops.back()) fmt::print(";");
  }
  fmt::print("\n");
}

void print_shape(int seq, int head_dim, const bench::Ceiling& ceiling, bool references) {
  if (ceiling.measured) {
    fmt::print(
        "\nS={} D={}: sgemm ceiling {:.1f} GFLOP/s, OpenBLAS core {} (Q.K^T {:.1f} GFLOP/s in {:.2f} ms, P.V {:.1f} "
        "GFLOP/s in {:.2f} ms, per head)\n",
        seq, head_dim, ceiling.gflops, ceiling.core, ceiling.qk_gflops, ceiling.qk_ms, ceiling.pv_gflops,
        ceiling.pv_ms);
  } else if (references) {
    fmt::print("\nS={} D={}: no ceiling: {}\n", seq, head_dim, ceiling.reason);
  } else {
    fmt::print("\nS={} D={}: no ceiling\n", seq, head_dim);
  }
  fmt::print("{:<15} {:<5} {:>6} {:>4} {:>11} {:>10} {:>7} {:>9} {:>7} {:>8} {:>8} {:>7}  {}\n", "mod", "dtype", "S",
             "D", "median_ms", "min_ms", "kept%", "GFLOP/s", "ceil%", "fp32pk%", "bf16pk%", "x none",
             "tiles skip/full/partial");
}

std::string percent(const std::optional<double>& ratio) { return ratio ? fmt::format("{:.1f}%", 100.0 * *ratio) : "-"; }

void print_case(const bench::CaseResult& r) {
  std::string vs_none = r.vs_none ? fmt::format("{:.3f}", *r.vs_none) : "-";
  fmt::print("{:<15} {:<5} {:>6} {:>4} {:>11.2f} {:>10.2f} {:>6.2f}% {:>9.1f} {:>7} {:>8} {:>8} {:>7}  {}/{}/{}{}\n",
             bench::mod_name(r.mod), dtype_name(r.dtype), r.seq, r.head_dim, r.median_ms, r.min_ms,
             100.0 * double(r.kept) / double(r.total), r.gflops, percent(r.ceiling_ratio), percent(r.fp32_peak_ratio),
             percent(r.bf16_peak_ratio), vs_none, r.stats.tiles_skipped, r.stats.tiles_full, r.stats.tiles_partial,
             r.error.empty() ? "" : "  FAILED: " + r.error);
  std::fflush(stdout);
}

}  // namespace

int run_bench(Args args) {
  bool help = false;
  std::string json_path;
  BenchConfig c = parse_options(args, json_path, help);
  if (help) return kExitOk;
  // Where results go is checked before the first case runs.
  if (!json_path.empty()) check_output_path(json_path);
  if (!c.dump.empty()) check_output_directory(c.dump);

  fmt::print("attnc bench: B={} H={}, {} threads, mods run by {}, median of {} runs after a warm-up\n", c.batch,
             c.heads, bench::effective_threads(c), cpu_jit_available() ? "the LLVM JIT" : "the interpreter", c.repeat);
  if (!c.references) {
    fmt::print("references: skipped (--no-ceiling)\n");
  } else {
    std::string overrides;
    for (const char* name : bench::kBlasOverrides) {
      if (const char* value = std::getenv(name)) overrides += fmt::format(" {}={}", name, value);
    }
    fmt::print("ceiling: {}; measured in a child process without OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE{}\n",
               bench::blas_config(), overrides.empty() ? "" : " (this environment sets" + overrides + ")");
  }
  bench::BenchObserver observer;
  observer.peaks_measured = print_peaks;
  observer.shape_started = [&](int seq, int head_dim, const bench::Ceiling& ceiling) {
    print_shape(seq, head_dim, ceiling, c.references);
  };
  observer.case_finished = print_case;
  bench::BenchReport report = bench::run_bench_suite(c, observer);
  if (!json_path.empty()) write_file_atomically(json_path, bench::bench_json(c, report));
  return report.failed() ? kExitRuntime : kExitOk;
}

int run_sgemm_ceiling(Args args) {
  if (args.size() != 1) throw UsageError("takes one argument, a ceiling request (bench/suite/Ceiling.h)");
  fmt::print("{}\n", bench::ceiling_to_json(bench::measure_ceiling_here(bench::parse_ceiling_request(args[0]))));
  return kExitOk;
}

}  // namespace attnc::cli
