// attnc cache stats | list | verify | clear | prune: looking after the on-disk kernel cache.

#include <chrono>
#include <ctime>

#include <fmt/format.h>

#include "runtime/cache/CacheDirectory.h"
#include "runtime/cache/KernelKey.h"
#include "runtime/core/RuntimeError.h"
#include "tools/attnc/CommandLine.h"

namespace fs = std::filesystem;

namespace attnc::cli {

namespace {

std::string human_size(uint64_t bytes) {
  if (bytes < 1024) return fmt::format("{} B", bytes);
  const char* units[] = {"KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  int unit = -1;
  while (value >= 1024 && unit < 3) {
    value /= 1024;
    ++unit;
  }
  return fmt::format("{:.1f} {}", value, units[unit]);
}

std::string local_time(fs::file_time_type time) {
  auto system = std::chrono::time_point_cast<std::chrono::seconds>(time - fs::file_time_type::clock::now() +
                                                                   std::chrono::system_clock::now());
  std::time_t t = std::chrono::system_clock::to_time_t(system);
  std::tm tm{};
  ::localtime_r(&t, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S", &tm);
  return text;
}

int cache_stats(const CacheDirectory& dir) {
  std::vector<CacheDirectory::EntryInfo> entries = dir.entries();
  uint64_t total = 0;
  for (const auto& entry : entries) total += entry.size;
  fmt::print("directory: {}\n", dir.path().string());
  fmt::print("entries: {}\n", entries.size());
  fmt::print("size: {} bytes ({})\n", total, human_size(total));
  if (!entries.empty()) {
    fmt::print("least recently used: {}\n", local_time(entries.front().last_used));
    fmt::print("most recently used: {}\n", local_time(entries.back().last_used));
  }
  return kExitOk;
}

int cache_list(const CacheDirectory& dir) {
  std::vector<CacheDirectory::Verification> checked = dir.verify();
  for (auto it = checked.rbegin(); it != checked.rend(); ++it) {  // most recently used first
    std::string what;
    if (!it->problem.empty()) {
      what = "BAD: " + it->problem;
    } else {
      std::optional<KernelKey> key = KernelKey::parse(it->key_text);
      what = key ? key->summary() : "?";
    }
    fmt::print("{}  {:>10}  {}  {}\n", it->entry.hash, human_size(it->entry.size), local_time(it->entry.last_used),
               what);
  }
  if (checked.empty()) fmt::print("(no entries in {})\n", dir.path().string());
  return kExitOk;
}

int cache_verify(const CacheDirectory& dir, bool fix) {
  size_t bad = 0, total = 0;
  for (const CacheDirectory::Verification& v : dir.verify()) {
    ++total;
    if (v.problem.empty()) continue;
    ++bad;
    if (fix) dir.remove_entry(v.entry.hash);  // with its lock file, under the lock
    fmt::print("{}: {}{}\n", v.entry.path.string(), v.problem, fix ? " (removed)" : "");
  }
  fmt::print("{} entr{} checked, {} bad{}\n", total, total == 1 ? "y" : "ies", bad,
             bad > 0 && fix ? ", removed"
             : bad > 0      ? " (run with --fix to remove)"
                            : "");
  return bad > 0 && !fix ? kExitRuntime : kExitOk;
}

}  // namespace

const char* const kNotes = R"(The directory is --dir DIR, which must exist, else $ATTNC_CACHE_DIR, else
$XDG_CACHE_HOME/attnc, else ~/.cache/attnc (created 0700 when missing). A
directory or entry that another user owns or that group or others may write is
refused unless --trust-shared-cache (or ATTNC_CACHE_TRUST_SHARED=1) says the
directory is shared on purpose: cached kernels are code that runs on the GPU.

Exit status: 0 on success, 2 on usage errors, 3 when the directory cannot be
used, or when verify finds bad entries and --fix is not given.
)";

int run_cache(Args args) {
  std::string dir_option, max_size_text;
  bool fix = false, trust_shared_cache = false;
  CommandLine command_line("attnc cache", R"(attnc cache stats  [--dir DIR]
       attnc cache list   [--dir DIR]
       attnc cache verify [--fix] [--dir DIR]
       attnc cache clear  [--dir DIR]
       attnc cache prune  --max-size N [--dir DIR]
       (each also takes --trust-shared-cache))",
                           R"(Looks after the on-disk kernel cache (compiled kernels, one file per key).
)",
                           kNotes);
  auto add_common = [&](CLI::App* action) {
    action->add_option("--dir,--cache-dir", dir_option, "the cache directory; it must exist (default: below)")
        ->type_name("DIR");
    action->add_flag("--trust-shared-cache", trust_shared_cache, "use a directory that other users own or may write");
    return action;
  };
  add_common(command_line.add_action("stats", "the directory, the number of entries and their total size",
                                     "attnc cache stats [--dir DIR]",
                                     "Prints the directory, the number of entries, their total size and the\n"
                                     "oldest and newest use.\n",
                                     kNotes));
  add_common(command_line.add_action("list", "one line per entry, most recently used first",
                                     "attnc cache list [--dir DIR]",
                                     "Prints one line per entry, most recently used first: key hash, size, last\n"
                                     "use and what the kernel is (mods' signatures, dtype, head dims, tiles,\n"
                                     "architecture, NVRTC version, options); a bad entry says what is wrong.\n",
                                     kNotes));
  add_common(command_line.add_action("verify", "check every entry; --fix removes the bad ones",
                                     "attnc cache verify [--fix] [--dir DIR]",
                                     "Checks every entry's header, checksum, key and owner, and lists the bad\n"
                                     "ones; with --fix, removes them (with their lock files; they are rebuilt\n"
                                     "when next needed).\n",
                                     kNotes))
      ->add_flag("--fix", fix, "remove the bad entries");
  add_common(command_line.add_action("clear", "remove every entry", "attnc cache clear [--dir DIR]",
                                     "Removes every entry, lock file and leftover temporary file.\n", kNotes));
  add_common(command_line.add_action("prune", "remove least recently used entries down to a size",
                                     "attnc cache prune --max-size N [--dir DIR]",
                                     "Removes the least recently used entries (with their lock files) until the\n"
                                     "cache holds at most N bytes; entries being rebuilt right now are kept.\n",
                                     kNotes))
      ->add_option("--max-size", max_size_text,
                   "the size to prune to: bytes, or a number ending in\nK, M, G or T (powers of 1024: 500M, 2G)")
      ->type_name("N");
  if (!command_line.parse(args)) return kExitOk;
  std::vector<CLI::App*> chosen = command_line.app().get_subcommands();
  if (chosen.empty()) throw UsageError("missing subcommand: stats, list, verify, clear or prune");
  const std::string action = chosen.front()->get_name();
  std::optional<uint64_t> max_size;
  if (action == "prune") {
    if (max_size_text.empty()) throw UsageError("prune needs --max-size N");
    max_size = parse_byte_size(max_size_text);
    if (!max_size) throw UsageError("--max-size: '" + max_size_text + "' is not a size (e.g. 500M, 2G)");
  }
  // A directory named on the command line must exist: creating one at a mistyped path would hide
  // the mistake. The default directory is created, as the library would create it.
  CacheDirectoryOptions options;
  options.create = dir_option.empty();
  options.trust_shared = trust_shared_cache || trust_shared_cache_from_environment();
  CacheDirectory dir(dir_option.empty() ? default_cache_directory() : fs::path(dir_option), options);

  if (action == "stats") return cache_stats(dir);
  if (action == "list") return cache_list(dir);
  if (action == "verify") return cache_verify(dir, fix);
  if (action == "clear") {
    size_t removed = dir.clear();
    fmt::print("removed {} entr{} from {}\n", removed, removed == 1 ? "y" : "ies", dir.path().string());
    return kExitOk;
  }
  CacheDirectory::PruneResult pruned = dir.prune(*max_size);
  fmt::print("removed {} entr{} ({}); {} now holds {} in {} entr{}\n", pruned.removed.size(),
             pruned.removed.size() == 1 ? "y" : "ies", human_size(pruned.bytes_before - pruned.bytes_after),
             dir.path().string(), human_size(pruned.bytes_after), dir.entries().size(),
             dir.entries().size() == 1 ? "y" : "ies");
  return kExitOk;
}

}  // namespace attnc::cli
