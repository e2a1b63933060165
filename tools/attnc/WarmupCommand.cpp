// attnc warmup MANIFEST.json: the deployment step. Compiles every kernel a manifest lists into the
// kernel cache, in parallel, so the processes that later run them find them all cached and never
// need NVRTC. The manifest format is documented in docs/cli.md (example: examples/warmup.json) and
// read by tools/attnc/WarmupManifest.h; each kernel is planned by its family as `attnc compile`
// plans it (tools/attnc/CudaKernelPlan.h).

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <set>
#include <thread>

#include <fmt/format.h>

#include "compiler/Frontend.h"
#include "compiler/Prelude.h"
#include "dsl/Diagnostics.h"
#include "runtime/cache/Warmup.h"
#include "runtime/core/Mod.h"
#include "runtime/core/ModSpec.h"
#include "runtime/core/RuntimeError.h"
#include "runtime/cuda/Architectures.h"
#include "runtime/cuda/CompileThroughCache.h"
#include "runtime/cuda/Nvrtc.h"
#include "tools/attnc/CommandLine.h"
#include "tools/attnc/CudaKernelPlan.h"
#include "tools/attnc/WarmupManifest.h"

namespace attnc::cli {

namespace {

// An entry's mods, loaded and optimised once for all of its kernels.
struct EntryMods {
  ModSpec score, mask;
  std::string error;            // when loading failed: every kernel of the entry fails with it
  bool mod_text_error = false;  // the error is diagnostics in the mod file
};

EntryMods load_entry_mods(const ManifestEntry& entry) {
  EntryMods mods;
  try {
    ir::Module module = entry.file.empty() ? ir::prelude_module() : ir::load_module_file(entry.path.string());
    auto pick = [&](const std::string& name, ir::ModKind kind) -> std::optional<Mod> {
      if (name.empty()) return std::nullopt;
      Mod mod = Mod::from_module(module, name);
      if (mod.kind() != kind) {
        throw RuntimeError(fmt::format("'{}' is a {}, not a {}", name,
                                       mod.kind() == ir::ModKind::Score ? "score_mod" : "mask_mod",
                                       kind == ir::ModKind::Score ? "score_mod" : "mask_mod"));
      }
      return mod;
    };
    std::optional<Mod> score = pick(entry.score_mod, ir::ModKind::Score);
    std::optional<Mod> mask = pick(entry.mask_mod, ir::ModKind::Mask);
    for (const auto& [name, dtype] : entry.param_dtypes) {
      if (!(score && score->def().find_param(name)) && !(mask && mask->def().find_param(name))) {
        throw RuntimeError(fmt::format("\"param_dtypes\" names '{}', which no selected mod has", name));
      }
    }
    if (score) mods.score = ModSpec::of(*score, entry.param_dtypes);
    if (mask) mods.mask = ModSpec::of(*mask, entry.param_dtypes);
  } catch (const dsl::CompileError& e) {
    mods.error = e.what();
    mods.mod_text_error = true;
  } catch (const std::exception& e) {
    mods.error = e.what();
  }
  return mods;
}

// How kernels are compiled: NVRTC, or (for attnc's own tests) a stand-in that records each
// compile in a log file, selected by ATTNC_WARMUP_FAKE_COMPILER=LOGFILE.
struct Backend {
  std::string fake_log;  // empty: NVRTC
  std::string nvrtc_version;
};

CachedKernel fake_compile(const std::string& log, const KernelKey& key, const std::string& label) {
  std::string line = key.hash_hex() + " " + label + "\n";
  int fd = ::open(log.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) throw RuntimeError("cannot open the fake compiler's log '" + log + "'");
  bool written = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
  ::close(fd);
  if (!written) throw RuntimeError("cannot write the fake compiler's log '" + log + "'");
  std::this_thread::sleep_for(std::chrono::milliseconds(30));  // long enough for processes to overlap
  return CachedKernel{"fake cubin\n" + key.serialize(), "entry=attnc_fake\n"};
}

// The progress label of one kernel: "<built-in> mask=causal bf16 d128 sm_90a flash_sm90".
std::string job_label(const ManifestEntry& entry, const CudaKernelRequest& request) {
  std::string label = entry.file.empty() ? "<built-in>" : entry.file;
  if (!entry.score_mod.empty()) label += " score=" + entry.score_mod;
  if (!entry.mask_mod.empty()) label += " mask=" + entry.mask_mod;
  label += fmt::format(" {} d{}", dtype_name(request.dtype), request.head_dim);
  if (request.head_dim_v != request.head_dim) label += fmt::format("/{}", request.head_dim_v);
  label += fmt::format(" {} {}", request.arch, cuda_family_name(resolve_cuda_family(request)));
  if (request.family == CudaFamily::Decode) label += fmt::format(" rows={}", request.decode_rows);
  if (request.check_bounds) label += " check-bounds";
  return label;
}

std::vector<WarmupJob> make_jobs(const std::vector<ManifestEntry>& entries, const std::vector<EntryMods>& mods,
                                 const Backend& backend) {
  std::vector<WarmupJob> jobs;
  for (size_t e = 0; e < entries.size(); ++e) {
    const ManifestEntry& entry = entries[e];
    const EntryMods& entry_mods = mods[e];
    for (DType dtype : entry.dtypes) {
      for (auto [head_dim, head_dim_v] : entry.head_dims) {
        for (const std::string& arch : entry.archs) {
          for (CudaFamily family : entry.families) {
            const std::vector<int> one_row = {1};
            for (int rows : family == CudaFamily::Decode ? entry.decode_rows : one_row) {
              CudaKernelRequest request;
              request.score = entry_mods.score;
              request.mask = entry_mods.mask;
              request.dtype = dtype;
              request.head_dim = head_dim;
              request.head_dim_v = head_dim_v;
              request.arch = arch;
              request.check_bounds = entry.check_bounds;
              request.family = family;
              request.decode_rows = rows;
              const std::string label = job_label(entry, request);
              // The plan is made when the job runs, so an unsupported configuration fails that job alone.
              auto plan = std::make_shared<std::optional<PlannedCudaKernel>>();
              auto make_key = [&entry_mods, &backend, request, plan] {
                if (!entry_mods.error.empty()) throw RuntimeError(entry_mods.error);
                *plan = plan_cuda_kernel(request);
                return (*plan)->key.with("nvrtc", backend.nvrtc_version);
              };
              KernelCache::Compiler compile = [&backend, plan, label](const KernelKey& key) {
                if (!backend.fake_log.empty()) return fake_compile(backend.fake_log, key, label);
                const PlannedCudaKernel& p = **plan;
                return cuda::compile_cuda_binary(p.program(/*annotate_names=*/false), p.entry, p.nvrtc_options);
              };
              jobs.push_back(WarmupJob{label, make_key, compile});
            }
          }
        }
      }
    }
  }
  return jobs;
}

// Only the first line of a multi-line reason goes on the progress line.
std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

// The jobs that build distinct kernels: a configuration listed twice (in one entry or in two) is
// built once. Jobs whose key cannot be made are kept: each fails with its own reason.
std::vector<WarmupJob> distinct_jobs(std::vector<WarmupJob> jobs, size_t& duplicates) {
  std::vector<WarmupJob> distinct;
  std::set<std::string> keys;
  duplicates = 0;
  for (WarmupJob& job : jobs) {
    std::string key;
    try {
      key = job.make_key().serialize();
    } catch (const std::exception&) {
      distinct.push_back(std::move(job));
      continue;
    }
    if (keys.insert(key).second) {
      distinct.push_back(std::move(job));
    } else {
      ++duplicates;
    }
  }
  return distinct;
}

}  // namespace

int run_warmup(Args args) {
  std::vector<std::string> manifests;
  std::string jobs_text, cache_dir;
  bool trust_shared_cache = false;
  CommandLine command_line("attnc warmup",
                           "attnc warmup MANIFEST.json [--jobs N] [--cache-dir DIR] [--trust-shared-cache]",
                           R"(Compiles every kernel MANIFEST.json lists into the kernel cache, N at a time,
so that later runs find them cached (the deployment step). Each entry of the
manifest names a mod file (or none, for the built-in mods), a score mod and/or
a mask mod, and lists of dtypes, head dims, architectures and (optionally)
kernel families: one kernel is built for every combination, and a combination
listed twice is built once. The family "auto" (the default) is the one the
runtime runs for long queries: flash_sm90 on sm_90a where it applies, flash
otherwise; "decode" builds the decode family for each of "decode_rows".
Kernels already in the cache are not rebuilt.

Prints one line per finished kernel on stderr (an updating line when stderr is
a terminal), then a summary: how many were compiled, already cached, and
failed, with each failure's reason. Needs NVRTC, not a GPU.
)",
                           fmt::format(R"(Manifest (see docs/cli.md and examples/warmup.json):
  {{"version": 1,
   "kernels": [{{"file": "mistral.attn", "mask_mod": "sliding_window",
                "dtypes": ["bf16"], "head_dims": [64, 128],
                "archs": ["sm_80", "sm_90a"],
                "families": ["auto", "decode"], "decode_rows": [4]}}]}}
Architectures: {}. Families: {}.

Exit status: 0 when every kernel is compiled or cached, 1 when a mod file has
errors, 2 on usage errors, 3 when the manifest is malformed, the cache
directory cannot be used, or any kernel failed.
)",
                                       cuda::cuda_architecture_list(), cuda_family_list()));
  CLI::App& app = command_line.app();
  app.add_option("MANIFEST", manifests, "the manifest (JSON)")->type_name("");
  app.add_option("-j,--jobs", jobs_text, "compile N kernels at once (default: the number of CPUs)")->type_name("N");
  app.add_option("--cache-dir", cache_dir,
                 "the cache directory (default: $ATTNC_CACHE_DIR, else\n$XDG_CACHE_HOME/attnc, else ~/.cache/attnc)")
      ->type_name("DIR");
  app.add_flag("--trust-shared-cache", trust_shared_cache,
               "use a cache directory that other users own or may\nwrite (docs/cli.md)");
  if (!command_line.parse(args)) return kExitOk;
  if (manifests.empty()) throw UsageError("no manifest given");
  if (manifests.size() > 1) {
    throw UsageError("more than one manifest given ('" + manifests[0] + "' and '" + manifests[1] + "')");
  }
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (!jobs_text.empty()) {
    std::optional<int> n = parse_int(jobs_text, 1, 1024);
    if (!n) throw UsageError("--jobs takes a number from 1 to 1024, got '" + jobs_text + "'");
    threads = *n;
  }
  const std::string& manifest = manifests[0];

  std::vector<ManifestEntry> entries = read_manifest(manifest);
  KernelCacheOptions options;
  options.directory = cache_dir;
  options.require_disk = true;
  options.max_disk_bytes = 0;  // a warmup never evicts what it (or an earlier one) just built
  options.trust_shared_directory = trust_shared_cache;
  KernelCache cache(options);

  Backend backend;
  if (const char* fake = std::getenv("ATTNC_WARMUP_FAKE_COMPILER"); fake != nullptr && *fake != '\0') {
    backend.fake_log = fake;
    backend.nvrtc_version = "fake";
  } else {
    if (!cuda::Nvrtc::available()) {
      throw RuntimeError("warmup compiles kernels with NVRTC, which cannot be used here: " +
                         cuda::Nvrtc::unavailable_reason());
    }
    backend.nvrtc_version = cuda::Nvrtc::get().version();
  }

  std::vector<EntryMods> mods;
  bool mod_text_errors = false;
  for (const ManifestEntry& entry : entries) {
    mods.push_back(load_entry_mods(entry));
    mod_text_errors = mod_text_errors || mods.back().mod_text_error;
  }
  size_t duplicates = 0;
  std::vector<WarmupJob> jobs = distinct_jobs(make_jobs(entries, mods, backend), duplicates);

  bool tty = ::isatty(STDERR_FILENO) != 0;
  auto on_done = [&](const WarmupOutcome& outcome, size_t done, size_t total) {
    const char* status = outcome.status == WarmupOutcome::Status::Compiled ? "compiled"
                         : outcome.status == WarmupOutcome::Status::Cached ? "cached"
                                                                           : "FAILED";
    std::string line = fmt::format("[{}/{}] {:<8} {} ({:.2f} s)", done, total, status, outcome.label, outcome.seconds);
    if (outcome.status == WarmupOutcome::Status::Failed) line += ": " + first_line(outcome.reason);
    if (tty) {
      // One line redrawn in place; failures stay on screen.
      fmt::print(stderr, "\r\033[K{}{}", line,
                 outcome.status == WarmupOutcome::Status::Failed || done == total ? "\n" : "");
    } else {
      fmt::print(stderr, "{}\n", line);
    }
    std::fflush(stderr);
  };
  WarmupSummary summary = warm_cache(cache, jobs, threads, on_done);

  std::string repeated =
      duplicates == 0 ? ""
                      : fmt::format(" ({} repeated configuration{} skipped)", duplicates, duplicates == 1 ? "" : "s");
  fmt::print("warmup: {} kernel{}{}: {} compiled, {} already cached, {} failed ({:.2f} s, {} thread{}) in {}\n",
             jobs.size(), jobs.size() == 1 ? "" : "s", repeated, summary.compiled, summary.cached, summary.failed,
             summary.seconds, summary.threads, summary.threads == 1 ? "" : "s", cache.directory().string());
  if (summary.failed > 0) {
    fmt::print(stderr, "failed:\n");
    for (const WarmupOutcome& outcome : summary.outcomes) {
      if (outcome.status != WarmupOutcome::Status::Failed) continue;
      fmt::print(stderr, "  {}:\n", outcome.label);
      std::string reason = outcome.reason;
      while (!reason.empty() && reason.back() == '\n') reason.pop_back();
      for (size_t start = 0; start <= reason.size();) {
        size_t end = std::min(reason.find('\n', start), reason.size());
        fmt::print(stderr, "    {}\n", reason.substr(start, end - start));
        start = end + 1;
      }
    }
  }
  if (summary.failed == 0) return kExitOk;
  return mod_text_errors ? kExitCompileError : kExitRuntime;
}

}  // namespace attnc::cli
