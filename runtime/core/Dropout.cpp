#include "runtime/core/Dropout.h"

#include <cmath>

#include <fmt/format.h>

#include "runtime/core/RuntimeError.h"

namespace attnc {

void check_dropout(const char* function, const Dropout& dropout) {
  if (!(dropout.rate >= 0.0f && dropout.rate < 1.0f)) {
    throw RuntimeError(fmt::format("{}: the dropout rate must be in [0, 1), got {}", function, dropout.rate));
  }
}

}  // namespace attnc
