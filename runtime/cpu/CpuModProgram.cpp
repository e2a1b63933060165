#include "runtime/cpu/CpuModProgram.h"

#include <atomic>
#include <future>
#include <limits>
#include <map>
#include <mutex>
#include <utility>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "compiler/Interpreter.h"
#include "dsl/Errors.h"
#include "runtime/core/RuntimeError.h"
#if ATTNC_HAVE_LLVM
#include "runtime/llvm/LlvmJit.h"
#endif

namespace attnc {

namespace {

int32_t wrapping_add(int32_t a, int32_t b) {
  return static_cast<int32_t>(static_cast<uint32_t>(a) + static_cast<uint32_t>(b));
}

// Scratch objects for threads that run one program at once. CompiledExpr and TileClassifier keep
// their evaluation slots inside, so each concurrent caller borrows its own copy.
template <typename T>
class ScratchPool {
 public:
  explicit ScratchPool(T prototype) : prototype_(std::move(prototype)) {}

  class Lease {
   public:
    Lease(ScratchPool& pool, std::unique_ptr<T> item) : pool_(pool), item_(std::move(item)) {}
    ~Lease() { pool_.give_back(std::move(item_)); }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    T& operator*() const { return *item_; }
    T* operator->() const { return item_.get(); }

   private:
    ScratchPool& pool_;
    std::unique_ptr<T> item_;
  };

  Lease borrow() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (free_.empty()) return Lease(*this, std::make_unique<T>(prototype_));
    std::unique_ptr<T> item = std::move(free_.back());
    free_.pop_back();
    return Lease(*this, std::move(item));
  }

 private:
  void give_back(std::unique_ptr<T> item) {
    std::lock_guard<std::mutex> lock(mutex_);
    free_.push_back(std::move(item));
  }

  const T prototype_;
  std::mutex mutex_;
  std::vector<std::unique_ptr<T>> free_;
};

// The interpreter's environment for one call: sizes, (b, h) and the parameters from `args`.
ir::Environment environment_for(const TilePosition& at, const CpuModArgs& args, const std::vector<DType>& storage,
                                const ir::ModDef& def) {
  ATTNC_ASSERT(args.params.size() == def.params.size(), "CPU mod program: arguments packed for another mod");
  ir::Environment env;
  env.set_sizes(at.q_len, at.kv_len, at.num_heads, at.num_kv_heads);
  env.set_point(at.b, at.h, 0, 0, 0.0f);
  env.params.reserve(def.params.size());
  for (size_t i = 0; i < def.params.size(); ++i) {
    const ir::ParamDecl& decl = def.params[i];
    const CpuParam& p = args.params[i];
    if (decl.is_tensor()) {
      ir::TensorArg tensor;
      tensor.data = p.data;
      tensor.dtype = storage[i];
      tensor.shape.assign(p.shape, p.shape + p.rank);
      tensor.strides.assign(p.strides, p.strides + p.rank);
      env.params.emplace_back(std::move(tensor));
      continue;
    }
    switch (decl.elem) {
      case ir::Type::Int: env.params.emplace_back(ir::Value::of_int(p.int_value)); break;
      case ir::Type::Float: env.params.emplace_back(ir::Value::of_float(p.float_value)); break;
      default: env.params.emplace_back(ir::Value::of_bool(p.bool_value != 0)); break;
    }
  }
  return env;
}

// The reference path: evaluates the mod element by element with ir::CompiledExpr.
class InterpreterProgram final : public CpuModProgram {
 public:
  InterpreterProgram(const ir::ModDef& def, std::vector<DType> storage)
      : def_(def), storage_(std::move(storage)), body_(ir::CompiledExpr(def.body)) {
    if (def.kind == dsl::ModKind::Mask)
      classifier_ = std::make_unique<ScratchPool<ir::TileClassifier>>(ir::TileClassifier(def));
  }

  void apply(float* scores, int64_t ld, int32_t rows, int32_t cols, int32_t q_first, int32_t kv_first,
             const TilePosition& at, const CpuModArgs& args, CpuBoundsReport* report) const override {
    ir::Environment env = environment_for(at, args, storage_, def_);
    env.check_bounds = args.check_bounds && report != nullptr;
    auto body = body_.borrow();
    const bool is_mask = def_.kind == dsl::ModKind::Mask;
    for (int32_t r = 0; r < rows; ++r) {
      float* row = scores + static_cast<int64_t>(r) * ld;
      for (int32_t c = 0; c < cols; ++c) {
        env.set_point(at.b, at.h, wrapping_add(q_first, r), wrapping_add(kv_first, c), row[c]);
        ir::Value v;
        try {
          v = body->evaluate(env);
        } catch (const ir::IndexOutOfRange& e) {
          if (report->failed == 0) {
            report->failed = 1;
            report->param = static_cast<int32_t>(e.param);
            report->dim = static_cast<int32_t>(e.dim);
            report->index = e.index;
            report->extent = e.extent;
            report->b = at.b;
            report->h = at.h;
            report->q_idx = wrapping_add(q_first, r);
            report->kv_idx = wrapping_add(kv_first, c);
          }
          // The first failure is all the caller reports; the rest of the tile runs clamped, as the
          // JIT'd code does, so both leave the same scores.
          env.check_bounds = false;
          v = body->evaluate(env);
        }
        if (is_mask) {
          if (!v.as_bool()) row[c] = -std::numeric_limits<float>::infinity();
        } else {
          row[c] = v.f;
        }
      }
    }
  }

