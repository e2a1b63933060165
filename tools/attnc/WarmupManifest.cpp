#include "tools/attnc/WarmupManifest.h"

#include <algorithm>
#include <fstream>
#include <iterator>
#include <optional>

#include <fmt/format.h>

#include "runtime/core/RuntimeError.h"
#include "runtime/cuda/Architectures.h"
#include "tools/attnc/LocatedJson.h"

namespace fs = std::filesystem;

namespace attnc::cli {

std::vector<ManifestEntry> read_manifest(const std::string& manifest_path) {
  std::ifstream in(manifest_path, std::ios::binary);
  std::error_code error;
  if (!in || fs::is_directory(manifest_path, error)) {
    throw RuntimeError(fmt::format("cannot read manifest '{}'", manifest_path));
  }
  std::string text((std::istreambuf_iterator<char>(in)), {});
  std::vector<ManifestEntry> entries;
  try {
    JsonDocument document = JsonDocument::parse(text);
    JsonNode root = document.root();
    for (const JsonMember& member : root.as_object("the manifest")) {
      if (member.key != "version" && member.key != "kernels") {
        throw JsonError(
            member.value.where_key(fmt::format("unknown key \"{}\" (expected version, kernels)", member.key)));
      }
    }
    std::optional<JsonNode> version = root.find("version");
    if (!version) throw JsonError(root.where("missing \"version\": 1"));
    if (version->as_integer("\"version\"") != 1) throw JsonError(version->where("this attnc reads manifest version 1"));
    std::optional<JsonNode> kernels = root.find("kernels");
    if (!kernels) throw JsonError(root.where("missing \"kernels\": [...]"));
    for (const JsonNode& item : kernels->as_array("\"kernels\"")) {
      ManifestEntry entry;
      static const char* const kKeys[] = {"file",  "score_mod", "mask_mod",    "dtypes",       "head_dims",
                                          "archs", "families",  "decode_rows", "check_bounds", "param_dtypes"};
      for (const JsonMember& member : item.as_object("each kernel entry")) {
        if (std::find(std::begin(kKeys), std::end(kKeys), member.key) == std::end(kKeys)) {
          throw JsonError(member.value.where_key(
              fmt::format("unknown key \"{}\" (expected file, score_mod, mask_mod, dtypes, head_dims, archs, families, "
                          "decode_rows, check_bounds, param_dtypes)",
                          member.key)));
        }
      }
      auto optional_string = [&](const char* key) -> std::string {
        std::optional<JsonNode> v = item.find(key);
        if (!v || v->is_null()) return "";
        const std::string& s = v->as_string(fmt::format("\"{}\"", key));
        if (s.empty()) throw JsonError(v->where(fmt::format("\"{}\" is empty", key)));
        return s;
      };
      auto required_list = [&](const char* key) -> std::vector<JsonNode> {
        std::optional<JsonNode> v = item.find(key);
        if (!v) throw JsonError(item.where(fmt::format("missing \"{}\": [...]", key)));
        std::vector<JsonNode> list = v->as_array(fmt::format("\"{}\"", key));
        if (list.empty()) throw JsonError(v->where(fmt::format("\"{}\" is empty", key)));
        return list;
      };
      entry.file = optional_string("file");
      if (!entry.file.empty()) entry.path = fs::path(manifest_path).parent_path() / entry.file;
      entry.score_mod = optional_string("score_mod");
      entry.mask_mod = optional_string("mask_mod");
      if (entry.score_mod.empty() && entry.mask_mod.empty()) {
        throw JsonError(item.where("an entry needs a \"score_mod\", a \"mask_mod\" or both"));
      }
      for (const JsonNode& v : required_list("dtypes")) {
        const std::string& name = v.as_string("a dtype");
        if (name != "bf16" && name != "fp16") {
          throw JsonError(v.where(fmt::format("dtype \"{}\": the kernels take \"bf16\" or \"fp16\"", name)));
        }
        entry.dtypes.push_back(name == "bf16" ? DType::BF16 : DType::F16);
      }
      for (const JsonNode& v : required_list("head_dims")) {
        if (v.is_array()) {
          std::vector<JsonNode> pair = v.as_array("a head dim pair");
          if (pair.size() != 2) throw JsonError(v.where("a head dim pair is [D, D_v]"));
          entry.head_dims.emplace_back(static_cast<int>(pair[0].as_integer("D")),
                                       static_cast<int>(pair[1].as_integer("D_v")));
        } else {
          int d = static_cast<int>(v.as_integer("a head dim (D, or [D, D_v])"));
          entry.head_dims.emplace_back(d, d);
        }
        if (entry.head_dims.back().first <= 0 || entry.head_dims.back().second <= 0) {
          throw JsonError(v.where("a head dim must be positive"));
        }
      }
      for (const JsonNode& v : required_list("archs")) {
        const std::string& arch = v.as_string("an architecture");
        try {
          cuda::check_cuda_arch(arch);
        } catch (const RuntimeError& e) {
          throw JsonError(v.where(e.what()));
        }
        entry.archs.push_back(arch);
      }
      entry.families = {CudaFamily::Auto};
      if (item.find("families")) {
        entry.families.clear();
        for (const JsonNode& v : required_list("families")) {
          const std::string& name = v.as_string("a kernel family");
          std::optional<CudaFamily> family = parse_cuda_family(name);
          if (!family) {
            throw JsonError(v.where(fmt::format("family \"{}\": expected {}", name, cuda_family_list())));
          }
          for (const std::string& arch : entry.archs) {
            CudaKernelRequest request;
            request.family = *family;
            request.arch = arch;
            if (std::string problem = cuda_request_problem(request); !problem.empty()) {
              throw JsonError(v.where(problem + " (\"archs\" lists " + arch + ")"));
            }
          }
          entry.families.push_back(*family);
        }
      }
      entry.decode_rows = {1};
      if (std::optional<JsonNode> rows = item.find("decode_rows")) {
        if (std::find(entry.families.begin(), entry.families.end(), CudaFamily::Decode) == entry.families.end()) {
          throw JsonError(rows->where_key("\"decode_rows\" needs \"decode\" in \"families\""));
        }
        entry.decode_rows.clear();
        for (const JsonNode& v : required_list("decode_rows")) {
          int64_t n = v.as_integer("a number of query rows per KV head");
          if (n < 1 || n > (1 << 20)) throw JsonError(v.where("query rows per KV head must be from 1 to 1048576"));
          entry.decode_rows.push_back(static_cast<int>(n));
        }
      }
      if (std::optional<JsonNode> v = item.find("check_bounds")) entry.check_bounds = v->as_bool("\"check_bounds\"");
      if (std::optional<JsonNode> v = item.find("param_dtypes")) {
        for (const JsonMember& member : v->as_object("\"param_dtypes\"")) {
          const std::string& name = member.value.as_string("a parameter's dtype");
          std::optional<DType> dtype = parse_dtype(name);
          if (!dtype) throw JsonError(member.value.where(fmt::format("unknown dtype \"{}\"", name)));
          entry.param_dtypes[member.key] = *dtype;
        }
      }
      entries.push_back(std::move(entry));
    }
  } catch (const JsonError& e) {
    throw RuntimeError(fmt::format("{}:{}", manifest_path, e.what()));
  }
  return entries;
}

}  // namespace attnc::cli
