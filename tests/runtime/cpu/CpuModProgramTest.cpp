// The CPU mod programs: the LLVM JIT's tile functions and classifiers against the interpreter's, bit
// for bit (within kTranscendentalUlps ulp for mods with tanh, exp, ..., which the 16-lane key loop
// may compute with glibc's libmvec), for every built-in mod and some compositions, on tiles of odd sizes at positions
// inside and outside the sequences; bounds reports; argument packing; and the program cache.

#include "runtime/cpu/CpuModProgram.h"

#include <catch2/catch.hpp>

#include <atomic>
#include <bit>
#include <cmath>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "compiler/Frontend.h"
#include "compiler/IRMutator.h"
#include "runtime/core/Mods.h"
#include "runtime/core/RuntimeError.h"
#include "tests/support/TestTensors.h"

using namespace attnc;
using namespace attnc::test;

namespace {

constexpr int kBatch = 2, kHeads = 4, kQLen = 37, kKvLen = 45;

Tensor document_ids(DType dtype) {
  // Three documents of uneven lengths over the keys.
  std::vector<int32_t> ids;
  for (int b = 0; b < kBatch; ++b)
    for (int s = 0; s < kKvLen; ++s) ids.push_back(s < 10 + b ? 0 : (s < 29 ? 1 : 2));
  return Tensor::from_vector(ids, {kBatch, kKvLen}, dtype);
}

struct NamedMod {
  std::string name;
  std::function<Mod()> make;
};

[[maybe_unused]] std::vector<NamedMod> mods_under_test() {
  return {
      {"causal", [] { return causal_mod(); }},
      {"causal bottom-right", [] { return causal_bottom_right_mod(); }},
      {"sliding window 7, causal", [] { return sliding_window_mod(7, true); }},
      {"sliding window 5, symmetric", [] { return sliding_window_mod(5, false); }},
      {"alibi", [] { return alibi_mod(kHeads); }},
      {"prefix lm, int32",
       [] {
         return prefix_lm_mod(Tensor::from_vector(std::vector<int32_t>{5, 20}));
       }},
      {"prefix lm, int64",
       [] {
         return prefix_lm_mod(Tensor::from_vector(std::vector<int32_t>{0, 44}, {2}, DType::I64));
       }},
      {"document mask, int32", [] { return document_mask_mod(document_ids(DType::I32)); }},
      {"document mask, int64", [] { return document_mask_mod(document_ids(DType::I64)); }},
      {"additive bias fp32",
       [] {
         std::mt19937 rng(7);
         return additive_bias_mod(uniform_tensor(rng, DType::F32, {kBatch, kHeads, kQLen, kKvLen}, -3, 3));
       }},
      {"additive bias fp16, broadcast",
       [] {
         std::mt19937 rng(8);
         return additive_bias_mod(uniform_tensor(rng, DType::F16, {kHeads, kQLen, kKvLen}, -3, 3));
       }},
      {"additive bias bf16, broadcast",
       [] {
         std::mt19937 rng(9);
         return additive_bias_mod(uniform_tensor(rng, DType::BF16, {kQLen, kKvLen}, -3, 3));
       }},
      {"softcap", [] { return softcap_mod(20.0f); }},
      {"alibi then softcap",
       [] {
         return compose_score_mods({alibi_mod(kHeads), softcap_mod(5.0f)});
       }},
      {"causal and document",
       [] {
         return and_masks({causal_mod(), document_mask_mod(document_ids(DType::I32))});
       }},
      {"sliding window or prefix",
       [] {
         return or_masks({sliding_window_mod(4, true), prefix_lm_mod(Tensor::from_vector(std::vector<int32_t>{3, 9}))});
       }},
      {"causal as a score mod", [] { return mask_mod_to_score_mod(causal_mod()); }},
      {"sliding window as a score mod, then softcap",
       [] {
         return compose_score_mods({mask_mod_to_score_mod(sliding_window_mod(9, false)), softcap_mod(3.0f)});
       }},
  };
}

TilePosition position(int b, int h) {
  TilePosition at;
  at.b = b;
  at.h = h;
  at.q_len = kQLen;
  at.kv_len = kKvLen;
  at.num_heads = kHeads;
  at.num_kv_heads = kHeads;
  return at;
}

[[maybe_unused]] bool same_float(float a, float b) {
  if (std::isnan(a) && std::isnan(b)) return true;
  return std::bit_cast<uint32_t>(a) == std::bit_cast<uint32_t>(b);
}

// How far libmvec's vector functions may stray from libm's (glibc documents at most 4 ulp for the
// float variants the JIT calls).
constexpr int64_t kTranscendentalUlps = 4;

[[maybe_unused]] bool has_transcendental(const Mod& mod) {
  bool found = false;
  ir::for_each_node(mod.def().body, [&](const ir::Expr& node) {
    if (node->kind != ir::Kind::Call) return;
    switch (node->op) {
      case ir::Op::Exp:
      case ir::Op::Exp2:
      case ir::Op::Log:
      case ir::Op::Log2:
      case ir::Op::Tanh:
      case ir::Op::Sin:
      case ir::Op::Cos:
      case ir::Op::Sigmoid:
      case ir::Op::Pow: found = true; break;
      default: break;
    }
  });
  return found;
}

// same_float, or two finite floats at most `ulps` apart (-0 and +0 adjacent). NaN matches only NaN
// and an infinity only itself, so special values are classified exactly.
[[maybe_unused]] bool close_float(float a, float b, int64_t ulps) {
  if (same_float(a, b)) return true;
  if (ulps == 0 || !std::isfinite(a) || !std::isfinite(b)) return false;
  auto ordered = [](float f) {
    const auto bits = static_cast<int32_t>(std::bit_cast<uint32_t>(f));
    return bits < 0 ? -static_cast<int64_t>(bits & 0x7fffffff) - 1 : static_cast<int64_t>(bits);
  };
  const int64_t distance = ordered(a) - ordered(b);
  return (distance < 0 ? -distance : distance) <= ulps;
}

[[maybe_unused]] float random_score(std::mt19937& rng) {
  static const float kEdges[] = {0.0f,
                                 -0.0f,
                                 std::numeric_limits<float>::infinity(),
                                 -std::numeric_limits<float>::infinity(),
                                 std::numeric_limits<float>::quiet_NaN(),
                                 1e30f,
                                 -1e-30f};
  if (std::uniform_int_distribution<int>(0, 9)(rng) == 0) return kEdges[rng() % std::size(kEdges)];
  return std::uniform_real_distribution<float>(-40.0f, 40.0f)(rng);
}

[[maybe_unused]] void check_same_report(const CpuBoundsReport& a, const CpuBoundsReport& b) {
  CHECK(a.failed == b.failed);
  CHECK(a.param == b.param);
  CHECK(a.dim == b.dim);
  CHECK(a.index == b.index);
  CHECK(a.extent == b.extent);
  CHECK(a.b == b.b);
  CHECK(a.h == b.h);
  CHECK(a.q_idx == b.q_idx);
  CHECK(a.kv_idx == b.kv_idx);
}

// The backends this build has.
std::vector<CpuBackend> backends() {
  std::vector<CpuBackend> all{CpuBackend::Interpreter};
  if (cpu_jit_available()) all.push_back(CpuBackend::Llvm);
  return all;
}

}  // namespace

