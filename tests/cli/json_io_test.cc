// The fast JSON reader and writer (core/cli/json_io.h): the reader gives
// nlohmann::json::parse's value on every input and its error (line and
// column) on malformed text; the writer gives nlohmann's dump() byte for byte
// but for doubles, which are the shortest text that reads back bit for bit.
#include "core/cli/json_io.h"

#include <gtest/gtest.h>

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/cli/config.h"
#include "core/common/rng.h"

namespace agt::cli {
namespace {

using nlohmann::json;

uint64_t Bits(double v) {
  uint64_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  return bits;
}

std::string Format(double v) {
  char buffer[40];
  return std::string(buffer, FormatJsonDouble(v, buffer));
}

// The digits of the shortest round-trip text of v (std::to_chars).
int ShortestDigits(double v) {
  char buffer[40];
  const char* end =
      std::to_chars(buffer, buffer + sizeof buffer, std::abs(v), std::chars_format::scientific).ptr;
  int digits = 0;
  for (const char* p = buffer; p < end && *p != 'e'; ++p) digits += *p >= '0' && *p <= '9';
  return digits;
}

std::vector<double> ExtremeDoubles() {
  constexpr double kMax = std::numeric_limits<double>::max();
  constexpr double kMinNormal = std::numeric_limits<double>::min();
  constexpr double kMinSubnormal = std::numeric_limits<double>::denorm_min();
  // clang-format off
  return {0.0, -0.0, kMinSubnormal, -kMinSubnormal, 2 * kMinSubnormal, kMinNormal - kMinSubnormal,
          kMinNormal, -kMinNormal, kMax, -kMax, 1e308, -1e308, 1e-308, 1e15, 1e16,
          123456789012345.0, 1234567890123456.0, 1e-4, 1e-5, 0.00012345, 9.999999999999999e-5,
          0.1, 0.5, 1.0, -1.0, 2.0 / 3.0, 1e21, 1e22, 1e23, 9007199254740993.0,
          0.30000000000000004};
  // clang-format on
}

// ---------------------------------------------------------------------------
// Doubles.

TEST(FormatJsonDouble, UsesNlohmannsLayout) {
  EXPECT_EQ(Format(0.5), "0.5");
  EXPECT_EQ(Format(1.0), "1.0");
  EXPECT_EQ(Format(-2.0), "-2.0");
  EXPECT_EQ(Format(0.0), "0.0");
  EXPECT_EQ(Format(-0.0), "-0.0");
  EXPECT_EQ(Format(1e-4), "0.0001");
  EXPECT_EQ(Format(1e-5), "1e-05");
  EXPECT_EQ(Format(1.5e-7), "1.5e-07");
  EXPECT_EQ(Format(123456789012345.0), "123456789012345.0");
  EXPECT_EQ(Format(1e15), "1e+15");
  EXPECT_EQ(Format(1.5e300), "1.5e+300");
  EXPECT_EQ(Format(5e-324), "5e-324");
  EXPECT_EQ(Format(1e308), "1e+308");
  EXPECT_EQ(Format(std::numeric_limits<double>::max()), "1.7976931348623157e+308");
  EXPECT_EQ(Format(2.2250738585072014e-308), "2.2250738585072014e-308");
  EXPECT_EQ(Format(12.375), "12.375");
}

TEST(FormatJsonDouble, ExtremeAndRandomDoublesReadBackBitExactlyInTheShortestDigits) {
  std::vector<double> values = ExtremeDoubles();
  Rng rng(11);
  while (values.size() < 20000) {
    const uint64_t bits = rng.NextU64();
    double v;
    std::memcpy(&v, &bits, sizeof v);
    if (std::isfinite(v)) values.push_back(v);
  }
  for (int i = 0; i < 2000; ++i) values.push_back(rng.Uniform(-1.0, 1.0));  // typical weights
  int not_nlohmann = 0;
  for (double v : values) {
    const std::string text = Format(v);
    ASSERT_EQ(Bits(std::strtod(text.c_str(), nullptr)), Bits(v)) << text;
    // nlohmann's parser reads it as the same double, too.
    ASSERT_EQ(Bits(json::parse(text).get<double>()), Bits(v)) << text;
    int digits = 0;
    for (char c : text.substr(0, text.find('e'))) digits += c >= '1' && c <= '9';
    if (v != 0) {
      ASSERT_LE(digits, ShortestDigits(v)) << text;
    }
    // Where nlohmann's Grisu2 finds the shortest digits too, the texts agree.
    not_nlohmann += text != json(v).dump();
  }
  // Grisu2 is not shortest on a small fraction of doubles (about 0.1%).
  EXPECT_LT(not_nlohmann, static_cast<int>(values.size()) / 100);
}

// ---------------------------------------------------------------------------
// Writing.

json Tricky() {
  return json::parse(R"({
    "empty_object": {}, "empty_array": [], "nested": [[], {}, [[1]], {"a": {"b": []}}],
    "ints": [0, -1, 9223372036854775807, -9223372036854775808, 18446744073709551615],
    "bools": [true, false, null],
    "strings": ["", "plain", "quote \" backslash \\ slash /", "tab\t newline\n cr\r",
                "\u0001\u001f\u007f", "caf\u00e9 \u2603 \ud83d\ude00", "<>&'"],
    "keys": {"z": 1, "a": 2, "with space": 3, "\"quoted\"": 4, "\u00e9": 5}
  })");
}

TEST(SerializeJson, MatchesNlohmannsDumpByteForByteWithoutDoubles) {
  json value = Tricky();
  value["invalid_utf8"] = std::string("bad \xff\xfe byte");  // replaced by U+FFFD
  for (int indent : {-1, 0, 1, 2, 4}) {
    EXPECT_EQ(SerializeJson(value, indent),
              value.dump(indent, ' ', false, json::error_handler_t::replace))
        << "indent " << indent;
  }
  EXPECT_EQ(SerializeJson(json(), 1), "null");
  EXPECT_EQ(SerializeJson(json::array(), 1), "[]");
  EXPECT_EQ(SerializeJson(json::object(), -1), "{}");
}

TEST(SerializeJson, DoublesThatGrisuWritesShortestMatchNlohmannAndNonFiniteAreNull) {
  json value = {{"w", {0.5, -0.0, 1e-5, 1.0, 0.1, 2.5e300, 123.456}},
                {"inf", std::numeric_limits<double>::infinity()},
                {"nan", std::nan("")}};
  for (int indent : {-1, 1}) {
    EXPECT_EQ(SerializeJson(value, indent),
              value.dump(indent, ' ', false, json::error_handler_t::replace));
  }
  EXPECT_TRUE(absl::StrContains(SerializeJson(value, -1), "\"inf\":null"));
}

TEST(SerializeJson, ExtremeDoublesRoundTripThroughParseJson) {
  json value = json::array();
  for (double v : ExtremeDoubles()) value.push_back(v);
  for (int indent : {-1, 1}) {
    absl::StatusOr<json> back = ParseJson(SerializeJson(value, indent));
    ASSERT_TRUE(back.ok()) << back.status();
    ASSERT_EQ(back->size(), value.size());
    for (size_t i = 0; i < value.size(); ++i) {
      ASSERT_TRUE((*back)[i].is_number_float()) << i;
      EXPECT_EQ(Bits((*back)[i].get<double>()), Bits(value[i].get<double>())) << i;
    }
  }
}

TEST(WriteJsonFile, WritesWhatSerializeJsonGivesAndReadsBack) {
  const std::string path = ::testing::TempDir() + "/agt_json_io_test_write.json";
  json value = Tricky();
  value["doubles"] = json::array();
  for (double v : ExtremeDoubles()) value["doubles"].push_back(v);
  ASSERT_TRUE(WriteJsonFile(value, path).ok());
  std::ifstream in(path, std::ios::binary);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, SerializeJson(value, 1) + "\n");
  absl::StatusOr<json> back = ReadJsonFile(path);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, value);
  std::filesystem::remove(path);
}

