// attnc compile: a file's mods fused into an attention kernel of one family (tools/attnc/
// CudaKernelPlan.h), emitted as CUDA C++, PTX or cubin. Needs no GPU; PTX and cubin need NVRTC (a
// cubin found in the kernel cache needs nothing).

#include <optional>

#include <fmt/format.h>

#include "compiler/CudaCodegen.h"
#include "compiler/Frontend.h"
#include "compiler/Pipeline.h"
#include "compiler/Signature.h"
#include "runtime/cache/KernelCache.h"
#include "runtime/core/AtomicFile.h"
#include "runtime/core/ModSpec.h"
#include "runtime/core/RuntimeError.h"
#include "runtime/cuda/Architectures.h"
#include "runtime/cuda/CompileThroughCache.h"
#include "runtime/cuda/KernelSource.h"
#include "runtime/cuda/Nvrtc.h"
#include "tools/attnc/CommandLine.h"
#include "tools/attnc/CudaKernelPlan.h"

namespace attnc::cli {

namespace {

struct CompileOptions {
  std::string file, score_mod, mask_mod, arch, emit, out, cache_dir;
  DType dtype = DType::BF16;
  int head_dim = 0, head_dim_v = 0;
  CudaFamily family = CudaFamily::Auto;
  int rows = 1;
  bool check_bounds = false, no_cache = false, trust_shared_cache = false;
  std::vector<std::pair<std::string, DType>> storage;
};

int parse_head_dim(const std::string& text, const char* option) {
  std::optional<int> value = parse_int(text, 1, 1024);
  if (!value) throw UsageError(fmt::format("{} takes a positive head dim, got '{}'", option, text));
  return *value;
}

CompileOptions parse_options(Args args, bool& help) {
  CompileOptions o;
  std::string dtype, head_dim, head_dim_v, family, rows;
  std::vector<std::string> storage;
  const std::string archs = cuda::cuda_architecture_list();
  CommandLine command_line("attnc compile",
                           fmt::format(R"(attnc compile FILE [--score-mod NAME] [--mask-mod NAME]
                     --dtype bf16|fp16 --head-dim D [--head-dim-v D]
                     --arch ARCH --emit ptx|cubin|cuda -o OUT
                     [--family auto|flash|flash_sm90|decode [--rows N]]
                     [--check-bounds] [--storage NAME=DTYPE]...
                     [--no-cache | --cache-dir DIR [--trust-shared-cache]]
ARCH: {})",
                                       archs),
                           R"(Generates the CUDA code of the mods NAME of FILE, fuses it into the attention
kernel of one family for the given input dtype, head dims and GPU architecture,
and writes:
  cuda   the complete translation unit as one self-contained .cu file
  ptx    the PTX NVRTC produces for it
  cubin  the device binary for --arch, through the kernel cache: a kernel
         already cached (by `attnc warmup`, an earlier compile or a run) is
         copied from it, and one compiled now is stored in it for the runtime
The family (--family) is by default the one the runtime runs for queries of
more than 16 rows on ARCH: on sm_90a the Hopper family flash_sm90 (warp-
specialised, TMA and wgmma; bf16/fp16, head dims 64, 128, 192, 256), elsewhere
the flash family. --family flash forces the sm_80 template, flash_sm90 the
Hopper one (sm_90a only), decode the split-KV decode family for --rows query
rows per KV head (GQA group size x q_len; default 1), whose module holds its
split and merge kernels.
No GPU is needed; ptx and cubin need NVRTC (libnvrtc.so.13) unless the cubin
is cached. Parameters are not bound here: their values are arguments of the
compiled kernel. OUT is checked before anything is compiled, and written whole
or not at all.
)",
                           R"(Exit status: 0 on success, 1 when FILE has errors, 2 on usage errors, 3 when a
mod is missing, NVRTC is unavailable or the generated code does not compile.
)");
  CLI::App& app = command_line.app();
  app.add_option("FILE", o.file, "the mod file")->type_name("");
  app.add_option("--score-mod", o.score_mod, "a score_mod of FILE (none: scores unchanged)")->type_name("NAME");
  app.add_option("--mask-mod", o.mask_mod, "a mask_mod of FILE (none: every key kept)")->type_name("NAME");
  app.add_option("--dtype", dtype, "the element type of q, k, v and the output: bf16 or fp16")
      ->type_name("DTYPE")
      ->required();
  app.add_option("--head-dim", head_dim, "the head dim of q and k")->type_name("D")->required();
  app.add_option("--head-dim-v", head_dim_v, "the head dim of v and the output (default: --head-dim)")->type_name("D");
  app.add_option("--arch", o.arch, "the GPU architecture: " + archs)->type_name("ARCH")->required();
  app.add_option("--emit", o.emit, "what to write: ptx, cubin or cuda")->type_name("WHAT")->required();
  app.add_option("-o,--out", o.out, "the output file")->type_name("OUT")->required();
  app.add_option("--family", family, "the kernel family: " + cuda_family_list() + " (default auto)")
      ->type_name("FAMILY");
  app.add_option("--rows", rows, "(decode) query rows per KV head: GQA group x q_len\n(default 1)")->type_name("N");
  app.add_flag("--check-bounds", o.check_bounds, "compile in device-side bounds checking of tensor loads");
  app.add_option("--storage", storage,
                 "the storage type of tensor parameter NAME (default fp32\nfor float, int32 for int, bool for bool "
                 "tensors); e.g.\n--storage slopes=bf16 --storage ids=int64")
      ->type_name("NAME=DTYPE")
      ->allow_extra_args(false);
  CLI::Option* no_cache =
      app.add_flag("--no-cache", o.no_cache, "(cubin) compile with NVRTC, neither reading nor filling\nthe cache");
  app.add_option("--cache-dir", o.cache_dir,
                 "(cubin) the kernel cache directory (default:\n$ATTNC_CACHE_DIR, else $XDG_CACHE_HOME/attnc, else\n"
                 "~/.cache/attnc)")
      ->type_name("DIR")
      ->excludes(no_cache);
  app.add_flag("--trust-shared-cache", o.trust_shared_cache,
               "(cubin) use a cache directory that other users may\nwrite (docs/cli.md)")
      ->excludes(no_cache);
  help = !command_line.parse(args);
  if (help) return o;

