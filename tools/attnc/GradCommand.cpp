// attnc grad: the backward pass of attention with a file's mods over .npy tensors: dQ, dK, dV and
// the gradients of the score mod's float tensor parameters, for a given dLoss/dOut.

#include <charconv>
#include <cmath>
#include <cstring>
#include <map>
#include <optional>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "compiler/Frontend.h"
#include "runtime/Attention.h"
#include "runtime/core/AtomicFile.h"
#include "runtime/core/AttentionChecks.h"
#include "runtime/core/Mod.h"
#include "runtime/core/Npy.h"
#include "runtime/core/RuntimeError.h"
#include "tools/attnc/CommandLine.h"

namespace attnc::cli {

namespace {

const char* const kUsage = R"(attnc grad FILE [--score-mod NAME] [--mask-mod NAME]
                  --q Q.npy --k K.npy --v V.npy --do DO.npy
                  --dq DQ.npy --dk DK.npy --dv DV.npy [--darg NAME=OUT.npy]...
                  [--arg NAME=VALUE | --arg NAME=FILE.npy]... [--scale X]
                  [--dropout P --seed N] [--dtype fp32|fp16|bf16] [--check-bounds]
                  [--device cpu|cuda])";

const char* const kDescription = R"(Computes the gradients of attention with the mods NAME of FILE, given the
gradient DO of a loss with respect to attention's output: dQ, dK and dV, and
with --darg the gradient of a float tensor parameter of the score mod (a learned
bias table, ALiBi slopes). The forward pass it needs (output and log-sum-exp)
is recomputed first. The derivatives of the score mod come from the compiler;
docs/gradients.md gives their values where a mod is not differentiable (abs at
0, min/max ties, where).

--dropout P drops each attention probability with probability P (and scales
the others by 1/(1-P)), drawn by a counter-based generator from --seed and the
element's (b, h, q, kv), so the same seed drops the same elements. With
dropout the forward pass runs the fp64 reference (slow); the backward pass runs
the CPU kernel either way.

Shapes as for `attnc run`: q (B, H, S, D), k (B, H_kv, S_kv, D), v (B, H_kv,
S_kv, D_v), DO (B, H, S, D_v). Gradients have the shape and dtype of q, k and v;
parameter gradients are fp32 with the parameter's shape. Outputs appear whole
or not at all. The backward pass runs on the CPU only for now.
)";

const char* const kNotes = R"(Exit status: 0 on success, 1 when FILE has errors, 2 on usage errors, 3 when
files, shapes or arguments do not fit (or --device cuda).
)";

struct GradOptions {
  std::string file, score_mod, mask_mod, q, k, v, dout, dq, dk, dv;
  std::vector<std::pair<std::string, std::string>> args, dargs;  // NAME, VALUE / OUT
  std::optional<float> scale;
  std::optional<DType> dtype;
  Dropout dropout;
  bool check_bounds = false;
  bool cuda = false;
};

std::pair<std::string, std::string> split_binding(const std::string& text, const char* option) {
  const size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == text.size()) {
    throw UsageError(fmt::format("{} takes NAME=VALUE, got '{}'", option, text));
  }
  return {text.substr(0, eq), text.substr(eq + 1)};
}

double parse_number(const std::string& text, const std::string& what) {
  double value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (end != text.data() + text.size() || error != std::errc() || !std::isfinite(value)) {
    throw UsageError(fmt::format("{}: '{}' is not a finite number", what, text));
  }
  return value;
}

