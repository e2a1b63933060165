#include "dsl/Lexer.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <utility>

#include <fmt/format.h>

#include "dsl/Errors.h"

namespace attnc::dsl {

namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_name_char(char c) { return is_name_start(c) || is_digit(c); }
bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }
bool is_single_punctuation(char c) { return std::string_view("()[],:;=?+-*/%!<>").find(c) != std::string_view::npos; }

TokenKind keyword_or_name(std::string_view text) {
  static constexpr std::pair<std::string_view, TokenKind> kKeywords[] = {
      {"score_mod", TokenKind::KwScoreMod},
      {"mask_mod", TokenKind::KwMaskMod},
      {"let", TokenKind::KwLet},
      {"int", TokenKind::KwInt},
      {"float", TokenKind::KwFloat},
      {"bool", TokenKind::KwBool},
      {"true", TokenKind::KwTrue},
      {"false", TokenKind::KwFalse},
      {"inf", TokenKind::KwInf},
  };
  for (const auto& [spelling, kind] : kKeywords) {
    if (text == spelling) return kind;
  }
  return TokenKind::Name;
}

// Decimal digits to a value, saturating at UINT64_MAX: "integer literal too large" is the type
// checker's message, and it only needs to know that the value is out of range.
uint64_t saturating_decimal(std::string_view digits) {
  uint64_t value = 0;
  constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
  for (char c : digits) {
    uint64_t digit = static_cast<uint64_t>(c - '0');
    if (value > (kMax - digit) / 10) return kMax;
    value = value * 10 + digit;
  }
  return value;
}

// The value of a well-formed FLOAT spelling. from_chars is locale-independent (strtod is not) but
// leaves its output alone when the value is out of double's range, so that case is decided here
// from the decimal exponent of the first significant digit: huge values become +inf, tiny ones 0.
double float_value(std::string_view text) {
  double value = 0;
  auto [end, status] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (status == std::errc()) return value;
  size_t exponent_at = text.find_first_of("eE");
  std::string_view mantissa = text.substr(0, exponent_at);
  int64_t exponent = 0;
  if (exponent_at != std::string_view::npos) {
    std::string_view digits = text.substr(exponent_at + 1);
    bool negative = !digits.empty() && digits[0] == '-';
    if (!digits.empty() && (digits[0] == '-' || digits[0] == '+')) digits.remove_prefix(1);
    exponent = static_cast<int64_t>(std::min<uint64_t>(saturating_decimal(digits), 1u << 30));
    if (negative) exponent = -exponent;
  }
  size_t point = mantissa.find('.');
  size_t integer_digits = point == std::string_view::npos ? mantissa.size() : point;
  size_t first = mantissa.find_first_not_of("0.");
  if (first == std::string_view::npos) return 0;
  // The first significant digit stands for 10^magnitude.
  int64_t magnitude = first < integer_digits ? static_cast<int64_t>(integer_digits - first) - 1
                                             : -static_cast<int64_t>(first - integer_digits);
  return magnitude + exponent > 0 ? std::numeric_limits<double>::infinity() : 0.0;
}

std::string describe_byte(char c) {
  auto byte = static_cast<unsigned char>(c);
  if (byte >= 0x20 && byte < 0x7f) return fmt::format("'{}'", c);
  return fmt::format("(byte 0x{:02X})", byte);
}

}  // namespace

Lexer::Lexer(const SourceFile& source, DiagnosticEngine& diagnostics)
    : diagnostics_(diagnostics), text_(source.text()) {
  // SourceRange offsets are 32-bit.
  if (text_.size() >= std::numeric_limits<uint32_t>::max()) {
    error({0, 0}, "file is too large (4 GiB or more)");
    gave_up_ = true;
  }
}

void Lexer::error(SourceRange range, std::string message) {
  if (gave_up_) return;
  if (error_count_ == kMaxSyntaxErrors) {
    diagnostics_.note(range, fmt::format("too many errors ({} reported); giving up on this file", error_count_));
    gave_up_ = true;
    return;
  }
  ++error_count_;
  diagnostics_.error(range, std::move(message));
}

Token Lexer::make(TokenKind kind, size_t begin) const {
  Token token;
  token.kind = kind;
  token.range = {static_cast<uint32_t>(begin), static_cast<uint32_t>(pos_)};
  token.text = text_.substr(begin, pos_ - begin);
  return token;
}

void Lexer::skip_whitespace_and_comments() {
  while (pos_ < text_.size()) {
    char c = text_[pos_];
    if (is_space(c)) {
      ++pos_;
    } else if (c == '#') {
      // A comment runs to the end of the line and may hold any bytes, UTF-8 included.
      size_t newline = text_.find('\n', pos_);
      pos_ = newline == std::string_view::npos ? text_.size() : newline + 1;
    } else {
      return;
    }
  }
}

// Whether a token (or a comment, or whitespace) can begin at `at`; bytes for which this is false
// are gathered into one Invalid token per run.
bool Lexer::starts_token(size_t at) const {
  char c = text_[at];
  char after = at + 1 < text_.size() ? text_[at + 1] : '\0';
  if (is_space(c) || c == '#' || is_name_start(c) || is_digit(c) || is_single_punctuation(c)) return true;
  if (c == '&' || c == '|') return after == c;
  // ".5" is not in the grammar, but it gets its own message (see lex_number).
  if (c == '.') return is_digit(after);
  return false;
}

