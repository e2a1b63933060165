// attnc bench: times the CPU flash kernel over a suite of shapes, dtypes and mods against the
// sgemm ceiling and the FMA peaks measured in the same run; with --decode, CPU decoding against a
// same-run memory-read ceiling (bench/suite/DecodeSuite.h); with --linear, linear attention against
// a same-run sgemm ceiling (bench/suite/LinearSuite.h). The suite is bench/suite/ (the
// attnc_bench library); this command parses options, checks where results go, and prints.
// `attnc __sgemm-ceiling` is the child process the ceiling is measured in.

#include <climits>
#include <cstdio>
#include <cstdlib>

#include <fmt/format.h>

#include "bench/suite/BenchJson.h"
#include "bench/suite/BenchSuite.h"
#include "bench/suite/DecodeSuite.h"
#include "bench/suite/LinearSuite.h"
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
bf16 cases run their products on vdpbf16ps where the CPU has it (fp32 otherwise),
so read them against bf16pk%; fp32pk% and ceil% (fp32 references) are printed
for every case, which puts bf16 cases above 100%. Without OpenBLAS at build time no ceiling is printed; a loop the CPU
lacks is reported as unavailable. "x none" is the time over the same shape's
case without a mod, when that case ran. Every output is checked to be finite.

--decode times CPU decoding (decode_attention, the decode family) instead:
per dtype (default bf16, fp32) and KV layout (--page-size 0 is contiguous,
16 pages of 16 tokens behind a shuffled block table; default both), at
B=4, H=32, H_kv=8, q_len=1, kv_len=16384, D=128 unless given. It prints the
K+V bytes read, the median time, GB/s, and in the same run a memory-read
ceiling: a parallel sum over the same K/V bytes on the same workers. Decode
and ceiling runs alternate; ratio = the median over those pairs of decode
GB/s / ceiling GB/s (a shared host's memory speed drifts within a run). With
--window W the keys outside the window are not counted as read.

--linear times CPU linear attention (linear_attention_cpu) per dtype (default
fp32, bf16) and variant (causal, noncausal): B=1, H=8, S=4096, D=128, chunks
of 64 unless given; GFLOP/s of the chunkwise form, and the same-run ceiling:
the CPU backend's fp32 gemm micro-kernel at phi(Q) [S x D] x [D x (D+1)] per
(b, h) on the same threads; ratio = GFLOP/s / ceiling.
)";

int parse_positive(const std::string& text, const std::string& option) {
  std::optional<int> value = parse_int(text, 1, INT_MAX);
  if (!value) throw UsageError(fmt::format("{} takes a positive integer, got '{}'", option, text));
  return *value;
}

// Which suite a command line asks for.
enum class BenchMode { Flash, Decode, Linear };

// The options as given (text), before the mode decides their defaults and meaning.
struct BenchArgs {
  BenchMode mode = BenchMode::Flash;
  std::string seqs, head_dims, dtypes, mods, repeat, threads, batch, heads, kv_heads, kv_len, q_len, page_sizes, window,
      variants, chunk_size, dump;
  std::string json_path;
  bool no_ceiling = false;
};

// The one value of an option that takes a list in the flash suite but a single value here.
int single_positive(const std::string& text, const std::string& option, int fallback) {
  if (text.empty()) return fallback;
  std::vector<std::string> items = split_list(text, option);
  if (items.size() != 1) throw UsageError(fmt::format("{} takes one value with --decode or --linear", option));
  return parse_positive(items[0], option);
}

std::vector<DType> parse_dtypes(const std::string& text, std::vector<DType> fallback) {
  if (text.empty()) return fallback;
  std::vector<DType> out;
  for (const std::string& item : split_list(text, "--dtype")) {
    if (item == "fp32")
      out.push_back(DType::F32);
    else if (item == "bf16")
      out.push_back(DType::BF16);
    else if (item == "fp16")
      out.push_back(DType::F16);
    else
      throw UsageError("--dtype takes fp32, bf16 or fp16, got '" + item + "'");
  }
  return out;
}

