// Tile classification checked by brute force: for random tiles and parameters, the classifier's
// answer is compared with the mask evaluated by the interpreter at every element of the tile.
// Soundness (no wrong EMPTY/FULL) is required of every mask; exactness of the masks the
// classifier promises to be exact for.

#include "compiler/TileClassifier.h"

#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "compiler/Frontend.h"
#include "compiler/Interpreter.h"
#include "compiler/Pipeline.h"
#include "compiler/Printer.h"

using namespace attnc;
using namespace attnc::ir;

namespace {

const char* kMasks = R"(
mask_mod causal = kv_idx <= q_idx;
mask_mod causal_bottom_right = q_idx + kv_len - q_len >= kv_idx;
mask_mod sliding_window_causal(window: int) = q_idx - window < kv_idx && kv_idx <= q_idx;
mask_mod sliding_window_symmetric(window: int) = abs(q_idx - kv_idx) < window;
mask_mod prefix_lm(prefix: int[B]) = kv_idx < prefix[b] || kv_idx <= q_idx;
mask_mod document(ids: int[B, S]) = ids[b, q_idx] == ids[b, kv_idx];
mask_mod document_causal(ids: int[B, S]) = ids[b, q_idx] == ids[b, kv_idx] && kv_idx <= q_idx;
mask_mod written_mirrored(window: int) = kv_idx > q_idx - window && q_idx >= kv_idx;
mask_mod blocks(block: int) = q_idx / block == kv_idx / block;
mask_mod dilated(step: int) = (q_idx - kv_idx) % step == 0 && kv_idx <= q_idx;
mask_mod float_threshold(window: int) = float(q_idx - kv_idx) * 0.5 < float(window) && kv_idx <= q_idx;
mask_mod everything = true;
mask_mod nothing = q_idx < 0;
)";

struct Tile {
  int32_t q_first, q_last, kv_first, kv_last;
};

struct Truth {
  bool any_kept = false;
  bool any_masked = false;
  TileClass tile_class() const {
    if (!any_kept) return TileClass::Empty;
    if (!any_masked) return TileClass::Full;
    return TileClass::Partial;
  }
};

Truth brute_force(const CompiledExpr& mask, Environment env, const Tile& t) {
  Truth truth;
  for (int32_t q = t.q_first; q <= t.q_last; ++q) {
    for (int32_t kv = t.kv_first; kv <= t.kv_last; ++kv) {
      env.set(Builtin::QIdx, Value::of_int(q));
      env.set(Builtin::KvIdx, Value::of_int(kv));
      (mask.evaluate(env).as_bool() ? truth.any_kept : truth.any_masked) = true;
    }
  }
  return truth;
}

Tile random_tile(std::mt19937& rng, int32_t q_len, int32_t kv_len) {
  auto span = [&](int32_t len, int32_t& first, int32_t& last) {
    first = std::uniform_int_distribution<int32_t>(0, len - 1)(rng);
    int32_t size = std::uniform_int_distribution<int32_t>(1, 48)(rng);
    last = std::min(len - 1, first + size - 1);
  };
  Tile t{};
  span(q_len, t.q_first, t.q_last);
  span(kv_len, t.kv_first, t.kv_last);
  return t;
}

// Sorted document ids (packed sequences), or shuffled ones to exercise soundness.
std::vector<int32_t> random_document_ids(std::mt19937& rng, int batch, int len, bool sorted) {
  std::vector<int32_t> ids(batch * len);
  for (int b = 0; b < batch; ++b) {
    int32_t doc = 0;
    for (int i = 0; i < len; ++i) {
      if (sorted) {
        if (std::uniform_int_distribution<int>(0, 15)(rng) == 0) ++doc;
        ids[b * len + i] = doc;
      } else {
        ids[b * len + i] = std::uniform_int_distribution<int32_t>(0, 3)(rng);
      }
    }
  }
  return ids;
}

struct Fixture {
  std::vector<int32_t> prefix, ids;
  Environment env;
};