// A results-shaped value past kParallelScalars: nested objects of weight
// rows (arrays of doubles), empty arrays and objects, arrays that mix
// scalars with containers, strings, integers, booleans and nulls.
json LargeValue() {
  Rng rng(5);
  json value = Tricky();
  json runs = json::object();
  for (const char* name : {"features", "removal", "unicode \u00e9"}) {
    json run;
    json layers = json::array();
    for (int layer = 0; layer < 2; ++layer) {
      json w = json::array();
      for (int row = 0; row < 40; ++row) {
        json r = json::array();
        for (int c = 0; c < 300; ++c)
          r.push_back(rng.Uniform(-1.0, 1.0) * std::pow(10.0, c % 9 - 4));
        w.push_back(std::move(r));
      }
      layers.push_back({{"W", std::move(w)}, {"b", json::array({0.5, -0.0, 1e300, 3})}});
    }
    run["lower"] = std::move(layers);
    run["empty"] = json::array();
    run["none"] = json::object();
    run["mixed"] = json::array({1, "two", json::array({3.5, 4}), json::object(), nullptr, true});
    run["stable"] = json::array({true, false, true});
    runs[name] = std::move(run);
  }
  value["runs"] = std::move(runs);
  return value;
}

TEST(WriteJsonFile, ThreadsWriteTheSameBytes) {
  const json value = LargeValue();
  const std::string serial = SerializeJson(value, 1) + "\n";
  const std::string path = ::testing::TempDir() + "/agt_json_io_test_threads.json";
  for (int threads : {1, 2, 3, 7, 0}) {
    for (int indent : {1, -1}) {
      ASSERT_TRUE(WriteJsonFile(value, path, indent, threads).ok());
      std::ifstream in(path, std::ios::binary);
      const std::string text((std::istreambuf_iterator<char>(in)),
                             std::istreambuf_iterator<char>());
      EXPECT_EQ(text, (indent == 1 ? serial : SerializeJson(value, -1) + "\n"))
          << threads << " threads, indent " << indent;
    }
  }
  std::filesystem::remove(path);
}