#if ATTNC_HAVE_LLVM

TEST_CASE("this build has the LLVM JIT and Auto picks it", "[runtime][cpu-program]") {
  REQUIRE(cpu_jit_available());
  CHECK(std::string(compile_cpu_program(causal_mod())->backend()) == "llvm");
  CHECK(std::string(compile_cpu_program(causal_mod(), CpuBackend::Llvm)->backend()) == "llvm");
  CHECK(std::string(compile_cpu_program(causal_mod(), CpuBackend::Interpreter)->backend()) == "interpreter");
}

TEST_CASE("JIT'd tiles equal the interpreter's for built-in mods and compositions, within a few ulp for tanh",
          "[runtime][cpu-program]") {
  auto all = mods_under_test();
  auto index = GENERATE_COPY(range(size_t{0}, all.size()));
  const NamedMod& named = all[index];
  Mod mod = named.make();
  const int64_t ulps = has_transcendental(mod) ? kTranscendentalUlps : 0;
  CAPTURE(named.name, ulps);
  auto jit = compile_cpu_program(mod, CpuBackend::Llvm);
  auto interpreter = compile_cpu_program(mod, CpuBackend::Interpreter);
  REQUIRE(std::string(jit->backend()) == "llvm");
  REQUIRE(std::string(interpreter->backend()) == "interpreter");

  std::mt19937 rng(static_cast<uint32_t>(1234 + index));
  const int rows_choices[] = {1, 3, 7, 17, 33};
  const int cols_choices[] = {1, 5, 15, 16, 17, 31, 47, 100};
  int compared = 0, changed = 0;
  for (int trial = 0; trial < 40; ++trial) {
    const int rows = rows_choices[rng() % std::size(rows_choices)];
    const int cols = cols_choices[rng() % std::size(cols_choices)];
    const int64_t ld = cols + static_cast<int64_t>(rng() % 5);  // padding that must stay untouched
    // Tiles mostly inside the sequences, some hanging over either end (indices clamp there).
    const int q_first = std::uniform_int_distribution<int>(-6, kQLen + 3)(rng);
    const int kv_first = std::uniform_int_distribution<int>(-6, kKvLen + 3)(rng);
    const TilePosition at = position(static_cast<int>(rng() % kBatch), static_cast<int>(rng() % kHeads));
    const bool check_bounds = trial % 3 == 0;
    CAPTURE(trial, rows, cols, ld, q_first, kv_first, at.b, at.h, check_bounds);

    std::vector<float> original(static_cast<size_t>(rows * ld));
    for (float& s : original) s = random_score(rng);
    std::vector<float> by_jit = original, by_interpreter = original;
    CpuModArgs args = CpuModArgs::pack(mod, check_bounds);
    CpuBoundsReport jit_report, interpreter_report;
    jit->apply(by_jit.data(), ld, rows, cols, q_first, kv_first, at, args, &jit_report);
    interpreter->apply(by_interpreter.data(), ld, rows, cols, q_first, kv_first, at, args, &interpreter_report);

    for (int r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < ld; ++c) {
        const size_t i = static_cast<size_t>(r * ld + c);
        if (!close_float(by_jit[i], by_interpreter[i], ulps)) {
          CAPTURE(r, c, original[i], by_jit[i], by_interpreter[i]);
          FAIL_CHECK("the JIT and the interpreter disagree");
        }
        if (c >= cols && !same_float(by_jit[i], original[i])) {
          CAPTURE(r, c);
          FAIL_CHECK("the padding beyond cols was written");
        }
        ++compared;
        if (!same_float(by_jit[i], original[i])) ++changed;
      }
    }
    check_same_report(jit_report, interpreter_report);
  }
  CHECK(compared > 1000);
  CHECK(changed > 0);  // the mod did something to some tile
}

