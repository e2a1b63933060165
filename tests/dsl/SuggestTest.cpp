#include "dsl/Suggest.h"

#include <string>
#include <vector>

#include <catch2/catch.hpp>

using namespace attnc::dsl;

namespace {

const std::vector<std::string> kBuiltins = {
    "score",        "b",    "h",    "q_idx", "kv_idx", "q_len",   "kv_len", "num_heads",
    "num_kv_heads", "abs",  "min",  "max",   "clamp",  "where",   "exp",    "exp2",
    "log",          "log2", "sqrt", "rsqrt", "tanh",   "sigmoid", "window"};

}  // namespace

TEST_CASE("Misspelt names get the closest candidate", "[dsl][suggest]") {
  auto [wrong, expected] = GENERATE(table<std::string, std::string>({
      {"scor", "score"},
      {"socre", "score"},  // a swap of neighbours is one edit
      {"kv_ix", "kv_idx"},
      {"q_indx", "q_idx"},
      {"num_head", "num_heads"},
      {"num_kv_head", "num_kv_heads"},
      {"wndow", "window"},
      {"sigmod", "sigmoid"},
      {"tahn", "tanh"},
      {"clmap", "clamp"},
      {"kv", "kv_idx"},  // a prefix: kv_idx comes before kv_len
      {"q", "q_idx"},
      {"num", "num_heads"},
      {"sig", "sigmoid"},
  }));
  CAPTURE(wrong);
  std::optional<std::string> suggestion = suggest_name(wrong, kBuiltins);
  REQUIRE(suggestion);
  CHECK(*suggestion == expected);
}

TEST_CASE("Names too far from every candidate get no suggestion", "[dsl][suggest]") {
  auto wrong = GENERATE(as<std::string>{}, "x", "zz", "banana", "query", "window_size_in_tokens", "", "score");
  CAPTURE(wrong);
  CHECK_FALSE(suggest_name(wrong, kBuiltins).has_value());
}

TEST_CASE("Suggestion ties go to the earliest candidate", "[dsl][suggest]") {
  CHECK(suggest_name("cap", {"cat", "cup", "car"}) == std::optional<std::string>("cat"));
  CHECK(suggest_name("caps", {"cats", "cups"}) == std::optional<std::string>("cats"));
  CHECK(suggest_name("caps", {"cups", "cats"}) == std::optional<std::string>("cups"));
  CHECK(suggest_name("ab", {"abc", "abd"}) == std::optional<std::string>("abc"));
}

TEST_CASE("A closer typo wins over a prefix", "[dsl][suggest]") {
  // "windo" is a prefix of both; "window" is one edit away, so it wins although it comes later.
  CHECK(suggest_name("windo", {"window_start", "window"}) == std::optional<std::string>("window"));
}

TEST_CASE("Suggesting for a huge name is fast", "[dsl][suggest]") {
  std::string huge(1 << 20, 'q');
  CHECK_FALSE(suggest_name(huge, kBuiltins).has_value());
  std::vector<std::string> many(10, std::string(1000, 'a'));
  CHECK(suggest_name(std::string(999, 'a') + "b", many) == std::optional<std::string>(std::string(1000, 'a')));
}