BenchConfig flash_config(const BenchArgs& a) {
  BenchConfig c;
  if (!a.seqs.empty()) {
    c.seqs.clear();
    for (const std::string& item : split_list(a.seqs, "--seq")) c.seqs.push_back(parse_positive(item, "--seq"));
  }
  if (!a.head_dims.empty()) {
    c.head_dims.clear();
    for (const std::string& item : split_list(a.head_dims, "--head-dim")) {
      c.head_dims.push_back(parse_positive(item, "--head-dim"));
    }
  }
  c.dtypes = parse_dtypes(a.dtypes, c.dtypes);
  if (!a.mods.empty()) {
    c.mods.clear();
    for (const std::string& item : split_list(a.mods, "--mod")) {
      if (item == "all") {
        c.mods.assign(std::begin(bench::kAllMods), std::end(bench::kAllMods));
      } else if (std::optional<BenchMod> mod = bench::parse_mod_name(item)) {
        c.mods.push_back(*mod);
      } else {
        throw UsageError("unknown mod '" + item + "'; the suite has " + bench::mod_name_list());
      }
    }
  }
  if (!a.repeat.empty()) c.repeat = parse_positive(a.repeat, "--repeat");
  if (!a.threads.empty()) c.threads = parse_positive(a.threads, "--threads");
  if (!a.batch.empty()) c.batch = parse_positive(a.batch, "--batch");
  if (!a.heads.empty()) c.heads = parse_positive(a.heads, "--heads");
  c.dump = a.dump;
  c.references = !a.no_ceiling;
  // The ceiling's child process is this very program (bench/suite/Ceiling.h).
  c.ceiling_command = {"/proc/self/exe", "__sgemm-ceiling"};
  return c;
}

bench::DecodeSuiteConfig decode_config(const BenchArgs& a) {
  bench::DecodeSuiteConfig c;
  c.batch = a.batch.empty() ? c.batch : parse_positive(a.batch, "--batch");
  c.heads = a.heads.empty() ? c.heads : parse_positive(a.heads, "--heads");
  c.kv_heads = a.kv_heads.empty() ? c.kv_heads : parse_positive(a.kv_heads, "--kv-heads");
  c.q_len = a.q_len.empty() ? c.q_len : parse_positive(a.q_len, "--q-len");
  c.kv_len = a.kv_len.empty() ? c.kv_len : parse_positive(a.kv_len, "--kv-len");
  c.head_dim = single_positive(a.head_dims, "--head-dim", static_cast<int>(c.head_dim));
  if (c.heads % c.kv_heads != 0) {
    throw UsageError(fmt::format("--heads ({}) must be a multiple of --kv-heads ({})", c.heads, c.kv_heads));
  }
  c.dtypes = parse_dtypes(a.dtypes, c.dtypes);
  if (!a.page_sizes.empty()) {
    c.page_sizes.clear();
    for (const std::string& item : split_list(a.page_sizes, "--page-size")) {
      std::optional<int> size = parse_int(item, 0, 1 << 20);
      if (!size) throw UsageError("--page-size takes 0 (contiguous) or tokens per page, got '" + item + "'");
      c.page_sizes.push_back(*size);
    }
  }
  if (!a.window.empty()) c.window = parse_positive(a.window, "--window");
  if (!a.repeat.empty()) c.repeat = parse_positive(a.repeat, "--repeat");
  if (!a.threads.empty()) c.threads = parse_positive(a.threads, "--threads");
  return c;
}

bench::LinearSuiteConfig linear_config(const BenchArgs& a) {
  bench::LinearSuiteConfig c;
  c.batch = a.batch.empty() ? c.batch : parse_positive(a.batch, "--batch");
  c.heads = a.heads.empty() ? c.heads : parse_positive(a.heads, "--heads");
  c.length = single_positive(a.seqs, "--seq", static_cast<int>(c.length));
  c.head_dim = single_positive(a.head_dims, "--head-dim", static_cast<int>(c.head_dim));
  c.dtypes = parse_dtypes(a.dtypes, c.dtypes);
  if (!a.variants.empty()) {
    c.causal.clear();
    for (const std::string& item : split_list(a.variants, "--variant")) {
      if (item != "causal" && item != "noncausal") {
        throw UsageError("--variant takes causal or noncausal, got '" + item + "'");
      }
      c.causal.push_back(item == "causal");
    }
  }
  if (!a.chunk_size.empty()) c.chunk_size = parse_positive(a.chunk_size, "--chunk-size");
  if (!a.repeat.empty()) c.repeat = parse_positive(a.repeat, "--repeat");
  if (!a.threads.empty()) c.threads = parse_positive(a.threads, "--threads");
  return c;
}

// The options each suite takes (beyond --repeat, --threads, --batch, --heads, --dtype, --json and
// --head-dim, which all take); any other given is a usage error naming the suite.
void check_mode_options(const CommandLine& command_line, BenchMode mode) {
  struct OptionModes {
    const char* name;
    bool flash, decode, linear;
  };
  static const OptionModes kOptions[] = {
      {"--seq", true, false, true},         {"--mod", true, false, false},        {"--dump", true, false, false},
      {"--no-ceiling", true, false, false}, {"--kv-heads", false, true, false},   {"--kv-len", false, true, false},
      {"--q-len", false, true, false},      {"--page-size", false, true, false},  {"--window", false, true, false},
      {"--variant", false, false, true},    {"--chunk-size", false, false, true},
  };
  const char* suite = mode == BenchMode::Decode   ? "--decode"
                      : mode == BenchMode::Linear ? "--linear"
                                                  : "the flash suite";
  for (const OptionModes& option : kOptions) {
    const bool allowed = mode == BenchMode::Flash    ? option.flash
                         : mode == BenchMode::Decode ? option.decode
                                                     : option.linear;
    if (!allowed && command_line.given(option.name)) {
      throw UsageError(fmt::format("{} does not apply to {}", option.name, suite));
    }
  }
}

