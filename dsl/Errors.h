#pragma once
// The error kinds every layer shares. User mistakes in mod text are CompileErrors (dsl/Diagnostics.h);
// compiler bugs are InternalErrors, raised by ATTNC_ASSERT; environment failures are the runtime's
// RuntimeError. Library code throws; only tools/ prints and exits.

#include <stdexcept>
#include <string>

namespace attnc {

// A broken invariant inside attnc itself: never the user's fault.
class InternalError : public std::logic_error {
 public:
  explicit InternalError(const std::string& message) : std::logic_error("internal error: " + message) {}
};

[[noreturn]] void throw_internal_error(const char* condition, const char* file, int line, const std::string& message);

}  // namespace attnc

// Checks an invariant of attnc's own code; a failure throws InternalError naming the place.
#define ATTNC_ASSERT(condition, message)                                             \
  do {                                                                               \
    if (!(condition)) ::attnc::throw_internal_error(#condition, __FILE__, __LINE__, (message)); \
  } while (false)
