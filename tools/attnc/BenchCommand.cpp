// attnc bench: times the CPU flash kernel over a fixed suite of shapes, dtypes and mods, and sets
// each timing against a ceiling measured in the same run (sgemm of OpenBLAS at the shapes of the
// kernel's two products). GFLOP/s count only the work the mask keeps, with the kept (q, kv) pairs
// counted from the mask itself and cross-checked against a closed form, never assumed.

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "dsl/Errors.h"
#include "runtime/core/Mods.h"
#include "runtime/core/Npy.h"
#include "runtime/core/RuntimeError.h"
#include "runtime/cpu/CpuModProgram.h"
#include "runtime/families/flash/FlashCpu.h"
#include "tools/attnc/Command.h"

#if ATTNC_HAVE_OPENBLAS
#include <cblas.h>
#endif

namespace attnc::cli {

const char* const kBenchHelp = R"(Usage: attnc bench [--seq LIST] [--head-dim LIST] [--dtype LIST] [--mod LIST]
                   [--repeat N] [--threads N] [--batch B] [--heads H]
                   [--json OUT.json] [--dump DIR] [--no-ceiling]

Times the CPU flash kernel over a suite of cases and prints, per case, the
median time over N runs (after one warm-up run, whose time includes compiling
the mods), GFLOP/s, and the ratio to a ceiling measured in the same run. The
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
(b, h, q, kv) the mask keeps (B * H * the kept (q, kv) pairs of one head),
counted from the compiled mask and checked against a closed form. The ceiling is OpenBLAS cblas_sgemm at the shapes of the
kernel's two products, (S x D) x (D x S) and (S x S) x (S x D), B * H times each,
with the same threads; "ceil%" is the case's GFLOP/s over the ceiling's. bf16
cases use the same fp32 ceiling (the kernel computes in fp32). Without OpenBLAS
at build time no ceiling is printed. "x none" is the time over the same shape's
case without a mod, when that case ran. Every output is checked to be finite.

Options:
  --seq LIST        sequence lengths, comma-separated (q_len = kv_len)
  --head-dim LIST   head dimensions (D = D_v)
  --dtype LIST      fp32, bf16, fp16
  --mod LIST        mod names from the list above, or 'all'
  --repeat N        timed runs per case (default 3); the median is reported
  --threads N       worker threads for the kernel and the BLAS (default: all)
  --batch B         batch size (default 1)
  --heads H         heads (default 8)
  --json FILE       also write every case, its times and the ceilings as JSON
  --dump DIR        write inputs (q, k, v .npy, bf16 as raw '<u2') and each
                    case's output under DIR, for comparing with other libraries
  --no-ceiling      skip the sgemm ceiling

Exit status: 0 on success, 2 on usage errors, 3 when a case fails (an error, or
a non-finite output).
)";

namespace {

using Clock = std::chrono::steady_clock;

enum class BenchMod { None, Causal, AlibiCausal, SlidingWindow, Document, Softcap };

constexpr BenchMod kAllMods[] = {BenchMod::None,          BenchMod::Causal,   BenchMod::AlibiCausal,
                                 BenchMod::SlidingWindow, BenchMod::Document, BenchMod::Softcap};
constexpr int kWindow = 1024;
constexpr int kDocuments = 8;
constexpr float kSoftcap = 50.0f;

const char* mod_name(BenchMod mod) {
  switch (mod) {
    case BenchMod::None: return "none";
    case BenchMod::Causal: return "causal";
    case BenchMod::AlibiCausal: return "alibi-causal";
    case BenchMod::SlidingWindow: return "sliding-window";
    case BenchMod::Document: return "document";
    case BenchMod::Softcap: return "softcap";
  }
  return "?";
}

struct BenchConfig {
  std::vector<int> seqs = {1024, 4096, 16384};
  std::vector<int> head_dims = {64, 128};
  std::vector<DType> dtypes = {DType::F32, DType::BF16};
  std::vector<BenchMod> mods = {std::begin(kAllMods), std::end(kAllMods)};
  int repeat = 3;
  int threads = 0;
  int batch = 1;
  int heads = 8;
  std::string json, dump;
  bool ceiling = true;
};

std::vector<std::string> split_list(const std::string& text, const std::string& option) {
  std::vector<std::string> items;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    if (comma == std::string::npos) comma = text.size();
    std::string item = text.substr(start, comma - start);
    if (item.empty()) throw UsageError(option + " has an empty item in '" + text + "'");
    items.push_back(item);
    start = comma + 1;
  }
  return items;
}

