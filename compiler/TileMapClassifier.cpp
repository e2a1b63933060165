#include "compiler/TileMapClassifier.h"

#include <algorithm>
#include <map>
#include <numeric>
#include <string>

#include "compiler/IRMutator.h"
#include "compiler/Pipeline.h"
#include "compiler/TileClassifier.h"
#include "dsl/Errors.h"

namespace attnc::ir {

namespace {

// Which tile builtins an index expression depends on.
struct Dependence {
  bool q = false, kv = false;
};

Dependence dependence_of(const Expr& index) {
  Dependence d;
  for_each_node(index, [&](const Expr& node) {
    if (node->kind != Kind::Builtin) return;
    if (node->builtin == Builtin::QTileFirst || node->builtin == Builtin::QTileLast) d.q = true;
    if (node->builtin == Builtin::KvTileFirst || node->builtin == Builtin::KvTileLast) d.kv = true;
  });
  return d;
}

bool reads_builtin(const Expr& expr, Builtin builtin) {
  bool found = false;
  for_each_node(expr,
                [&](const Expr& node) { found = found || (node->kind == Kind::Builtin && node->builtin == builtin); });
  return found;
}

ParamDecl summary_decl(const ParamDecl& source, uint32_t self, const std::string& name) {
  ParamDecl decl;
  decl.name = name;
  decl.elem = source.elem;
  for (uint32_t d = 0; d < source.rank(); ++d) {
    TensorDim dim;
    dim.name = name + "_d" + std::to_string(d);
    dim.first_param = self;
    dim.first_dim = d;
    decl.dims.push_back(dim);
  }
  return decl;
}

}  // namespace

TileMapClassifier build_tile_map_classifier(const ModDef& mask, int32_t q_block, int32_t kv_block) {
  ATTNC_ASSERT(q_block >= 1 && kv_block >= 1, "tile-map blocks must be positive");
  const Expr classifier = build_tile_classifier(mask);

  // Per tensor parameter (in parameter order: std::map on the index, never on addresses), the
  // dependence of each dimension's indices over every LoadRange of it.
  std::map<uint32_t, std::vector<Dependence>> uses;
  for_each_node(classifier, [&](const Expr& node) {
    if (node->kind != Kind::LoadRange) return;
    const size_t rank = node->operands.size() / 2;
    std::vector<Dependence>& dims = uses[node->index];
    dims.resize(rank);
    for (size_t d = 0; d < rank; ++d) {
      for (const Expr& index : {node->operands[d], node->operands[rank + d]}) {
        const Dependence dep = dependence_of(index);
        dims[d].q = dims[d].q || dep.q;
        dims[d].kv = dims[d].kv || dep.kv;
      }
    }
  });

  TileMapClassifier result;
  result.params = mask.params;
  std::map<uint32_t, size_t> summary_of;  // mask parameter -> index in result.summaries
  for (const auto& [param, dims] : uses) {
    BlockSummary summary;
    summary.param = param;
    summary.elem = mask.params[param].elem;
    bool coarse = false;
    for (const Dependence& dep : dims) {
      const int64_t block = dep.q && dep.kv ? std::gcd(q_block, kv_block) : dep.q ? q_block : dep.kv ? kv_block : 1;
      summary.block.push_back(block);
      coarse = coarse || block > 1;
    }
    if (!coarse) continue;  // read exactly anyway: keep the tensor itself
    const size_t k = result.summaries.size();
    summary.min_param = static_cast<uint32_t>(result.params.size());
    result.params.push_back(
        summary_decl(mask.params[param], summary.min_param, "tile_summary" + std::to_string(k) + "_min"));
    summary.max_param = static_cast<uint32_t>(result.params.size());
    result.params.push_back(
        summary_decl(mask.params[param], summary.max_param, "tile_summary" + std::to_string(k) + "_max"));
    summary_of[param] = k;
    result.summaries.push_back(std::move(summary));
  }

  const Expr rewritten = rewrite_bottom_up(classifier, [&](const Expr& node) -> Expr {
    if (node->kind != Kind::LoadRange) return node;
    auto found = summary_of.find(node->index);
    if (found == summary_of.end()) return node;
    const BlockSummary& summary = result.summaries[found->second];
    const size_t rank = node->operands.size() / 2;
    std::vector<Expr> first, last;
    for (size_t d = 0; d < rank; ++d) {
      auto blocks = [&](const Expr& index) {
        return summary.block[d] == 1 ? index : make_binary(Op::Div, index, make_int64(summary.block[d]));
      };
      first.push_back(blocks(node->operands[d]));
      last.push_back(blocks(node->operands[rank + d]));
    }
    const uint32_t param = node->op == Op::Min ? summary.min_param : summary.max_param;
    return make_load_range(node->op, param, node->type, std::move(first), std::move(last));
  });
  result.expr = optimize_expr(rewritten);
  result.reads_batch = reads_builtin(result.expr, Builtin::Batch);
  result.reads_head = reads_builtin(result.expr, Builtin::Head);
  return result;
}

}  // namespace attnc::ir
