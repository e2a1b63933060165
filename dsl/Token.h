#pragma once
// The tokens of the mod language (../shared/spec/mod-language.md). The Lexer produces them one at a
// time; each carries the SourceRange of its text so the parser can point diagnostics at it.

#include <cstdint>
#include <string_view>

#include "dsl/Source.h"

namespace attnc::dsl {

enum class TokenKind {
  // Keywords.
  KwScoreMod,  // score_mod
  KwMaskMod,   // mask_mod
  KwLet,       // let
  KwInt,       // int
  KwFloat,     // float
  KwBool,      // bool
  KwTrue,      // true
  KwFalse,     // false
  KwInf,       // inf
  // Punctuation and operators.
  LParen,        // (
  RParen,        // )
  LBracket,      // [
  RBracket,      // ]
  Comma,         // ,
  Colon,         // :
  Semicolon,     // ;
  Assign,        // =
  Question,      // ?
  Plus,          // +
  Minus,         // -
  Star,          // *
  Slash,         // /
  Percent,       // %
  Bang,          // !
  EqualEqual,    // ==
  BangEqual,     // !=
  Less,          // <
  LessEqual,     // <=
  Greater,       // >
  GreaterEqual,  // >=
  AmpAmp,        // &&
  PipePipe,      // ||
  // Literals and names.
  Integer,  // decimal digits; int_value holds the value, saturated at UINT64_MAX
  Float,    // digits with a '.' or an exponent; float_value holds the value
  Name,     // [A-Za-z_][A-Za-z0-9_]* that is not a keyword
  // End of input (repeated forever once reached), and text that is no token at all. The lexer has
  // already reported an Invalid token, so the parser must not report it again.
  End,
  Invalid,
};

struct Token {
  TokenKind kind = TokenKind::End;
  SourceRange range;
  std::string_view text;   // the token's bytes in the source (the source outlives its tokens)
  uint64_t int_value = 0;  // Integer
  double float_value = 0;  // Float
};

// How a kind reads in a diagnostic: "';'", "'score_mod'", "a name", "end of file".
constexpr const char* describe(TokenKind kind) {
  switch (kind) {
    case TokenKind::KwScoreMod: return "'score_mod'";
    case TokenKind::KwMaskMod: return "'mask_mod'";
    case TokenKind::KwLet: return "'let'";
    case TokenKind::KwInt: return "'int'";
    case TokenKind::KwFloat: return "'float'";
    case TokenKind::KwBool: return "'bool'";
    case TokenKind::KwTrue: return "'true'";
    case TokenKind::KwFalse: return "'false'";
    case TokenKind::KwInf: return "'inf'";
    case TokenKind::LParen: return "'('";
    case TokenKind::RParen: return "')'";
    case TokenKind::LBracket: return "'['";
    case TokenKind::RBracket: return "']'";
    case TokenKind::Comma: return "','";
    case TokenKind::Colon: return "':'";
    case TokenKind::Semicolon: return "';'";
    case TokenKind::Assign: return "'='";
    case TokenKind::Question: return "'?'";
    case TokenKind::Plus: return "'+'";
    case TokenKind::Minus: return "'-'";
    case TokenKind::Star: return "'*'";
    case TokenKind::Slash: return "'/'";
    case TokenKind::Percent: return "'%'";
    case TokenKind::Bang: return "'!'";
    case TokenKind::EqualEqual: return "'=='";
    case TokenKind::BangEqual: return "'!='";
    case TokenKind::Less: return "'<'";
    case TokenKind::LessEqual: return "'<='";
    case TokenKind::Greater: return "'>'";
    case TokenKind::GreaterEqual: return "'>='";
    case TokenKind::AmpAmp: return "'&&'";
    case TokenKind::PipePipe: return "'||'";
    case TokenKind::Integer: return "an integer";
    case TokenKind::Float: return "a float";
    case TokenKind::Name: return "a name";
    case TokenKind::End: return "end of file";
    case TokenKind::Invalid: return "an invalid token";
  }
  return "a token";
}

constexpr bool is_keyword(TokenKind kind) { return kind >= TokenKind::KwScoreMod && kind <= TokenKind::KwInf; }

}  // namespace attnc::dsl
