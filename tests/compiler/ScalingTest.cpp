// The compiler takes time near-linear in the size of the source: long files of definitions that
// build on each other must not make checking, inlining, the passes, printing or the signature
// quadratic. Times are process CPU time (std::clock), so a busy machine does not fail the tests;
// the bounds are generous for a RelWithDebInfo build, and the quadratic versions took tens of
// seconds.

#include <ctime>
#include <string>

#include <catch2/catch.hpp>

#include "compiler/Frontend.h"
#include "compiler/IRMutator.h"
#include "compiler/Pipeline.h"
#include "compiler/Printer.h"
#include "compiler/Signature.h"

using namespace attnc::ir;

namespace {

double cpu_seconds() { return static_cast<double>(std::clock()) / CLOCKS_PER_SEC; }

// mask_mod m0 = kv_idx <= q_idx; then mask_mod m<i> = m<i-1> && q_idx - kv_idx < i; (240 KB for 5000)
std::string mask_chain(int count) {
  std::string text = "mask_mod m0 = kv_idx <= q_idx;\n";
  for (int i = 1; i < count; ++i) {
    text += "mask_mod m" + std::to_string(i) + " = m" + std::to_string(i - 1) + " && q_idx - kv_idx < " +
            std::to_string(i) + ";\n";
  }
  return text;
}

}  // namespace

TEST_CASE("5000 chained mask definitions check, optimise, print and sign in a few seconds", "[scaling]") {
  const double start = cpu_seconds();
  Module module = load_module_text("chain.attn", mask_chain(5000));
  const ModDef* last = module.find("m4999");
  REQUIRE(last != nullptr);
  ModDef optimized = optimize(module, *last);
  const std::string text = print_def(optimized, PrintStyle::Canonical);
  const Signature signature = compute_signature(optimized);
  const double seconds = cpu_seconds() - start;
  CAPTURE(seconds);
  // kv_idx <= q_idx, q_idx - kv_idx, and per definition a constant, a < and an &&.
  CHECK(count_nodes(optimized.body) == 4 + 3 * 4999);
  CHECK(text.find("< 4999") != std::string::npos);
  CHECK(signature.hex().size() == 32);
  CHECK(seconds < 5.0);
}

TEST_CASE("a chain of 5000 lets optimises in a few seconds", "[scaling]") {
  // One definition whose IR is 5000 levels deep without any call.
  std::string text = "score_mod s(w: float) =\n  let a0 = score;\n";
  for (int i = 1; i < 5000; ++i) {
    text += "  let a" + std::to_string(i) + " = a" + std::to_string(i - 1) + " * w + " + std::to_string(i) + ";\n";
  }
  text += "  a4999;\n";
  const double start = cpu_seconds();
  Module module = load_module_text("lets.attn", text);
  ModDef optimized = optimize(module, module.defs[0]);
  const Signature signature = compute_signature(optimized);
  const double seconds = cpu_seconds() - start;
  CAPTURE(seconds);
  CHECK(signature.hex().size() == 32);
  CHECK(seconds < 5.0);
}