int parse_positive(const std::string& text, const std::string& option) {
  int value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || value <= 0) {
    throw UsageError(fmt::format("{} takes a positive integer, got '{}'", option, text));
  }
  return value;
}

BenchConfig parse_options(Args args) {
  BenchConfig c;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--seq" || arg == "--head-dim") {
      std::vector<int>& target = arg == "--seq" ? c.seqs : c.head_dims;
      target.clear();
      for (const std::string& item : split_list(option_value(args, i), arg))
        target.push_back(parse_positive(item, arg));
    } else if (arg == "--dtype") {
      c.dtypes.clear();
      for (const std::string& item : split_list(option_value(args, i), arg)) {
        if (item == "fp32")
          c.dtypes.push_back(DType::F32);
        else if (item == "bf16")
          c.dtypes.push_back(DType::BF16);
        else if (item == "fp16")
          c.dtypes.push_back(DType::F16);
        else
          throw UsageError("--dtype takes fp32, bf16 or fp16, got '" + item + "'");
      }
    } else if (arg == "--mod") {
      c.mods.clear();
      for (const std::string& item : split_list(option_value(args, i), arg)) {
        if (item == "all") {
          c.mods.assign(std::begin(kAllMods), std::end(kAllMods));
          continue;
        }
        auto found =
            std::find_if(std::begin(kAllMods), std::end(kAllMods), [&](BenchMod mod) { return item == mod_name(mod); });
        if (found == std::end(kAllMods)) {
          throw UsageError("unknown mod '" + item +
                           "'; the suite has none, causal, alibi-causal, sliding-window, document, softcap");
        }
        c.mods.push_back(*found);
      }
    } else if (arg == "--repeat")
      c.repeat = parse_positive(option_value(args, i), arg);
    else if (arg == "--threads")
      c.threads = parse_positive(option_value(args, i), arg);
    else if (arg == "--batch")
      c.batch = parse_positive(option_value(args, i), arg);
    else if (arg == "--heads")
      c.heads = parse_positive(option_value(args, i), arg);
    else if (arg == "--json")
      c.json = option_value(args, i);
    else if (arg == "--dump")
      c.dump = option_value(args, i);
    else if (arg == "--no-ceiling")
      c.ceiling = false;
    else
      throw UsageError("unknown argument '" + arg + "'");
  }
  return c;
}

// ---- The mods of one case, and how many (q, kv) pairs their mask keeps ----

struct CaseMods {
  std::optional<Mod> score, mask;
  std::optional<Tensor> document_ids;  // [B, S] int32, for the document mask
};

// Document ids of `documents` equal (up to rounding) contiguous documents.
Tensor make_document_ids(int batch, int seq) {
  std::vector<int32_t> ids(size_t(batch) * size_t(seq));
  for (int b = 0; b < batch; ++b) {
    for (int i = 0; i < seq; ++i) ids[size_t(b) * seq + i] = int32_t(int64_t(i) * kDocuments / seq);
  }
  return Tensor::from_vector(ids, {batch, seq});
}

CaseMods make_mods(BenchMod which, const BenchConfig& c, int seq) {
  CaseMods m;
  switch (which) {
    case BenchMod::None: break;
    case BenchMod::Causal: m.mask = causal_mod(); break;
    case BenchMod::AlibiCausal:
      m.score = alibi_mod(c.heads);
      m.mask = causal_mod();
      break;
    case BenchMod::SlidingWindow: m.mask = sliding_window_mod(kWindow, /*causal=*/true); break;
    case BenchMod::Document:
      m.document_ids = make_document_ids(c.batch, seq);
      m.mask = document_mask_mod(*m.document_ids);
      break;
    case BenchMod::Softcap: m.score = softcap_mod(kSoftcap); break;
  }
  return m;
}

