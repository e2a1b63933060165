#include "dsl/Lexer.h"

#include <chrono>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

using namespace attnc::dsl;

namespace {

struct Lexed {
  std::shared_ptr<const SourceFile> source;
  std::vector<Token> tokens;  // without the final End
  std::vector<Diagnostic> diagnostics;
};

Lexed lex(std::string text) {
  Lexed out;
  out.source = std::make_shared<const SourceFile>("test.attn", std::move(text));
  DiagnosticEngine diagnostics(out.source);
  Lexer lexer(*out.source, diagnostics);
  for (Token token = lexer.next(); token.kind != TokenKind::End; token = lexer.next()) out.tokens.push_back(token);
  out.diagnostics = diagnostics.diagnostics();
  return out;
}

std::vector<TokenKind> kinds(const Lexed& lexed) {
  std::vector<TokenKind> out;
  for (const Token& token : lexed.tokens) out.push_back(token.kind);
  return out;
}

}  // namespace

TEST_CASE("The lexer tells keywords from names", "[dsl][lexer]") {
  auto [text, kind] = GENERATE(table<std::string, TokenKind>({
      {"score_mod", TokenKind::KwScoreMod},
      {"mask_mod", TokenKind::KwMaskMod},
      {"let", TokenKind::KwLet},
      {"int", TokenKind::KwInt},
      {"float", TokenKind::KwFloat},
      {"bool", TokenKind::KwBool},
      {"true", TokenKind::KwTrue},
      {"false", TokenKind::KwFalse},
      {"inf", TokenKind::KwInf},
      {"q_idx", TokenKind::Name},
      {"_x9", TokenKind::Name},
      {"Inf", TokenKind::Name},
      {"integer", TokenKind::Name},
      {"lets", TokenKind::Name},
      {"score_mods", TokenKind::Name},
  }));
  CAPTURE(text);
  Lexed lexed = lex(text);
  REQUIRE(lexed.tokens.size() == 1);
  CHECK(lexed.tokens[0].kind == kind);
  CHECK(lexed.tokens[0].text == text);
  CHECK(lexed.diagnostics.empty());
}

TEST_CASE("The lexer reads every operator with maximal munch", "[dsl][lexer]") {
  auto [text, expected] = GENERATE(table<std::string, std::vector<TokenKind>>({
      {"( ) [ ] , : ; = ?",
       {TokenKind::LParen, TokenKind::RParen, TokenKind::LBracket, TokenKind::RBracket, TokenKind::Comma,
        TokenKind::Colon, TokenKind::Semicolon, TokenKind::Assign, TokenKind::Question}},
      {"+-*/%", {TokenKind::Plus, TokenKind::Minus, TokenKind::Star, TokenKind::Slash, TokenKind::Percent}},
      {"== != < <= > >= && || !",
       {TokenKind::EqualEqual, TokenKind::BangEqual, TokenKind::Less, TokenKind::LessEqual, TokenKind::Greater,
        TokenKind::GreaterEqual, TokenKind::AmpAmp, TokenKind::PipePipe, TokenKind::Bang}},
      {"a<=-b", {TokenKind::Name, TokenKind::LessEqual, TokenKind::Minus, TokenKind::Name}},
      {"a===b", {TokenKind::Name, TokenKind::EqualEqual, TokenKind::Assign, TokenKind::Name}},
      {"!!x", {TokenKind::Bang, TokenKind::Bang, TokenKind::Name}},
      {"x&&!y", {TokenKind::Name, TokenKind::AmpAmp, TokenKind::Bang, TokenKind::Name}},
  }));
  CAPTURE(text);
  Lexed lexed = lex(text);
  CHECK(kinds(lexed) == expected);
  CHECK(lexed.diagnostics.empty());
}

TEST_CASE("Every token carries the range of its text", "[dsl][lexer]") {
  Lexed lexed = lex("mask_mod  m =\n  q_idx>=4096;");
  REQUIRE(lexed.tokens.size() == 7);
  std::vector<std::pair<uint32_t, uint32_t>> ranges;
  for (const Token& token : lexed.tokens) {
    ranges.emplace_back(token.range.begin, token.range.end);
    CHECK(lexed.source->slice(token.range) == token.text);
  }
  CHECK(ranges ==
        std::vector<std::pair<uint32_t, uint32_t>>{{0, 8}, {10, 11}, {12, 13}, {16, 21}, {21, 23}, {23, 27}, {27, 28}});
  CHECK(lexed.tokens[5].int_value == 4096);
}