// Binds the one parameter a test mask may have, with a random value of the right kind.
void bind_random_params(const ModDef& def, std::mt19937& rng, int batch, int32_t q_len, int32_t kv_len, Fixture& f) {
  int32_t s = std::max(q_len, kv_len);
  f.env.params.clear();
  for (const ParamDecl& p : def.params) {
    if (!p.is_tensor()) {
      f.env.params.push_back(Value::of_int(std::uniform_int_distribution<int32_t>(1, 40)(rng)));
    } else if (p.rank() == 1) {
      f.prefix.resize(batch);
      for (int32_t& v : f.prefix) v = std::uniform_int_distribution<int32_t>(0, kv_len)(rng);
      f.env.params.push_back(TensorArg{f.prefix.data(), DType::I32, {batch}, {1}});
    } else {
      f.ids = random_document_ids(rng, batch, s, std::uniform_int_distribution<int>(0, 3)(rng) != 0);
      f.env.params.push_back(TensorArg{f.ids.data(), DType::I32, {batch, s}, {s, 1}});
    }
  }
}

struct Tally {
  int empty = 0, full = 0, partial = 0, imprecise = 0;
};

// Runs `tiles` random tiles through the classifier and brute force; returns the counts.
Tally check_mask(const ModDef& def, int tiles, uint32_t seed, bool must_be_exact) {
  TileClassifier classifier(def);
  CompiledExpr mask(def.body);
  std::mt19937 rng(seed);
  Tally tally;
  Fixture f;
  for (int i = 0; i < tiles; ++i) {
    const int batch = 2;
    int32_t q_len = std::uniform_int_distribution<int32_t>(1, 160)(rng);
    int32_t kv_len = std::uniform_int_distribution<int32_t>(1, 160)(rng);
    bind_random_params(def, rng, batch, q_len, kv_len, f);
    f.env.set_sizes(q_len, kv_len, 4, 2);
    f.env.set(Builtin::Batch, Value::of_int(std::uniform_int_distribution<int32_t>(0, batch - 1)(rng)));
    f.env.set(Builtin::Head, Value::of_int(std::uniform_int_distribution<int32_t>(0, 3)(rng)));
    Tile t = random_tile(rng, q_len, kv_len);
    TileClass claimed = classifier.classify(f.env, t.q_first, t.q_last, t.kv_first, t.kv_last);
    TileClass truth = brute_force(mask, f.env, t).tile_class();
    CAPTURE(def.name, i, q_len, kv_len, t.q_first, t.q_last, t.kv_first, t.kv_last, tile_class_name(claimed),
            tile_class_name(truth));
    if (claimed != TileClass::Partial) REQUIRE(claimed == truth);  // soundness
    if (must_be_exact) REQUIRE(claimed == truth);
    if (claimed != truth) ++tally.imprecise;
    (truth == TileClass::Empty ? tally.empty : truth == TileClass::Full ? tally.full : tally.partial)++;
  }
  return tally;
}

ModDef optimized(const Module& module, const std::string& name) {
  const ModDef* def = module.find(name);
  REQUIRE(def != nullptr);
  return optimize(module, *def);
}

}  // namespace

TEST_CASE("tile classification is exact for causal, bottom-right, sliding windows and prefix-LM", "[tile-classifier]") {
  Module module = load_module_text("masks.attn", kMasks);
  auto name = GENERATE(as<std::string>{}, "causal", "causal_bottom_right", "sliding_window_causal",
                       "sliding_window_symmetric", "prefix_lm", "written_mirrored", "everything", "nothing");
  ModDef def = optimized(module, name);
  Tally tally = check_mask(def, 3000, 1234, /*must_be_exact=*/true);
  CAPTURE(name, tally.empty, tally.full, tally.partial);
  // The random tiles must exercise every class the mask can produce.
  if (name != std::string("everything") && name != std::string("nothing")) {
    CHECK(tally.empty > 0);
    CHECK(tally.full > 0);
    CHECK(tally.partial > 0);
  }
}

