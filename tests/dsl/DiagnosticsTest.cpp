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

// ---- Long lines and wide characters. ----

namespace {

// The three lines one diagnostic renders as: header, source excerpt, caret.
struct Rendered {
  std::string header, text, caret;
};

Rendered split(const std::string& rendered) {
  Rendered r;
  size_t first = rendered.find('\n');
  size_t second = rendered.find('\n', first + 1);
  REQUIRE(second != std::string::npos);
  r.header = rendered.substr(0, first);
  r.text = rendered.substr(first + 1, second - first - 1);
  r.caret = rendered.substr(second + 1, rendered.find('\n', second + 1) - second - 1);
  return r;
}

}  // namespace

TEST_CASE("A diagnostic on a megabyte-long line shows a bounded window around the caret", "[dsl][diagnostics]") {
  // 1 MB of `q_idx + ` with one unknown name in the middle.
  std::string expr;
  while (expr.size() < 500'000) expr += "q_idx + ";
  expr += "oops";
  while (expr.size() < 1'000'000) expr += " + q_idx";
  const std::string text = "mask_mod m = " + expr + " > 0;";
  auto source = std::make_shared<const SourceFile>("long.attn", text);
  DiagnosticEngine diagnostics(source);
  const uint32_t at = static_cast<uint32_t>(text.find("oops"));
  diagnostics.error({at, at + 4}, "unknown name 'oops'");
  const std::string rendered = render(diagnostics.diagnostics());
  CAPTURE(rendered);
  CHECK(rendered.size() < 1024);
  Rendered r = split(rendered);
  // The header names the real column; the excerpt is cut on both sides, marked with "...".
  CHECK(r.header == "long.attn:1:" + std::to_string(at + 1) + ": error: unknown name 'oops'");
  CHECK(r.text.rfind("...", 0) == 0);
  CHECK(r.text.size() >= 3);
  CHECK(r.text.substr(r.text.size() - 3) == "...");
  CHECK(r.text.size() <= kMaxShownColumns + 6);
  // The caret sits under `oops` in the excerpt.
  const size_t caret = r.caret.find('^');
  REQUIRE(caret != std::string::npos);
  CHECK(r.text.substr(caret, 4) == "oops");
  CHECK(r.caret.substr(caret) == "^~~~");
}

TEST_CASE("A long line is cut only on the side away from the caret when the caret is near an end",
          "[dsl][diagnostics]") {
  const std::string tail(5000, ' ');
  auto source = std::make_shared<const SourceFile>("ends.attn", "mask_mod m = $ " + tail + "true;");
  DiagnosticEngine diagnostics(source);
  diagnostics.error({13, 14}, "at the start");
  diagnostics.error({static_cast<uint32_t>(source->text().size() - 1), static_cast<uint32_t>(source->text().size())},
                    "at the end");
  Rendered start = split(render(diagnostics.diagnostics()[0]));
  CHECK(start.header == "ends.attn:1:14: error: at the start");
  CHECK(start.text.rfind("mask_mod m = $ ", 0) == 0);
  CHECK(start.text.substr(start.text.size() - 3) == "...");
  CHECK(start.caret == std::string(13, ' ') + "^");
  Rendered end = split(render(diagnostics.diagnostics()[1]));
  CHECK(end.text.rfind("...", 0) == 0);
  CHECK(end.text.substr(end.text.size() - 5) == "true;");
  CHECK(end.caret.size() == end.text.size());
  CHECK(end.caret.back() == '^');
  // A line that fits is shown whole, as before.
  Rendered whole = split(render_parse("short.attn", "mask_mod m = q_idx >= $;"));
  CHECK(whole.text == "mask_mod m = q_idx >= $;");
}

TEST_CASE("Columns count characters, and East Asian wide characters as two", "[dsl][diagnostics][parser]") {
  SECTION("the caret under a wide character spans its two columns") {
    CHECK(render_parse("w.attn", "mask_mod 名 = true;") ==
          "w.attn:1:10: error: unexpected character (byte 0xE5) (and 2 more invalid bytes); only comments may hold "
          "non-ASCII text\n"
          "mask_mod 名 = true;\n"
          "         ^~\n");
  }
  SECTION("an error after wide characters on the same line lines up under its text") {
    const std::string rendered = render_parse("w.attn", "mask_mod 名前 = true; mask_mod m = $;");
    // 名前 is 6 bytes but 4 columns: '$' is byte 38 and column 36.
    CHECK(rendered.find("w.attn:1:36: error: unexpected character '$'") != std::string::npos);
    CHECK(rendered.find("mask_mod 名前 = true; mask_mod m = $;\n" + std::string(35, ' ') + "^\n") != std::string::npos);
  }
  SECTION("accented letters are one column each") {
    const std::string rendered = render_parse("a.attn", "mask_mod é = true; mask_mod m = $;");
    CHECK(rendered.find("a.attn:1:10: error: unexpected character (byte 0xC3) (and 1 more invalid bytes)") !=
          std::string::npos);
    CHECK(rendered.find("\n         ^\n") != std::string::npos);
    CHECK(rendered.find("a.attn:1:33: error: unexpected character '$'") != std::string::npos);
  }
  SECTION("invalid UTF-8 bytes are one column each") {
    const std::string rendered = render_parse("b.attn", "mask_mod \xff\xfe = true; mask_mod m = $;");
    CHECK(rendered.find("\n         ^~\n") != std::string::npos);
    CHECK(rendered.find("b.attn:1:34: error: unexpected character '$'") != std::string::npos);
  }
}

TEST_CASE("display_columns follows UTF-8 and the wide-character table", "[dsl][diagnostics]") {
  CHECK(display_columns("") == 0);
  CHECK(display_columns("q_idx") == 5);
  CHECK(display_columns("\t") == 1);
  CHECK(display_columns("é") == 1);                 // U+00E9, 2 bytes
  CHECK(display_columns("名前") == 4);              // CJK ideographs, 3 bytes each
  CHECK(display_columns("ｑ") == 2);                // U+FF51 fullwidth q
  CHECK(display_columns("가") == 2);                // U+AC00 Hangul syllable
  CHECK(display_columns("\xf0\x9f\x98\x80") == 2);  // U+1F600 emoji
  CHECK(display_columns("\xf0\xa0\x80\x80") == 2);  // U+20000 CJK extension B
  CHECK(display_columns("→") == 1);                 // U+2192, narrow
  CHECK(display_columns("\xe5\x90") == 2);          // a truncated sequence: two invalid bytes
  CHECK(display_columns("\xc0\xaf") == 2);          // an overlong encoding of '/': invalid
  CHECK(display_columns("\xed\xa0\x80") == 3);      // a UTF-16 surrogate: invalid
}