TEST_CASE("JIT'd tile classifiers equal the interpreter's for built-in masks and compositions",
          "[runtime][cpu-program]") {
  auto all = mods_under_test();
  auto index = GENERATE_COPY(range(size_t{0}, all.size()));
  const NamedMod& named = all[index];
  Mod mod = named.make();
  if (mod.kind() != dsl::ModKind::Mask) return;
  CAPTURE(named.name);
  auto jit = compile_cpu_program(mod, CpuBackend::Llvm);
  auto interpreter = compile_cpu_program(mod, CpuBackend::Interpreter);
  CpuModArgs args = CpuModArgs::pack(mod, false);
  std::mt19937 rng(static_cast<uint32_t>(99 + index));
  int seen[3] = {0, 0, 0};
  for (int trial = 0; trial < 300; ++trial) {
    const int q_first = std::uniform_int_distribution<int>(-4, kQLen)(rng);
    const int kv_first = std::uniform_int_distribution<int>(-4, kKvLen)(rng);
    const int q_last = q_first + std::uniform_int_distribution<int>(0, 20)(rng);
    const int kv_last = kv_first + std::uniform_int_distribution<int>(0, 20)(rng);
    const TilePosition at = position(static_cast<int>(rng() % kBatch), static_cast<int>(rng() % kHeads));
    CAPTURE(q_first, q_last, kv_first, kv_last, at.b, at.h);
    ir::TileClass expected = interpreter->classify(q_first, q_last, kv_first, kv_last, at, args);
    CHECK(jit->classify(q_first, q_last, kv_first, kv_last, at, args) == expected);
    ++seen[static_cast<int>(expected)];
  }
  CHECK(seen[static_cast<int>(ir::TileClass::Partial)] > 0);
}

#else

TEST_CASE("without LLVM, Auto uses the interpreter and Llvm is refused", "[runtime][cpu-program]") {
  CHECK_FALSE(cpu_jit_available());
  CHECK(std::string(compile_cpu_program(causal_mod())->backend()) == "interpreter");
  CHECK_THROWS_AS(compile_cpu_program(causal_mod(), CpuBackend::Llvm), RuntimeError);
}

