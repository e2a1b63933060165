#include "runtime/llvm/LlvmJit.h"

#include <mutex>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <llvm/ExecutionEngine/Orc/Core.h>
#include <llvm/ExecutionEngine/Orc/ExecutionUtils.h>
#include <llvm/ExecutionEngine/Orc/JITTargetMachineBuilder.h>
#include <llvm/ExecutionEngine/Orc/LLJIT.h>
#include <llvm/ExecutionEngine/Orc/ThreadSafeModule.h>
#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/Module.h>
#include <llvm/IR/Verifier.h>
#include <llvm/Passes/PassBuilder.h>
#include <llvm/Support/DynamicLibrary.h>
#include <llvm/Support/Error.h>
#include <llvm/Support/TargetSelect.h>
#include <llvm/Support/raw_ostream.h>
#include <llvm/Target/TargetMachine.h>

#include "dsl/Errors.h"
#include "runtime/core/RuntimeError.h"
#include "runtime/llvm/LlvmCodegen.h"

namespace attnc::jit {

namespace {

[[noreturn]] void fail(const std::string& what, llvm::Error error) {
  throw RuntimeError(fmt::format("LLVM JIT: {}: {}", what, llvm::toString(std::move(error))));
}

template <typename T>
T take(llvm::Expected<T> value, const std::string& what) {
  if (!value) fail(what, value.takeError());
  return std::move(*value);
}

// The widest fp32 vector the host runs natively.
int vector_width_of(const llvm::SubtargetFeatures& features) {
  int width = 4;
  for (const std::string& feature : features.getFeatures()) {
    if (feature == "+avx512f") return 16;
    if (feature == "+avx") width = 8;
  }
  return width;
}

// The libmvec AVX-512 functions the tile loop may call (runtime/llvm/LlvmCodegen.cpp's libm()).
constexpr const char* kVectorMath[] = {"_ZGVeN16v_expf",  "_ZGVeN16v_exp2f", "_ZGVeN16v_logf", "_ZGVeN16v_log2f",
                                       "_ZGVeN16v_tanhf", "_ZGVeN16v_sinf",  "_ZGVeN16v_cosf", "_ZGVeN16vv_powf"};

// Loads glibc's libmvec into the process and makes its symbols visible to `dylib`; true when every
// function of kVectorMath is there (glibc 2.35 or later). Otherwise the tile loop keeps calling
// scalar libm, which is slower but exact.
bool add_vector_math(llvm::orc::JITDylib& dylib, char global_prefix) {
  std::string problem;
  llvm::sys::DynamicLibrary library = llvm::sys::DynamicLibrary::getPermanentLibrary("libmvec.so.1", &problem);
  if (!library.isValid()) return false;
  for (const char* name : kVectorMath) {
    if (library.getAddressOfSymbol(name) == nullptr) return false;
  }
  llvm::Expected<std::unique_ptr<llvm::orc::DynamicLibrarySearchGenerator>> generator =
      llvm::orc::DynamicLibrarySearchGenerator::Load("libmvec.so.1", global_prefix);
  if (!generator) {
    llvm::consumeError(generator.takeError());
    return false;
  }
  dylib.addGenerator(std::move(*generator));
  return true;
}

}  // namespace

// Owns one module's code through its ResourceTracker; removing the tracker frees the code.
class JitCode {
 public:
  JitCode(llvm::orc::ResourceTrackerSP tracker, std::mutex& mutex) : tracker_(std::move(tracker)), mutex_(mutex) {}
  ~JitCode() {
    std::lock_guard<std::mutex> lock(mutex_);
    // A failure here would only leak the code; a destructor has no one to tell.
    llvm::consumeError(tracker_->remove());
  }
  JitCode(const JitCode&) = delete;
  JitCode& operator=(const JitCode&) = delete;

 private:
  llvm::orc::ResourceTrackerSP tracker_;
  std::mutex& mutex_;
};

struct LlvmJit::Impl {
  std::unique_ptr<llvm::orc::LLJIT> jit;
  std::unique_ptr<llvm::TargetMachine> machine;  // the optimiser's cost model for the host
  CodegenTarget target;
  std::mutex mutex;  // serialises compilation: LLJIT's default compiler shares one TargetMachine
  uint64_t next_id = 0;

  void optimize(llvm::Module& module) {
    llvm::LoopAnalysisManager loops;
    llvm::FunctionAnalysisManager functions;
    llvm::CGSCCAnalysisManager cgscc;
    llvm::ModuleAnalysisManager modules;
    // O3, minus the loop transformations that only multiply code here: the tile loop is already
    // written as host-width vectors, so the loop and SLP vectorisers find nothing to gain, and
    // unrolling it (8 x 2 copies of a 16-lane body) made the backend several times slower while
    // the loop is bound by gathers and libm calls, not by its branch.
    llvm::PipelineTuningOptions tuning;
    tuning.LoopUnrolling = false;
    tuning.LoopInterleaving = false;
    tuning.LoopVectorization = false;
    tuning.SLPVectorization = false;
    llvm::PassBuilder builder(machine.get(), tuning);
    builder.registerModuleAnalyses(modules);
    builder.registerCGSCCAnalyses(cgscc);
    builder.registerFunctionAnalyses(functions);
    builder.registerLoopAnalyses(loops);
    builder.crossRegisterProxies(loops, functions, cgscc, modules);
    builder.buildPerModuleDefaultPipeline(llvm::OptimizationLevel::O3).run(module, modules);
  }