  if (o.file.empty()) throw UsageError("no mod file given");
  if (dtype != "bf16" && dtype != "fp16") throw UsageError("--dtype takes bf16 or fp16, got '" + dtype + "'");
  o.dtype = dtype == "fp16" ? DType::F16 : DType::BF16;
  o.head_dim = parse_head_dim(head_dim, "--head-dim");
  o.head_dim_v = head_dim_v.empty() ? o.head_dim : parse_head_dim(head_dim_v, "--head-dim-v");
  if (!cuda::is_cuda_arch(o.arch)) throw UsageError(fmt::format("--arch takes {}, got '{}'", archs, o.arch));
  if (!family.empty()) {
    std::optional<CudaFamily> parsed = parse_cuda_family(family);
    if (!parsed) throw UsageError(fmt::format("--family takes {}, got '{}'", cuda_family_list(), family));
    o.family = *parsed;
  }
  if (!rows.empty()) {
    if (o.family != CudaFamily::Decode) throw UsageError("--rows applies to --family decode only");
    std::optional<int> value = parse_int(rows, 1, 1 << 20);
    if (!value) throw UsageError(fmt::format("--rows takes a positive number of rows, got '{}'", rows));
    o.rows = *value;
  }
  if (o.family == CudaFamily::FlashSm90 && o.arch != "sm_90a") {
    throw UsageError(fmt::format("--family flash_sm90 builds for --arch sm_90a only, not {}", o.arch));
  }
  if (o.emit != "ptx" && o.emit != "cubin" && o.emit != "cuda") {
    throw UsageError("--emit takes ptx, cubin or cuda, got '" + o.emit + "'");
  }
  if (o.emit != "cubin" && (command_line.given("--no-cache") || command_line.given("--cache-dir") ||
                            command_line.given("--trust-shared-cache"))) {
    throw UsageError("--no-cache, --cache-dir and --trust-shared-cache apply to --emit cubin only");
  }
  for (const std::string& binding : storage) {
    size_t eq = binding.find('=');
    std::optional<DType> parsed = eq == std::string::npos ? std::nullopt : parse_dtype(binding.substr(eq + 1));
    if (eq == 0 || !parsed) throw UsageError("--storage takes NAME=DTYPE (e.g. ids=int64), got '" + binding + "'");
    o.storage.emplace_back(binding.substr(0, eq), *parsed);
  }
  return o;
}