Token Lexer::next() {
  skip_whitespace_and_comments();
  if (gave_up_ || pos_ >= text_.size()) {
    Token end;
    end.kind = TokenKind::End;
    uint32_t at = static_cast<uint32_t>(std::min<size_t>(text_.size(), std::numeric_limits<uint32_t>::max()));
    end.range = {at, at};
    return end;
  }
  size_t begin = pos_;
  char c = text_[pos_];
  if (!starts_token(pos_)) return lex_invalid_run(begin);
  if (is_name_start(c)) return lex_name(begin);
  if (is_digit(c) || c == '.') return lex_number(begin);
  return lex_punctuation(begin);
}

// NAME := [A-Za-z_][A-Za-z0-9_]*, unless it spells a keyword.
Token Lexer::lex_name(size_t begin) {
  while (pos_ < text_.size() && is_name_char(text_[pos_])) ++pos_;
  return make(keyword_or_name(text_.substr(begin, pos_ - begin)), begin);
}

// INTEGER := digit+
// FLOAT   := digit+ "." digit* [ exponent ] | digit+ exponent
// exponent := ( "e" | "E" ) [ "+" | "-" ] digit+
//
// The contract's FLOAT has a '.' or an exponent and gives 0.5, 1e-3 and 2. as examples. A leading
// '.' (".5") is not in the grammar: it is lexed here only to say how to write it ("0.5"), as C
// programmers will try it. A number running into letters ("2x", "1.5f") is one invalid token, so
// the message names the whole thing rather than complaining about a stray name after it.
Token Lexer::lex_number(size_t begin) {
  auto digits = [&] {
    while (pos_ < text_.size() && is_digit(text_[pos_])) ++pos_;
  };
  bool leading_point = text_[pos_] == '.';
  bool is_float = false;
  digits();
  if (pos_ < text_.size() && text_[pos_] == '.') {
    ++pos_;
    is_float = true;
    digits();
  }
  bool exponent_missing = false;
  if (pos_ < text_.size() && (text_[pos_] == 'e' || text_[pos_] == 'E')) {
    ++pos_;
    is_float = true;
    if (pos_ < text_.size() && (text_[pos_] == '+' || text_[pos_] == '-')) ++pos_;
    exponent_missing = pos_ >= text_.size() || !is_digit(text_[pos_]);
    digits();
  }
  size_t number_end = pos_;
  while (pos_ < text_.size() && is_name_char(text_[pos_])) ++pos_;
  Token token = make(is_float ? TokenKind::Float : TokenKind::Integer, begin);
  std::string_view number = text_.substr(begin, number_end - begin);

  std::string problem;
  if (leading_point) {
    problem = fmt::format("a float literal needs a digit before its '.': write '0{}'", token.text);
  } else if (exponent_missing) {
    problem = fmt::format("the exponent of '{}' has no digits", token.text);
  } else if (pos_ != number_end) {
    problem = fmt::format("invalid suffix '{}' on number '{}'", text_.substr(number_end, pos_ - number_end), number);
  }
  if (!problem.empty()) {
    token.kind = TokenKind::Invalid;
    error(token.range, std::move(problem));
    return token;
  }
  if (is_float) {
    token.float_value = float_value(number);
  } else {
    token.int_value = saturating_decimal(number);
  }
  return token;
}

// A run of bytes that cannot start a token (binary garbage, UTF-8 outside comments, '$', a lone
// '&') becomes one Invalid token and one diagnostic, however long the run.
Token Lexer::lex_invalid_run(size_t begin) {
  while (pos_ < text_.size() && !starts_token(pos_)) ++pos_;
  Token token = make(TokenKind::Invalid, begin);
  std::string message = "unexpected character " + describe_byte(token.text[0]);
  if (token.text == "&") message += "; did you mean '&&'?";
  if (token.text == "|") message += "; did you mean '||'?";
  if (token.text.size() > 1) message += fmt::format(" (and {} more invalid bytes)", token.text.size() - 1);
  if (static_cast<unsigned char>(token.text[0]) >= 0x80) message += "; only comments may hold non-ASCII text";
  error(token.range, std::move(message));
  return token;
}

Token Lexer::lex_punctuation(size_t begin) {
  char c = text_[pos_++];
  auto followed_by = [&](char expected) {
    if (pos_ < text_.size() && text_[pos_] == expected) {
      ++pos_;
      return true;
    }
    return false;
  };
  switch (c) {
    case '(': return make(TokenKind::LParen, begin);
    case ')': return make(TokenKind::RParen, begin);
    case '[': return make(TokenKind::LBracket, begin);
    case ']': return make(TokenKind::RBracket, begin);
    case ',': return make(TokenKind::Comma, begin);
    case ':': return make(TokenKind::Colon, begin);
    case ';': return make(TokenKind::Semicolon, begin);
    case '?': return make(TokenKind::Question, begin);
    case '+': return make(TokenKind::Plus, begin);
    case '-': return make(TokenKind::Minus, begin);
    case '*': return make(TokenKind::Star, begin);
    case '/': return make(TokenKind::Slash, begin);
    case '%': return make(TokenKind::Percent, begin);
    case '=': return make(followed_by('=') ? TokenKind::EqualEqual : TokenKind::Assign, begin);
    case '!': return make(followed_by('=') ? TokenKind::BangEqual : TokenKind::Bang, begin);
    case '<': return make(followed_by('=') ? TokenKind::LessEqual : TokenKind::Less, begin);
    case '>': return make(followed_by('=') ? TokenKind::GreaterEqual : TokenKind::Greater, begin);
    case '&': ++pos_; return make(TokenKind::AmpAmp, begin);    // starts_token saw the second '&'
    case '|': ++pos_; return make(TokenKind::PipePipe, begin);  // starts_token saw the second '|'
    default: break;
  }
  ATTNC_ASSERT(false, fmt::format("starts_token accepted {} but no token begins with it", describe_byte(c)));
  return make(TokenKind::Invalid, begin);
}

}  // namespace attnc::dsl
