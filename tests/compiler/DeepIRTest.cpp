// IR as deep or as shared as user input can make it: nothing that walks, compares or frees the IR may
// recurse once per level (a chain of definitions or lets makes IR hundreds of thousands of levels
// deep), and nothing may walk a DAG as the tree it stands for (a few dozen definitions make that
// tree astronomically large).

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "compiler/CudaCodegen.h"
#include "compiler/IR.h"
#include "compiler/IRMutator.h"
#include "compiler/Interpreter.h"
#include "compiler/Limits.h"
#include "compiler/Pipeline.h"
#include "compiler/Printer.h"
#include "compiler/Signature.h"
#include "compiler/TileClassifier.h"

using namespace attnc::ir;

namespace {

// ((q_idx + 0) + 1) + ... : `length` Add nodes, each the left operand of the next.
Expr int_chain(int length, int bottom = 0) {
  Expr e = make_binary(Op::Add, make_builtin(Builtin::QIdx), make_int(bottom));
  for (int i = 1; i < length; ++i) e = make_binary(Op::Add, e, make_int(i));
  return e;
}

// x1 = leaf + leaf, x2 = x1 * x1, ...: `levels` distinct nodes standing for a tree of 2^levels leaves.
Expr doubling(int levels, Expr leaf) {
  Expr e = std::move(leaf);
  for (int i = 0; i < levels; ++i) e = make_binary(i % 2 ? Op::Mul : Op::Add, e, e);
  return e;
}

// A score mod `levels` float operations deep: ((score * 0.5) - 1.0) * 0.5 - 2.0 ... (floats are
// never reassociated, so the optimiser keeps every level).
ModDef deep_score_mod(int levels) {
  Expr e = make_builtin(Builtin::Score);
  const Expr factor = make_float(0.5f);
  std::vector<Expr> offsets;
  for (int i = 0; i < 7; ++i) offsets.push_back(make_float(static_cast<float>(i + 1)));
  for (int i = 0; i < levels / 2; ++i) e = make_binary(Op::Sub, make_binary(Op::Mul, e, factor), offsets[i % 7]);
  return ModDef{"deep", ModKind::Score, {}, e, {}};
}

// A mask mod whose int expression is `levels` subtractions deep: ((q_idx - 0) - 1) - ... < kv_idx.
// Subtraction is not an associative chain, so the optimiser keeps every level.
ModDef deep_mask_mod(int levels) {
  Expr e = make_builtin(Builtin::QIdx);
  std::vector<Expr> offsets;
  for (int i = 0; i < 5; ++i) offsets.push_back(make_int(i - 2));
  for (int i = 0; i < levels; ++i) e = make_binary(Op::Sub, e, offsets[i % 5]);
  return ModDef{"deep", ModKind::Mask, {}, make_binary(Op::Lt, e, make_builtin(Builtin::KvIdx)), {}};
}

// The value of `levels` of deep_mask_mod's subtractions applied to q_idx.
int64_t deep_mask_offset(int levels) {
  int64_t total = 0;
  for (int i = 0; i < levels; ++i) total += i % 5 - 2;
  return total;
}

}  // namespace

TEST_CASE("freeing a chain of a million IR nodes does not recurse once per node", "[ir][deep]") {
  Expr chain = int_chain(1'000'000);
  CHECK(chain->operands.size() == 2);
  chain.reset();  // a recursive release would overflow the stack here
  SUCCEED("freed");
}

TEST_CASE("freeing shared IR frees each node once and keeps nodes still in use", "[ir][deep]") {
  Expr kept = int_chain(1000);
  Expr user = make_binary(Op::Mul, kept, kept);
  for (int i = 0; i < 1000; ++i) user = make_binary(Op::Sub, user, kept);
  user.reset();
  CHECK(count_nodes(kept) == 2 * 1000 + 1);
  CHECK(kept.use_count() == 1);
}