// ---------------------------------------------------------------------------
// Reading.

void ExpectSameAsNlohmann(const std::string& text) {
  absl::StatusOr<json> ours = ParseJson(text);
  const json theirs = json::parse(text);
  ASSERT_TRUE(ours.ok()) << ours.status() << "\n" << text;
  EXPECT_EQ(*ours, theirs) << text;
  EXPECT_EQ(ours->dump(), theirs.dump()) << text;  // the same types (int, uint, float)
}

TEST(ParseJson, GivesNlohmannsValueOnEveryKindOfInput) {
  ExpectSameAsNlohmann(Tricky().dump());
  ExpectSameAsNlohmann(Tricky().dump(2));
  for (const char* text : {"0",
                           "-0",
                           "-0.0",
                           "1",
                           "-1",
                           "1.0",
                           "1e2",
                           "1E+2",
                           "-1.5e-3",
                           "9223372036854775807",
                           "9223372036854775808",
                           "-9223372036854775808",
                           "-9223372036854775809",
                           "18446744073709551615",
                           "18446744073709551616",
                           "123456789012345678901234567890",
                           "1e-400",
                           "4.9e-324",
                           "2.2250738585072011e-308",
                           "true",
                           "null",
                           "\"\\u00e9\\ud83d\\ude00\"",
                           "\"\\b\\f\\n\\r\\t\\/\\\\\\\"\"",
                           " \t\r\n[ 1 , 2 ]\n ",
                           "{\"a\": 1, \"a\": 2}",
                           "\xEF\xBB\xBF{\"bom\": true}",
                           "[[[[[[[[[[]]]]]]]]]]",
                           "{\"caf\xC3\xA9\": \"\xE2\x98\x83\"}"}) {
    ExpectSameAsNlohmann(text);
  }
}

TEST(ParseJson, DeepNestingBeyondTheFastLimitIsStillRead) {
  std::string text;
  for (int i = 0; i < 3 * kMaxFastDepth; ++i) text += i % 2 ? "[" : "{\"k\":";
  text += "1";
  for (int i = 3 * kMaxFastDepth - 1; i >= 0; --i) text += i % 2 ? "]" : "}";
  ExpectSameAsNlohmann(text);
}

