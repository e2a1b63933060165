// attnc cache stats | list | verify | clear | prune: looking after the on-disk kernel cache.

#include <chrono>
#include <ctime>

#include <fmt/format.h>

#include "runtime/cache/CacheDirectory.h"
#include "runtime/cache/KernelKey.h"
#include "runtime/core/RuntimeError.h"
#include "tools/attnc/Command.h"

namespace fs = std::filesystem;

namespace attnc::cli {

const char* const kCacheHelp = R"(Usage: attnc cache stats  [--dir DIR]
       attnc cache list   [--dir DIR]
       attnc cache verify [--fix] [--dir DIR]
       attnc cache clear  [--dir DIR]
       attnc cache prune  --max-size N [--dir DIR]

Looks after the on-disk kernel cache (compiled kernels, one file per key).

  stats    the directory, the number of entries and their total size
  list     one line per entry, most recently used first: key hash, size,
           last use and what the kernel is (mods' signatures, dtype, head
           dims, tiles, architecture, NVRTC version)
  verify   checks every entry's header, checksum and key, and lists the bad
           ones; with --fix, removes them (they are rebuilt when next needed)
  clear    removes every entry
  prune    removes the least recently used entries until the cache holds at
           most N bytes; N may end in K, M or G (powers of 1024)

Options:
  --dir DIR         the cache directory (default: $ATTNC_CACHE_DIR, else
                    $XDG_CACHE_HOME/attnc, else ~/.cache/attnc)
  --fix             (verify) remove the bad entries
  --max-size N      (prune) the size to prune to

Exit status: 0 on success, 2 on usage errors, 3 when the directory cannot be
used, or when verify finds bad entries and --fix is not given.
)";

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
    if (fix) dir.remove(v.entry.path);
    fmt::print("{}: {}{}\n", v.entry.path.string(), v.problem, fix ? " (removed)" : "");
  }
  fmt::print("{} entr{} checked, {} bad{}\n", total, total == 1 ? "y" : "ies", bad,
             bad > 0 && fix ? ", removed"
             : bad > 0      ? " (run with --fix to remove)"
                            : "");
  return bad > 0 && !fix ? kExitRuntime : kExitOk;
}

}  // namespace

int run_cache(Args args) {
  if (args.empty()) throw UsageError("missing subcommand: stats, list, verify, clear or prune");
  const std::string& action = args[0];
  if (action != "stats" && action != "list" && action != "verify" && action != "clear" && action != "prune") {
    throw UsageError("unknown subcommand '" + action + "' (expected stats, list, verify, clear or prune)");
  }
  std::string dir_option, max_size_text;
  bool fix = false;
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--dir" || arg == "--cache-dir")
      dir_option = option_value(args, i);
    else if (arg == "--fix" && action == "verify")
      fix = true;
    else if (arg == "--max-size" && action == "prune")
      max_size_text = option_value(args, i);
    else if (arg.starts_with("-"))
      throw UsageError("unknown option '" + arg + "' for cache " + action);
    else
      throw UsageError("unexpected argument '" + arg + "'");
  }
  std::optional<uint64_t> max_size;
  if (action == "prune") {
    if (max_size_text.empty()) throw UsageError("prune needs --max-size N");
    max_size = parse_byte_size(max_size_text);
    if (!max_size) throw UsageError("--max-size: '" + max_size_text + "' is not a size (e.g. 500M, 2G)");
  }
  CacheDirectory dir(dir_option.empty() ? default_cache_directory() : fs::path(dir_option));

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