TEST_CASE("tile classification is sound for masks it is not exact for", "[tile-classifier]") {
  Module module = load_module_text("masks.attn", kMasks);
  auto name = GENERATE(as<std::string>{}, "document", "document_causal", "blocks", "dilated", "float_threshold");
  ModDef def = optimized(module, name);
  Tally tally = check_mask(def, 3000, 99, /*must_be_exact=*/false);
  CAPTURE(name, tally.empty, tally.full, tally.partial, tally.imprecise);
  // Sound is not enough to be useful: most tiles should still be classified exactly.
  CHECK(tally.imprecise * 4 < 3000);
}

TEST_CASE("a document mask calls tiles with disjoint document ranges EMPTY", "[tile-classifier]") {
  Module module = load_module_text("masks.attn", kMasks);
  ModDef def = optimized(module, "document");
  TileClassifier classifier(def);
  // Three documents of lengths 4, 4, 8 in one sequence of 16.
  std::vector<int32_t> ids = {0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2};
  Environment env;
  env.params.push_back(TensorArg{ids.data(), DType::I32, {1, 16}, {16, 1}});
  env.set_sizes(16, 16, 1, 1);
  env.set(Builtin::Batch, Value::of_int(0));
  env.set(Builtin::Head, Value::of_int(0));
  CHECK(classifier.classify(env, 0, 3, 8, 15) == TileClass::Empty);
  CHECK(classifier.classify(env, 8, 11, 12, 15) == TileClass::Full);
  CHECK(classifier.classify(env, 0, 7, 0, 7) == TileClass::Partial);
}

TEST_CASE("the classifier of a constant mask folds to a constant", "[tile-classifier]") {
  Module module = load_module_text("masks.attn", kMasks);
  CHECK(build_tile_classifier(optimized(module, "everything"))->is_const());
  Expr nothing = build_tile_classifier(optimized(module, "nothing"));
  CAPTURE(print_expr(nothing));
  CHECK_FALSE(nothing->is_const());  // q_idx < 0 depends on the tile, and is empty for every real tile
}

// ---- Random masks: soundness on generated expressions. ----

namespace {

class MaskGenerator {
 public:
  explicit MaskGenerator(uint32_t seed) : rng_(seed) {}

  Expr mask(int depth) { return boolean(depth); }

 private:
  int pick(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }

  Expr integer(int depth) {
    if (depth <= 0 || pick(4) == 0) {
      switch (pick(7)) {
        case 0: return make_builtin(Builtin::QIdx);
        case 1: return make_builtin(Builtin::KvIdx);
        case 2: return make_int(std::uniform_int_distribution<int32_t>(-20, 40)(rng_));
        case 3: return make_param(0, Type::Int);
        case 4: return make_load(1, Type::Int, {make_builtin(Builtin::Batch), integer(0)});
        case 5: return make_builtin(pick(2) ? Builtin::QLen : Builtin::KvLen);
        default: return pick(2) ? make_int(INT32_MAX) : make_int(INT32_MIN);
      }
    }
    switch (pick(10)) {
      case 0: return make_binary(Op::Add, integer(depth - 1), integer(depth - 1));
      case 1: return make_binary(Op::Sub, integer(depth - 1), integer(depth - 1));
      case 2: return make_binary(Op::Mul, integer(depth - 1), integer(depth - 1));
      case 3: return make_binary(Op::Div, integer(depth - 1), integer(depth - 1));
      case 4: return make_binary(Op::Mod, integer(depth - 1), integer(depth - 1));
      case 5: return make_binary(pick(2) ? Op::Min : Op::Max, integer(depth - 1), integer(depth - 1));
      case 6: return make_call(Op::Abs, {integer(depth - 1)});
      case 7: return make_select(boolean(depth - 1), integer(depth - 1), integer(depth - 1));
      case 8: return make_cast(Type::Int, pick(2) ? boolean(depth - 1) : floating(depth - 1));
      default: return make_unary(Op::Neg, integer(depth - 1));
    }
  }

