// attnc compile: a file's mods fused into the attention kernel, emitted as CUDA C++, PTX or cubin.
// Needs no GPU; PTX and cubin need NVRTC.

#include <charconv>
#include <fstream>
#include <optional>

#include <fmt/format.h>

#include "compiler/CudaCodegen.h"
#include "compiler/Frontend.h"
#include "compiler/Pipeline.h"
#include "compiler/Signature.h"
#include "runtime/core/ModSpec.h"
#include "runtime/core/RuntimeError.h"
#include "runtime/cuda/KernelSource.h"
#include "runtime/cuda/Nvrtc.h"
#include "runtime/families/flash/FlashSource.h"
#include "tools/attnc/Command.h"

namespace attnc::cli {

const char* const kCompileHelp = R"(Usage: attnc compile FILE [--score-mod NAME] [--mask-mod NAME]
                     --dtype bf16|fp16 --head-dim D [--head-dim-v D]
                     --arch sm_80|sm_86|sm_89|sm_90 --emit ptx|cubin|cuda -o OUT
                     [--check-bounds] [--storage NAME=DTYPE]...

Generates the CUDA code of the mods NAME of FILE, fuses it into the attention
kernel for the given input dtype, head dims and GPU architecture, and writes:
  cuda   the complete translation unit as one self-contained .cu file
  ptx    the PTX NVRTC produces for it
  cubin  the device binary for --arch
No GPU is needed; ptx and cubin need NVRTC (libnvrtc.so.13). Parameters are
not bound here: their values are arguments of the compiled kernel.

Options:
  --score-mod NAME     a score_mod of FILE (none: scores unchanged)
  --mask-mod NAME      a mask_mod of FILE (none: every key kept)
  --dtype bf16|fp16    the element type of q, k, v and the output (required)
  --head-dim D         the head dim of q and k (required)
  --head-dim-v D       the head dim of v and the output (default: --head-dim)
  --arch ARCH          sm_80, sm_86, sm_89 or sm_90 (required)
  --emit ptx|cubin|cuda  what to write (required)
  -o, --out OUT        the output file (required)
  --check-bounds       compile in device-side bounds checking of tensor loads
  --storage NAME=DTYPE the storage type of tensor parameter NAME (default fp32
                       for float, int32 for int, bool for bool tensors); e.g.
                       --storage slopes=bf16 --storage ids=int64

Exit status: 0 on success, 1 when FILE has errors, 2 on usage errors, 3 when a
mod is missing, NVRTC is unavailable or the generated code does not compile.
)";

namespace {

struct CompileOptions {
  std::string file, score_mod, mask_mod, dtype, arch, emit, out;
  std::optional<int> head_dim, head_dim_v;
  bool check_bounds = false;
  std::vector<std::pair<std::string, DType>> storage;
};

int parse_head_dim(const std::string& text, const char* option) {
  int value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || value <= 0 || value > 1024) {
    throw UsageError(fmt::format("{} takes a positive head dim, got '{}'", option, text));
  }
  return value;
}

CompileOptions parse_options(Args args) {
  CompileOptions o;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--score-mod")
      o.score_mod = option_value(args, i);
    else if (arg == "--mask-mod")
      o.mask_mod = option_value(args, i);
    else if (arg == "--dtype")
      o.dtype = option_value(args, i);
    else if (arg == "--head-dim")
      o.head_dim = parse_head_dim(option_value(args, i), "--head-dim");
    else if (arg == "--head-dim-v")
      o.head_dim_v = parse_head_dim(option_value(args, i), "--head-dim-v");
    else if (arg == "--arch")
      o.arch = option_value(args, i);
    else if (arg == "--emit")
      o.emit = option_value(args, i);
    else if (arg == "-o" || arg == "--out")
      o.out = option_value(args, i);
    else if (arg == "--check-bounds")
      o.check_bounds = true;
    else if (arg == "--storage") {
      const std::string& binding = option_value(args, i);
      size_t eq = binding.find('=');
      std::optional<DType> dtype = eq == std::string::npos ? std::nullopt : parse_dtype(binding.substr(eq + 1));
      if (eq == 0 || !dtype) throw UsageError("--storage takes NAME=DTYPE (e.g. ids=int64), got '" + binding + "'");
      o.storage.emplace_back(binding.substr(0, eq), *dtype);
    } else if (arg.starts_with("-")) {
      throw UsageError("unknown option '" + arg + "'");
    } else if (o.file.empty()) {
      o.file = arg;
    } else {
      throw UsageError("more than one mod file given ('" + o.file + "' and '" + arg + "')");
    }
  }
  if (o.file.empty()) throw UsageError("no mod file given");
  if (o.dtype != "bf16" && o.dtype != "fp16") throw UsageError("--dtype bf16 or --dtype fp16 is required");
  if (!o.head_dim) throw UsageError("--head-dim D is required");
  if (o.arch != "sm_80" && o.arch != "sm_86" && o.arch != "sm_89" && o.arch != "sm_90") {
    throw UsageError(o.arch.empty() ? "--arch is required (sm_80, sm_86, sm_89 or sm_90)"
                                    : "--arch takes sm_80, sm_86, sm_89 or sm_90, got '" + o.arch + "'");
  }
  if (o.emit != "ptx" && o.emit != "cubin" && o.emit != "cuda") throw UsageError("--emit takes ptx, cubin or cuda");
  if (o.out.empty()) throw UsageError("-o OUT is required");
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

void write_file(const std::string& path, const char* data, size_t size) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(data, static_cast<std::streamsize>(size));
  out.close();
  if (!out) throw RuntimeError(fmt::format("cannot write '{}'", path));
}

}  // namespace

int run_compile(Args args) {
  CompileOptions o = parse_options(args);
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

  flash::FlashSpec spec;
  spec.score = score ? ModSpec{std::make_shared<const ir::ModDef>(std::move(*score)), score_storage} : ModSpec{};
  spec.mask = mask ? ModSpec{std::make_shared<const ir::ModDef>(std::move(*mask)), mask_storage} : ModSpec{};
  spec.dtype = o.dtype == "fp16" ? DType::F16 : DType::BF16;
  spec.head_dim = *o.head_dim;
  spec.head_dim_v = o.head_dim_v.value_or(*o.head_dim);
  spec.arch = o.arch;
  spec.check_bounds = o.check_bounds;
  const flash::FlashPlan plan = flash::plan_flash_kernel(spec);
  // Names in comments for readers of --emit cuda; the cache compiles name-free text.
  const cuda::KernelProgram program = flash::flash_program(plan, flash::flash_mods(plan.spec, /*annotate_names=*/true));
  const std::string entry = flash::kEntry;

  if (o.emit == "cuda") {
    std::string text = cuda::flatten_program(program);
    write_file(o.out, text.data(), text.size());
    fmt::print("{}: CUDA C++ for {}, entry {}, {} bytes\n", o.out, o.arch, entry, text.size());
    return kExitOk;
  }
  cuda::CompiledKernel kernel = cuda::Nvrtc::get().compile(program, flash::flash_nvrtc_options(plan.spec));
  if (o.emit == "ptx") {
    write_file(o.out, kernel.ptx.data(), kernel.ptx.size());
  } else {
    write_file(o.out, kernel.cubin.data(), kernel.cubin.size());
  }
  fmt::print("{}: {} for {}, entry {}, {} bytes (NVRTC {})\n", o.out, o.emit, o.arch, entry,
             o.emit == "ptx" ? kernel.ptx.size() : kernel.cubin.size(), cuda::Nvrtc::get().version());
  return kExitOk;
}

}  // namespace attnc::cli
