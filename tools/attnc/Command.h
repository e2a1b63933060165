#pragma once
// The subcommands of attnc and what they share: exit codes and usage errors. Only tools/ prints
// or exits; each command returns its exit status to main(). Each command parses its command line
// with CommandLine (tools/attnc/CommandLine.h) before it does anything else.

#include <span>
#include <stdexcept>
#include <string>

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
int run_grad(Args args);
int run_compile(Args args);
int run_cache(Args args);
int run_warmup(Args args);
int run_bench(Args args);
int run_explain(Args args);
// `attnc __sgemm-ceiling REQUEST`: not for people. The child process `attnc bench` measures its
// sgemm ceiling in (bench/suite/Ceiling.h); prints the ceiling as JSON.
int run_sgemm_ceiling(Args args);

}  // namespace attnc::cli
