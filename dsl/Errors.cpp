#include "dsl/Errors.h"

#include <fmt/format.h>

namespace attnc {

void throw_internal_error(const char* condition, const char* file, int line, const std::string& message) {
  throw InternalError(fmt::format("{} ({}:{}: {})", message, file, line, condition));
}

}  // namespace attnc