TEST_CASE("equal and structurally_less compare chains 300000 nodes deep", "[ir][deep]") {
  Expr a = int_chain(300'000);
  Expr b = int_chain(300'000);
  REQUIRE(a != b);
  CHECK(equal(a, b));
  CHECK_FALSE(structurally_less(a, b));
  CHECK_FALSE(structurally_less(b, a));
  // Differing only at the very bottom: the order is decided 300000 levels down.
  Expr c = int_chain(300'000, 1);
  CHECK_FALSE(equal(a, c));
  CHECK(structurally_less(a, c));
  CHECK_FALSE(structurally_less(c, a));
}

TEST_CASE("equal and structurally_less visit a DAG's nodes, not the tree it stands for", "[ir][deep]") {
  // Two separately built copies of a 2^64-leaf tree: walking the tree would never finish.
  Expr a = doubling(64, make_builtin(Builtin::QIdx));
  Expr b = doubling(64, make_builtin(Builtin::QIdx));
  REQUIRE(a != b);
  CHECK(equal(a, b));
  CHECK_FALSE(structurally_less(a, b));
  CHECK_FALSE(structurally_less(b, a));
  Expr c = doubling(64, make_builtin(Builtin::KvIdx));
  CHECK_FALSE(equal(a, c));
  CHECK(structurally_less(a, c) != structurally_less(c, a));
  CHECK(structurally_less(a, c) == structurally_less(make_builtin(Builtin::QIdx), make_builtin(Builtin::KvIdx)));
}

TEST_CASE("a mod as deep as the node limit allows goes through every stage", "[ir][deep]") {
  // Just under kMaxInlinedNodes nodes: one per level, plus the score and the constants.
  ModDef def = deep_score_mod(90'000);
  REQUIRE(count_nodes(def.body) < kMaxInlinedNodes);
  Module module;
  module.defs.push_back(def);
  ModDef optimized = optimize(module, def);
  CHECK(count_nodes(optimized.body) == count_nodes(def.body));
  const std::string text = print_def(optimized, PrintStyle::Canonical);
  CHECK(text.find("score * 0.5") != std::string::npos);
  CHECK(compute_signature(optimized).hex().size() == 32);

  Environment env;
  env.set_point(0, 0, 3, 2, 0.0f);
  // From score 0 the value stays between -14 and 0; what matters is that it evaluates at all.
  CHECK(std::isfinite(CompiledExpr(optimized.body).evaluate(env).f));

  CudaModSource cuda = generate_cuda_mods(&optimized, {}, nullptr, {});
  CHECK(cuda.text.find("const float t89999 = ") != std::string::npos);
}

TEST_CASE("a mask 10000 levels deep is optimised, classified and generated", "[ir][deep]") {
  ModDef def = deep_mask_mod(10'000);
  Module module;
  module.defs.push_back(def);
  ModDef optimized = optimize(module, def);
  // q_idx - offset < kv_idx: check the value, then that every stage runs.
  const int64_t offset = deep_mask_offset(10'000);
  Environment env;
  env.set_point(0, 0, 100, static_cast<int32_t>(100 + offset), 0.0f);
  CHECK_FALSE(CompiledExpr(optimized.body).evaluate(env).as_bool());
  env.set_point(0, 0, 100, static_cast<int32_t>(101 + offset), 0.0f);
  CHECK(CompiledExpr(optimized.body).evaluate(env).as_bool());

  TileClassifier classifier(optimized);
  Environment tile_env;
  tile_env.set_point(0, 0, 0, 0, 0.0f);
  tile_env.set_sizes(1024, 1024, 1, 1);
  // Keys far above the shifted rows are all kept; keys far below all dropped.
  CHECK(classifier.classify(tile_env, 0, 63, static_cast<int32_t>(1000 + offset),
                            static_cast<int32_t>(1063 + offset)) == TileClass::Full);
  CHECK(classifier.classify(tile_env, 1000, 1063, static_cast<int32_t>(offset - 100), static_cast<int32_t>(offset)) ==
        TileClass::Empty);
  CudaModSource cuda = generate_cuda_mods(nullptr, {}, &optimized, {});
  CHECK(cuda.text.find("tile_class") != std::string::npos);
}