// The kept pairs by closed form, summed over every (b, h).
int64_t kept_pairs_formula(BenchMod which, const CaseMods& mods, int batch, int heads, int seq) {
  int64_t s = seq, per_head = 0;
  switch (which) {
    case BenchMod::None:
    case BenchMod::Softcap: per_head = s * s; break;
    case BenchMod::Causal:
    case BenchMod::AlibiCausal: per_head = s * (s + 1) / 2; break;
    case BenchMod::SlidingWindow: {
      // Row i keeps keys i - w + 1 .. i: min(i + 1, w) of them.
      int64_t w = std::min<int64_t>(kWindow, s);
      per_head = w * (w + 1) / 2 + (s - w) * kWindow;
      break;
    }
    case BenchMod::Document: {
      // Each document of n tokens keeps n * n pairs; summed per batch, so no per-head form.
      int64_t total = 0;
      std::vector<float> ids = mods.document_ids->to_float_vector();
      for (int b = 0; b < batch; ++b) {
        std::map<int, int64_t> sizes;
        for (int i = 0; i < seq; ++i) ++sizes[int(ids[size_t(b) * seq + i])];
        for (const auto& [id, n] : sizes) total += n * n;
      }
      return total * heads;
    }
  }
  return per_head * batch * heads;
}

// The kept pairs counted from the compiled mask: tiles it classifies EMPTY count 0, FULL count
// every pair, and PARTIAL tiles are masked element by element on a tile of zeros. This is the
// mask the kernel runs, so a classifier or mask bug shows up as a disagreement with the formula.
int64_t kept_pairs_counted(const Mod& mask, int batch, int heads, int seq) {
  std::shared_ptr<const CpuModProgram> program = compile_cpu_program(mask);
  CpuModArgs args = CpuModArgs::pack(mask, /*check_bounds=*/false);
  constexpr int32_t kTile = 64;
  std::vector<float> tile(size_t(kTile) * kTile);
  int64_t kept = 0;
  for (int b = 0; b < batch; ++b) {
    for (int h = 0; h < heads; ++h) {
      TilePosition at{b, h, seq, seq, heads, heads};
      for (int32_t q0 = 0; q0 < seq; q0 += kTile) {
        int32_t rows = std::min(kTile, seq - q0);
        for (int32_t k0 = 0; k0 < seq; k0 += kTile) {
          int32_t cols = std::min(kTile, seq - k0);
          ir::TileClass cls = program->classify(q0, q0 + rows - 1, k0, k0 + cols - 1, at, args);
          if (cls == ir::TileClass::Empty) continue;
          if (cls == ir::TileClass::Full) {
            kept += int64_t(rows) * cols;
            continue;
          }
          std::fill(tile.begin(), tile.end(), 0.0f);
          program->apply(tile.data(), kTile, rows, cols, q0, k0, at, args, nullptr);
          for (int32_t r = 0; r < rows; ++r) {
            for (int32_t col = 0; col < cols; ++col) kept += tile[size_t(r) * kTile + col] != -INFINITY;
          }
        }
      }
    }
  }
  return kept;
}

// ---- Inputs ----

// Values uniform in [-1, 1) from a fixed seed (splitmix64), so every run times the same data.
Tensor make_input(DType dtype, const std::vector<int64_t>& shape, uint64_t seed) {
  Tensor t = Tensor::empty(dtype, shape);
  int64_t n = t.numel();
  uint64_t state = seed * 0x9E3779B97F4A7C15ull + 1;
  auto next = [&state] {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  };
  for (int64_t i = 0; i < n; ++i) {
    float value = float(int64_t(next() >> 40) - (int64_t(1) << 23)) / float(1 << 23);
    switch (dtype) {
      case DType::F32: static_cast<float*>(t.data())[i] = value; break;
      case DType::F16: static_cast<uint16_t*>(t.data())[i] = float_to_half(value); break;
      default: static_cast<uint16_t*>(t.data())[i] = float_to_bfloat16(value); break;
    }
  }
  return t;
}

