#pragma once
// The hand-written lexer of the mod language. It turns a SourceFile into Tokens on demand and
// reports text that is no token ("unexpected character"). All of its state lives in the Lexer
// object, so any number of files can be lexed at once.
//
// It also owns the cap on syntax errors: the parser reports through Lexer::error, so that one
// budget covers both, and a file of garbage yields at most kMaxSyntaxErrors errors and a note
// rather than one diagnostic per byte.

#include <cstddef>
#include <string>
#include <string_view>

#include "dsl/Diagnostics.h"
#include "dsl/Source.h"
#include "dsl/Token.h"

namespace attnc::dsl {

// Syntax errors reported for one file before the lexer gives up on it.
constexpr size_t kMaxSyntaxErrors = 100;

class Lexer {
 public:
  // `source` and `diagnostics` must outlive the lexer and its tokens.
  Lexer(const SourceFile& source, DiagnosticEngine& diagnostics);

  // The next token. After the last one it returns End forever; it does the same once the error
  // budget is spent, which is how a parse of a hopeless file stops early.
  Token next();

  // Reports a syntax error against the file's budget. The error past the budget is replaced by a
  // note saying the lexer gave up, and nothing more is reported.
  void error(SourceRange range, std::string message);
  bool gave_up() const { return gave_up_; }

 private:
  void skip_whitespace_and_comments();
  bool starts_token(size_t at) const;
  Token make(TokenKind kind, size_t begin) const;
  Token lex_name(size_t begin);
  Token lex_number(size_t begin);
  Token lex_invalid_run(size_t begin);
  Token lex_punctuation(size_t begin);

  DiagnosticEngine& diagnostics_;
  std::string_view text_;
  size_t pos_ = 0;
  size_t error_count_ = 0;
  bool gave_up_ = false;
};

}  // namespace attnc::dsl
