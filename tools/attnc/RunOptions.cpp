#include "tools/attnc/RunOptions.h"

#include <cfloat>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <limits>

#include <fmt/format.h>

#include "tools/attnc/CommandLine.h"

namespace attnc::cli {

namespace {

const char* const kUsage = R"(attnc run FILE [--score-mod NAME] [--mask-mod NAME]
                 --q Q.npy --k K.npy --v V.npy -o OUT.npy
                 [--arg NAME=VALUE | --arg NAME=FILE.npy]... [--scale X]
                 [--mask MASK.npy] [--q-offset N] [--lse LSE.npy]
                 [--dtype fp32|fp16|bf16] [--check-bounds]
                 [--kernel flash|standard|decode|memory-efficient|ring]
                 [--block-size N] [--paged PAGE_SIZE [--seed N]]
                 [--device cpu|cuda] [--trust-shared-cache]
       attnc run --kernel linear [--causal] [--mask MASK.npy] [--q-offset N]
                 --q Q.npy --k K.npy --v V.npy -o OUT.npy [--dtype ...] [--device cpu|cuda]
       mpirun -np P attnc run FILE ... --kernel ring)";

const char* const kDescription = R"(Runs attention with the mods NAME of FILE and writes the output as .npy. On the
CPU (the default device) the kernel is flash: tiled, fp32, on all cores, skipping
tiles the mask removes. --kernel chooses another CPU kernel:
  standard          the reference (materialised scores, softmax in fp64): slow,
                    the oracle the others are tested against
  decode            the split-KV decode family, for at most 16 query rows
  memory-efficient  block-wise online softmax, --block-size N rows and columns
                    per block (default 512)
  linear            softmax-free linear attention, phi(x) = elu(x) + 1, no mods
                    and no FILE; --causal for causal (top-left aligned)
  ring              ring attention over MPI, under `mpirun -np P`: rank 0 reads
                    the inputs, scatters zig-zag shards, gathers the output and
                    writes it; the other ranks read FILE and the mods' tensors
With --device cuda the inputs (and tensor arguments) are copied to GPU 0 and the
runtime picks the kernel (decode for at most 16 query rows, flash otherwise;
--kernel linear runs the linear family), compiled through the kernel cache
(ATTNC_CACHE_DIR), and the results are copied back. The GPU's softmax kernels
need fp16 or bf16 q, k and v of one dtype.

--paged PAGE_SIZE (16, 32, 64 or 128) appends k and v to a paged KV cache whose
block table is a random permutation of its pages (from --seed N; the seed and
the table are printed on stderr) and runs the decode family through the table,
on the CPU or with --device cuda; the output equals the contiguous path's.

Queries sit at positions q_offset + i (--q-offset, default 0): the mods see that
q_idx, and causal linear attention lets query i see keys j <= q_offset + i.
--mask MASK.npy (bool or uint8, broadcastable to (B, H, S, S_kv), true keeps) is
anded with --mask-mod; with --kernel linear it masks keys, and its S axis must
have extent 1.

Shapes: q is (B, H, S, D); k is (B, H_kv, S_kv, D) and v is (B, H_kv, S_kv, D_v),
with H a multiple of H_kv (grouped-query attention; H_kv = 1 is multi-query).
Inputs may be fp32 ('<f4'), fp16 ('<f2') or bf16 (raw bits as '<u2', read only
with --dtype bf16); the output has q's dtype and shape (B, H, S, D_v). A query
row whose keys are all masked gives 0 (and log-sum-exp -inf). Every output
location is checked before anything runs, and outputs appear whole or not at
all.
)";

const char* const kNotes = R"(Exit status: 0 on success, 1 when FILE has errors, 2 on usage errors, 3 when
files, shapes or arguments do not fit.
)";

RunKernel parse_kernel(const std::string& name) {
  for (RunKernel kernel : {RunKernel::Flash, RunKernel::Standard, RunKernel::Decode, RunKernel::MemoryEfficient,
                           RunKernel::Linear, RunKernel::Ring}) {
    if (name == run_kernel_name(kernel)) return kernel;
  }
  throw UsageError("--kernel takes flash, standard, decode, memory-efficient, linear or ring, got '" + name + "'");
}

std::optional<DType> parse_input_dtype(const std::string& name) {
  if (name == "fp32") return DType::F32;
  if (name == "fp16") return DType::F16;
  if (name == "bf16") return DType::BF16;
  throw UsageError("--dtype takes fp32, fp16 or bf16, got '" + name + "'");
}