#endif

TEST_CASE("a bounds-checked document mask reports the first index past the ids, on every backend",
          "[runtime][cpu-program]") {
  Mod mod = document_mask_mod(document_ids(DType::I32));  // ids [2, 45]
  auto backend = GENERATE(from_range(backends()));
  auto program = compile_cpu_program(mod, backend);
  CAPTURE(program->backend());
  CpuModArgs args = CpuModArgs::pack(mod, true);
  // Queries 43..45 x keys 40..49: in row-major order the first element with an index past the
  // ids' 45 columns is (q_idx 43, kv_idx 45), through ids[b, kv_idx].
  std::vector<float> scores(3 * 10, 1.0f);
  CpuBoundsReport report;
  program->apply(scores.data(), 10, 3, 10, 43, 40, position(1, 2), args, &report);
  CHECK(report.failed == 1);
  CHECK(report.param == 0);
  CHECK(report.dim == 1);
  CHECK(report.index == 45);
  CHECK(report.extent == 45);
  CHECK(report.b == 1);
  CHECK(report.h == 2);
  CHECK(report.q_idx == 43);
  CHECK(report.kv_idx == 45);

  SECTION("an earlier failure in the report is kept") {
    CpuBoundsReport earlier;
    earlier.failed = 1;
    earlier.index = -7;
    program->apply(scores.data(), 10, 3, 10, 43, 40, position(1, 2), args, &earlier);
    CHECK(earlier.index == -7);
  }
  SECTION("without bounds checking nothing is reported and indices clamp") {
    CpuModArgs unchecked = CpuModArgs::pack(mod, false);
    CpuBoundsReport none;
    std::vector<float> tile(3 * 10, 1.0f);
    program->apply(tile.data(), 10, 3, 10, 43, 40, position(1, 2), unchecked, &none);
    CHECK(none.failed == 0);
    // Everything clamps to ids[1, 44] == 2, so every element of the tile is kept.
    for (float s : tile) CHECK(s == 1.0f);
  }
}

TEST_CASE("a mask leaves kept scores alone and sets dropped ones to -inf", "[runtime][cpu-program]") {
  auto backend = GENERATE(from_range(backends()));
  auto program = compile_cpu_program(causal_mod(), backend);
  CAPTURE(program->backend());
  // 2 rows x 19 keys (one full 16-lane vector and a tail of 3), q = 10, 11, keys 0..18.
  std::vector<float> scores(2 * 19);
  for (size_t i = 0; i < scores.size(); ++i) scores[i] = static_cast<float>(i) - 0.5f;
  std::vector<float> before = scores;
  program->apply(scores.data(), 19, 2, 19, 10, 0, position(0, 0), CpuModArgs::pack(causal_mod(), false), nullptr);
  for (int r = 0; r < 2; ++r)
    for (int c = 0; c < 19; ++c) {
      CAPTURE(r, c);
      const float s = scores[static_cast<size_t>(r * 19 + c)];
      if (c <= 10 + r) {
        CHECK(s == before[static_cast<size_t>(r * 19 + c)]);
      } else {
        CHECK(s == -std::numeric_limits<float>::infinity());
      }
    }
}

TEST_CASE("a different window value reuses the cached program", "[runtime][cpu-program]") {
  Mod narrow = sliding_window_mod(3, true);
  Mod wide = sliding_window_mod(30, true);
  auto backend = GENERATE(from_range(backends()));
  auto program = compile_cpu_program(narrow, backend);
  CAPTURE(program->backend());
  CHECK(compile_cpu_program(wide, backend).get() == program.get());
  CHECK(compile_cpu_program(narrow, backend).get() == program.get());
  for (CpuBackend other : backends()) {
    if (other != backend) CHECK(compile_cpu_program(narrow, other).get() != program.get());
  }

  // The argument, not the program, decides the window.
  std::vector<float> a(40, 0.0f), b(40, 0.0f);
  program->apply(a.data(), 40, 1, 40, 39, 0, position(0, 0), CpuModArgs::pack(narrow, false), nullptr);
  program->apply(b.data(), 40, 1, 40, 39, 0, position(0, 0), CpuModArgs::pack(wide, false), nullptr);
  auto kept = [](const std::vector<float>& s) {
    return std::count_if(s.begin(), s.end(), [](float v) { return v == 0.0f; });
  };
  CHECK(kept(a) == 3);
  CHECK(kept(b) == 30);
}

