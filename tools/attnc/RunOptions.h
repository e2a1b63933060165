#pragma once
// attnc run's command line: its options, parsed and checked against one another (which apply to
// the chosen kernel and device) before anything is read or computed, so that every mistake in it
// is a usage error (exit status 2) up front. docs/cli.md, "attnc run", documents each option.

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "compiler/DType.h"
#include "tools/attnc/Command.h"

namespace attnc::cli {

// The kernels `--kernel` names. Flash is the CPU's default; on --device cuda the default lets
// attention() choose (decode for short queries, a flash family otherwise).
enum class RunKernel { Flash, Standard, Decode, MemoryEfficient, Linear, Ring };

const char* run_kernel_name(RunKernel kernel);  // as --kernel spells it

// The page sizes `--paged` takes: those of runtime/core/KvCache.h's paged cache.
inline constexpr int kRunPageSizes[] = {16, 32, 64, 128};
// The seed of --paged's block table when --seed is not given.
inline constexpr uint32_t kRunDefaultSeed = 1;

struct RunOptions {
  std::string file, score_mod, mask_mod, q, k, v, out, lse, mask;
  std::vector<std::pair<std::string, std::string>> args;  // --arg NAME=VALUE, in order
  std::optional<float> scale;
  std::optional<DType> dtype;  // --dtype: what q, k and v must hold
  bool check_bounds = false;
  RunKernel kernel = RunKernel::Flash;
  bool kernel_given = false;  // --kernel was given (on cuda the default is attention()'s choice)
  bool cuda = false;          // --device cuda
  bool trust_shared_cache = false;
  int32_t q_offset = 0;             // --q-offset: query i sits at position q_offset + i
  int block_size = 512;             // --block-size, memory-efficient only
  bool causal = false;              // --causal, linear only
  int page_size = 0;                // --paged PAGE_SIZE; 0: the contiguous path
  uint32_t seed = kRunDefaultSeed;  // --seed of the paged block table

  bool has_mods() const { return !score_mod.empty() || !mask_mod.empty(); }
};

// Parses `attnc run`'s arguments. nullopt when --help was given (the help has been printed).
// UsageError for any mistake, including options that do not apply to the chosen kernel or device.
std::optional<RunOptions> parse_run_options(Args args);

// A float from the command line: a number within float's range ("inf" and "-inf" too); UsageError
// naming `what` otherwise.
float parse_run_float(const std::string& text, const std::string& what);

}  // namespace attnc::cli
