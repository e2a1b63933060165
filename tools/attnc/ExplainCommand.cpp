// attnc explain FILE --mask-mod NAME ...: what a mask costs before anything runs. Builds the tile
// map the kernels would walk (runtime/tilemap/TileMapReport.h) and prints it as a grid of EMPTY /
// FULL / PARTIAL tiles with the fraction of work kept, the exact fraction of elements kept and, for
// small sizes, the element-level mask; --svg draws it (runtime/tilemap/TileMapSvg.h).

#include <climits>
#include <optional>

#include <fmt/format.h>

#include "compiler/Frontend.h"
#include "runtime/core/AtomicFile.h"
#include "runtime/core/Mod.h"
#include "runtime/core/RuntimeError.h"
#include "runtime/tilemap/TileMapReport.h"
#include "runtime/tilemap/TileMapSvg.h"
#include "tools/attnc/CommandLine.h"
#include "tools/attnc/ModArguments.h"

namespace attnc::cli {

namespace {

// Grids wider or taller than this are not printed as text (the SVG still draws them).
constexpr int32_t kMaxTextGridTiles = 256;

struct ExplainOptions {
  std::string file, mask_mod, svg;
  std::vector<std::pair<std::string, std::string>> args;
  TileMapShape shape;
};

int32_t parse_count(const std::string& text, const char* option, int min) {
  std::optional<int> value = parse_int(text, min, INT_MAX);
  if (!value) throw UsageError(fmt::format("{} takes an integer of at least {}, got '{}'", option, min, text));
  return *value;
}

ExplainOptions parse_options(Args args, bool& help) {
  ExplainOptions o;
  std::vector<std::string> bindings;
  std::string q_len, kv_len, tile_q = "128", tile_kv = "128", q_offset = "0", batch = "1", heads = "1";
  CommandLine command_line("attnc explain",
                           R"(attnc explain FILE --mask-mod NAME [--arg NAME=VALUE | --arg NAME=FILE.npy]...
                     --q-len N --kv-len M [--tile-q TQ] [--tile-kv TK]
                     [--q-offset N] [--batch B] [--heads H] [--svg OUT.svg])",
                           R"(Shows what mask NAME of FILE costs a tiled attention kernel, before anything
runs: the tile map the kernels walk, built from the mask's compiled tile
classifier over per-block summaries of its tensors (as the Hopper family and
the CPU kernels use it), for a call of N query rows and M keys cut into tiles
of TQ queries x TK keys (default 128 x 128, the Hopper family's tiles up to
head dim 128). Prints, per (b, h) the map can differ for (one grid when the
mask reads neither b nor h), a grid with one line per query tile:
  .  EMPTY    the kernel skips the tile
  #  FULL     the kernel runs it without evaluating the mask
  +  PARTIAL  the kernel runs it and evaluates the mask per element
then the counts, the work kept (FULL + PARTIAL tiles, as a fraction of the
tiles and of the elements), and, when N x M x grids is at most 4194304, the
exact fraction of (q_idx, kv_idx) the mask keeps, every element evaluated
by the interpreter. With N and M both at most 64 it also prints the mask
element by element (# kept, . masked). --svg draws the map: one rectangle per
tile coloured by class, a legend and the numbers. Grids of more than 256
tiles a side are not printed as text; the SVG takes up to 1048576 tiles.
)",
                           R"(Exit status: 0 on success, 1 when FILE has errors, 2 on usage errors, 3 when
NAME is missing or not a mask mod, a parameter is unbound or its file is
unreadable, or OUT.svg cannot be written.
)");
  CLI::App& app = command_line.app();
  app.add_option("FILE", o.file, "the mod file")->type_name("");
  app.add_option("--mask-mod", o.mask_mod, "the mask_mod of FILE to explain (required)")->type_name("NAME");
  app.add_option("--arg", bindings,
                 "binds scalar parameter NAME (int, float, or true/false),\nor tensor parameter NAME to the array in "
                 "FILE.npy")
      ->type_name("NAME=VALUE")
      ->allow_extra_args(false);
  app.add_option("--q-len", q_len, "query rows of the call (required)")->type_name("N");
  app.add_option("--kv-len", kv_len, "keys of the call (required)")->type_name("M");
  app.add_option("--tile-q", tile_q, "query rows per tile (default 128)")->type_name("TQ");
  app.add_option("--tile-kv", tile_kv, "keys per tile (default 128)")->type_name("TK");
  app.add_option("--q-offset", q_offset, "position of the first query row (default 0): q_idx =\nq_offset + row")
      ->type_name("N");
  app.add_option("--batch", batch, "batch size the mask sees (default 1)")->type_name("B");
  app.add_option("--heads", heads, "query heads the mask sees (default 1)")->type_name("H");
  app.add_option("--svg", o.svg, "also draw the map as an SVG picture into OUT.svg")->type_name("OUT.svg");
  help = !command_line.parse(args);
  if (help) return o;