// The options that do not go with the kernel, the device or each other, each a UsageError naming
// both sides. `given` says whether an option was on the command line.
template <typename Given>
void check_combinations(const RunOptions& o, const Given& given) {
  const std::string kernel = fmt::format("--kernel {}", run_kernel_name(o.kernel));
  auto refuse = [&](const char* option, const std::string& why) {
    if (given(option)) throw UsageError(fmt::format("{} does not go with {}: {}", option, kernel, why));
  };
  if (o.kernel == RunKernel::Linear) {
    if (!o.file.empty()) throw UsageError("--kernel linear takes no mods, so no mod file: drop '" + o.file + "'");
    const std::string no_mods = "linear attention takes no mods";
    for (const char* option : {"--score-mod", "--mask-mod", "--arg", "--check-bounds"}) refuse(option, no_mods);
    refuse("--scale", "linear attention has no softmax, so no score scale");
    refuse("--lse", "linear attention has no softmax, so no log-sum-exp");
    refuse("--paged", "the paged path runs the decode family");
  } else {
    if (o.file.empty()) throw UsageError("no mod file given (only --kernel linear runs without one)");
    refuse("--causal", "only --kernel linear takes it (softmax kernels take a causal mask mod)");
  }
  if (o.kernel != RunKernel::MemoryEfficient) {
    refuse("--block-size", "only --kernel memory-efficient works in blocks of a chosen size");
  }
  if (o.page_size != 0 && o.kernel_given && o.kernel != RunKernel::Decode) {
    throw UsageError(
        fmt::format("--paged does not go with {}: the paged path runs the decode family "
                    "(leave --kernel out, or pass --kernel decode)",
                    kernel));
  }
  if (o.page_size == 0 && given("--seed")) throw UsageError("--seed chooses --paged's block table; pass --paged too");
  if (o.cuda && o.kernel_given && o.kernel != RunKernel::Linear) {
    throw UsageError(
        fmt::format("{} is a CPU kernel; with --device cuda the runtime picks the kernel (only "
                    "--kernel linear runs on cuda)",
                    kernel));
  }
}

}  // namespace

const char* run_kernel_name(RunKernel kernel) {
  switch (kernel) {
    case RunKernel::Flash: return "flash";
    case RunKernel::Standard: return "standard";
    case RunKernel::Decode: return "decode";
    case RunKernel::MemoryEfficient: return "memory-efficient";
    case RunKernel::Linear: return "linear";
    case RunKernel::Ring: return "ring";
  }
  return "?";
}

float parse_run_float(const std::string& text, const std::string& what) {
  if (text == "inf" || text == "+inf") return INFINITY;
  if (text == "-inf") return -INFINITY;
  double value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (end != text.data() + text.size() || (error != std::errc() && error != std::errc::result_out_of_range)) {
    throw UsageError(fmt::format("{}: '{}' is not a number", what, text));
  }
  // Beyond float's largest, or so small it would silently become 0.
  if (error == std::errc::result_out_of_range || std::fabs(value) > FLT_MAX ||
      (value != 0 && std::fabs(value) < double(FLT_TRUE_MIN) / 2)) {
    throw UsageError(fmt::format("{}: '{}' is out of range for a float (magnitudes from {:g} to {:g}, or 0)", what,
                                 text, FLT_TRUE_MIN, FLT_MAX));
  }
  return static_cast<float>(value);
}

