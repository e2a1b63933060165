// attnc: the command-line front of the attention compiler. Dispatches to the subcommands and turns
// exceptions into messages on stderr and documented exit codes.

#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "dsl/Diagnostics.h"
#include "dsl/Errors.h"
#include "runtime/core/RuntimeError.h"
#include "tools/attnc/Command.h"

namespace {

using namespace attnc::cli;

const char* const kMainHelp = R"(attnc: a JIT compiler for attention score mods and mask mods

Usage: attnc <command> [options]

Commands:
  check FILE...      parse and type-check mod files
  ir FILE --mod NAME print a mod's optimised IR and its signature
  run FILE ...       run attention with a file's mods on .npy tensors, on the
                     CPU (flash, standard, decode, memory-efficient, linear
                     kernels), through a paged KV cache (--paged), on MPI
                     ranks (--kernel ring) or (--device cuda) a GPU
  grad FILE ...      the backward pass: dQ, dK, dV and the score mod's tensor
                     parameter gradients for a given dOut, on the CPU
  compile FILE ...   fuse a file's mods into a CUDA kernel (flash, Hopper
                     flash_sm90, decode): CUDA C++, PTX or cubin
  warmup MANIFEST    compile the kernels a manifest lists into the kernel cache
  explain FILE ...   show a mask's tile map (EMPTY / FULL / PARTIAL tiles), the
                     work it keeps, and an SVG picture of it
  cache ACTION       the kernel cache: stats, list, verify, clear, prune
  bench              time the CPU flash kernel over a suite, against an sgemm
                     ceiling and the FMA peak of the cores; --decode: CPU
                     decoding against a memory-read ceiling; --linear: linear
                     attention against an sgemm ceiling

Run `attnc <command> --help` for a command's options.

Exit status:
  0  success
  1  the mod text has errors (diagnostics on stderr)
  2  the command line is wrong (nothing was done)
  3  a run-time failure: unreadable or mismatched files, tensors or arguments

Documentation: docs/cli.md, docs/language.md, docs/semantics.md
)";

struct CommandEntry {
  const char* name;
  int (*run)(Args);
};

const CommandEntry kCommands[] = {
    {"check", run_check},
    {"ir", run_ir},
    {"run", run_run},
    {"grad", run_grad},
    {"compile", run_compile},
    {"warmup", run_warmup},
    {"cache", run_cache},
    {"bench", run_bench},
    {"explain", run_explain},
    {"__sgemm-ceiling", run_sgemm_ceiling},  // not listed: see Command.h
};

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    std::fputs(kMainHelp, args.empty() ? stderr : stdout);
    return args.empty() ? kExitUsage : kExitOk;
  }
  if (args[0] == "--version") {
    std::puts("attnc 0.1.0");
    return kExitOk;
  }
  const CommandEntry* command = nullptr;
  for (const CommandEntry& entry : kCommands) {
    if (args[0] == entry.name) command = &entry;
  }
  if (command == nullptr) {
    fmt::print(stderr, "attnc: unknown command '{}'; see `attnc --help`\n", args[0]);
    return kExitUsage;
  }
  Args rest(args.data() + 1, args.size() - 1);
  try {
    return command->run(rest);
  } catch (const UsageError& e) {
    fmt::print(stderr, "attnc {}: {}\nsee `attnc {} --help`\n", command->name, e.what(), command->name);
    return kExitUsage;
  } catch (const attnc::dsl::CompileError& e) {
    std::fputs(e.what(), stderr);
    return kExitCompileError;
  } catch (const attnc::InternalError& e) {
    fmt::print(stderr, "attnc {}: {}\nthis is a bug in attnc; please report it with the input that caused it\n",
               command->name, e.what());
    return kExitRuntime;
  } catch (const std::exception& e) {
    fmt::print(stderr, "attnc {}: error: {}\n", command->name, e.what());
    return kExitRuntime;
  }
}