  // Verifies, optimises and adds the module `build` makes, then looks up `names` in it.
  template <typename Build>
  std::shared_ptr<JitCode> compile(Build build, const std::vector<std::string>& names,
                                   std::vector<uint64_t>& addresses) {
    std::lock_guard<std::mutex> lock(mutex);
    auto context = std::make_unique<llvm::LLVMContext>();
    std::unique_ptr<llvm::Module> module = build(*context);
    std::string problems;
    llvm::raw_string_ostream stream(problems);
    if (llvm::verifyModule(*module, &stream)) {
      stream.flush();
      ATTNC_ASSERT(false, "LLVM codegen produced an invalid module: " + problems);
    }
    optimize(*module);
    llvm::orc::ResourceTrackerSP tracker = jit->getMainJITDylib().createResourceTracker();
    if (llvm::Error error =
            jit->addIRModule(tracker, llvm::orc::ThreadSafeModule(std::move(module), std::move(context)))) {
      fail("adding a module", std::move(error));
    }
    addresses.clear();
    for (const std::string& name : names) {
      // LLVM 14: lookup returns a JITEvaluatedSymbol (compiling the module on first lookup).
      llvm::Expected<llvm::JITEvaluatedSymbol> symbol = jit->lookup(name);
      if (!symbol) {
        llvm::consumeError(tracker->remove());
        fail("compiling " + name, symbol.takeError());
      }
      addresses.push_back(symbol->getAddress());
    }
    // Made only now: its destructor takes `mutex`, which this thread holds.
    return std::make_shared<JitCode>(tracker, mutex);
  }

  std::string unique_name(const char* kind) { return fmt::format("attnc_{}_{}", kind, next_id++); }
};

LlvmJit::LlvmJit() : impl_(std::make_unique<Impl>()) {
  llvm::InitializeNativeTarget();
  llvm::InitializeNativeTargetAsmPrinter();
  llvm::orc::JITTargetMachineBuilder machine_builder =
      take(llvm::orc::JITTargetMachineBuilder::detectHost(), "detecting the host CPU");
  machine_builder.setCodeGenOptLevel(llvm::CodeGenOpt::Aggressive);
  impl_->machine = take(machine_builder.createTargetMachine(), "creating the target machine");
  impl_->jit = take(llvm::orc::LLJITBuilder().setJITTargetMachineBuilder(machine_builder).create(), "creating the JIT");
  const llvm::DataLayout& layout = impl_->jit->getDataLayout();
  // libm (expf, tanhf, fmodf, ...) comes from the process, so the JIT calls the same functions as
  // the interpreter.
  impl_->jit->getMainJITDylib().addGenerator(
      take(llvm::orc::DynamicLibrarySearchGenerator::GetForCurrentProcess(layout.getGlobalPrefix()),
           "opening the process's symbols"));
  impl_->target.triple = machine_builder.getTargetTriple().str();
  impl_->target.data_layout = layout.getStringRepresentation();
  impl_->target.cpu = machine_builder.getCPU();
  impl_->target.features = machine_builder.getFeatures().getString();
  impl_->target.vector_width = vector_width_of(machine_builder.getFeatures());
  if (impl_->target.vector_width == 16) {
    impl_->target.vector_math = add_vector_math(impl_->jit->getMainJITDylib(), layout.getGlobalPrefix());
  }
}

LlvmJit::~LlvmJit() = default;

LlvmJit& LlvmJit::instance() {
  // Created once, thread-safely; intentionally never destroyed (see the header).
  static LlvmJit* jit = new LlvmJit();
  return *jit;
}

CompiledMod LlvmJit::compile_mod(const ir::ModDef& def, std::span<const DType> storage) {
  std::string tile_name, classify_name;
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    tile_name = impl_->unique_name("tile");
    classify_name = impl_->unique_name("classify");
  }
  bool is_mask = def.kind == dsl::ModKind::Mask;
  std::vector<std::string> names{tile_name};
  if (is_mask) names.push_back(classify_name);
  std::vector<uint64_t> addresses;
  CompiledMod compiled;
  compiled.code = impl_->compile(
      [&](llvm::LLVMContext& context) {
        return generate_mod_module(context, def, storage, impl_->target, tile_name, classify_name);
      },
      names, addresses);
  compiled.tile = reinterpret_cast<TileFunction>(addresses[0]);
  if (is_mask) compiled.classify = reinterpret_cast<ClassifyFunction>(addresses[1]);
  return compiled;
}

CompiledPoint LlvmJit::compile_point(const ir::Expr& expr, std::span<const DType> storage) {
  std::string name;
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    name = impl_->unique_name("point");
  }
  std::vector<uint64_t> addresses;
  CompiledPoint compiled;
  compiled.code = impl_->compile(
      [&](llvm::LLVMContext& context) { return generate_point_module(context, expr, storage, impl_->target, name); },
      {name}, addresses);
  compiled.function = reinterpret_cast<PointFunction>(addresses[0]);
  return compiled;
}

const std::string& LlvmJit::host_cpu() const { return impl_->target.cpu; }

int LlvmJit::vector_width() const { return impl_->target.vector_width; }

}  // namespace attnc::jit