  ir::TileClass classify(int32_t q_first, int32_t q_last, int32_t kv_first, int32_t kv_last, const TilePosition& at,
                         const CpuModArgs& args) const override {
    ATTNC_ASSERT(classifier_ != nullptr, "CPU mod program: only mask mods classify tiles");
    ir::Environment env = environment_for(at, args, storage_, def_);
    auto classifier = classifier_->borrow();
    return classifier->classify(env, q_first, q_last, kv_first, kv_last);
  }

  const char* backend() const override { return "interpreter"; }

 private:
  ir::ModDef def_;
  std::vector<DType> storage_;
  mutable ScratchPool<ir::CompiledExpr> body_;
  std::unique_ptr<ScratchPool<ir::TileClassifier>> classifier_;
};

#if ATTNC_HAVE_LLVM
// The fast path: the mod's tile function and classifier compiled by the LLVM JIT.
class LlvmProgram final : public CpuModProgram {
 public:
  LlvmProgram(const ir::ModDef& def, const std::vector<DType>& storage)
      : param_count_(def.params.size()), compiled_(jit::LlvmJit::instance().compile_mod(def, storage)) {}

  void apply(float* scores, int64_t ld, int32_t rows, int32_t cols, int32_t q_first, int32_t kv_first,
             const TilePosition& at, const CpuModArgs& args, CpuBoundsReport* report) const override {
    ATTNC_ASSERT(args.params.size() == param_count_, "CPU mod program: arguments packed for another mod");
    int32_t check = args.check_bounds && report != nullptr ? 1 : 0;
    compiled_.tile(scores, ld, rows, cols, q_first, kv_first, &at, args.params.data(), check, report);
  }

  ir::TileClass classify(int32_t q_first, int32_t q_last, int32_t kv_first, int32_t kv_last, const TilePosition& at,
                         const CpuModArgs& args) const override {
    ATTNC_ASSERT(compiled_.classify != nullptr, "CPU mod program: only mask mods classify tiles");
    ATTNC_ASSERT(args.params.size() == param_count_, "CPU mod program: arguments packed for another mod");
    return static_cast<ir::TileClass>(compiled_.classify(q_first, q_last, kv_first, kv_last, &at, args.params.data()));
  }

  const char* backend() const override { return "llvm"; }

 private:
  size_t param_count_;
  jit::CompiledMod compiled_;
};
#endif

// Whether the JIT can start on this host; decided once.
bool jit_starts() {
#if ATTNC_HAVE_LLVM
  static const bool starts = [] {
    try {
      jit::LlvmJit::instance();
      return true;
    } catch (const RuntimeError&) {
      return false;
    }
  }();
  return starts;
#else
  return false;
#endif
}

std::shared_ptr<const CpuModProgram> build_program(const Mod& mod, CpuBackend backend) {
  std::vector<DType> storage = mod.storage_types();
#if ATTNC_HAVE_LLVM
  if (backend == CpuBackend::Llvm) return std::make_shared<LlvmProgram>(mod.def(), storage);
#endif
  ATTNC_ASSERT(backend == CpuBackend::Interpreter, "CPU mod program: unresolved backend");
  return std::make_shared<InterpreterProgram>(mod.def(), std::move(storage));
}

// Programs by (signature, backend). A request that finds a compilation under way waits for it,
// so concurrent requests for one signature compile once.
class ProgramCache {
 public:
  std::shared_ptr<const CpuModProgram> get(const Mod& mod, CpuBackend backend) {
    std::string key = mod.signature().hex() + (backend == CpuBackend::Llvm ? "/llvm" : "/interpreter");
    std::promise<std::shared_ptr<const CpuModProgram>> promise;
    std::shared_future<std::shared_ptr<const CpuModProgram>> future;
    bool compile_here = false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto found = programs_.find(key);
      if (found != programs_.end()) {
        future = found->second;
      } else {
        future = promise.get_future().share();
        programs_.emplace(key, future);
        compile_here = true;
      }
    }
    if (!compile_here) {
      ++hits_;
      return future.get();
    }
    ++compiles_;
    try {
      promise.set_value(build_program(mod, backend));
    } catch (...) {
      // Waiting requests see the failure; later ones try again.
      promise.set_exception(std::current_exception());
      std::lock_guard<std::mutex> lock(mutex_);
      programs_.erase(key);
    }
    return future.get();
  }

  CpuProgramCacheStats stats() const { return {hits_.load(), compiles_.load()}; }

 private:
  std::atomic<uint64_t> hits_{0}, compiles_{0};
  std::mutex mutex_;
  std::map<std::string, std::shared_future<std::shared_ptr<const CpuModProgram>>> programs_;
};

ProgramCache& program_cache() {
  static ProgramCache cache;
  return cache;
}

}  // namespace

std::shared_ptr<const CpuModProgram> compile_cpu_program(const Mod& mod, CpuBackend backend) {
  if (backend == CpuBackend::Auto) backend = jit_starts() ? CpuBackend::Llvm : CpuBackend::Interpreter;
  if (backend == CpuBackend::Llvm && !cpu_jit_available()) {
#if ATTNC_HAVE_LLVM
    jit::LlvmJit::instance();  // throws the RuntimeError that says why the JIT cannot start
#endif
    throw RuntimeError(
        fmt::format("{}: this build of attnc has no LLVM JIT (configured without LLVM); "
                    "use the interpreter backend",
                    mod.describe()));
  }
  return program_cache().get(mod, backend);
}

CpuProgramCacheStats cpu_program_cache_stats() { return program_cache().stats(); }

bool cpu_jit_available() { return jit_starts(); }

}  // namespace attnc