BenchArgs parse_options(Args args, bool& help) {
  BenchArgs a;
  bool decode = false, linear = false;
  CommandLine command_line("attnc bench",
                           R"(attnc bench [--seq LIST] [--head-dim LIST] [--dtype LIST] [--mod LIST]
                   [--repeat N] [--threads N] [--batch B] [--heads H]
                   [--json OUT.json] [--dump DIR] [--no-ceiling]
       attnc bench --decode [--batch B] [--heads H] [--kv-heads H] [--q-len N]
                   [--kv-len N] [--head-dim D] [--dtype LIST] [--page-size LIST]
                   [--window W] [--repeat N] [--threads N] [--json OUT.json]
       attnc bench --linear [--batch B] [--heads H] [--seq S] [--head-dim D]
                   [--dtype LIST] [--variant LIST] [--chunk-size C]
                   [--repeat N] [--threads N] [--json OUT.json])",
                           kDescription,
                           R"(Exit status: 0 on success, 2 on usage errors, 3 when a case fails (an error, or
a non-finite output) or an output cannot be written.
)");
  CLI::App& app = command_line.app();
  CLI::Option* decode_flag =
      app.add_flag("--decode", decode, "time CPU decoding against a same-run memory-read\nceiling");
  app.add_flag("--linear", linear, "time CPU linear attention against a same-run sgemm\nceiling")
      ->excludes(decode_flag);
  app.add_option("--seq", a.seqs, "sequence lengths, comma-separated (q_len = kv_len);\n--linear: one length")
      ->type_name("LIST");
  app.add_option("--head-dim", a.head_dims, "head dimensions (D = D_v); --decode, --linear: one")->type_name("LIST");
  app.add_option("--dtype", a.dtypes, "fp32, bf16, fp16")->type_name("LIST");
  app.add_option("--mod", a.mods, "mod names from the list above, or 'all'")->type_name("LIST");
  app.add_option("--repeat", a.repeat, "timed runs per case (default 3; --decode 5); the median\nis reported")
      ->type_name("N");
  app.add_option("--threads", a.threads, "worker threads for the kernel, the BLAS and the peaks\n(default: all)")
      ->type_name("N");
  app.add_option("--batch", a.batch, "batch size (default 1; --decode 4)")->type_name("B");
  app.add_option("--heads", a.heads, "query heads (default 8; --decode 32)")->type_name("H");
  app.add_option("--kv-heads", a.kv_heads, "(--decode) KV heads (default 8)")->type_name("H");
  app.add_option("--q-len", a.q_len, "(--decode) query rows per sequence (default 1)")->type_name("N");
  app.add_option("--kv-len", a.kv_len, "(--decode) keys per sequence (default 16384)")->type_name("N");
  app.add_option("--page-size", a.page_sizes,
                 "(--decode) KV layouts: 0 for contiguous, else tokens per\npage (default 0,16)")
      ->type_name("LIST");
  app.add_option("--window", a.window, "(--decode) a causal sliding window of W keys")->type_name("W");
  app.add_option("--variant", a.variants, "(--linear) causal, noncausal (default both)")->type_name("LIST");
  app.add_option("--chunk-size", a.chunk_size, "(--linear) keys per chunk (default 64)")->type_name("C");
  app.add_option("--json", a.json_path, "also write every case, its times and the references as\nJSON")
      ->type_name("FILE");
  app.add_option("--dump", a.dump,
                 "write inputs (q, k, v .npy, bf16 as raw '<u2') and each\ncase's output under DIR, for comparing "
                 "with other\nlibraries (and `attnc run --dtype bf16`)")
      ->type_name("DIR");
  app.add_flag("--no-ceiling", a.no_ceiling, "skip the references: the sgemm ceiling and the FMA\npeaks");
  help = !command_line.parse(args);
  if (help) return a;
  a.mode = decode ? BenchMode::Decode : linear ? BenchMode::Linear : BenchMode::Flash;
  check_mode_options(command_line, a.mode);
  return a;
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