  Expr floating(int depth) {
    if (depth <= 0 || pick(3) == 0) {
      switch (pick(4)) {
        case 0: return make_float(std::uniform_real_distribution<float>(-10, 10)(rng_));
        case 1: return make_float(pick(2) ? std::numeric_limits<float>::infinity() : std::nanf(""));
        default: return make_cast(Type::Float, integer(0));
      }
    }
    switch (pick(6)) {
      case 0: return make_binary(Op::Add, floating(depth - 1), floating(depth - 1));
      case 1: return make_binary(Op::Sub, floating(depth - 1), floating(depth - 1));
      case 2: return make_binary(Op::Mul, floating(depth - 1), floating(depth - 1));
      case 3: return make_binary(pick(2) ? Op::Min : Op::Max, floating(depth - 1), floating(depth - 1));
      case 4: return make_call(pick(2) ? Op::Floor : Op::Abs, {floating(depth - 1)});
      default: return make_cast(Type::Float, integer(depth - 1));
    }
  }

  Expr boolean(int depth) {
    if (depth <= 0) return make_binary(Op::Le, integer(0), integer(0));
    static constexpr Op kCompare[] = {Op::Lt, Op::Le, Op::Gt, Op::Ge, Op::Eq, Op::Ne};
    switch (pick(8)) {
      case 0:
      case 1:
      case 2: return make_binary(kCompare[pick(6)], integer(depth - 1), integer(depth - 1));
      case 3: return make_binary(kCompare[pick(6)], floating(depth - 1), floating(depth - 1));
      case 4: return make_binary(pick(2) ? Op::And : Op::Or, boolean(depth - 1), boolean(depth - 1));
      case 5: return make_unary(Op::Not, boolean(depth - 1));
      case 6: return make_binary(pick(2) ? Op::Eq : Op::Ne, boolean(depth - 1), boolean(depth - 1));
      default: return make_select(boolean(depth - 1), boolean(depth - 1), boolean(depth - 1));
    }
  }

  std::mt19937 rng_;
};

}  // namespace

TEST_CASE("tile classification never wrongly claims EMPTY or FULL for random masks", "[tile-classifier][random]") {
  MaskGenerator generator(2024);
  std::mt19937 rng(7);
  int checked_tiles = 0, decided = 0;
  for (int m = 0; m < 400; ++m) {
    ModDef def;
    def.name = "random" + std::to_string(m);
    def.kind = ModKind::Mask;
    def.params.push_back(ParamDecl{"w", Type::Int, {}});
    def.params.push_back(ParamDecl{"ids", Type::Int, {TensorDim{"B", -1, 1, 0}, TensorDim{"S", -1, 1, 1}}});
    def.body = optimize_expr(generator.mask(4));
    TileClassifier classifier(def);
    CompiledExpr mask(def.body);
    Fixture f;
    for (int i = 0; i < 25; ++i) {
      int32_t q_len = std::uniform_int_distribution<int32_t>(1, 64)(rng);
      int32_t kv_len = std::uniform_int_distribution<int32_t>(1, 64)(rng);
      int32_t s = std::max(q_len, kv_len);
      f.ids = random_document_ids(rng, 2, s, i % 2 == 0);
      f.env.params = {Value::of_int(std::uniform_int_distribution<int32_t>(-5, 30)(rng)),
                      TensorArg{f.ids.data(), DType::I32, {2, s}, {s, 1}}};
      f.env.set_sizes(q_len, kv_len, 2, 2);
      f.env.set(Builtin::Batch, Value::of_int(i % 2));
      f.env.set(Builtin::Head, Value::of_int(0));
      Tile t = random_tile(rng, q_len, kv_len);
      TileClass claimed = classifier.classify(f.env, t.q_first, t.q_last, t.kv_first, t.kv_last);
      TileClass truth = brute_force(mask, f.env, t).tile_class();
      CAPTURE(m, i, print_expr(def.body), t.q_first, t.q_last, t.kv_first, t.kv_last, tile_class_name(claimed),
              tile_class_name(truth));
      if (claimed != TileClass::Partial) {
        REQUIRE(claimed == truth);
        ++decided;
      }
      ++checked_tiles;
    }
  }
  CHECK(checked_tiles == 10000);
  CHECK(decided > 1000);  // the analysis must decide a fair share of tiles, not answer PARTIAL always
}
