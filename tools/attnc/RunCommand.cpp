// attnc run: attention with a file's mods over .npy tensors, on the CPU or (--device cuda) a GPU.

#include <charconv>
#include <cmath>
#include <optional>
#include <variant>

#include <fmt/format.h>

#include "compiler/Frontend.h"
#include "runtime/Attention.h"
#include "runtime/core/Mod.h"
#include "runtime/core/Npy.h"
#include "runtime/core/RuntimeError.h"
#include "runtime/cuda/CudaDriver.h"
#include "runtime/cuda/DeviceTensor.h"
#include "runtime/families/flash/FlashCpu.h"
#include "runtime/reference/ReferenceAttention.h"
#include "tools/attnc/Command.h"

namespace attnc::cli {

const char* const kRunHelp = R"(Usage: attnc run FILE [--score-mod NAME] [--mask-mod NAME]
                 --q Q.npy --k K.npy --v V.npy -o OUT.npy
                 [--arg NAME=VALUE | --arg NAME=FILE.npy]... [--scale X]
                 [--lse LSE.npy] [--check-bounds] [--kernel flash|standard]
                 [--device cpu|cuda]

Runs attention with the mods NAME of FILE and writes the output as .npy. On the
CPU (the default device) the kernel is flash: tiled, fp32, on all cores, skipping
tiles the mask removes; --kernel standard runs the reference kernel (materialised
scores, softmax in fp64), slow but the oracle the others are tested against.
With --device cuda the inputs (and tensor arguments) are copied to GPU 0, the
mods are compiled into a flash-attention kernel through the kernel cache
(ATTNC_CACHE_DIR), and the results are copied back. The GPU needs fp16 or bf16
q, k and v of one dtype.

Shapes: q is (B, H, S, D); k is (B, H_kv, S_kv, D) and v is (B, H_kv, S_kv, D_v),
with H a multiple of H_kv (grouped-query attention; H_kv = 1 is multi-query).
Inputs may be fp32, fp16 or bf16 (bf16 as raw '<u2' bits); the output has q's
dtype and shape (B, H, S, D_v). A query row whose keys are all masked gives 0
(and log-sum-exp -inf).

Options:
  --score-mod NAME    a score_mod of FILE, applied to every scaled score
  --mask-mod NAME     a mask_mod of FILE; masked scores are dropped
  --q/--k/--v FILE    the input tensors (.npy)
  -o, --out FILE      where to write the output (.npy)
  --arg NAME=VALUE    binds scalar parameter NAME (int, float, or true/false)
  --arg NAME=F.npy    binds tensor parameter NAME to the array in F.npy
                      (a parameter declared by both mods is bound in both)
  --scale X           the score scale (default 1/sqrt(D))
  --lse FILE          also write the natural log-sum-exp, (B, H, S) fp32
  --check-bounds      fail on an out-of-range tensor index, naming the mod,
                      parameter, index and position, instead of clamping it
  --kernel NAME       flash (the default) or standard (the fp64 reference);
                      CPU only
  --device NAME       cpu (the default) or cuda (needs the CUDA driver,
                      libcuda.so.1, and a GPU)

Exit status: 0 on success, 1 when FILE has errors, 2 on usage errors, 3 when
files, shapes or arguments do not fit.
)";

namespace {

struct RunOptions {
  std::string file, score_mod, mask_mod, q, k, v, out, lse;
  std::vector<std::pair<std::string, std::string>> args;  // NAME, VALUE
  std::optional<float> scale;
  bool check_bounds = false;
  bool flash = true;  // --kernel flash (default) or standard
  bool kernel_given = false;
  bool cuda = false;  // --device cuda
};

float parse_float(const std::string& text, const std::string& what) {
  if (text == "inf" || text == "+inf") return INFINITY;
  if (text == "-inf") return -INFINITY;
  float value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size()) {
    throw UsageError(fmt::format("{}: '{}' is not a number", what, text));
  }
  return value;
}