int run_flash_suite(const BenchConfig& c, const std::string& json_path) {
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

int run_decode_suite(const bench::DecodeSuiteConfig& c, const std::string& json_path) {
  fmt::print(
      "attnc bench --decode: B={} H={} H_kv={} q_len={} kv_len={} D={}{}, medians of {} alternating decode and "
      "ceiling runs after a warm-up; the ceiling reads the same K/V bytes on the same workers; ratio: median of the "
      "pairs' ratios\n",
      c.batch, c.heads, c.kv_heads, c.q_len, c.kv_len, c.head_dim,
      c.window > 0 ? fmt::format(", causal window {}", c.window) : "", c.repeat);
  fmt::print("{:<16} {:>10} {:>10} {:>9} {:>11} {:>11} {:>7} {:>6} {:>7}  {}\n", "case", "K+V MB", "decode_ms", "GB/s",
             "ceiling_ms", "ceil GB/s", "ratio", "splits", "threads", "kernels");
  auto print_case_line = [](const bench::DecodeCase& d) {
    const decode::DecodeBenchResult& r = d.result;
    if (!d.error.empty()) {
      fmt::print("{:<16} FAILED: {}\n", d.id, d.error);
    } else {
      fmt::print("{:<16} {:>10.1f} {:>10.3f} {:>9.2f} {:>11.3f} {:>11.2f} {:>6.1f}% {:>6} {:>7}  {}\n", d.id,
                 r.read_bytes / 1e6, 1e3 * r.decode_seconds, r.decode_gbps, 1e3 * r.read_seconds, r.read_gbps,
                 100.0 * r.fraction, r.num_splits, r.threads, r.kernels);
    }
    std::fflush(stdout);
  };
  bench::DecodeSuiteReport report = bench::run_decode_suite(c, print_case_line);
  if (!json_path.empty()) write_file_atomically(json_path, bench::decode_suite_json(c, report));
  return report.failed() ? kExitRuntime : kExitOk;
}

int run_linear_suite(const bench::LinearSuiteConfig& c, const std::string& json_path) {
  fmt::print(
      "attnc bench --linear: B={} H={} S={} D={} chunk {}, median of {} runs; the ceiling is the CPU backend's fp32 "
      "gemm at phi(Q) [S x D] x [D x (D+1)] per (b, h), same threads, same run\n",
      c.batch, c.heads, c.length, c.head_dim, c.chunk_size, c.repeat);
  fmt::print("{:<16} {:>11} {:>12} {:>9} {:>12} {:>7}\n", "case", "median_ms", "GFLOP", "GFLOP/s", "sgemm GF/s",
             "ratio");
  auto print_case_line = [](const bench::LinearCase& l) {
    const LinearBenchmarkResult& r = l.result;
    if (!l.error.empty()) {
      fmt::print("{:<16} FAILED: {}\n", l.id, l.error);
    } else {
      fmt::print("{:<16} {:>11.3f} {:>12.3f} {:>9.2f} {:>12.2f} {:>6.1f}%\n", l.id, 1e3 * r.seconds,
                 double(r.flops) / 1e9, r.gflops, r.sgemm_gflops, 100.0 * r.fraction);
    }
    std::fflush(stdout);
  };
  bench::LinearSuiteReport report = bench::run_linear_suite(c, print_case_line);
  if (!json_path.empty()) write_file_atomically(json_path, bench::linear_suite_json(c, report));
  return report.failed() ? kExitRuntime : kExitOk;
}

}  // namespace

int run_bench(Args args) {
  bool help = false;
  const BenchArgs a = parse_options(args, help);
  if (help) return kExitOk;
  switch (a.mode) {
    case BenchMode::Decode: {
      const bench::DecodeSuiteConfig c = decode_config(a);
      if (!a.json_path.empty()) check_output_path(a.json_path);  // before the first case runs
      return run_decode_suite(c, a.json_path);
    }
    case BenchMode::Linear: {
      const bench::LinearSuiteConfig c = linear_config(a);
      if (!a.json_path.empty()) check_output_path(a.json_path);
      return run_linear_suite(c, a.json_path);
    }
    case BenchMode::Flash: break;
  }
  const BenchConfig c = flash_config(a);
  // Where results go is checked before the first case runs.
  if (!a.json_path.empty()) check_output_path(a.json_path);
  if (!c.dump.empty()) check_output_directory(c.dump);
  return run_flash_suite(c, a.json_path);
}

int run_sgemm_ceiling(Args args) {
  if (args.size() != 1) throw UsageError("takes one argument, a ceiling request (bench/suite/Ceiling.h)");
  fmt::print("{}\n", bench::ceiling_to_json(bench::measure_ceiling_here(bench::parse_ceiling_request(args[0]))));
  return kExitOk;
}

}  // namespace attnc::cli
