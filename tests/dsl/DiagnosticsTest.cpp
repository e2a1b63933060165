#include "dsl/Diagnostics.h"

#include <string>

#include <catch2/catch.hpp>

#include "dsl/Parser.h"

using namespace attnc::dsl;

namespace {

std::string render_parse(const std::string& name, const std::string& text) {
  auto source = std::make_shared<const SourceFile>(name, text);
  DiagnosticEngine diagnostics(source);
  parse_file(source, diagnostics);
  return render(diagnostics.diagnostics());
}

}  // namespace

TEST_CASE("A diagnostic renders as file:line:col, the line and a caret under the range", "[dsl][diagnostics]") {
  // The contract's example. (Its header says column 41, but its caret, like 'kv' itself, is at
  // column 49; the caret and the column must agree, so 49 it is.)
  const std::string line = "mask_mod sliding_window(window: int) = q_idx >= kv && q_idx - kv < window;";
  auto source = std::make_shared<const SourceFile>("mods.attn", "mask_mod causal = q_idx >= kv_idx;\n\n" + line + "\n");
  DiagnosticEngine diagnostics(source);
  uint32_t kv = static_cast<uint32_t>(source->text().find(" kv ") + 1);
  diagnostics.error({kv, kv + 2}, "unknown name 'kv'; did you mean 'kv_idx'?");
  CHECK(render(diagnostics.diagnostics()) ==
        "mods.attn:3:49: error: unknown name 'kv'; did you mean 'kv_idx'?\n"
        "mask_mod sliding_window(window: int) = q_idx >= kv && q_idx - kv < window;\n"
        "                                                ^~\n");
  CHECK(diagnostics.has_errors());
  CHECK_THROWS_AS(diagnostics.throw_if_errors(), CompileError);
}

TEST_CASE("Syntax errors render with their caret", "[dsl][diagnostics][parser]") {
  SECTION("a missing ';' points just after the last token") {
    CHECK(render_parse("m.attn", "mask_mod m = a\n") ==
          "m.attn:1:15: error: expected ';' after definition\n"
          "mask_mod m = a\n"
          "              ^\n");
  }
  SECTION("the caret spans a multi-byte token") {
    CHECK(render_parse("m.attn", "mask_mod m(x: double) = x;") ==
          "m.attn:1:15: error: expected 'int', 'float' or 'bool' as the type of 'x'\n"
          "mask_mod m(x: double) = x;\n"
          "              ^~~~~~\n");
  }
  SECTION("tabs before the caret stay tabs") {
    CHECK(render_parse("m.attn", "mask_mod m =\n\t\tq_idx >= $$;\n") ==
          "m.attn:2:12: error: unexpected character '$' (and 1 more invalid bytes)\n"
          "\t\tq_idx >= $$;\n"
          "\t\t         ^~\n");
  }
  SECTION("several errors render in order, on the right lines") {
    CHECK(render_parse("f.attn", "mask_mod a = ;\r\nmask_mod b = 1 2;\n") ==
          "f.attn:1:14: error: expected expression\n"
          "mask_mod a = ;\n"
          "             ^\n"
          "f.attn:2:15: error: expected ';' after definition\n"
          "mask_mod b = 1 2;\n"
          "              ^\n");
  }
  SECTION("an error at the end of the file points after the last token") {
    CHECK(render_parse("e.attn", "score_mod s =\n  score *\n\n") ==
          "e.attn:2:10: error: expected expression\n"
          "  score *\n"
          "         ^\n");
  }
  SECTION("an invalid run ends at the end of its line") {
    CHECK(render_parse("g.attn", "mask_mod m = @@@@\n@@;") ==
          "g.attn:1:14: error: unexpected character '@' (and 3 more invalid bytes)\n"
          "mask_mod m = @@@@\n"
          "             ^~~~\n"
          "g.attn:2:1: error: unexpected character '@' (and 1 more invalid bytes)\n"
          "@@;\n"
          "^~\n");
  }
}

TEST_CASE("A caret for a range over several lines stops at the end of the first", "[dsl][diagnostics]") {
  auto source = std::make_shared<const SourceFile>("r.attn", "score_mod s = (score +\n  1);");
  DiagnosticEngine diagnostics(source);
  diagnostics.error({14, 26}, "a multi-line range");
  CHECK(render(diagnostics.diagnostics()) ==
        "r.attn:1:15: error: a multi-line range\n"
        "score_mod s = (score +\n"
        "              ^~~~~~~~\n");
}

TEST_CASE("CompileError carries every diagnostic and renders them all", "[dsl][diagnostics]") {
  auto source = std::make_shared<const SourceFile>("c.attn", "mask_mod a = ;\nmask_mod b = ;\n");
  DiagnosticEngine diagnostics(source);
  parse_file(source, diagnostics);
  try {
    diagnostics.throw_if_errors();
    FAIL("throw_if_errors did not throw");
  } catch (const CompileError& error) {
    REQUIRE(error.diagnostics().size() == 2);
    CHECK(error.diagnostics()[1].line == 2);
    CHECK(std::string(error.what()) == render(error.diagnostics()));
    CHECK(std::string(error.what()).find("c.attn:2:14: error: expected expression") != std::string::npos);
  }
}

TEST_CASE("The note after too many errors renders as a note", "[dsl][diagnostics]") {
  std::string text;
  for (int i = 0; i < 101; ++i) text += "$ ";
  auto source = std::make_shared<const SourceFile>("n.attn", text);
  DiagnosticEngine diagnostics(source);
  parse_file(source, diagnostics);
  REQUIRE_FALSE(diagnostics.diagnostics().empty());
  CHECK(render(diagnostics.diagnostics().back()) ==
        "n.attn:1:201: note: too many errors (100 reported); giving up on this file\n" + text + "\n" +
            std::string(200, ' ') + "^\n");
}
