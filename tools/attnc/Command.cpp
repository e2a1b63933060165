#include "tools/attnc/Command.h"

namespace attnc::cli {

bool is_help(std::string_view arg) { return arg == "--help" || arg == "-h"; }

const std::string& option_value(Args args, size_t& i) {
  if (i + 1 >= args.size()) throw UsageError("option " + args[i] + " needs a value");
  return args[++i];
}

}  // namespace attnc::cli
