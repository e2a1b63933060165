#include "dsl/Ast.h"

namespace attnc::dsl {

const char* spelling(UnaryOp op) {
  switch (op) {
    case UnaryOp::Neg: return "-";
    case UnaryOp::Not: return "!";
  }
  return "?";
}

const char* spelling(BinaryOp op) {
  switch (op) {
    case BinaryOp::Or: return "||";
    case BinaryOp::And: return "&&";
    case BinaryOp::Eq: return "==";
    case BinaryOp::Ne: return "!=";
    case BinaryOp::Lt: return "<";
    case BinaryOp::Le: return "<=";
    case BinaryOp::Gt: return ">";
    case BinaryOp::Ge: return ">=";
    case BinaryOp::Add: return "+";
    case BinaryOp::Sub: return "-";
    case BinaryOp::Mul: return "*";
    case BinaryOp::Div: return "/";
    case BinaryOp::Mod: return "%";
  }
  return "?";
}

const char* spelling(ElemKind kind) {
  switch (kind) {
    case ElemKind::Int: return "int";
    case ElemKind::Float: return "float";
    case ElemKind::Bool: return "bool";
  }
  return "?";
}

const char* spelling(ModKind kind) {
  switch (kind) {
    case ModKind::Score: return "score_mod";
    case ModKind::Mask: return "mask_mod";
  }
  return "?";
}

}  // namespace attnc::dsl
