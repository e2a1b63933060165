#pragma once
// The subcommands of attnc and what they share: exit codes, argument lists and usage errors.
// Only tools/ prints or exits; each command returns its exit status to main().

#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace attnc::cli {

// Documented in docs/cli.md and `attnc --help`.
enum ExitCode : int {
  kExitOk = 0,
  kExitCompileError = 1,  // diagnostics in mod text
  kExitUsage = 2,         // bad command line
  kExitRuntime = 3,       // files, tensors, arguments or the environment
};

// A command-line mistake: printed with a pointer to --help, exit status 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

using Args = std::span<const std::string>;

int run_check(Args args);
int run_ir(Args args);
int run_run(Args args);
int run_compile(Args args);
int run_cache(Args args);
int run_warmup(Args args);
int run_bench(Args args);

extern const char* const kCheckHelp;
extern const char* const kIrHelp;
extern const char* const kRunHelp;
extern const char* const kCompileHelp;
extern const char* const kCacheHelp;
extern const char* const kWarmupHelp;
extern const char* const kBenchHelp;

// Small helpers for hand-written option loops.
bool is_help(std::string_view arg);
// The value after option args[i] ("--q X"), advancing i; a UsageError when missing.
const std::string& option_value(Args args, size_t& i);

}  // namespace attnc::cli
