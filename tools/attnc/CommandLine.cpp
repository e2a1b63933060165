#include "tools/attnc/CommandLine.h"

#include <charconv>
#include <climits>
#include <cstdio>
#include <sstream>

#include <fmt/format.h>

namespace attnc::cli {

namespace {

// attnc's help layout: "Usage: ..." first, then the description, the options and the notes.
class HelpFormatter : public CLI::Formatter {
 public:
  HelpFormatter(std::string usage, std::string notes, std::string summary)
      : usage_(std::move(usage)), notes_(std::move(notes)), summary_(std::move(summary)) {
    column_width(26);
  }

  std::string make_help(const CLI::App* app, std::string, CLI::AppFormatMode mode) const override {
    std::ostringstream out;
    out << "Usage: " << usage_ << "\n";
    if (!app->get_description().empty()) out << "\n" << app->get_description();
    out << make_positionals(app) << make_groups(app, mode) << make_subcommands(app, mode);
    if (!notes_.empty()) out << "\n" << notes_;
    return out.str();
  }

  // An action in its command's help: its one-line summary, not its whole description.
  std::string make_subcommand(const CLI::App* action) const override {
    const auto* formatter = dynamic_cast<const HelpFormatter*>(action->get_formatter().get());
    std::ostringstream out;
    CLI::detail::format_help(out, action->get_name(), formatter ? formatter->summary_ : "", column_width_);
    return out.str();
  }

 private:
  std::string usage_, notes_, summary_;
};

void set_help(CLI::App& app, std::string usage, std::string description, std::string notes, std::string summary) {
  app.description(std::move(description));
  app.formatter(std::make_shared<HelpFormatter>(std::move(usage), std::move(notes), std::move(summary)));
  app.set_help_flag("-h,--help", "print this help and exit");
}

// The option of `app` (or of its parsed actions) that was given more often than it may be.
const CLI::Option* repeated_option(const CLI::App& app) {
  for (const CLI::Option* option : app.get_options()) {
    if (option->get_expected_max() == 1 && option->count() > 1) return option;
  }
  for (const CLI::App* action : app.get_subcommands()) {
    if (const CLI::Option* option = repeated_option(*action)) return option;
  }
  return nullptr;
}

std::string quoted_list(const std::vector<std::string>& values) {
  std::string out;
  for (const std::string& value : values) out += (out.empty() ? "'" : ", '") + value + "'";
  return out;
}

// The deepest action given on the command line: whose help --help shows.
const CLI::App* chosen(const CLI::App& app) {
  auto actions = app.get_subcommands();
  return actions.empty() ? &app : chosen(*actions.front());
}

}  // namespace

CommandLine::CommandLine(std::string name, std::string usage, std::string description, std::string notes)
    : app_("", std::move(name)) {
  set_help(app_, std::move(usage), std::move(description), std::move(notes), "");
}

CLI::App* CommandLine::add_action(const std::string& name, const std::string& summary, std::string usage,
                                  std::string description, std::string notes) {
  CLI::App* action = app_.add_subcommand(name, summary);
  set_help(*action, std::move(usage), std::move(description), std::move(notes), summary);
  return action;
}

bool CommandLine::parse(Args args) {
  std::vector<std::string> reversed(args.rbegin(), args.rend());  // CLI11 takes them last first
  try {
    app_.parse(reversed);
    return true;
  } catch (const CLI::CallForHelp&) {
    std::fputs(chosen(app_)->help().c_str(), stdout);
    return false;
  } catch (const CLI::ExtrasError&) {
    std::vector<std::string> extras = app_.remaining(/*recurse=*/true);
    const std::string first = extras.empty() ? "?" : extras.front();
    if (first.starts_with("-")) throw UsageError("unknown option '" + first + "'");
    if (!app_.get_subcommands({}).empty() && app_.get_subcommands().empty()) {
      std::string names;
      for (const CLI::App* action : app_.get_subcommands({})) names += (names.empty() ? "" : ", ") + action->get_name();
      throw UsageError(fmt::format("unknown subcommand '{}' (expected {})", first, names));
    }
    throw UsageError("unexpected argument '" + first + "'");
  } catch (const CLI::ArgumentMismatch& e) {
    if (const CLI::Option* option = repeated_option(app_)) {
      throw UsageError(fmt::format("{} is given {} times ({}); it takes one value", option->get_name(), option->count(),
                                   quoted_list(option->results())));
    }
    // The option is the text before the first ':' ("--dir: 1 required TEXT missing").
    std::string what = e.what();
    throw UsageError(fmt::format("option {} needs a value", what.substr(0, what.find(':'))));
  } catch (const CLI::RequiredError& e) {
    std::string what = e.what();
    throw UsageError(what.empty() ? what : std::string(1, char(std::tolower(what[0]))) + what.substr(1));
  } catch (const CLI::ParseError& e) {
    throw UsageError(e.what());
  }
}

bool CommandLine::given(const std::string& name) const {
  const CLI::Option* option = app_.get_option_no_throw(name);
  return option != nullptr && option->count() > 0;
}

std::optional<int> parse_int(std::string_view text, int min, int max) {
  int value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || value < min || value > max) return std::nullopt;
  return value;
}

std::vector<std::string> split_list(const std::string& text, const std::string& option) {
  std::vector<std::string> items;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    if (comma == std::string::npos) comma = text.size();
    std::string item = text.substr(start, comma - start);
    if (item.empty()) throw UsageError(option + " has an empty item in '" + text + "'");
    items.push_back(item);
    start = comma + 1;
  }
  return items;
}

}  // namespace attnc::cli
