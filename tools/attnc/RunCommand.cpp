// attnc run: attention with a file's mods over .npy tensors, on the CPU or (--device cuda) a GPU.

#include <cfloat>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <variant>

#include <fmt/format.h>

#include "compiler/Frontend.h"
#include "runtime/Attention.h"
#include "runtime/core/AtomicFile.h"
#include "runtime/core/AttentionChecks.h"
#include "runtime/core/Mod.h"
#include "runtime/core/Npy.h"
#include "runtime/core/RuntimeError.h"
#include "runtime/cuda/CudaDriver.h"
#include "runtime/cuda/DeviceTensor.h"
#include "runtime/families/flash/FlashCpu.h"
#include "runtime/reference/ReferenceAttention.h"
#include "tools/attnc/CommandLine.h"

namespace attnc::cli {

namespace {

const char* const kUsage = R"(attnc run FILE [--score-mod NAME] [--mask-mod NAME]
                 --q Q.npy --k K.npy --v V.npy -o OUT.npy
                 [--arg NAME=VALUE | --arg NAME=FILE.npy]... [--scale X]
                 [--lse LSE.npy] [--dtype fp32|fp16|bf16] [--check-bounds]
                 [--kernel flash|standard] [--device cpu|cuda] [--trust-shared-cache])";

const char* const kDescription = R"(Runs attention with the mods NAME of FILE and writes the output as .npy. On the
CPU (the default device) the kernel is flash: tiled, fp32, on all cores, skipping
tiles the mask removes; --kernel standard runs the reference kernel (materialised
scores, softmax in fp64), slow but the oracle the others are tested against.
With --device cuda the inputs (and tensor arguments) are copied to GPU 0, the
mods are compiled into a flash-attention kernel through the kernel cache
(ATTNC_CACHE_DIR), and the results are copied back. The GPU needs fp16 or bf16
q, k and v of one dtype.

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

struct RunOptions {
  std::string file, score_mod, mask_mod, q, k, v, out, lse;
  std::vector<std::pair<std::string, std::string>> args;  // NAME, VALUE
  std::optional<float> scale;
  std::optional<DType> dtype;  // --dtype: what q, k and v must hold
  bool check_bounds = false;
  bool flash = true;  // --kernel flash (default) or standard
  bool cuda = false;  // --device cuda
  bool trust_shared_cache = false;
};

// A float from the command line: a number within float's range ("inf" and "-inf" too).
float parse_float(const std::string& text, const std::string& what) {
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

std::optional<DType> parse_input_dtype(const std::string& name) {
  if (name == "fp32") return DType::F32;
  if (name == "fp16") return DType::F16;
  if (name == "bf16") return DType::BF16;
  throw UsageError("--dtype takes fp32, fp16 or bf16, got '" + name + "'");
}

RunOptions parse_options(Args args, bool& help) {
  RunOptions o;
  std::string scale, kernel = "flash", device = "cpu", dtype;
  std::vector<std::string> bindings;
  CommandLine command_line("attnc run", kUsage, kDescription, kNotes);
  CLI::App& app = command_line.app();
  app.add_option("FILE", o.file, "the mod file")->type_name("");
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
  app.add_option("--lse", o.lse, "also write the natural log-sum-exp, (B, H, S) fp32")->type_name("FILE");
  app.add_option("--dtype", dtype,
                 "what q, k and v must hold: fp32, fp16 or bf16 (bf16 is\nread from raw '<u2' bits, as `attnc bench "
                 "--dump`\nwrites it); default: whatever each file holds")
      ->type_name("DTYPE");
  app.add_flag("--check-bounds", o.check_bounds,
               "fail on an out-of-range tensor index, naming the mod,\nparameter, index and position, instead of "
               "clamping it");
  app.add_option("--kernel", kernel, "flash (the default) or standard (the fp64 reference);\nCPU only")
      ->type_name("NAME");
  app.add_option("--device", device, "cpu (the default) or cuda (needs the CUDA driver,\nlibcuda.so.1, and a GPU)")
      ->type_name("NAME");
  app.add_flag("--trust-shared-cache", o.trust_shared_cache,
               "with --device cuda: use a kernel cache directory that\nother users may write (docs/cli.md)");
  help = !command_line.parse(args);
  if (help) return o;

  if (o.file.empty()) throw UsageError("no mod file given");
  if (kernel != "flash" && kernel != "standard") {
    throw UsageError("--kernel takes 'flash' or 'standard', got '" + kernel + "'");
  }
  if (device != "cpu" && device != "cuda") throw UsageError("--device takes 'cpu' or 'cuda', got '" + device + "'");
  o.flash = kernel == "flash";
  o.cuda = device == "cuda";
  if (o.cuda && command_line.given("--kernel")) {
    throw UsageError("--kernel chooses a CPU kernel; it does not go with --device cuda");
  }
  if (!scale.empty()) o.scale = parse_float(scale, "--scale");
  if (!dtype.empty()) o.dtype = parse_input_dtype(dtype);
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
      if (end != value.data() + value.size() || (error != std::errc() && error != std::errc::result_out_of_range)) {
        throw UsageError(fmt::format("{}: '{}' is not an integer (the parameter is an int)", what, value));
      }
      if (error == std::errc::result_out_of_range) {
        throw UsageError(fmt::format("{}: '{}' does not fit a 32-bit int", what, value));
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

void require_bound(const std::optional<Mod>& mod) {
  if (!mod) return;
  std::vector<std::string> unbound = mod->unbound_params();
  if (unbound.empty()) return;
  std::string how;
  for (const std::string& name : unbound) how += fmt::format(" --arg {}=...", name);
  throw RuntimeError(fmt::format("{}: parameter{} {} not bound; pass{}", mod->describe(), unbound.size() > 1 ? "s" : "",
                                 fmt::join(unbound, ", "), how));
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

// The kernels name themselves in their messages ("flash_attention: mod 'm': index 3 is out of
// range ...") for callers of the library; a user of `attnc run` called none of them.
std::string in_user_terms(const std::string& message) {
  for (const char* function : {"flash_attention (cuda): ", "flash_attention: ", "standard_attention: "}) {
    if (message.starts_with(function)) return message.substr(std::strlen(function));
  }
  return message;
}

}  // namespace

int run_run(Args args) {
  bool help = false;
  RunOptions o = parse_options(args, help);
  if (help) return kExitOk;
  // Where the results go is checked before anything is read or computed.
  check_output_path(o.out);
  if (!o.lse.empty()) check_output_path(o.lse);
  if (o.trust_shared_cache) ::setenv("ATTNC_CACHE_TRUST_SHARED", "1", 1);  // read by the runtime's kernel cache

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
  require_bound(score_mod);
  require_bound(mask_mod);

  Tensor q = read_npy(o.q, o.dtype), k = read_npy(o.k, o.dtype), v = read_npy(o.v, o.dtype);
  AttentionOptions options;
  options.score_mod = score_mod ? &*score_mod : nullptr;
  options.mask_mod = mask_mod ? &*mask_mod : nullptr;
  options.scale = o.scale;
  options.check_bounds = o.check_bounds;
  // The runtime's own checks, without an entry point's name: they name each tensor and its shape.
  check_attention_inputs("", q, v);
  Tensor out = Tensor::empty(q.dtype(), attention_out_shape(q, v));
  std::optional<Tensor> lse;
  if (!o.lse.empty()) lse = Tensor::empty(DType::F32, {q.shape()[0], q.shape()[1], q.shape()[2]});
  check_attention_args("", q, k, v, out, options, lse ? &*lse : nullptr);
  try {
    if (o.cuda) {
      run_on_gpu(q, k, v, out, options, score_mod, mask_mod, lse);
    } else if (o.flash) {
      flash_attention(q, k, v, out, options, lse ? &*lse : nullptr);
    } else {
      standard_attention(q, k, v, out, options, lse ? &*lse : nullptr);
    }
  } catch (const RuntimeError& e) {
    throw RuntimeError(in_user_terms(e.what()));
  }
  // Both outputs are written before either replaces anything: the set appears whole or not at all.
  std::vector<AtomicFile> outputs;
  outputs.emplace_back(o.out);
  outputs.back().write(serialize_npy(out));
  if (lse) {
    outputs.emplace_back(o.lse);
    outputs.back().write(serialize_npy(*lse));
  }
  for (AtomicFile& file : outputs) file.commit();
  return kExitOk;
}

}  // namespace attnc::cli