std::optional<RunOptions> parse_run_options(Args args) {
  RunOptions o;
  std::string scale, kernel = "flash", device = "cpu", dtype, q_offset, block_size, paged, seed;
  std::vector<std::string> bindings;
  CommandLine command_line("attnc run", kUsage, kDescription, kNotes);
  CLI::App& app = command_line.app();
  app.add_option("FILE", o.file, "the mod file (none with --kernel linear)")->type_name("");
  app.add_option("--score-mod", o.score_mod, "a score_mod of FILE, applied to every scaled score")->type_name("NAME");
  app.add_option("--mask-mod", o.mask_mod, "a mask_mod of FILE; masked scores are dropped")->type_name("NAME");
  app.add_option("--q", o.q, "queries (.npy), (B, H, S, D)")->type_name("FILE")->required();
  app.add_option("--k", o.k, "keys (.npy), (B, H_kv, S_kv, D)")->type_name("FILE")->required();
  app.add_option("--v", o.v, "values (.npy), (B, H_kv, S_kv, D_v)")->type_name("FILE")->required();
  app.add_option("-o,--out", o.out, "where to write the output (.npy)")->type_name("FILE")->required();
  app.add_option("--arg", bindings,
                 "binds scalar parameter NAME (int, float, or true/false),\nor tensor parameter NAME to the array in "
                 "F.npy; a\nparameter declared by both mods is bound in both;\nrepeat for each parameter")
      ->type_name("NAME=VALUE|NAME=F.npy")
      ->allow_extra_args(false);
  app.add_option("--scale", scale, "the score scale (default 1/sqrt(D))")->type_name("X");
  app.add_option("--mask", o.mask,
                 "a boolean mask (bool or uint8 .npy, broadcastable to\n(B, H, S, S_kv); true keeps), anded with "
                 "--mask-mod;\nwith --kernel linear a key mask (S axis of extent 1)")
      ->type_name("FILE");
  app.add_option("--q-offset", q_offset,
                 "the position of the first query row (default 0): mods\nsee q_idx = N + row, on every kernel and "
                 "device")
      ->type_name("N");
  app.add_option("--lse", o.lse, "also write the natural log-sum-exp, (B, H, S) fp32")->type_name("FILE");
  app.add_option("--dtype", dtype,
                 "what q, k and v must hold: fp32, fp16 or bf16 (bf16 is\nread from raw '<u2' bits, as `attnc bench "
                 "--dump`\nwrites it); default: whatever each file holds")
      ->type_name("DTYPE");
  app.add_flag("--check-bounds", o.check_bounds,
               "fail on an out-of-range tensor index, naming the mod,\nparameter, index and position, instead of "
               "clamping it");
  app.add_option("--kernel", kernel,
                 "flash (the CPU's default), standard (the fp64\nreference), decode (at most 16 query rows),\n"
                 "memory-efficient, linear (also on cuda) or ring\n(under mpirun)")
      ->type_name("NAME");
  app.add_option("--block-size", block_size,
                 "with --kernel memory-efficient: rows and columns of\na block (default 512)")
      ->type_name("N");
  app.add_flag("--causal", o.causal, "with --kernel linear: query i sees keys j <= q_offset + i");
  app.add_option("--paged", paged,
                 "run through a paged KV cache of PAGE_SIZE-token pages\n(16, 32, 64 or 128) in a random order; "
                 "the decode\nfamily reads them in place")
      ->type_name("PAGE_SIZE");
  app.add_option("--seed", seed, fmt::format("with --paged: the block table's seed (default {})", kRunDefaultSeed))
      ->type_name("N");
  app.add_option("--device", device, "cpu (the default) or cuda (needs the CUDA driver,\nlibcuda.so.1, and a GPU)")
      ->type_name("NAME");
  app.add_flag("--trust-shared-cache", o.trust_shared_cache,
               "with --device cuda: use a kernel cache directory that\nother users may write (docs/cli.md)");
  if (!command_line.parse(args)) return std::nullopt;

  o.kernel = parse_kernel(kernel);
  o.kernel_given = command_line.given("--kernel");
  if (device != "cpu" && device != "cuda") throw UsageError("--device takes 'cpu' or 'cuda', got '" + device + "'");
  o.cuda = device == "cuda";
  if (!scale.empty()) o.scale = parse_run_float(scale, "--scale");
  if (!dtype.empty()) o.dtype = parse_input_dtype(dtype);
  if (!q_offset.empty()) {
    std::optional<int> value = parse_int(q_offset, 0, std::numeric_limits<int32_t>::max());
    if (!value) throw UsageError("--q-offset takes a position from 0 to 2147483647, got '" + q_offset + "'");
    o.q_offset = *value;
  }
  if (!block_size.empty()) {
    std::optional<int> value = parse_int(block_size, 1, 1 << 16);
    if (!value) throw UsageError("--block-size takes a number of rows from 1 to 65536, got '" + block_size + "'");
    o.block_size = *value;
  }
  if (!paged.empty()) {
    std::optional<int> value = parse_int(paged, 16, 128);
    if (!value || (*value != 16 && *value != 32 && *value != 64 && *value != 128)) {
      throw UsageError("--paged takes a page size of 16, 32, 64 or 128 tokens, got '" + paged + "'");
    }
    o.page_size = *value;
  }
  if (!seed.empty()) {
    std::optional<int> value = parse_int(seed, 0, std::numeric_limits<int>::max());
    if (!value) throw UsageError("--seed takes a number from 0 to 2147483647, got '" + seed + "'");
    o.seed = static_cast<uint32_t>(*value);
  }
  check_combinations(o, [&](const char* option) { return command_line.given(option); });
  for (const std::string& binding : bindings) {
    size_t eq = binding.find('=');
    if (eq == std::string::npos || eq == 0) throw UsageError("--arg takes NAME=VALUE, got '" + binding + "'");
    o.args.emplace_back(binding.substr(0, eq), binding.substr(eq + 1));
  }
  if (!o.lse.empty() && std::filesystem::weakly_canonical(o.lse) == std::filesystem::weakly_canonical(o.out)) {
    throw UsageError("-o and --lse name the same file '" + o.out + "'");
  }
  return o;
}

}  // namespace attnc::cli