bool parse_kernel(const std::string& name) {
  if (name != "flash" && name != "standard") {
    throw UsageError("--kernel takes 'flash' or 'standard', got '" + name + "'");
  }
  return name == "flash";
}

bool parse_device(const std::string& name) {
  if (name != "cpu" && name != "cuda") throw UsageError("--device takes 'cpu' or 'cuda', got '" + name + "'");
  return name == "cuda";
}

RunOptions parse_options(Args args) {
  RunOptions o;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--score-mod")
      o.score_mod = option_value(args, i);
    else if (arg == "--mask-mod")
      o.mask_mod = option_value(args, i);
    else if (arg == "--q")
      o.q = option_value(args, i);
    else if (arg == "--k")
      o.k = option_value(args, i);
    else if (arg == "--v")
      o.v = option_value(args, i);
    else if (arg == "-o" || arg == "--out")
      o.out = option_value(args, i);
    else if (arg == "--lse")
      o.lse = option_value(args, i);
    else if (arg == "--check-bounds")
      o.check_bounds = true;
    else if (arg == "--kernel")
      o.flash = parse_kernel(option_value(args, i)), o.kernel_given = true;
    else if (arg == "--device")
      o.cuda = parse_device(option_value(args, i));
    else if (arg == "--scale")
      o.scale = parse_float(option_value(args, i), "--scale");
    else if (arg == "--arg") {
      const std::string& binding = option_value(args, i);
      size_t eq = binding.find('=');
      if (eq == std::string::npos || eq == 0) throw UsageError("--arg takes NAME=VALUE, got '" + binding + "'");
      o.args.emplace_back(binding.substr(0, eq), binding.substr(eq + 1));
    } else if (arg.starts_with("-")) {
      throw UsageError("unknown option '" + arg + "'");
    } else if (o.file.empty()) {
      o.file = arg;
    } else {
      throw UsageError("more than one mod file given ('" + o.file + "' and '" + arg + "')");
    }
  }
  if (o.file.empty()) throw UsageError("no mod file given");
  if (o.q.empty() || o.k.empty() || o.v.empty()) throw UsageError("--q, --k and --v are required");
  if (o.out.empty()) throw UsageError("-o OUT.npy is required");
  if (o.cuda && o.kernel_given) throw UsageError("--kernel chooses a CPU kernel; it does not go with --device cuda");
  return o;
}

// Binds NAME=VALUE in `mod` if the mod declares NAME; returns whether it did.
bool bind_argument(Mod& mod, const std::string& name, const std::string& value) {
  std::optional<uint32_t> index = mod.def().find_param(name);
  if (!index) return false;
  const ir::ParamDecl& param = mod.def().params[*index];
  if (param.is_tensor()) {
    if (!value.ends_with(".npy")) {
      throw UsageError(fmt::format("parameter '{}' is a tensor; pass it as --arg {}=FILE.npy", name, name));
    }
    mod.bind(name, read_npy(value));
    return true;
  }
  std::string what = "--arg " + name;
  switch (param.elem) {
    case ir::Type::Int: {
      int64_t parsed = 0;
      auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), parsed);
      if (error != std::errc() || end != value.data() + value.size()) {
        throw UsageError(fmt::format("{}: '{}' is not an integer (the parameter is an int)", what, value));
      }
      mod.bind(name, parsed);
      break;
    }
    case ir::Type::Float: mod.bind(name, parse_float(value, what)); break;
    case ir::Type::Bool:
      if (value != "true" && value != "false") throw UsageError(what + ": a bool is 'true' or 'false'");
      mod.bind(name, value == "true");
      break;
    default: break;
  }
  return true;
}