TEST_CASE("Integer literals are decimal and saturate instead of overflowing", "[dsl][lexer]") {
  auto [text, value] = GENERATE(table<std::string, uint64_t>({
      {"0", 0},
      {"4096", 4096},
      {"007", 7},
      {"2147483648", 2147483648ull},
      {"18446744073709551615", std::numeric_limits<uint64_t>::max()},
      {"18446744073709551616", std::numeric_limits<uint64_t>::max()},
      {"99999999999999999999999999999999", std::numeric_limits<uint64_t>::max()},
  }));
  CAPTURE(text);
  Lexed lexed = lex(text);
  REQUIRE(lexed.tokens.size() == 1);
  CHECK(lexed.tokens[0].kind == TokenKind::Integer);
  CHECK(lexed.tokens[0].int_value == value);
  CHECK(lexed.diagnostics.empty());
}

TEST_CASE("Float literals need a '.' or an exponent", "[dsl][lexer]") {
  const double inf = std::numeric_limits<double>::infinity();
  auto [text, value] = GENERATE_COPY(table<std::string, double>({
      {"0.5", 0.5},
      {"2.", 2.0},
      {"1e-3", 1e-3},
      {"2.5E+2", 250.0},
      {"3.e1", 30.0},
      {"0.0", 0.0},
      {"1e400", inf},
      {"123.456e99999999999999999999", inf},
      {"1e-400", 0.0},
      {"0.000001e-99999", 0.0},
      {"0e99999", 0.0},
  }));
  CAPTURE(text);
  Lexed lexed = lex(text);
  REQUIRE(lexed.tokens.size() == 1);
  CHECK(lexed.tokens[0].kind == TokenKind::Float);
  CHECK(lexed.tokens[0].float_value == value);
  CHECK(lexed.diagnostics.empty());
}

TEST_CASE("Malformed numbers are one invalid token with a message naming them", "[dsl][lexer]") {
  auto [text, message] = GENERATE(table<std::string, std::string>({
      {".5", "a float literal needs a digit before its '.': write '0.5'"},
      {"2x", "invalid suffix 'x' on number '2'"},
      {"1.5f", "invalid suffix 'f' on number '1.5'"},
      {"1e", "the exponent of '1e' has no digits"},
      {"1e+", "the exponent of '1e+' has no digits"},
      {"3Ex", "the exponent of '3Ex' has no digits"},
  }));
  CAPTURE(text);
  Lexed lexed = lex(text + " ;");
  REQUIRE(lexed.tokens.size() == 2);
  CHECK(lexed.tokens[0].kind == TokenKind::Invalid);
  CHECK(lexed.tokens[0].text == text);
  CHECK(lexed.tokens[1].kind == TokenKind::Semicolon);
  REQUIRE(lexed.diagnostics.size() == 1);
  CHECK(lexed.diagnostics[0].message == message);
  CHECK(lexed.diagnostics[0].column == 1);
  CHECK(lexed.diagnostics[0].length == text.size());
}

TEST_CASE("Comments run to the end of the line and may hold anything", "[dsl][lexer]") {
  SECTION("a comment between tokens") {
    Lexed lexed = lex("a # b c ; \xff\xfe\n d");
    CHECK(kinds(lexed) == std::vector<TokenKind>{TokenKind::Name, TokenKind::Name});
    CHECK(lexed.tokens[1].text == "d");
    CHECK(lexed.diagnostics.empty());
  }
  SECTION("a comment at the end of a file without a newline") {
    Lexed lexed = lex("a #");
    CHECK(kinds(lexed) == std::vector<TokenKind>{TokenKind::Name});
    CHECK(lexed.diagnostics.empty());
  }
  SECTION("a file of only comments and whitespace") {
    Lexed lexed = lex("# one\n\t# two  \r\n   #three");
    CHECK(lexed.tokens.empty());
    CHECK(lexed.diagnostics.empty());
  }
  SECTION("UTF-8 in a comment") {
    Lexed lexed = lex("x # q_idx \xe2\x89\xa5 kv_idx\ny");
    CHECK(kinds(lexed) == std::vector<TokenKind>{TokenKind::Name, TokenKind::Name});
    CHECK(lexed.diagnostics.empty());
  }
}