double to_ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

int effective_threads(const BenchConfig& c) {
  if (c.threads > 0) return c.threads;
  return int(std::max(1u, std::thread::hardware_concurrency()));
}

// ---- The ceiling ----

struct Ceiling {
  bool measured = false;
  double qk_ms = 0, pv_ms = 0;  // per head: S x S x D, then S x D x S
  double qk_gflops = 0, pv_gflops = 0, gflops = 0;
};

std::string blas_description() {
#if ATTNC_HAVE_OPENBLAS
  return fmt::format("{} (core {})", openblas_get_config(), openblas_get_corename());
#else
  return "none (attnc was built without OpenBLAS: install libopenblas-dev and reconfigure)";
#endif
}

Ceiling measure_ceiling([[maybe_unused]] int seq, [[maybe_unused]] int head_dim,
                        [[maybe_unused]] const BenchConfig& c) {
  Ceiling ceiling;
#if ATTNC_HAVE_OPENBLAS
  openblas_set_num_threads(effective_threads(c));
  int64_t s = seq, d = head_dim;
  Tensor a = make_input(DType::F32, {s, d}, 101), b = make_input(DType::F32, {s, d}, 102);
  Tensor v = make_input(DType::F32, {s, d}, 103);
  std::vector<float> scores(size_t(s * s)), out(size_t(s * d));
  const float* pa = static_cast<const float*>(a.data());
  const float* pb = static_cast<const float*>(b.data());
  const float* pv = static_cast<const float*>(v.data());
  // One product per head, as the kernel does B * H of them, so a timed run lasts about as long as
  // the kernel's and a moment of noise on a shared machine weighs the same on both.
  int products = c.batch * c.heads;
  auto qk = [&] {
    for (int i = 0; i < products; ++i) {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, seq, seq, head_dim, 1.0f, pa, head_dim, pb, head_dim, 0.0f,
                  scores.data(), seq);
    }
  };
  auto pv_product = [&] {
    for (int i = 0; i < products; ++i) {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, seq, head_dim, seq, 1.0f, scores.data(), seq, pv, head_dim,
                  0.0f, out.data(), head_dim);
    }
  };
  auto time_median = [&](auto&& product) {
    product();  // warm-up: thread start, page faults
    std::vector<double> times;
    for (int r = 0; r < c.repeat; ++r) {
      Clock::time_point start = Clock::now();
      product();
      times.push_back(to_ms(Clock::now() - start));
    }
    return median(times);
  };
  ceiling.qk_ms = time_median(qk) / products;
  ceiling.pv_ms = time_median(pv_product) / products;
  double flops = 2.0 * double(s) * double(s) * double(d);
  ceiling.qk_gflops = flops / ceiling.qk_ms * 1e-6;
  ceiling.pv_gflops = flops / ceiling.pv_ms * 1e-6;
  ceiling.gflops = 2 * flops / (ceiling.qk_ms + ceiling.pv_ms) * 1e-6;
  ceiling.measured = true;
  // OpenBLAS workers spin for a while after a call; let them go to sleep before the kernel runs,
  // or they would take cores from it.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
#endif
  return ceiling;
}

// ---- One case ----

struct CaseResult {
  std::string id;
  BenchMod mod = BenchMod::None;
  DType dtype = DType::F32;
  int seq = 0, head_dim = 0;
  int64_t kept = 0, total = 0;
  double flops = 0;
  double first_ms = 0, median_ms = 0, min_ms = 0;
  std::vector<double> times_ms;
  double gflops = 0;
  FlashStats stats;
  std::string backend;  // how the mods ran: "llvm", "interpreter" or "-" (no mod)
  double checksum = 0;  // sum of |out|, so the work cannot be skipped unseen
  std::string output_path;
  std::optional<double> vs_none;
  std::string error;
};