// A copy of `mod` whose tensor arguments live on the GPU.
Mod with_device_tensors(const Mod& mod) {
  Mod copy = mod;
  for (size_t i = 0; i < mod.def().params.size(); ++i) {
    const auto& argument = mod.argument(i);
    if (argument) {
      if (const Tensor* t = std::get_if<Tensor>(&*argument)) copy.bind(mod.def().params[i].name, cuda::to_device(*t));
    }
  }
  return copy;
}

// Copies the inputs to GPU 0, runs attention there and copies `out` (and `lse`) back.
void run_on_gpu(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out, const AttentionOptions& options,
                const std::optional<Mod>& score_mod, const std::optional<Mod>& mask_mod, std::optional<Tensor>& lse) {
  cuda::CudaDriver& driver = cuda::CudaDriver::get();  // "no CUDA driver (libcuda.so.1) on this machine"
  if (driver.device_count() == 0) throw RuntimeError("the CUDA driver sees no GPU on this machine");
  driver.use_device(0);
  if (q.dtype() != DType::F16 && q.dtype() != DType::BF16) {
    throw RuntimeError(fmt::format("--device cuda needs fp16 or bf16 inputs; q is {}", dtype_name(q.dtype())));
  }
  std::optional<Mod> score_dev, mask_dev;
  if (score_mod) score_dev = with_device_tensors(*score_mod);
  if (mask_mod) mask_dev = with_device_tensors(*mask_mod);
  AttentionOptions device_options = options;
  device_options.score_mod = score_dev ? &*score_dev : nullptr;
  device_options.mask_mod = mask_dev ? &*mask_dev : nullptr;
  Tensor device_out = cuda::empty_device_tensor(out.dtype(), out.shape());
  Tensor device_lse;
  if (lse) device_lse = cuda::empty_device_tensor(DType::F32, lse->shape());
  attention(cuda::to_device(q), cuda::to_device(k), cuda::to_device(v), device_out, device_options,
            lse ? &device_lse : nullptr);
  out = cuda::to_host(device_out);
  if (lse) lse = cuda::to_host(device_lse);
}

}  // namespace

int run_run(Args args) {
  RunOptions o = parse_options(args);
  ir::Module module = ir::load_module_file(o.file);

  std::optional<Mod> score_mod, mask_mod;
  if (!o.score_mod.empty()) score_mod = Mod::from_module(module, o.score_mod);
  if (!o.mask_mod.empty()) mask_mod = Mod::from_module(module, o.mask_mod);
  for (const auto& [name, value] : o.args) {
    bool bound = false;
    if (score_mod) bound = bind_argument(*score_mod, name, value) || bound;
    if (mask_mod) bound = bind_argument(*mask_mod, name, value) || bound;
    if (!bound) throw UsageError(fmt::format("no selected mod has a parameter named '{}'", name));
  }

  Tensor q = read_npy(o.q), k = read_npy(o.k), v = read_npy(o.v);
  AttentionOptions options;
  options.score_mod = score_mod ? &*score_mod : nullptr;
  options.mask_mod = mask_mod ? &*mask_mod : nullptr;
  options.scale = o.scale;
  options.check_bounds = o.check_bounds;
  if (q.rank() != 4 || v.rank() != 4) throw RuntimeError("q and v must have rank 4: (B, H, S, D)");
  Tensor out = Tensor::empty(q.dtype(), {q.shape()[0], q.shape()[1], q.shape()[2], v.shape()[3]});
  std::optional<Tensor> lse;
  if (!o.lse.empty()) lse = Tensor::empty(DType::F32, {q.shape()[0], q.shape()[1], q.shape()[2]});
  if (o.cuda) {
    run_on_gpu(q, k, v, out, options, score_mod, mask_mod, lse);
  } else if (o.flash) {
    flash_attention(q, k, v, out, options, lse ? &*lse : nullptr);
  } else {
    standard_attention(q, k, v, out, options, lse ? &*lse : nullptr);
  }
  write_npy(o.out, out);
  if (lse) write_npy(o.lse, *lse);
  return kExitOk;
}

}  // namespace attnc::cli