// The optimised definition `name` of `module`, which must be of `kind`.
ir::ModDef find_mod(const ir::Module& module, const std::string& file, const std::string& name, dsl::ModKind kind) {
  const ir::ModDef* def = module.find(name);
  const char* wanted = kind == dsl::ModKind::Score ? "score_mod" : "mask_mod";
  if (def == nullptr) {
    std::string names;
    for (const std::string& n : module.names()) names += (names.empty() ? "" : ", ") + n;
    throw RuntimeError(
        fmt::format("'{}' defines no mod named '{}' (it defines: {})", file, name, names.empty() ? "nothing" : names));
  }
  if (def->kind != kind) throw RuntimeError(fmt::format("'{}' in '{}' is not a {}", name, file, wanted));
  return ir::optimize(module, *def);
}

// Each tensor parameter's storage type: --storage where given (checked against the element type),
// else the default.
std::vector<DType> storage_for(const ir::ModDef& def, const CompileOptions& o, std::vector<bool>& used) {
  std::vector<DType> storage;
  for (const ir::ParamDecl& param : def.params) {
    DType chosen = ir::default_storage(param.elem);
    for (size_t i = 0; i < o.storage.size(); ++i) {
      if (o.storage[i].first != param.name) continue;
      used[i] = true;
      DType given = o.storage[i].second;
      bool fits = param.is_tensor() && ((param.elem == ir::Type::Float && dtype_is_float(given)) ||
                                        (param.elem == ir::Type::Int && dtype_is_integer(given)) ||
                                        (param.elem == ir::Type::Bool && dtype_is_boolean(given)));
      if (!fits) {
        throw UsageError(fmt::format("--storage {}={}: parameter '{}' of '{}' is {}{}", param.name, dtype_name(given),
                                     param.name, def.name, param.is_tensor() ? "a tensor of " : "a scalar ",
                                     ir::type_name(param.elem)));
      }
      chosen = given;
    }
    storage.push_back(chosen);
  }
  return storage;
}

// The cubin of `plan` through the kernel cache, as the runtime would load it (the same key and the
// same name-free source); says on `how` where it came from.
std::string cached_cubin(const PlannedCudaKernel& plan, const CompileOptions& o, std::string& how) {
  KernelCacheOptions options;
  options.directory = o.cache_dir;
  options.require_disk = !o.cache_dir.empty();  // a directory asked for by name must be usable
  options.trust_shared_directory = o.trust_shared_cache;
  KernelCache cache(options);
  if (!cache.has_disk()) {
    fmt::print(stderr, "attnc compile: note: compiling without the kernel cache: {}\n",
               cache.disk_unavailable_reason());
  }
  cuda::CudaBinary binary = cuda::compile_through_cache(
      cache, plan.key, plan.entry, [&] { return plan.program(/*annotate_names=*/false); }, plan.nvrtc_options);
  const std::string* nvrtc = binary.key.find("nvrtc");
  std::string where = cache.has_disk() ? "kernel cache " + cache.directory().string() : "kernel cache (memory only)";
  how = fmt::format("NVRTC {}; {} {}{}", nvrtc ? *nvrtc : "?",
                    binary.source == CacheSource::Compiled ? "compiled and stored in the" : "found in the", where,
                    binary.source == CacheSource::Compiled ? "" : ", a cache hit");
  for (const CacheEvent& event : cache.take_events()) {
    if (event.kind == CacheEvent::Kind::DiskError && cache.has_disk()) {
      fmt::print(stderr, "attnc compile: note: kernel cache: {}\n", event.detail);
    }
  }
  return binary.kernel->payload;
}

}  // namespace

