#include "dsl/Suggest.h"

#include <algorithm>
#include <cstddef>

namespace attnc::dsl {

namespace {

// Levenshtein distance in which swapping two adjacent characters also counts as one edit
// (optimal string alignment): "socre" for "score" is the commonest typo and should be one edit
// away, not two. Gives up early (returning a value above `limit`) once the answer must exceed it,
// so a megabyte-long unknown name costs nothing.
size_t edit_distance(std::string_view a, std::string_view b, size_t limit) {
  size_t length_gap = a.size() > b.size() ? a.size() - b.size() : b.size() - a.size();
  if (length_gap > limit) return limit + 1;
  // Three rows of the dynamic-programming table: i-2, i-1 and i.
  std::vector<size_t> before(b.size() + 1), previous(b.size() + 1), row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) previous[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    row[0] = i;
    size_t row_min = row[0];
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t substitution = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      row[j] = std::min({previous[j] + 1, row[j - 1] + 1, substitution});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) row[j] = std::min(row[j], before[j - 2] + 1);
      row_min = std::min(row_min, row[j]);
    }
    if (row_min > limit) return limit + 1;
    std::swap(before, previous);
    std::swap(previous, row);
  }
  return previous[b.size()];
}

}  // namespace

std::optional<std::string> suggest_name(std::string_view wrong, const std::vector<std::string>& candidates) {
  if (wrong.empty()) return std::nullopt;
  const std::string* best = nullptr;
  size_t best_distance = 0;
  for (const std::string& candidate : candidates) {
    size_t longer = std::max(wrong.size(), candidate.size());
    size_t limit = longer / 3;  // "at most a third of the longer name"
    if (limit == 0) continue;
    size_t distance = edit_distance(wrong, candidate, limit);
    if (distance == 0 || distance > limit) continue;
    if (!best || distance < best_distance) {
      best = &candidate;
      best_distance = distance;
    }
  }
  if (best) return *best;
  // Nothing is a likely typo; a name the user began to type (kv for kv_idx) is the next best guess.
  for (const std::string& candidate : candidates) {
    if (candidate.size() > wrong.size() && candidate.compare(0, wrong.size(), wrong) == 0) return candidate;
  }
  return std::nullopt;
}

}  // namespace attnc::dsl