TEST_CASE("concurrent requests for one new signature compile one program", "[runtime][cpu-program]") {
  // A mod no other test compiles, so the first request really compiles.
  Mod mod = Mod::from_module(
      ir::load_module_text("concurrent.attn", "mask_mod m(w: int) = (q_idx * 7 + kv_idx) % 13 != w + 11;"), "m");
  mod.bind("w", 1);
  std::vector<std::shared_ptr<const CpuModProgram>> got(6);
  std::atomic<int> ready{0};
  std::vector<std::thread> threads;
  for (size_t t = 0; t < got.size(); ++t) {
    threads.emplace_back([&, t] {
      ready.fetch_add(1);
      while (ready.load() < static_cast<int>(got.size())) std::this_thread::yield();
      got[t] = compile_cpu_program(mod);
    });
  }
  for (std::thread& t : threads) t.join();
  for (const auto& p : got) CHECK(p.get() == got.front().get());
}

TEST_CASE("packing arguments copies scalars and tensor views", "[runtime][cpu-program]") {
  Tensor ids = document_ids(DType::I64);
  Mod mod = and_masks({sliding_window_mod(6, true), document_mask_mod(ids)});
  CpuModArgs args = CpuModArgs::pack(mod, true);
  CHECK(args.check_bounds);
  REQUIRE(args.params.size() == 2);
  const CpuParam& window = mod.def().params[0].is_tensor() ? args.params[1] : args.params[0];
  const CpuParam& tensor = mod.def().params[0].is_tensor() ? args.params[0] : args.params[1];
  CHECK(window.int_value == 6);
  CHECK(tensor.data == ids.data());
  CHECK(tensor.rank == 2);
  CHECK(tensor.shape[0] == kBatch);
  CHECK(tensor.shape[1] == kKvLen);
  CHECK(tensor.strides[0] == kKvLen);
  CHECK(tensor.strides[1] == 1);
}

TEST_CASE("packing refuses unbound parameters and empty tensors", "[runtime][cpu-program]") {
  Mod unbound = Mod::from_module(ir::load_module_text("u.attn", "mask_mod m(w: int) = q_idx - kv_idx < w;"), "m");
  CHECK_THROWS_WITH(CpuModArgs::pack(unbound, false), Catch::Contains("not bound") && Catch::Contains("w"));
  // Compiled code clamps indices into a tensor and so needs an element to land on: binding already
  // refuses empty tensors (and pack checks again).
  CHECK_THROWS_WITH(prefix_lm_mod(Tensor::zeros(DType::I32, {0})), Catch::Contains("empty"));
}

TEST_CASE("the interpreter program follows a score mod element by element", "[runtime][cpu-program]") {
  auto program = compile_cpu_program(softcap_mod(2.0f), CpuBackend::Interpreter);
  std::vector<float> scores{0.0f, 1.0f, -3.0f, 100.0f};
  program->apply(scores.data(), 4, 1, 4, 0, 0, position(0, 0), CpuModArgs::pack(softcap_mod(2.0f), false), nullptr);
  CHECK(scores[0] == 0.0f);
  CHECK(scores[1] == Approx(2.0 * std::tanh(0.5)));
  CHECK(scores[2] == Approx(2.0 * std::tanh(-1.5)));
  CHECK(scores[3] == Approx(2.0));
}

TEST_CASE("the program cache counts one compile per signature and hits for the rest", "[runtime][cpu-program]") {
  // A composition no other test builds, so its first request compiles here.
  const Mod first = compose_score_mods({softcap_mod(7.0f), alibi_mod(3), softcap_mod(2.0f)});
  const Mod same = compose_score_mods({softcap_mod(9.0f), alibi_mod(3), softcap_mod(4.0f)});  // other values
  const CpuProgramCacheStats before = cpu_program_cache_stats();
  auto a = compile_cpu_program(first, CpuBackend::Interpreter);
  auto b = compile_cpu_program(same, CpuBackend::Interpreter);
  const CpuProgramCacheStats after = cpu_program_cache_stats();
  CHECK(a == b);
  CHECK(after.compiles - before.compiles == 1);
  CHECK(after.hits - before.hits == 1);
}