int run_compile(Args args) {
  bool help = false;
  CompileOptions o = parse_options(args, help);
  if (help) return kExitOk;
  check_output_path(o.out);

  ir::Module module = ir::load_module_file(o.file);
  std::optional<ir::ModDef> score, mask;
  if (!o.score_mod.empty()) score = find_mod(module, o.file, o.score_mod, dsl::ModKind::Score);
  if (!o.mask_mod.empty()) mask = find_mod(module, o.file, o.mask_mod, dsl::ModKind::Mask);

  std::vector<bool> used(o.storage.size(), false);
  std::vector<DType> score_storage = score ? storage_for(*score, o, used) : std::vector<DType>{};
  std::vector<DType> mask_storage = mask ? storage_for(*mask, o, used) : std::vector<DType>{};
  for (size_t i = 0; i < used.size(); ++i) {
    if (!used[i]) throw UsageError(fmt::format("no selected mod has a parameter named '{}'", o.storage[i].first));
  }

  CudaKernelRequest request;
  request.score = score ? ModSpec{std::make_shared<const ir::ModDef>(std::move(*score)), score_storage} : ModSpec{};
  request.mask = mask ? ModSpec{std::make_shared<const ir::ModDef>(std::move(*mask)), mask_storage} : ModSpec{};
  request.dtype = o.dtype;
  request.head_dim = o.head_dim;
  request.head_dim_v = o.head_dim_v;
  request.arch = o.arch;
  request.check_bounds = o.check_bounds;
  request.family = o.family;
  request.decode_rows = o.rows;
  const PlannedCudaKernel plan = plan_cuda_kernel(request);
  std::string entries;
  for (const std::string& e : plan.entries) entries += (entries.empty() ? "" : ", ") + e;
  const std::string what = fmt::format("{} family ({}), entr{} {}", cuda_family_name(plan.family), plan.layout,
                                       plan.entries.size() == 1 ? "y" : "ies", entries);

  if (o.emit == "cubin" && !o.no_cache) {
    std::string how;
    std::string cubin = cached_cubin(plan, o, how);
    write_file_atomically(o.out, cubin);
    fmt::print("{}: cubin for {}, {}, {} bytes ({})\n", o.out, o.arch, what, cubin.size(), how);
    return kExitOk;
  }
  // Names in comments for readers of --emit cuda; the cache compiles name-free text.
  const cuda::KernelProgram program = plan.program(/*annotate_names=*/true);
  if (o.emit == "cuda") {
    std::string text = cuda::flatten_program(program);
    write_file_atomically(o.out, text);
    fmt::print("{}: CUDA C++ for {}, {}, {} bytes\n", o.out, o.arch, what, text.size());
    return kExitOk;
  }
  cuda::CompiledKernel kernel = cuda::Nvrtc::get().compile(program, plan.nvrtc_options);
  const std::string& bytes = o.emit == "ptx" ? kernel.ptx : std::string(kernel.cubin.begin(), kernel.cubin.end());
  write_file_atomically(o.out, bytes);
  fmt::print("{}: {} for {}, {}, {} bytes (NVRTC {}{})\n", o.out, o.emit, o.arch, what, bytes.size(),
             cuda::Nvrtc::get().version(), o.emit == "cubin" ? "; not cached: --no-cache" : "");
  return kExitOk;
}

}  // namespace attnc::cli