GradOptions parse_options(Args args, bool& help) {
  GradOptions o;
  std::string scale, dropout, seed, device = "cpu", dtype;
  std::vector<std::string> bindings, dargs;
  CommandLine command_line("attnc grad", kUsage, kDescription, kNotes);
  CLI::App& app = command_line.app();
  app.add_option("FILE", o.file, "the mod file")->type_name("");
  app.add_option("--score-mod", o.score_mod, "a score_mod of FILE")->type_name("NAME");
  app.add_option("--mask-mod", o.mask_mod, "a mask_mod of FILE")->type_name("NAME");
  app.add_option("--q", o.q, "queries (.npy), (B, H, S, D)")->type_name("FILE")->required();
  app.add_option("--k", o.k, "keys (.npy), (B, H_kv, S_kv, D)")->type_name("FILE")->required();
  app.add_option("--v", o.v, "values (.npy), (B, H_kv, S_kv, D_v)")->type_name("FILE")->required();
  app.add_option("--do", o.dout, "dLoss/dOut (.npy), (B, H, S, D_v)")->type_name("FILE")->required();
  app.add_option("--dq", o.dq, "where to write dLoss/dq (.npy)")->type_name("FILE")->required();
  app.add_option("--dk", o.dk, "where to write dLoss/dk (.npy)")->type_name("FILE")->required();
  app.add_option("--dv", o.dv, "where to write dLoss/dv (.npy)")->type_name("FILE")->required();
  app.add_option("--darg", dargs,
                 "writes the gradient of the score mod's float tensor\nparameter NAME (fp32, its shape); repeat for "
                 "each")
      ->type_name("NAME=OUT.npy")
      ->allow_extra_args(false);
  app.add_option("--arg", bindings,
                 "binds scalar parameter NAME (int, float, or true/false),\nor tensor parameter NAME to the array in "
                 "F.npy; repeat\nfor each parameter")
      ->type_name("NAME=VALUE|NAME=F.npy")
      ->allow_extra_args(false);
  app.add_option("--scale", scale, "the score scale (default 1/sqrt(D))")->type_name("X");
  app.add_option("--dropout", dropout, "attention dropout rate in [0, 1) (default 0)")->type_name("P");
  app.add_option("--seed", seed, "the dropout generator's seed (an unsigned 64-bit integer)")->type_name("N");
  app.add_option("--dtype", dtype, "what q, k and v must hold: fp32, fp16 or bf16")->type_name("DTYPE");
  app.add_flag("--check-bounds", o.check_bounds, "fail on an out-of-range tensor index instead of clamping it");
  app.add_option("--device", device, "cpu (the default); cuda is not supported yet")->type_name("NAME");
  help = !command_line.parse(args);
  if (help) return o;

  if (o.file.empty()) throw UsageError("no mod file given");
  if (device != "cpu" && device != "cuda") throw UsageError("--device takes 'cpu' or 'cuda', got '" + device + "'");
  o.cuda = device == "cuda";
  if (!scale.empty()) o.scale = static_cast<float>(parse_number(scale, "--scale"));
  if (!dtype.empty()) {
    o.dtype = parse_dtype(dtype);
    if (!o.dtype || !dtype_is_float(*o.dtype))
      throw UsageError("--dtype takes fp32, fp16 or bf16, got '" + dtype + "'");
  }
  if (!dropout.empty()) {
    const double rate = parse_number(dropout, "--dropout");
    if (rate < 0 || rate >= 1) throw UsageError(fmt::format("--dropout takes a rate in [0, 1), got {}", dropout));
    o.dropout.rate = static_cast<float>(rate);
  }
  if (!seed.empty()) {
    auto [end, error] = std::from_chars(seed.data(), seed.data() + seed.size(), o.dropout.seed);
    if (end != seed.data() + seed.size() || error != std::errc()) {
      throw UsageError(fmt::format("--seed takes an unsigned 64-bit integer, got '{}'", seed));
    }
  }
  if (command_line.given("--seed") && !command_line.given("--dropout")) {
    throw UsageError("--seed goes with --dropout");
  }
  for (const std::string& binding : bindings) o.args.push_back(split_binding(binding, "--arg"));
  for (const std::string& darg : dargs) o.dargs.push_back(split_binding(darg, "--darg"));
  return o;
}