// One case from set-up to result. The timed runs of a shape's cases are interleaved (run 1 of
// every mod, then run 2, ...), so a change in the machine's load while the group runs weighs on
// every mod alike and the "x none" ratios stay meaningful on a shared machine.
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
      mods_ = make_mods(which, c, seq);
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
      std::filesystem::path path = std::filesystem::path(config_.dump) /
                                   fmt::format("{}-S{}-D{}", dtype_name(r_.dtype), r_.seq, r_.head_dim) /
                                   fmt::format("out-{}.npy", mod_name(r_.mod));
      write_npy(path.string(), out_);
      r_.output_path = path.string();
      if (mods_.document_ids) write_npy((path.parent_path() / "document_ids.npy").string(), *mods_.document_ids);
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

// ---- Printing ----

void print_header() {
  fmt::print("{:<15} {:<5} {:>6} {:>4} {:>11} {:>10} {:>7} {:>9} {:>7} {:>7}  {}\n", "mod", "dtype", "S", "D",
             "median_ms", "min_ms", "kept%", "GFLOP/s", "ceil%", "x none", "tiles skip/full/partial");
}

void print_case(const CaseResult& r, const Ceiling& ceiling) {
  std::string ceil = ceiling.measured ? fmt::format("{:.1f}%", 100.0 * r.gflops / ceiling.gflops) : "-";
  std::string vs_none = r.vs_none ? fmt::format("{:.3f}", *r.vs_none) : "-";
  fmt::print("{:<15} {:<5} {:>6} {:>4} {:>11.2f} {:>10.2f} {:>6.2f}% {:>9.1f} {:>7} {:>7}  {}/{}/{}{}\n",
             mod_name(r.mod), dtype_name(r.dtype), r.seq, r.head_dim, r.median_ms, r.min_ms,
             100.0 * double(r.kept) / double(r.total), r.gflops, ceil, vs_none, r.stats.tiles_skipped,
             r.stats.tiles_full, r.stats.tiles_partial, r.error.empty() ? "" : "  FAILED: " + r.error);
  std::fflush(stdout);
}

std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (char ch : s) {
    if (ch == '"' || ch == '\\') out += '\\';
    if (static_cast<unsigned char>(ch) < 0x20) {
      out += fmt::format("\\u{:04x}", int(ch));
      continue;
    }
    out += ch;
  }
  return out + "\"";
}

// Non-finite numbers have no JSON form; they become null.
std::string json_number(double x) { return std::isfinite(x) ? fmt::format("{}", x) : "null"; }

void write_json(const std::string& path, const BenchConfig& c, const std::vector<CaseResult>& cases,
                const std::map<std::pair<int, int>, Ceiling>& ceilings) {
  std::string j = "{\n";
  j += fmt::format("  \"tool\": \"attnc bench\",\n  \"threads\": {},\n  \"batch\": {},\n  \"heads\": {},\n",
                   effective_threads(c), c.batch, c.heads);
  j += fmt::format("  \"repeat\": {},\n  \"jit\": {},\n  \"blas\": {},\n", c.repeat,
                   json_string(cpu_jit_available() ? "llvm" : "interpreter"), json_string(blas_description()));
  j += fmt::format("  \"window\": {},\n  \"documents\": {},\n  \"softcap\": {},\n", kWindow, kDocuments,
                   json_number(kSoftcap));
  j += fmt::format("  \"dump\": {},\n  \"ceilings\": [", json_string(c.dump));
  bool first = true;
  for (const auto& [shape, ceiling] : ceilings) {
    if (!ceiling.measured) continue;
    j += fmt::format(
        "{}\n    {{\"seq\": {}, \"head_dim\": {}, \"qk_ms\": {}, \"qk_gflops\": {}, \"pv_ms\": {}, \"pv_gflops\": {}, "
        "\"gflops\": {}}}",
        first ? "" : ",", shape.first, shape.second, json_number(ceiling.qk_ms), json_number(ceiling.qk_gflops),
        json_number(ceiling.pv_ms), json_number(ceiling.pv_gflops), json_number(ceiling.gflops));
    first = false;
  }
  j += "\n  ],\n  \"cases\": [";
  for (size_t i = 0; i < cases.size(); ++i) {
    const CaseResult& r = cases[i];
    auto found = ceilings.find({r.seq, r.head_dim});
    bool has_ceiling = found != ceilings.end() && found->second.measured;
    std::string times;
    for (double t : r.times_ms) times += (times.empty() ? "" : ", ") + json_number(t);
    j += fmt::format(
        "{}\n    {{\"id\": {}, \"mod\": {}, \"dtype\": {}, \"seq\": {}, \"head_dim\": {}, \"kept_pairs\": {}, "
        "\"total_pairs\": {}, \"flops\": {}, \"first_ms\": {}, \"median_ms\": {}, \"min_ms\": {}, \"times_ms\": [{}], "
        "\"gflops\": {}, \"ceiling_ratio\": {}, \"vs_none\": {}, \"tiles_skipped\": {}, \"tiles_full\": {}, "
        "\"tiles_partial\": {}, \"mod_backend\": {}, \"checksum\": {}, \"output\": {}, \"error\": {}}}",
        i == 0 ? "" : ",", json_string(r.id), json_string(mod_name(r.mod)), json_string(dtype_name(r.dtype)), r.seq,
        r.head_dim, r.kept, r.total, json_number(r.flops), json_number(r.first_ms), json_number(r.median_ms),
        json_number(r.min_ms), times, json_number(r.gflops),
        has_ceiling ? json_number(r.gflops / found->second.gflops) : "null",
        r.vs_none ? json_number(*r.vs_none) : "null", r.stats.tiles_skipped, r.stats.tiles_full, r.stats.tiles_partial,
        json_string(r.backend), json_number(r.checksum), json_string(r.output_path), json_string(r.error));
  }
  j += "\n  ]\n}\n";
  std::ofstream file(path, std::ios::binary);
  if (!file) throw RuntimeError("cannot write '" + path + "'");
  file << j;
  if (!file.flush()) throw RuntimeError("cannot write '" + path + "'");
}

}  // namespace

