#pragma once
// The identity of a compiled kernel: everything that changes the bytes NVRTC produces, written out
// field by field so nothing is left implicit (the mods' signatures, the element type, the head
// dims, the tile configuration, the architecture with its suffix, the NVRTC version, the hash of
// the kernel template and the compile options). Two keys are equal exactly when their canonical
// serialisations are equal; the cache stores that text in every entry and names files by its
// 128-bit stable hash.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "compiler/DType.h"
#include "compiler/Signature.h"

namespace attnc {

struct KernelKey {
  std::optional<ir::Signature> score_mod;  // none: scores pass through unchanged
  std::optional<ir::Signature> mask_mod;   // none: every key is kept
  DType dtype = DType::BF16;               // q, k, v and output element type
  int head_dim = 0;                        // of q and k
  int head_dim_v = 0;                      // of v and the output
  // The template's tiling, chosen per head dim and architecture (runtime/cuda/TileConfig.h); the
  // same mods with other tiles are another binary. (The K/V pipeline depth is fixed by the
  // template, so its hash covers it.)
  struct Tile {
    int block_m = 0;    // query rows per thread block
    int block_n = 0;    // key rows per K/V tile
    int num_warps = 0;  // warps per thread block
    auto operator<=>(const Tile&) const = default;
  };
  Tile tile;
  std::string arch;                          // with its suffix when it has one: "sm_80", "sm_90a"
  std::string nvrtc_version;                 // "13.0"; a different NVRTC may emit different code
  std::string template_hash;                 // stable hash of the kernel template text (hex)
  bool check_bounds = false;                 // device-side bounds checking of tensor loads compiled in
  std::string emit = "cubin";                // "cubin" or "ptx"
  std::vector<std::string> compile_options;  // any further NVRTC options, in the order given

  auto operator<=>(const KernelKey&) const = default;

  // The canonical text: one `name=value` line per field in a fixed order, preceded by a format
  // line, options last (one `option=` line each). Throws RuntimeError when a text field is empty
  // where one is required or holds a control character (which would make the text ambiguous).
  std::string serialize() const;
  // The inverse of serialize(); nullopt for any text serialize() could not have produced.
  static std::optional<KernelKey> parse(std::string_view text);
  // 32 lowercase hex digits: the StableHash128 of serialize(). Names the entry's files.
  std::string hash_hex() const;
  // One line for people: "score=1a2b3c4d mask=none bf16 d128/128 128x64w8 sm_90a ...".
  std::string summary() const;
};

// Hash of the template text a kernel is built from (hex), for KernelKey::template_hash: the
// stable 128-bit hash of each source's name and text, in order.
std::string hash_template_sources(const std::vector<std::pair<std::string_view, std::string_view>>& sources);

}  // namespace attnc