TEST(ParseJson, RandomDoublesReadBackBitExactly) {
  Rng rng(5);
  std::string text = "[";
  std::vector<double> values;
  while (values.size() < 5000) {
    const uint64_t bits = rng.NextU64();
    double v;
    std::memcpy(&v, &bits, sizeof v);
    if (!std::isfinite(v)) continue;
    char buffer[40];
    // %.17g: not the shortest, and with exponents nlohmann does not write.
    std::snprintf(buffer, sizeof buffer, "%.17g", v);
    if (!values.empty()) text += ",";
    text += buffer;
    values.push_back(v);
  }
  text += "]";
  absl::StatusOr<json> value = ParseJson(text);
  ASSERT_TRUE(value.ok()) << value.status();
  for (size_t i = 0; i < values.size(); ++i) {
    ASSERT_EQ(Bits((*value)[i].get<double>()), Bits(values[i])) << i;
  }
}

// nlohmann's message for `text`, without its "[json.exception...] " prefix.
std::string NlohmannError(const std::string& text) {
  try {
    const json ignored = json::parse(text);
  } catch (const json::parse_error& e) {
    std::string what = e.what();
    return what.substr(what.find("] ") + 2);
  }
  return "";
}

TEST(ParseJson, MalformedInputGivesNlohmannsErrorWithLineAndColumn) {
  for (const std::string text : {"",
                                 "   ",
                                 "[1, 2,]",
                                 "{\"a\": 1,}",
                                 "{\"a\" 1}",
                                 "[1 2]",
                                 "01",
                                 "-",
                                 "1.",
                                 "1e",
                                 ".5",
                                 "+1",
                                 "[1]]",
                                 "{\"a\": tru}",
                                 "nul",
                                 "\"unterminated",
                                 "\"ctrl \x01 char\"",
                                 "\"bad \\x escape\"",
                                 "\"\\ud800 lone surrogate\"",
                                 "\"bad utf8 \xff\"",
                                 "{\"a\": [1,\n  2,\n  x]}",
                                 "[1, 2]\n\n  3"}) {
    const absl::StatusOr<json> value = ParseJson(text);
    ASSERT_FALSE(value.ok()) << "accepted: " << text;
    EXPECT_EQ(value.status().code(), absl::StatusCode::kInvalidArgument);
    const std::string expected = NlohmannError(text);
    ASSERT_FALSE(expected.empty()) << text;
    EXPECT_EQ(std::string(value.status().message()), expected) << text;
    EXPECT_TRUE(absl::StrContains(value.status().message(), "line ")) << value.status();
    EXPECT_TRUE(absl::StrContains(value.status().message(), "column ")) << value.status();
  }
  // The position is the offending character's: line 3, column 3.
  const absl::StatusOr<json> value = ParseJson("{\"a\": [1,\n  2,\n  x]}");
  EXPECT_TRUE(absl::StrContains(value.status().message(), "line 3, column 3")) << value.status();
}

TEST(ParseJson, ANumberTooLargeForADoubleIsAnError) {
  // nlohmann throws out_of_range (not parse_error) here; it must not escape.
  for (const char* text : {"1e400", "[0.5, -1e400]"}) {
    const absl::StatusOr<json> value = ParseJson(text);
    ASSERT_FALSE(value.ok()) << text;
    EXPECT_EQ(value.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(absl::StrContains(value.status().message(), "number overflow")) << value.status();
  }
}

TEST(ReadJsonFile, NamesTheFileLineAndColumnOfASyntaxError) {
  const std::string path = ::testing::TempDir() + "/agt_json_io_test_bad.json";
  {
    std::ofstream out(path, std::ios::binary);
    out << "{\n  \"layers\": [\n    {\"weight\": [[0.1, 0.2,]]}\n  ]\n}\n";
  }
  const absl::StatusOr<json> value = ReadJsonFile(path);
  ASSERT_FALSE(value.ok());
  EXPECT_EQ(value.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(value.status().message(),
                                path + ": invalid JSON: parse error at line 3, column"))
      << value.status();
  std::filesystem::remove(path);
  EXPECT_EQ(ReadJsonFile(path).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace agt::cli