// Binds NAME=VALUE in `mod` if the mod declares NAME; returns whether it did.
bool bind_argument(Mod& mod, const std::string& name, const std::string& value) {
  const std::optional<uint32_t> index = mod.def().find_param(name);
  if (!index) return false;
  const ir::ParamDecl& param = mod.def().params[*index];
  const std::string what = "--arg " + name;
  if (param.is_tensor()) {
    if (!value.ends_with(".npy")) throw UsageError(fmt::format("{}: a tensor parameter takes FILE.npy", what));
    mod.bind(name, read_npy(value));
  } else if (param.elem == ir::Type::Bool) {
    if (value != "true" && value != "false") throw UsageError(what + ": a bool is 'true' or 'false'");
    mod.bind(name, value == "true");
  } else if (param.elem == ir::Type::Int) {
    int32_t parsed = 0;
    auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), parsed);
    if (end != value.data() + value.size() || error != std::errc()) {
      throw UsageError(fmt::format("{}: '{}' is not a 32-bit integer (the parameter is an int)", what, value));
    }
    mod.bind(name, parsed);
  } else {
    mod.bind(name, static_cast<float>(parse_number(value, what)));
  }
  return true;
}

void require_bound(const std::optional<Mod>& mod) {
  if (!mod || mod->fully_bound()) return;
  throw RuntimeError(fmt::format("{}: unbound parameters {}; pass --arg NAME=...", mod->describe(),
                                 fmt::join(mod->unbound_params(), ", ")));
}

}  // namespace

int run_grad(Args args) {
  bool help = false;
  GradOptions o = parse_options(args, help);
  if (help) return kExitOk;
  for (const std::string* path : {&o.dq, &o.dk, &o.dv}) check_output_path(*path);
  for (const auto& [name, path] : o.dargs) check_output_path(path);
  if (o.cuda) throw RuntimeError("the backward pass runs on the CPU only for now; use --device cpu");

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
  for (const auto& [name, path] : o.dargs) {
    const std::optional<uint32_t> p = score_mod ? score_mod->def().find_param(name) : std::nullopt;
    if (!p || !score_mod->def().params[*p].is_tensor() || score_mod->def().params[*p].elem != ir::Type::Float) {
      throw UsageError(fmt::format("--darg {}: the score mod has no float tensor parameter '{}'", name, name));
    }
  }

  const Tensor q = read_npy(o.q, o.dtype), k = read_npy(o.k, o.dtype), v = read_npy(o.v, o.dtype);
  const Tensor dout = read_npy(o.dout);
  AttentionOptions options;
  options.score_mod = score_mod ? &*score_mod : nullptr;
  options.mask_mod = mask_mod ? &*mask_mod : nullptr;
  options.scale = o.scale;
  options.check_bounds = o.check_bounds;
  check_attention_inputs("", q, v);
  Tensor out = Tensor::empty(DType::F32, attention_out_shape(q, v));
  Tensor lse = Tensor::empty(DType::F32, {q.shape()[0], q.shape()[1], q.shape()[2]});
  check_attention_args("", q, k, v, out, options, &lse);
  attention_dropout(q, k, v, out, options, o.dropout, &lse);
  AttentionGradients grads;
  grads.dq = Tensor::empty(q.dtype(), q.shape());
  grads.dk = Tensor::empty(k.dtype(), k.shape());
  grads.dv = Tensor::empty(v.dtype(), v.shape());
  attention_backward(q, k, v, out, lse, dout, grads, options, o.dropout);

  std::vector<AtomicFile> outputs;
  const auto add = [&](const std::string& path, const Tensor& t) {
    outputs.emplace_back(path);
    outputs.back().write(serialize_npy(t));
  };
  add(o.dq, grads.dq);
  add(o.dk, grads.dk);
  add(o.dv, grads.dv);
  for (const auto& [name, path] : o.dargs) add(path, grads.dparams.at(name));
  for (AtomicFile& file : outputs) file.commit();
  return kExitOk;
}

}  // namespace attnc::cli