  if (o.file.empty()) throw UsageError("no mod file given");
  if (o.mask_mod.empty()) throw UsageError("--mask-mod NAME is required");
  if (q_len.empty() || kv_len.empty()) throw UsageError("--q-len and --kv-len are required");
  o.args = split_bindings(bindings, "--arg");
  TileMapShape& s = o.shape;
  s.q_len = parse_count(q_len, "--q-len", 1);
  s.kv_len = parse_count(kv_len, "--kv-len", 1);
  s.block_m = parse_count(tile_q, "--tile-q", 1);
  s.block_n = parse_count(tile_kv, "--tile-kv", 1);
  s.q_offset = parse_count(q_offset, "--q-offset", 0);
  s.batch = parse_count(batch, "--batch", 1);
  s.heads = parse_count(heads, "--heads", 1);
  s.kv_heads = s.heads;
  if (int64_t(s.q_offset) + s.q_len > INT_MAX) throw UsageError("--q-offset + --q-len must fit a 32-bit int");
  return o;
}

// "b=1, every h": which (b, h) a slice stands for.
std::string slice_where(const TileMapSlice& slice) {
  return fmt::format("{}, {}", slice.b < 0 ? "every b" : fmt::format("b={}", slice.b),
                     slice.h < 0 ? "every h" : fmt::format("h={}", slice.h));
}

std::string slice_heading(const TileMapSlice& slice) {
  if (slice.b < 0 && slice.h < 0) return "tile map (the same for every b and h)";
  return "tile map for " + slice_where(slice);
}

std::string indented(const std::string& text) {
  std::string out;
  size_t start = 0;
  while (start < text.size()) {
    const size_t end = text.find('\n', start);
    out += "  " + text.substr(start, end - start) + "\n";
    start = end + 1;
  }
  return out;
}

std::string percent(double fraction) { return fmt::format("{:.2f}%", 100.0 * fraction); }

// "mask 'sliding_window' of examples/mistral.attn (window=4)".
std::string describe_call(const ExplainOptions& o) {
  std::string out = fmt::format("mask '{}' of {}", o.mask_mod, o.file);
  std::string args;
  for (const auto& [name, value] : o.args) args += fmt::format("{}{}={}", args.empty() ? "" : ", ", name, value);
  if (!args.empty()) out += " (" + args + ")";
  return out;
}

}  // namespace

int run_explain(Args args) {
  bool help = false;
  ExplainOptions o = parse_options(args, help);
  if (help) return kExitOk;
  if (!o.svg.empty()) check_output_path(o.svg);

  ir::Module module = ir::load_module_file(o.file);
  Mod mask = Mod::from_module(module, o.mask_mod);
  if (mask.kind() != dsl::ModKind::Mask) {
    throw RuntimeError(fmt::format("'{}' in '{}' is a score_mod; explain takes a mask_mod", o.mask_mod, o.file));
  }
  for (const auto& [name, value] : o.args) {
    if (!bind_mod_argument(mask, name, value)) {
      throw UsageError(fmt::format("mask '{}' has no parameter named '{}'", o.mask_mod, name));
    }
  }
  require_all_bound(mask);

  const TileMapReport report = explain_tile_map(mask, o.shape);
  const TileMapShape& s = report.shape;
  fmt::print("{}: q_len={} kv_len={} q_offset={}, tiles of {} queries x {} keys ({} x {} tiles)\n", describe_call(o),
             s.q_len, s.kv_len, s.q_offset, s.block_m, s.block_n, s.q_tiles(), s.kv_tiles());
  fmt::print("legend: '.' EMPTY (skipped), '#' FULL (no mask evaluated), '+' PARTIAL (mask per element)\n");
  const bool print_grid = s.q_tiles() <= kMaxTextGridTiles && s.kv_tiles() <= kMaxTextGridTiles;
  int64_t empty = 0, full = 0, partial = 0;
  for (const TileMapSlice& slice : report.slices) {
    empty += slice.empty;
    full += slice.full;
    partial += slice.partial;
    if (print_grid) fmt::print("\n{}:\n{}", slice_heading(slice), indented(tile_grid_text(report, slice)));
  }
  if (!print_grid) {
    fmt::print("\n(the grid of {} x {} tiles is not printed; use --svg or larger tiles)\n", s.q_tiles(), s.kv_tiles());
  }
  const int64_t tiles = empty + full + partial;
  fmt::print("\ntiles: {} EMPTY, {} FULL, {} PARTIAL of {}{}\n", empty, full, partial, tiles,
             report.slices.size() > 1 ? fmt::format(" ({} grids)", report.slices.size()) : "");
  fmt::print("work kept (FULL + PARTIAL tiles): {} of the tiles, {} of the elements\n",
             percent(report.kept_tile_fraction()), percent(report.kept_work_fraction()));
  if (std::optional<double> kept = report.kept_element_fraction()) {
    fmt::print("elements the mask keeps: {} (every element evaluated)\n", percent(*kept));
  } else {
    fmt::print("elements the mask keeps: not evaluated (more than {} elements)\n",
               TileMapReportLimits{}.max_exact_elements);
  }
  for (const TileMapSlice& slice : report.slices) {
    if (slice.element_mask.empty()) continue;
    const std::string where = slice.b < 0 && slice.h < 0 ? "" : " for " + slice_where(slice);
    fmt::print("\nelement mask{}: q rows down, kv columns across, '#' kept:\n{}", where,
               indented(element_grid_text(report, slice)));
  }
  if (!o.svg.empty()) {
    write_file_atomically(o.svg, tile_map_svg(report, describe_call(o)));
    fmt::print("\n{}: SVG picture of {} tiles\n", o.svg, tiles);
  }
  return kExitOk;
}

}  // namespace attnc::cli