TEST_CASE("The lexer reports a run of invalid characters once", "[dsl][lexer]") {
  SECTION("a single stray character") {
    Lexed lexed = lex("a $ b");
    CHECK(kinds(lexed) == std::vector<TokenKind>{TokenKind::Name, TokenKind::Invalid, TokenKind::Name});
    REQUIRE(lexed.diagnostics.size() == 1);
    CHECK(lexed.diagnostics[0].message == "unexpected character '$'");
    CHECK(lexed.diagnostics[0].column == 3);
  }
  SECTION("a lone '&' suggests '&&'") {
    Lexed lexed = lex("a & b | c");
    REQUIRE(lexed.diagnostics.size() == 2);
    CHECK(lexed.diagnostics[0].message == "unexpected character '&'; did you mean '&&'?");
    CHECK(lexed.diagnostics[1].message == "unexpected character '|'; did you mean '||'?");
  }
  SECTION("a run of several characters") {
    Lexed lexed = lex("a @$`\\ b");
    REQUIRE(lexed.tokens.size() == 3);
    CHECK(lexed.tokens[1].text == "@$`\\");
    REQUIRE(lexed.diagnostics.size() == 1);
    CHECK(lexed.diagnostics[0].message == "unexpected character '@' (and 3 more invalid bytes)");
    CHECK(lexed.diagnostics[0].length == 4);
  }
  SECTION("a UTF-8 character outside a comment") {
    Lexed lexed = lex("q_idx \xe2\x89\xa5 kv_idx");
    REQUIRE(lexed.tokens.size() == 3);
    CHECK(lexed.tokens[1].kind == TokenKind::Invalid);
    CHECK(lexed.tokens[1].range.size() == 3);
    REQUIRE(lexed.diagnostics.size() == 1);
    CHECK(lexed.diagnostics[0].message ==
          "unexpected character (byte 0xE2) (and 2 more invalid bytes); only comments may hold non-ASCII text");
  }
  SECTION("a NUL byte") {
    Lexed lexed = lex(std::string("a\0b", 3));
    CHECK(kinds(lexed) == std::vector<TokenKind>{TokenKind::Name, TokenKind::Invalid, TokenKind::Name});
    REQUIRE(lexed.diagnostics.size() == 1);
    CHECK(lexed.diagnostics[0].message == "unexpected character (byte 0x00)");
  }
  SECTION("a megabyte of garbage is one diagnostic") {
    Lexed lexed = lex(std::string(1 << 20, '\x80'));
    REQUIRE(lexed.tokens.size() == 1);
    CHECK(lexed.tokens[0].range.size() == 1u << 20);
    CHECK(lexed.diagnostics.size() == 1);
  }
}

TEST_CASE("The lexer stops after too many errors with one note", "[dsl][lexer]") {
  std::string text;
  for (int i = 0; i < 1000; ++i) text += "a $ ";
  Lexed lexed = lex(text);
  REQUIRE(lexed.diagnostics.size() == kMaxSyntaxErrors + 1);
  for (size_t i = 0; i < kMaxSyntaxErrors; ++i) CHECK(lexed.diagnostics[i].severity == Severity::Error);
  CHECK(lexed.diagnostics.back().severity == Severity::Note);
  CHECK(lexed.diagnostics.back().message == "too many errors (100 reported); giving up on this file");
  // The lexer gives up where it stopped: no tokens after the 101st '$'.
  CHECK(lexed.tokens.size() == 202);
}

TEST_CASE("A megabyte of random bytes lexes quickly with a bounded number of diagnostics", "[dsl][lexer]") {
  std::mt19937 random(12345);
  std::string text(1 << 20, '\0');
  for (char& c : text) c = static_cast<char>(random() & 0xff);
  auto start = std::chrono::steady_clock::now();
  Lexed lexed = lex(text);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  CHECK(seconds < 2.0);
  CHECK(lexed.diagnostics.size() == kMaxSyntaxErrors + 1);
}

TEST_CASE("After the last token the lexer returns End forever", "[dsl][lexer]") {
  auto source = std::make_shared<const SourceFile>("t.attn", "x  ");
  DiagnosticEngine diagnostics(source);
  Lexer lexer(*source, diagnostics);
  CHECK(lexer.next().kind == TokenKind::Name);
  for (int i = 0; i < 3; ++i) {
    Token end = lexer.next();
    CHECK(end.kind == TokenKind::End);
    CHECK(end.range.begin == 3);
    CHECK(end.range.end == 3);
  }
  SECTION("and an empty file has only End") {
    auto empty = std::make_shared<const SourceFile>("e.attn", "");
    DiagnosticEngine empty_diagnostics(empty);
    Lexer empty_lexer(*empty, empty_diagnostics);
    CHECK(empty_lexer.next().kind == TokenKind::End);
    CHECK_FALSE(empty_diagnostics.has_errors());
  }
}