int run_bench(Args args) {
  BenchConfig c = parse_options(args);
  fmt::print("attnc bench: B={} H={}, {} threads, mods run by {}, median of {} runs after a warm-up\n", c.batch,
             c.heads, effective_threads(c), cpu_jit_available() ? "the LLVM JIT" : "the interpreter", c.repeat);
  fmt::print("ceiling: {}\n", c.ceiling ? blas_description() : "skipped (--no-ceiling)");

  std::vector<CaseResult> cases;
  std::map<std::pair<int, int>, Ceiling> ceilings;
  bool failed = false;
  for (int seq : c.seqs) {
    for (int head_dim : c.head_dims) {
      Ceiling ceiling;
      if (c.ceiling) {
        ceiling = measure_ceiling(seq, head_dim, c);
        ceilings[{seq, head_dim}] = ceiling;
        if (ceiling.measured) {
          fmt::print(
              "\nS={} D={}: sgemm ceiling {:.1f} GFLOP/s (Q.K^T {:.1f} GFLOP/s in {:.2f} ms, P.V {:.1f} GFLOP/s "
              "in {:.2f} ms, per head)\n",
              seq, head_dim, ceiling.gflops, ceiling.qk_gflops, ceiling.qk_ms, ceiling.pv_gflops, ceiling.pv_ms);
        }
      }
      if (!ceiling.measured) fmt::print("\nS={} D={}: no ceiling\n", seq, head_dim);
      print_header();
      for (DType dtype : c.dtypes) {
        std::vector<int64_t> shape = {c.batch, c.heads, seq, head_dim};
        Tensor q = make_input(dtype, shape, 1), k = make_input(dtype, shape, 2), v = make_input(dtype, shape, 3);
        if (!c.dump.empty()) {
          std::filesystem::path dir =
              std::filesystem::path(c.dump) / fmt::format("{}-S{}-D{}", dtype_name(dtype), seq, head_dim);
          std::filesystem::create_directories(dir);
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
          failed = failed || !r.error.empty();
          print_case(r, ceiling);
          cases.push_back(std::move(r));
        }
      }
    }
  }
  if (!c.json.empty()) write_json(c.json, c, cases, ceilings);
  return failed ? kExitRuntime : kExitOk;
}

}  // namespace attnc::cli
