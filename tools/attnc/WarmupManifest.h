#pragma once
// The `attnc warmup` manifest (docs/cli.md, examples/warmup.json): read and checked in full before
// anything is compiled, every mistake reported as "MANIFEST:LINE:COL: message" at the value (or
// the key) it is about.

#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "compiler/DType.h"
#include "tools/attnc/CudaKernelPlan.h"

namespace attnc::cli {

// One checked entry: one kernel per element of dtypes x head_dims x archs x families (x
// decode_rows for the decode family).
struct ManifestEntry {
  std::string file;            // as written in the manifest; empty: the built-in mods
  std::filesystem::path path;  // resolved against the manifest's directory
  std::string score_mod, mask_mod;
  std::vector<DType> dtypes;
  std::vector<std::pair<int, int>> head_dims;  // (D, D_v)
  std::vector<std::string> archs;
  std::vector<CudaFamily> families;  // default {Auto}
  std::vector<int> decode_rows;      // default {1}; used by the decode family only
  bool check_bounds = false;
  std::map<std::string, DType> param_dtypes;  // storage of tensor parameters
};

// RuntimeError "MANIFEST:LINE:COL: message" for anything that is not a valid manifest, or
// "cannot read manifest 'M'".
std::vector<ManifestEntry> read_manifest(const std::string& manifest_path);

}  // namespace attnc::cli
