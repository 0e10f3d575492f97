// Flag parsing and number parsing of the client's command-line layer.
#include "client/lib/flags.h"

#include <gtest/gtest.h>

#include "absl/strings/match.h"

namespace agt::client {
namespace {

std::vector<FlagSpec> Specs() {
  return {{"server", true, 0, "HOST:PORT", "server"},
          {"json", false, 0, "", "json"},
          {"quiet", false, 'q', "", "quiet"},
          {"name", true, 'n', "NAME", "name"}};
}

TEST(ClientParseFlags, SeparatesPositionalsFromFlagsInAnyOrder) {
  absl::StatusOr<ParsedArgs> args =
      ParseFlags({"a", "--server", "h:1", "b", "--json", "--name=x y", "c"}, Specs());
  ASSERT_TRUE(args.ok()) << args.status();
  EXPECT_EQ(args->positionals(), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(args->Get("server"), "h:1");
  EXPECT_TRUE(args->Has("json"));
  EXPECT_FALSE(args->Has("quiet"));
  EXPECT_EQ(args->Get("name"), "x y");
  EXPECT_EQ(args->GetOr("missing", "dflt"), "dflt");
}

TEST(ClientParseFlags, BooleanFlagNeverSwallowsTheNextArgument) {
  absl::StatusOr<ParsedArgs> args = ParseFlags({"--json", "file.csv"}, Specs());
  ASSERT_TRUE(args.ok());
  EXPECT_EQ(args->positionals(), (std::vector<std::string>{"file.csv"}));
}

TEST(ClientParseFlags, AliasesAndLastValueWins) {
  absl::StatusOr<ParsedArgs> args = ParseFlags({"-q", "-n", "a", "--name", "b"}, Specs());
  ASSERT_TRUE(args.ok());
  EXPECT_TRUE(args->Has("quiet"));
  EXPECT_EQ(args->Get("name"), "b");
}

TEST(ClientParseFlags, DoubleDashEndsFlagsAndNegativeNumbersArePositional) {
  absl::StatusOr<ParsedArgs> args = ParseFlags({"-1.5", "--", "--json", "-q"}, Specs());
  ASSERT_TRUE(args.ok());
  EXPECT_EQ(args->positionals(), (std::vector<std::string>{"-1.5", "--json", "-q"}));
  EXPECT_FALSE(args->Has("json"));
}

TEST(ClientParseFlags, ErrorsNameTheFlag) {
  auto unknown = ParseFlags({"--frob"}, Specs());
  ASSERT_FALSE(unknown.ok());
  EXPECT_TRUE(absl::StrContains(unknown.status().message(), "--frob"));
  auto missing = ParseFlags({"--server"}, Specs());
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(absl::StrContains(missing.status().message(), "--server needs a value"));
  auto valued_bool = ParseFlags({"--json=1"}, Specs());
  ASSERT_FALSE(valued_bool.ok());
  EXPECT_TRUE(absl::StrContains(valued_bool.status().message(), "--json takes no value"));
  auto bad_alias = ParseFlags({"-x"}, Specs());
  EXPECT_FALSE(bad_alias.ok());
  auto bundled = ParseFlags({"-qn"}, Specs());
  EXPECT_FALSE(bundled.ok());
}

TEST(ClientParseFlags, StopAtFirstPositionalLeavesTheRestUnparsed) {
  absl::StatusOr<ParsedArgs> args =
      ParseFlags({"--json", "dataset", "--unknown-to-globals", "x"}, Specs(), true);
  ASSERT_TRUE(args.ok()) << args.status();
  EXPECT_TRUE(args->Has("json"));
  EXPECT_EQ(args->positionals(),
            (std::vector<std::string>{"dataset", "--unknown-to-globals", "x"}));
}

TEST(ClientFlagHelp, ListsEveryFlagWithItsValueName) {
  std::string help = FormatFlagHelp(Specs());
  EXPECT_TRUE(absl::StrContains(help, "--server HOST:PORT"));
  EXPECT_TRUE(absl::StrContains(help, "-q, --quiet"));
  EXPECT_TRUE(absl::StrContains(help, "-n, --name NAME"));
}

TEST(ClientParseNumbers, RangesAndWholeText) {
  EXPECT_EQ(*ParseInt("--epochs", "12", 1, 100), 12);
  auto low = ParseInt("--epochs", "0", 1, 100);
  ASSERT_FALSE(low.ok());
  EXPECT_EQ(low.status().message(), "--epochs 0 is out of range [1, 100]");
  EXPECT_FALSE(ParseInt("--epochs", "12x", 1, 100).ok());
  EXPECT_FALSE(ParseInt("--epochs", "", 1, 100).ok());
  EXPECT_EQ(*ParseUint64("--seed", "18446744073709551615"), 18446744073709551615ull);
  EXPECT_FALSE(ParseUint64("--seed", "-1").ok());
  EXPECT_DOUBLE_EQ(*ParseDouble("--epsilon", "0.25", 0, 1), 0.25);
  EXPECT_FALSE(ParseDouble("--epsilon", "nan", 0, 1).ok());
  EXPECT_FALSE(ParseDouble("--epsilon", "inf", 0, 1e308).ok());
  EXPECT_FALSE(ParseDouble("--epsilon", "2", 0, 1).ok());
}

TEST(ClientParseNumbers, IntList) {
  auto list = ParseIntList("--budgets", "1, 2,5", 0, 100);
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(*list, (std::vector<int64_t>{1, 2, 5}));
  EXPECT_FALSE(ParseIntList("--budgets", "", 0, 100).ok());
  EXPECT_FALSE(ParseIntList("--budgets", "1,,2", 0, 100).ok());
  auto out_of_range = ParseIntList("--budgets", "1,200", 0, 100);
  ASSERT_FALSE(out_of_range.ok());
  EXPECT_TRUE(absl::StrContains(out_of_range.status().message(), "200"));
}

}  // namespace
}  // namespace agt::client
