#pragma once
// "Did you mean ...?" suggestions for misspelt names.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace attnc::dsl {

// The candidate closest to `wrong` by edit distance, if it is close enough to be a likely typo
// (distance at most a third of the longer name, and at least one), or a candidate that `wrong`
// is a prefix of (kv -> kv_idx). Ties go to the earliest candidate.
std::optional<std::string> suggest_name(std::string_view wrong, const std::vector<std::string>& candidates);

}  // namespace attnc::dsl
