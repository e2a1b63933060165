#include "compiler/Frontend.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include <unistd.h>

#include <catch2/catch.hpp>

#include "dsl/Diagnostics.h"

using namespace attnc;
using namespace attnc::ir;

namespace {

// The diagnostics a load throws; fails the test when it does not throw.
std::vector<dsl::Diagnostic> load_errors(const std::string& text) {
  try {
    load_module_text("mods.attn", text);
  } catch (const dsl::CompileError& e) {
    return e.diagnostics();
  }
  FAIL("load_module_text did not throw for: " << text);
  return {};
}

}  // namespace

TEST_CASE("load_module_text parses and checks a clean file", "[frontend]") {
  Module module = load_module_text("mods.attn",
                                   "# two mods\n"
                                   "mask_mod causal = q_idx >= kv_idx;\n"
                                   "score_mod softcap(cap: float) = cap * tanh(score / cap);\n");
  REQUIRE(module.defs.size() == 2);
  REQUIRE(module.source != nullptr);
  CHECK(module.source->name() == "mods.attn");
  CHECK(module.defs[0].name == "causal");
  CHECK(module.defs[0].kind == dsl::ModKind::Mask);
  CHECK(module.defs[1].name == "softcap");
  CHECK(module.defs[1].kind == dsl::ModKind::Score);
  CHECK(module.defs[1].body->type == Type::Float);
}

TEST_CASE("an empty file or one of comments is an empty module", "[frontend]") {
  for (const char* text : {"", "# nothing here\n", "\n\n   \n"}) {
    CAPTURE(text);
    Module module = load_module_text("empty.attn", text);
    CHECK(module.defs.empty());
  }
}

TEST_CASE("the contract's diagnostic example renders with file, line, column and caret", "[frontend]") {
  const std::string text =
      "mask_mod causal = q_idx >= kv_idx;\n"
      "\n"
      "mask_mod sliding_window(window: int) = q_idx >= kv && q_idx - kv < window;\n";
  try {
    load_module_text("mods.attn", text);
    FAIL("expected a CompileError");
  } catch (const dsl::CompileError& e) {
    REQUIRE(e.diagnostics().size() == 2);  // both uses of kv
    CHECK(e.diagnostics()[1].column == 63);
    const std::string expected =
        "mods.attn:3:49: error: unknown name 'kv'; did you mean 'kv_idx'?\n"
        "mask_mod sliding_window(window: int) = q_idx >= kv && q_idx - kv < window;\n"
        "                                                ^~\n";
    CHECK(dsl::render(e.diagnostics()[0]) == expected);
    CHECK(std::string(e.what()).rfind(expected, 0) == 0);
  }
}

TEST_CASE("syntax and type errors of one file are thrown together", "[frontend]") {
  auto errors = load_errors(
      "mask_mod broken = (q_idx >= ;\n"
      "mask_mod bad_body = q_idx + 1;\n"
      "score_mod s = score + undefined_thing;\n");
  REQUIRE(errors.size() == 3);
  CHECK(errors[0].line == 1);  // the parser's own message is its business; its place is checked
  CHECK(errors[1].line == 2);
  CHECK(errors[1].column == 21);
  CHECK(errors[1].message == "a mask mod's body must be bool, not int");
  CHECK(errors[2].line == 3);
  CHECK(errors[2].column == 23);
  CHECK(errors[2].message == "unknown name 'undefined_thing'");
}

TEST_CASE("a type error alone is thrown as a CompileError", "[frontend]") {
  auto errors = load_errors("mask_mod m = score > 0.0;\n");
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].file == "mods.attn");
  CHECK(errors[0].message == "'score' is only available in score mods");
  CHECK(errors[0].line == 1);
  CHECK(errors[0].column == 14);
  CHECK(errors[0].length == 5);
}

TEST_CASE("load_module_file reads a file and reports unreadable paths as runtime errors", "[frontend]") {
  namespace fs = std::filesystem;
  fs::path path = fs::temp_directory_path() / ("attnc_frontend_test_" + std::to_string(::getpid()) + ".attn");
  {
    std::ofstream out(path);
    out << "mask_mod sliding_window(window: int) = q_idx >= kv_idx && q_idx - kv_idx < window;\n";
  }
  Module module = load_module_file(path.string());
  fs::remove(path);
  REQUIRE(module.defs.size() == 1);
  CHECK(module.defs[0].name == "sliding_window");
  CHECK(module.source->name() == path.string());

  bool threw_runtime_error = false;
  try {
    load_module_file((fs::temp_directory_path() / "attnc_no_such_dir" / "missing.attn").string());
  } catch (const dsl::CompileError&) {
    FAIL("an unreadable file is not a CompileError");
  } catch (const std::runtime_error& e) {
    threw_runtime_error = true;
    CHECK(std::string(e.what()).find("missing.attn") != std::string::npos);
  }
  CHECK(threw_runtime_error);
}

TEST_CASE("malformed input is reported, never crashes", "[frontend]") {
  auto [name, text] = GENERATE(table<std::string, std::string>({
      {"binary garbage", std::string("\x00\xff\x01mask_mod \x80\x81 = ;;\xfe", 17)},
      {"deep parentheses", "mask_mod m = " + std::string(200000, '(')},
      {"deep unary minus", "score_mod s = " + std::string(100000, '-') + "score;"},
      {"unterminated definition", "mask_mod m = q_idx >= "},
      {"only a keyword", "score_mod"},
      {"huge literals", "score_mod s = 99999999999999999999999999999 * 1e99999;"},
  }));
  CAPTURE(name);
  CHECK_THROWS_AS(load_module_text("bad.attn", text), dsl::CompileError);
}
