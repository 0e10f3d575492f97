// Tests for core/data: the CSV reader's errors (each must name the right line
// and column), exact number parsing, label inference, the generators, the
// polynomial expansion and the split.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "core/common/rng.h"
#include "core/data/dataset.h"
#include "gtest/gtest.h"

namespace agt {
namespace {

// gtest's own substring check, so that the tests need no gmock.
::testing::AssertionResult HasSubstr(absl::string_view text, absl::string_view part) {
  if (text.find(part) != absl::string_view::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "\"" << text << "\" does not contain \"" << part << "\"";
}

// Bit pattern of a double: EXPECT_EQ on these is a bit-exact comparison that
// also tells -0.0 from 0.0.
uint64_t Bits(double v) {
  uint64_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  return bits;
}

double Strtod(const std::string& s) { return std::strtod(s.c_str(), nullptr); }

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::string TempPath(const std::string& name) {
  return absl::StrCat(::testing::TempDir(), "/agt_data_test_", name);
}

// Parses `text` and expects an error with `code` whose message contains `where`
// (e.g. "line 3, column 2:") and `what`.
void ExpectCsvError(const std::string& text, absl::StatusCode code, const std::string& where,
                    const std::string& what, const CsvOptions& options = {}) {
  const absl::StatusOr<Dataset> data = ParseCsv(text, options);
  ASSERT_FALSE(data.ok()) << "accepted:\n" << text;
  EXPECT_EQ(data.status().code(), code) << data.status();
  EXPECT_TRUE(HasSubstr(data.status().message(), where)) << data.status();
  EXPECT_TRUE(HasSubstr(data.status().message(), what)) << data.status();
}

void ExpectBadCsv(const std::string& text, const std::string& where, const std::string& what,
                  const CsvOptions& options = {}) {
  ExpectCsvError(text, absl::StatusCode::kInvalidArgument, where, what, options);
}

// ---------------------------------------------------------------------------
// CSV: accepted input.

TEST(ParseCsv, ReadsFeaturesAndLastColumnLabelAfterHeader) {
  const absl::StatusOr<Dataset> data = ParseCsv("a,b,label\n1.5,-2,0\n3,4e1,1\n");
  ASSERT_TRUE(data.ok()) << data.status();
  ASSERT_EQ(data->size(), 2);
  ASSERT_EQ(data->dim(), 2);
  EXPECT_EQ(data->x(0, 0), 1.5);
  EXPECT_EQ(data->x(0, 1), -2.0);
  EXPECT_EQ(data->x(1, 0), 3.0);
  EXPECT_EQ(data->x(1, 1), 40.0);
  EXPECT_EQ(data->y[0], 0.0);
  EXPECT_EQ(data->y[1], 1.0);
}

TEST(ParseCsv, FirstLineIsDataWhenItsFirstFieldIsANumber) {
  const absl::StatusOr<Dataset> data = ParseCsv("1,2,0\n3,4,1\n");
  ASSERT_TRUE(data.ok()) << data.status();
  ASSERT_EQ(data->size(), 2);
  EXPECT_EQ(data->x(0, 0), 1.0);
  EXPECT_EQ(data->x(0, 1), 2.0);
}

TEST(ParseCsv, HeaderIsDetectedFromTheFirstFieldOnly) {
  // Later header fields that look numeric do not make the line data.
  const absl::StatusOr<Dataset> data = ParseCsv("x,1,2\n5,6,1\n");
  ASSERT_TRUE(data.ok()) << data.status();
  ASSERT_EQ(data->size(), 1);
  EXPECT_EQ(data->x(0, 0), 5.0);
}

TEST(ParseCsv, AcceptsCrLfLineEndings) {
  const absl::StatusOr<Dataset> data = ParseCsv("x0,x1,y\r\n0.25,0.5,1\r\n0.75,1,0\r\n");
  ASSERT_TRUE(data.ok()) << data.status();
  ASSERT_EQ(data->size(), 2);
  EXPECT_EQ(data->x(0, 1), 0.5);
  EXPECT_EQ(data->y[0], 1.0);
  EXPECT_EQ(data->y[1], 0.0);
}

TEST(ParseCsv, AcceptsAMissingFinalNewline) {
  const absl::StatusOr<Dataset> data = ParseCsv("1,2,0\n3,4,1");
  ASSERT_TRUE(data.ok()) << data.status();
  ASSERT_EQ(data->size(), 2);
  EXPECT_EQ(data->y[1], 1.0);
}

TEST(ParseCsv, SkipsBlankLinesAtTheEnd) {
  const absl::StatusOr<Dataset> data = ParseCsv("1,2,0\n3,4,1\n\n  \r\n\t\n");
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->size(), 2);
}

TEST(ParseCsv, IgnoresSpacesAroundFields) {
  const absl::StatusOr<Dataset> data = ParseCsv(" 1 ,\t2.5, 1\n");
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->x(0, 0), 1.0);
  EXPECT_EQ(data->x(0, 1), 2.5);
  EXPECT_EQ(data->y[0], 1.0);
}

TEST(ParseCsv, IgnoresAUtf8ByteOrderMark) {
  const absl::StatusOr<Dataset> data = ParseCsv("\xEF\xBB\xBFx0,y\n7,1\n");
  ASSERT_TRUE(data.ok()) << data.status();
  ASSERT_EQ(data->size(), 1);
  EXPECT_EQ(data->x(0, 0), 7.0);
}

TEST(ParseCsv, AcceptsExponentsLeadingPlusAndBareDecimalPoints) {
  const absl::StatusOr<Dataset> data = ParseCsv("+1.5,1e+2,-2.5E-1,.5,5.,0\n");
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->x(0, 0), 1.5);
  EXPECT_EQ(data->x(0, 1), 100.0);
  EXPECT_EQ(data->x(0, 2), -0.25);
  EXPECT_EQ(data->x(0, 3), 0.5);
  EXPECT_EQ(data->x(0, 4), 5.0);
}

// ---------------------------------------------------------------------------
// CSV: exact parsing.

TEST(ParseCsv, HardDecimalsAreCorrectlyRounded) {
  const std::vector<std::string> texts = {
      "0.1",
      "9007199254740993",  // 2^53 + 1: a tie, rounds to even 2^53
      "2.0000000000000002220446049250313080847263336181640625",  // exact tie above 2
      "2.2250738585072011e-308",                                 // just below the smallest normal
      "2.2250738585072014e-308",
      "4.9406564584124654e-324",  // smallest subnormal
      "1.7976931348623157e308",
      "0.30000000000000004",
      "123456789012345678901234567890",
      "-0",
  };
  std::string row;
  for (const std::string& t : texts) absl::StrAppend(&row, t, ",");
  row += "0\n";
  const absl::StatusOr<Dataset> data = ParseCsv(row);
  ASSERT_TRUE(data.ok()) << data.status();
  ASSERT_EQ(data->dim(), static_cast<Index>(texts.size()));
  for (size_t j = 0; j < texts.size(); ++j) {
    EXPECT_EQ(Bits(data->x(0, static_cast<Index>(j))), Bits(Strtod(texts[j]))) << texts[j];
  }
  EXPECT_EQ(data->x(0, 1), 9007199254740992.0);
  EXPECT_EQ(data->x(0, 2), 2.0);
  EXPECT_TRUE(std::signbit(data->x(0, 9)));
}

TEST(ParseCsv, SubnormalsAreKeptAndUnderflowToZeroIsRefused) {
  const absl::StatusOr<Dataset> data = ParseCsv("3e-324,-4.9e-324,0e-999,-0.0,0\n");
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(Bits(data->x(0, 0)), Bits(Strtod("3e-324")));
  EXPECT_GT(data->x(0, 0), 0.0);
  EXPECT_EQ(Bits(data->x(0, 1)), Bits(Strtod("-4.9e-324")));
  EXPECT_EQ(Bits(data->x(0, 2)), Bits(0.0));  // zero written with an exponent is zero
  EXPECT_EQ(Bits(data->x(0, 3)), Bits(-0.0));
  // 1e-400 is not 0, but no double is nearer to it than 0: refused, not zeroed.
  ExpectBadCsv("1,1e-400,0\n", "line 1, column 2:", "\"1e-400\" is too small for a double");
  ExpectBadCsv("1,-2.5e-330,0\n", "line 1, column 2:", "\"-2.5e-330\" is too small");
}

TEST(ParseCsv, HexadecimalFloatsAreNotNumbers) {
  for (const char* hex : {"0x1p3", "0X1.8P1", "-0x10", "+0x1p-2", "0x"}) {
    ExpectBadCsv(absl::StrCat("1,", hex, ",0\n"),
                 "line 1, column 2:", absl::StrCat("\"", hex, "\" is not a number"));
  }
}

TEST(ParseCsv, ShortestReprOfRandomDoublesReadsBackBitExactly) {
  // std::to_chars without precision writes the shortest round-trip text, as
  // Python's repr does.
  Rng rng(42);
  std::string text;
  std::vector<double> values;
  while (values.size() < 4000) {
    uint64_t bits = rng.NextU64();
    double v;
    std::memcpy(&v, &bits, sizeof v);
    if (!std::isfinite(v)) continue;
    values.push_back(v);
    char buffer[64];
    const auto result = std::to_chars(buffer, buffer + sizeof buffer, v);
    text.append(buffer, result.ptr);
    text += ",0\n";
  }
  const absl::StatusOr<Dataset> data = ParseCsv(text);
  ASSERT_TRUE(data.ok()) << data.status();
  ASSERT_EQ(data->size(), static_cast<Index>(values.size()));
  int mismatches = 0;
  for (size_t i = 0; i < values.size(); ++i) {
    mismatches += Bits(data->x(static_cast<Index>(i), 0)) != Bits(values[i]);
  }
  EXPECT_EQ(mismatches, 0);
}

// The reader takes lines of plain numbers ([+-]digits[.digits][e..]) in one
// pass, m / 10^f by one division when the digits m <= 2^53 and f <= 22, and
// hands everything else to ParseDecimal: both sides of every limit must give
// strtod's double.
TEST(ParseCsv, PlainDecimalsAroundTheFastPathLimitsReadLikeStrtod) {
  // clang-format off
  std::vector<std::string> literals = {
      "0", "-0", "0.0", "-0.0", "000.000", "007", "1", "-1", "+1", "0.5", "0.1", "0.2", "0.3",
      "9007199254740992", "9007199254740993", "-9007199254740993", "9007199254740994",
      "0.9007199254740993", "900719925474099.3", "18446744073709551615", "18446744073709551616",
      "99999999999999999999", "1234567890123456789012345", "0.0000000000000000000001",
      "0.00000000000000000000001", "0.0000000000000000000000123", "1.0000000000000000000001",
      "0.00392156862745098", "0.10588235294117647", "0.996078431372549", "3.14159265358979323846",
      "1e5", "1E-5", "2.5e+3", "-7e-300", "1e308", "1.7976931348623157e308", "4.9e-324",
      "2.2250738585072014e-308", "2.2250738585072009e-308"};
  // clang-format on
  Rng rng(7);
  for (int i = 0; i < 3000; ++i) {
    // Random digit strings: 1..20 digits before the point, 0..25 after.
    std::string s = rng.UniformInt(2) ? "-" : "";
    const int before = 1 + static_cast<int>(rng.UniformInt(20));
    const int after = static_cast<int>(rng.UniformInt(26));
    for (int d = 0; d < before; ++d) s += static_cast<char>('0' + rng.UniformInt(10));
    if (after > 0) s += '.';
    for (int d = 0; d < after; ++d) s += static_cast<char>('0' + rng.UniformInt(10));
    literals.push_back(s);
  }
  std::string text = "a,b,y\n";
  for (size_t i = 0; i < literals.size(); ++i) {
    // Blanks around some fields; the literal once as a feature, once as the label.
    absl::StrAppend(&text, i % 3 == 0 ? " " : "", literals[i], i % 5 == 0 ? "\t" : "", ",1,",
                    literals[i], "\n");
  }
  const absl::StatusOr<Dataset> data = ParseCsv(text, CsvOptions{.num_classes = 0});
  ASSERT_TRUE(data.ok()) << data.status();
  ASSERT_EQ(data->size(), static_cast<Index>(literals.size()));
  for (size_t i = 0; i < literals.size(); ++i) {
    const Index row = static_cast<Index>(i);
    EXPECT_EQ(Bits(data->x(row, 0)), Bits(Strtod(literals[i]))) << literals[i];
    EXPECT_EQ(Bits(data->y[row]), Bits(Strtod(literals[i]))) << literals[i];
  }
}

TEST(ParseCsvErrors, AWideRowOfPlainNumbersNamesTheBadFieldsColumn) {
  // 784 features as in Fashion-MNIST: the one bad field is found in a line
  // that is otherwise read by the fast path.
  std::string good, bad;
  for (int c = 0; c < 784; ++c) {
    absl::StrAppend(&good, c % 7 == 0 ? "0.0" : "0.00392156862745098", ",");
    absl::StrAppend(&bad, c == 499 ? "0.0.1" : "0.5", ",");
  }
  good += "3\n";
  bad += "3\n";
  ExpectBadCsv(good + good + bad + good, "line 3, column 500:", "\"0.0.1\" is not a number");
  // A label outside the classes on a plain line.
  CsvOptions options;
  options.num_classes = 3;
  const std::string in_range = good.substr(0, good.size() - 2) + "1\n";
  ExpectBadCsv(in_range + good, "line 2, column 785:", "outside the classes 0..2", options);
}

// A CSV of about `megabytes` MB: header, rows of 8 random features (some
// written in exponent form) and a class label 0..2.
std::string LargeCsv(double megabytes, uint64_t seed) {
  Rng rng(seed);
  std::string text = "a,b,c,d,e,f,g,h,y\n";
  while (static_cast<double>(text.size()) < megabytes * 1e6) {
    for (int c = 0; c < 8; ++c) {
      const double v = rng.Uniform(-3.0, 3.0);
      absl::StrAppend(&text, c == 5 ? absl::StrFormat("%.6e", v) : absl::StrFormat("%.17g", v),
                      ",");
    }
    absl::StrAppend(&text, rng.UniformInt(3), "\n");
  }
  return text;
}

TEST(ParseCsv, ThreadsGiveTheSameDoublesAsOneThread) {
  const std::string text = LargeCsv(4.5, 11);  // enough for four threads
  CsvOptions one;
  const absl::StatusOr<Dataset> serial = ParseCsv(text, one);
  ASSERT_TRUE(serial.ok()) << serial.status();
  ASSERT_GT(serial->size(), 25000);
  for (int threads : {2, 3, 4, 0}) {
    CsvOptions options;
    options.threads = threads;
    const absl::StatusOr<Dataset> parallel = ParseCsv(text, options);
    ASSERT_TRUE(parallel.ok()) << parallel.status();
    EXPECT_EQ(parallel->num_classes, serial->num_classes);
    ASSERT_EQ(parallel->x.rows(), serial->x.rows());
    // Bit for bit (NaN-free, so == is bitwise up to the sign of zero, which
    // the generator does not produce).
    EXPECT_TRUE((parallel->x.array() == serial->x.array()).all()) << threads;
    EXPECT_TRUE((parallel->y.array() == serial->y.array()).all()) << threads;
  }
}

TEST(ParseCsvErrors, WithThreadsTheFirstBadLineIsReported) {
  // Bad lines near the end and in the middle: whichever thread reads the
  // later one, the error names the earlier line, as one thread does.
  const std::string good = LargeCsv(3.0, 12);
  std::vector<size_t> starts = {0};
  for (size_t i = 0; i + 1 < good.size(); ++i) {
    if (good[i] == '\n') starts.push_back(i + 1);
  }
  const size_t middle = starts.size() / 2, late = starts.size() - 3;
  // "#" after the first character of the middle line, "x" in place of the
  // first character of the late one.
  const std::string text = good.substr(0, starts[middle] + 1) + "#" +
                           good.substr(starts[middle] + 1, starts[late] - starts[middle] - 1) +
                           "x" + good.substr(starts[late] + 1);
  for (int threads : {1, 2, 3, 8}) {
    CsvOptions options;
    options.threads = threads;
    ExpectBadCsv(text, absl::StrCat("line ", middle + 1, ", column 1:"), "is not a number",
                 options);
  }
}

TEST(ReadCsv, GoldenMoonsTrainMatchesStrtodOnEveryField) {
  const std::string path = std::string(AGT_TEST_DATA_DIR) + "/goldens/moons_linear/train.csv";
  const absl::StatusOr<Dataset> data = ReadCsv(path);
  ASSERT_TRUE(data.ok()) << data.status();

  // An independent reading of the same text: split on '\n' and ',' and strtod.
  std::vector<std::string> lines = absl::StrSplit(ReadFile(path), '\n', absl::SkipEmpty());
  ASSERT_GE(lines.size(), 2u);
  lines.erase(lines.begin());  // header
  ASSERT_EQ(data->size(), static_cast<Index>(lines.size()));
  const std::vector<std::string> first = absl::StrSplit(lines[0], ',');
  ASSERT_EQ(data->dim() + 1, static_cast<Index>(first.size()));
  EXPECT_EQ(data->num_classes, 2);

  int mismatches = 0;
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::vector<std::string> fields = absl::StrSplit(lines[i], ',');
    ASSERT_EQ(fields.size(), first.size()) << "line " << i + 2;
    const Index row = static_cast<Index>(i);
    for (Index j = 0; j < data->dim(); ++j) {
      mismatches += Bits(data->x(row, j)) != Bits(Strtod(fields[j]));
    }
    mismatches += Bits(data->y[row]) != Bits(Strtod(fields.back()));
  }
  EXPECT_EQ(mismatches, 0);
  // Two values spelled out, so that a broken strtod cannot hide a broken parser.
  EXPECT_EQ(data->x(0, 0), -0.5476366518992962);
  EXPECT_EQ(data->x(0, 2), 0.29990590250347093);
}

// ---------------------------------------------------------------------------
// CSV: errors name the line and column.

TEST(ParseCsvErrors, NanIsRejectedWithItsPosition) {
  ExpectBadCsv("x0,x1,y\n1,2,0\n3,nan,1\n", "line 3, column 2:", "\"nan\" is not finite");
}

TEST(ParseCsvErrors, NanInAnySpellingIsRejected) {
  ExpectBadCsv("1,NaN,0\n", "line 1, column 2:", "not finite");
  ExpectBadCsv("1,-nan,0\n", "line 1, column 2:", "not finite");
}

TEST(ParseCsvErrors, InfIsRejectedWithItsPosition) {
  ExpectBadCsv("1,2,0\n3,4,1\ninf,5,0\n", "line 3, column 1:", "\"inf\" is not finite");
  ExpectBadCsv("1,-Infinity,0\n", "line 1, column 2:", "not finite");
}

TEST(ParseCsvErrors, InfiniteLabelIsRejected) {
  ExpectBadCsv("x,y\n1,2\n3,inf\n", "line 3, column 2:", "not finite");
}

TEST(ParseCsvErrors, OverflowingNumberIsRejected) {
  ExpectBadCsv("1,2,0\n1e999,2,0\n", "line 2, column 1:", "\"1e999\" is not finite");
}

TEST(ParseCsvErrors, ShortRowNamesTheFirstMissingColumn) {
  ExpectBadCsv("x0,x1,x2,y\n1,2,3,0\n1,2,0\n", "line 3, column 4:", "expected 4 fields, found 3");
}

TEST(ParseCsvErrors, LongRowNamesTheFirstExtraColumn) {
  ExpectBadCsv("1,2,0\n1,2,3,0\n", "line 2, column 4:", "expected 3 fields, found 4");
}

TEST(ParseCsvErrors, RowCountIsCheckedAgainstTheHeader) {
  ExpectBadCsv("x0,x1,y\n1,0\n", "line 2, column 3:", "expected 3 fields, found 2");
}

TEST(ParseCsvErrors, EmptyFeatureFieldIsRejected) {
  ExpectBadCsv("x0,x1,y\n1,2,0\n1,,0\n", "line 3, column 2:", "empty field");
}

TEST(ParseCsvErrors, BlankFieldIsRejected) {
  ExpectBadCsv("1,2,0\n1,  ,0\n", "line 2, column 2:", "empty field");
}

TEST(ParseCsvErrors, EmptyLabelFromATrailingCommaIsRejected) {
  ExpectBadCsv("1,2,0\n1,2,\n", "line 2, column 3:", "empty field");
}

TEST(ParseCsvErrors, EmptyFirstFieldOnTheFirstLineIsDataNotAHeader) {
  ExpectBadCsv(",2,0\n1,2,0\n", "line 1, column 1:", "empty field");
}

TEST(ParseCsvErrors, TextIsNotANumber) {
  ExpectBadCsv("x0,x1,x2,y\n1,2,3,0\n1,2,3,1\n4,5,6,0\n1,2,3,0\n1,2,3,0\n1,2,abc,1\n",
               "line 7, column 3:", "\"abc\" is not a number");
}

TEST(ParseCsvErrors, TrailingGarbageIsNotANumber) {
  ExpectBadCsv("1,2.5x,0\n", "line 1, column 2:", "\"2.5x\" is not a number");
  ExpectBadCsv("1,0x10,0\n", "line 1, column 2:", "\"0x10\" is not a number");
  ExpectBadCsv("1,1 2,0\n", "line 1, column 2:", "\"1 2\" is not a number");
}

TEST(ParseCsvErrors, TextLabelIsNotANumber) {
  ExpectBadCsv("x,y\n1,cat\n", "line 2, column 2:", "\"cat\" is not a number");
}

TEST(ParseCsvErrors, LineNumbersCountCrLfLinesAndTheHeader) {
  ExpectBadCsv("x0,y\r\n1,0\r\n2,1\r\nzz,0\r\n", "line 4, column 1:", "\"zz\" is not a number");
}

TEST(ParseCsvErrors, NonIntegerClassLabelIsRejected) {
  CsvOptions options;
  options.num_classes = 2;
  ExpectBadCsv("x0,x1,y\n1,2,0\n1,2,0.5\n", "line 3, column 3:", "not an integer class", options);
}

TEST(ParseCsvErrors, ClassLabelAtOrAboveNumClassesIsRejected) {
  CsvOptions options;
  options.num_classes = 3;
  ExpectBadCsv("1,0\n1,2\n1,3\n", "line 3, column 2:", "outside the classes 0..2", options);
}

TEST(ParseCsvErrors, NegativeClassLabelIsRejected) {
  CsvOptions options;
  options.num_classes = 2;
  ExpectBadCsv("1,0\n1,-1\n", "line 2, column 2:", "outside the classes 0..1", options);
}

TEST(ParseCsvErrors, EmptyTextIsRejected) { ExpectBadCsv("", "line 1", "empty"); }

TEST(ParseCsvErrors, WhitespaceOnlyTextIsRejected) { ExpectBadCsv("\n \r\n\n", "line 1", "empty"); }

TEST(ParseCsvErrors, HeaderWithoutRowsIsRejected) {
  ExpectBadCsv("x0,x1,y\n", "line 2", "no data rows");
  ExpectBadCsv("x0,x1,y\r\n\r\n", "line 2", "no data rows");
}

TEST(ParseCsvErrors, BlankLineInsideTheDataIsRejected) {
  ExpectBadCsv("1,0\n\n2,1\n", "line 2, column 1:", "blank line");
}

TEST(ParseCsvErrors, SingleColumnIsRejected) {
  ExpectBadCsv("1\n2\n", "line 1", "at least one feature column");
}

TEST(ParseCsvErrors, InvalidNumClassesOptionIsRejected) {
  for (int c : {1, -2}) {
    CsvOptions options;
    options.num_classes = c;
    ExpectBadCsv("1,0\n", "num_classes", absl::StrCat(c), options);
  }
}

TEST(ReadCsvErrors, MissingFileIsNotFound) {
  const absl::StatusOr<Dataset> data = ReadCsv(TempPath("does_not_exist.csv"));
  ASSERT_FALSE(data.ok());
  EXPECT_EQ(data.status().code(), absl::StatusCode::kNotFound) << data.status();
  EXPECT_TRUE(HasSubstr(data.status().message(), "does_not_exist.csv"));
}

TEST(ReadCsvErrors, ParseErrorNamesTheFileLineAndColumn) {
  const std::string path = TempPath("bad.csv");
  std::ofstream(path) << "x0,y\n1,0\n2,oops\n";
  const absl::StatusOr<Dataset> data = ReadCsv(path);
  ASSERT_FALSE(data.ok());
  EXPECT_EQ(data.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(HasSubstr(data.status().message(), "bad.csv"));
  EXPECT_TRUE(HasSubstr(data.status().message(), "line 3, column 2:"));
  std::remove(path.c_str());
}

// ---------------------------------------------------------------------------
// CSV: label inference.

absl::StatusOr<Dataset> ParseLabels(const std::vector<std::string>& labels,
                                    const CsvOptions& options = {}) {
  std::string text = "x,y\n";
  for (const std::string& label : labels) absl::StrAppend(&text, "0.5,", label, "\n");
  return ParseCsv(text, options);
}

TEST(CsvLabels, IntegralLabelsAreClassesUpToTheMax) {
  const absl::StatusOr<Dataset> data = ParseLabels({"0", "2.0", "1", "2"});
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->num_classes, 3);
  EXPECT_TRUE(data->Validate().ok());
}

TEST(CsvLabels, ASingleClassStillMeansBinary) {
  const absl::StatusOr<Dataset> data = ParseLabels({"0", "0"});
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->num_classes, 2);
}

TEST(CsvLabels, FractionalLabelsMeanRegression) {
  const absl::StatusOr<Dataset> data = ParseLabels({"0", "1", "0.5"});
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->num_classes, 0);
  EXPECT_EQ(data->y[2], 0.5);
}

TEST(CsvLabels, IntegralLabelsOutsideTheClassRangeAreNotGuessed) {
  // -1 and 1e9 look like neither class indices nor (with only integers)
  // clearly regression: inference refuses, naming the row, instead of
  // silently training a regression model.
  for (const std::vector<std::string>& labels :
       {std::vector<std::string>{"-1", "1"}, std::vector<std::string>{"0", "1", "1e9"},
        std::vector<std::string>{"0", "1000"}}) {
    const absl::StatusOr<Dataset> data = ParseLabels(labels);
    ASSERT_EQ(data.status().code(), absl::StatusCode::kInvalidArgument) << labels.back();
    EXPECT_TRUE(absl::StrContains(data.status().message(), "outside the class indices 0..999"))
        << data.status();
    EXPECT_TRUE(absl::StrContains(data.status().message(), "say num_classes")) << data.status();
  }
  const absl::StatusOr<Dataset> negative = ParseLabels({"0", "-1"});
  EXPECT_TRUE(absl::StrContains(negative.status().message(), "row 1: label -1 "))
      << negative.status();
  // Stated explicitly, the same labels are regression targets.
  CsvOptions regression;
  regression.num_classes = 0;
  const absl::StatusOr<Dataset> data = ParseLabels({"-1", "1", "1e9"}, regression);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->num_classes, 0);
  EXPECT_EQ(data->y[2], 1e9);
  // One fractional label makes the inference unambiguous again.
  const absl::StatusOr<Dataset> fractional = ParseLabels({"-1", "1e9", "0.5"});
  ASSERT_TRUE(fractional.ok()) << fractional.status();
  EXPECT_EQ(fractional->num_classes, 0);
}

TEST(CsvLabels, TheClassLimitIsAMaxOf999) {
  const absl::StatusOr<Dataset> below = ParseLabels({"0", "999"});
  ASSERT_TRUE(below.ok()) << below.status();
  EXPECT_EQ(below->num_classes, 1000);
}

TEST(CsvLabels, ExplicitRegressionKeepsIntegralLabels) {
  CsvOptions options;
  options.num_classes = 0;
  const absl::StatusOr<Dataset> data = ParseLabels({"0", "1", "5"}, options);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->num_classes, 0);
  EXPECT_EQ(data->y[2], 5.0);
}

TEST(CsvLabels, ExplicitClassCountIsKeptEvenWhenClassesAreAbsent) {
  CsvOptions options;
  options.num_classes = 5;
  const absl::StatusOr<Dataset> data = ParseLabels({"0", "1"}, options);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->num_classes, 5);
}

// ---------------------------------------------------------------------------
// Dataset.

Dataset Numbered(int n, int classes) {
  // Row i has features (i, -i) and label i % classes, so rows can be traced.
  Dataset data;
  data.x.resize(n, 2);
  data.y.resize(n);
  for (int i = 0; i < n; ++i) {
    data.x(i, 0) = i;
    data.x(i, 1) = -i;
    data.y[i] = i % classes;
  }
  data.num_classes = classes;
  return data;
}

TEST(DatasetValidate, AcceptsFiniteDataWithClassLabelsInRange) {
  EXPECT_TRUE(Numbered(10, 3).Validate().ok());
}

TEST(DatasetValidate, RejectsANonFiniteFeatureNamingRowAndFeature) {
  Dataset data = Numbered(5, 2);
  data.x(3, 1) = std::nan("");
  const absl::Status status = data.Validate();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(HasSubstr(status.message(), "row 3, feature 1"));
}

TEST(DatasetValidate, RejectsANonFiniteLabel) {
  Dataset data = Numbered(5, 2);
  data.num_classes = 0;
  data.y[4] = -INFINITY;
  const absl::Status status = data.Validate();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(HasSubstr(status.message(), "row 4"));
}

TEST(DatasetValidate, RejectsClassLabelsOutsideTheClasses) {
  for (double bad : {2.0, -1.0, 0.5}) {
    Dataset data = Numbered(4, 2);
    data.y[1] = bad;
    const absl::Status status = data.Validate();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_TRUE(HasSubstr(status.message(), "row 1")) << bad;
  }
}

TEST(DatasetValidate, RegressionAcceptsAnyFiniteLabel) {
  Dataset data = Numbered(4, 2);
  data.num_classes = 0;
  data.y[1] = -3.25;
  EXPECT_TRUE(data.Validate().ok());
}

TEST(DatasetValidate, RejectsMismatchedLabelCount) {
  Dataset data = Numbered(4, 2);
  data.y.resize(3);
  EXPECT_EQ(data.Validate().code(), absl::StatusCode::kInvalidArgument);
}

TEST(DatasetValidate, RejectsInvalidNumClasses) {
  for (int c : {1, -1}) {
    Dataset data = Numbered(4, 2);
    data.y.setZero();
    data.num_classes = c;
    EXPECT_EQ(data.Validate().code(), absl::StatusCode::kInvalidArgument) << c;
  }
}

TEST(DatasetSlice, TakesHalfOpenRowRange) {
  const Dataset data = Numbered(10, 3);
  const Dataset slice = data.Slice(2, 5);
  ASSERT_EQ(slice.size(), 3);
  ASSERT_EQ(slice.dim(), 2);
  for (Index i = 0; i < 3; ++i) {
    EXPECT_EQ(slice.x(i, 0), 2 + i);
    EXPECT_EQ(slice.x(i, 1), -(2 + i));
    EXPECT_EQ(slice.y[i], (2 + i) % 3);
  }
  EXPECT_EQ(slice.num_classes, 3);
  EXPECT_EQ(data.Slice(4, 4).size(), 0);
}

TEST(DatasetSelect, TakesRowsInTheGivenOrderWithRepeats) {
  const Dataset data = Numbered(10, 4);
  const std::vector<Index> rows = {7, 0, 7, 3};
  const Dataset picked = data.Select(rows);
  ASSERT_EQ(picked.size(), 4);
  for (Index i = 0; i < 4; ++i) {
    EXPECT_EQ(picked.x(i, 0), rows[i]);
    EXPECT_EQ(picked.x(i, 1), -rows[i]);
    EXPECT_EQ(picked.y[i], rows[i] % 4);
  }
  EXPECT_EQ(picked.num_classes, 4);
}

// ---------------------------------------------------------------------------
// WriteCsv.

TEST(WriteCsv, WritesHeaderAndRoundTripsBitExactly) {
  Dataset data;
  data.num_classes = 0;
  data.x.resize(4, 3);
  data.y.resize(4);
  data.x << 0.1, -0.0, 1e300,                                        //
      4.9406564584124654e-324, -2.2250738585072014e-308, 1.0 / 3.0,  //
      123456789.123456789, -7, 0.30000000000000004,                  //
      1e-5, 6.02214076e23, -1.5;
  data.y << 0.5, -1e-300, 2.0 / 3.0, 42;
  const std::string path = TempPath("roundtrip.csv");
  ASSERT_TRUE(WriteCsv(data, path).ok());

  const std::string text = ReadFile(path);
  EXPECT_EQ(text.substr(0, text.find('\n')), "x0,x1,x2,y");

  CsvOptions options;
  options.num_classes = 0;
  const absl::StatusOr<Dataset> back = ReadCsv(path, options);
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->size(), data.size());
  ASSERT_EQ(back->dim(), data.dim());
  for (Index i = 0; i < data.size(); ++i) {
    for (Index j = 0; j < data.dim(); ++j) {
      EXPECT_EQ(Bits(back->x(i, j)), Bits(data.x(i, j))) << i << "," << j;
    }
    EXPECT_EQ(Bits(back->y[i]), Bits(data.y[i])) << i;
  }
  std::remove(path.c_str());
}

TEST(WriteCsv, GeneratedClassificationDataRoundTrips) {
  const Dataset data = MakeBlobs(300, 4, 3, 1.7, 10.0, 5);
  const std::string path = TempPath("blobs.csv");
  ASSERT_TRUE(WriteCsv(data, path).ok());
  const absl::StatusOr<Dataset> back = ReadCsv(path);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->num_classes, 3);
  ASSERT_EQ(back->x.rows(), data.x.rows());
  ASSERT_EQ(back->x.cols(), data.x.cols());
  EXPECT_TRUE(back->x == data.x);
  EXPECT_TRUE(back->y == data.y);
  std::remove(path.c_str());
}

TEST(WriteCsv, RefusesDataThatFailsValidation) {
  Dataset data = Numbered(3, 2);
  data.x(1, 0) = INFINITY;
  const std::string path = TempPath("invalid.csv");
  EXPECT_EQ(WriteCsv(data, path).code(), absl::StatusCode::kInvalidArgument);
}

TEST(WriteCsv, FailsInAMissingDirectory) {
  const absl::Status status = WriteCsv(Numbered(3, 2), TempPath("no_such_dir/x.csv"));
  EXPECT_FALSE(status.ok());
  EXPECT_TRUE(HasSubstr(status.message(), "no_such_dir"));
}

// ---------------------------------------------------------------------------
// MakeMoons.

int CountLabel(const Dataset& data, double label) {
  return static_cast<int>((data.y.array() == label).count());
}

TEST(MakeMoons, IsDeterministicInTheSeed) {
  const Dataset a = MakeMoons(101, 0.1, 7);
  const Dataset b = MakeMoons(101, 0.1, 7);
  EXPECT_TRUE(a.x == b.x);
  EXPECT_TRUE(a.y == b.y);
}

TEST(MakeMoons, DiffersAcrossSeeds) {
  const Dataset a = MakeMoons(101, 0.1, 7);
  const Dataset b = MakeMoons(101, 0.1, 8);
  EXPECT_FALSE(a.x == b.x);
  // Without noise the points are the same set, but the order must still differ.
  EXPECT_FALSE(MakeMoons(101, 0.0, 7).y == MakeMoons(101, 0.0, 8).y);
}

TEST(MakeMoons, HasTwoFeaturesAndValidBinaryLabels) {
  const Dataset data = MakeMoons(50, 0.2, 1);
  EXPECT_EQ(data.size(), 50);
  EXPECT_EQ(data.dim(), 2);
  EXPECT_EQ(data.num_classes, 2);
  EXPECT_TRUE(data.Validate().ok());
}

TEST(MakeMoons, ClassesAreBalancedWithTheExtraRowInClassZero) {
  const Dataset even = MakeMoons(200, 0.1, 3);
  EXPECT_EQ(CountLabel(even, 0.0), 100);
  EXPECT_EQ(CountLabel(even, 1.0), 100);
  const Dataset odd = MakeMoons(201, 0.1, 3);
  EXPECT_EQ(CountLabel(odd, 0.0), 101);
  EXPECT_EQ(CountLabel(odd, 1.0), 100);
}

TEST(MakeMoons, RowsAreShuffled) {
  const Dataset data = MakeMoons(200, 0.0, 11);
  // Unshuffled, the first 100 rows would all be class 0.
  EXPECT_LT(CountLabel(data.Slice(0, 100), 0.0), 90);
  EXPECT_GT(CountLabel(data.Slice(0, 100), 0.0), 10);
}

TEST(MakeMoons, WithoutNoisePointsLieOnTheTwoArcs) {
  const Dataset data = MakeMoons(301, 0.0, 4);
  for (Index i = 0; i < data.size(); ++i) {
    const double x = data.x(i, 0);
    const double y = data.x(i, 1);
    if (data.y[i] == 0.0) {
      // Upper unit half circle around (0, 0).
      EXPECT_NEAR(std::hypot(x, y), 1.0, 1e-12) << i;
      EXPECT_GE(y, -1e-12) << i;
    } else {
      // Lower unit half circle around (1, 0.5).
      EXPECT_NEAR(std::hypot(x - 1.0, y - 0.5), 1.0, 1e-12) << i;
      EXPECT_LE(y, 0.5 + 1e-12) << i;
    }
  }
}

TEST(MakeMoons, WithoutNoiseAnglesAreEvenlySpacedOverZeroToPi) {
  const int n = 41;  // 21 points on arc 0, 20 on arc 1
  const Dataset data = MakeMoons(n, 0.0, 9);
  std::vector<double> first;
  std::vector<double> second;
  for (Index i = 0; i < data.size(); ++i) {
    if (data.y[i] == 0.0) {
      first.push_back(std::atan2(data.x(i, 1), data.x(i, 0)));
    } else {
      // (1 - cos t, 0.5 - sin t) => t = atan2(0.5 - y, 1 - x).
      second.push_back(std::atan2(0.5 - data.x(i, 1), 1.0 - data.x(i, 0)));
    }
  }
  for (std::vector<double>* angles : {&first, &second}) {
    std::sort(angles->begin(), angles->end());
    const size_t m = angles->size();
    ASSERT_GE(m, 2u);
    for (size_t k = 0; k < m; ++k) {
      EXPECT_NEAR((*angles)[k], M_PI * static_cast<double>(k) / static_cast<double>(m - 1), 1e-12);
    }
  }
  EXPECT_EQ(first.size(), 21u);
  EXPECT_EQ(second.size(), 20u);
}

TEST(MakeMoons, NoiseScatterMatchesItsStddev) {
  const double noise = 0.05;
  const Dataset data = MakeMoons(4000, noise, 12);
  // The radial part of isotropic noise with stddev s is about N(0, s^2) when s
  // is small against the radius 1.
  double sum_sq = 0.0;
  for (Index i = 0; i < data.size(); ++i) {
    const double r = data.y[i] == 0.0 ? std::hypot(data.x(i, 0), data.x(i, 1))
                                      : std::hypot(data.x(i, 0) - 1.0, data.x(i, 1) - 0.5);
    sum_sq += (r - 1.0) * (r - 1.0);
  }
  const double rms = std::sqrt(sum_sq / static_cast<double>(data.size()));
  EXPECT_NEAR(rms, noise, 0.1 * noise);
}

TEST(MakeMoons, HandlesTinySizes) {
  EXPECT_EQ(MakeMoons(0, 0.1, 1).size(), 0);
  const Dataset one = MakeMoons(1, 0.0, 1);
  ASSERT_EQ(one.size(), 1);
  EXPECT_EQ(one.y[0], 0.0);
  EXPECT_NEAR(one.x(0, 0), 1.0, 1e-15);  // t = 0
}

// ---------------------------------------------------------------------------
// MakeBlobs.

// Per-class means (rows) of the data.
Matrix ClassMeans(const Dataset& data) {
  Matrix sums = Matrix::Zero(data.num_classes, data.dim());
  Vector counts = Vector::Zero(data.num_classes);
  for (Index i = 0; i < data.size(); ++i) {
    const Index c = static_cast<Index>(data.y[i]);
    sums.row(c) += data.x.row(i);
    counts[c] += 1;
  }
  for (Index c = 0; c < data.num_classes; ++c) sums.row(c) /= counts[c];
  return sums;
}

TEST(MakeBlobs, IsDeterministicInTheSeed) {
  const Dataset a = MakeBlobs(90, 3, 4, 1.0, 5.0, 21);
  const Dataset b = MakeBlobs(90, 3, 4, 1.0, 5.0, 21);
  EXPECT_TRUE(a.x == b.x);
  EXPECT_TRUE(a.y == b.y);
}

TEST(MakeBlobs, DiffersAcrossSeeds) {
  EXPECT_FALSE(MakeBlobs(90, 3, 4, 1.0, 5.0, 21).x == MakeBlobs(90, 3, 4, 1.0, 5.0, 22).x);
}

TEST(MakeBlobs, HasTheRequestedShapeAndValidLabels) {
  const Dataset data = MakeBlobs(77, 5, 3, 0.5, 2.0, 1);
  EXPECT_EQ(data.size(), 77);
  EXPECT_EQ(data.dim(), 5);
  EXPECT_EQ(data.num_classes, 3);
  EXPECT_TRUE(data.Validate().ok());
}

TEST(MakeBlobs, ClassesAreBalanced) {
  const Dataset data = MakeBlobs(103, 2, 4, 1.0, 5.0, 2);
  EXPECT_EQ(CountLabel(data, 0), 26);
  EXPECT_EQ(CountLabel(data, 1), 26);
  EXPECT_EQ(CountLabel(data, 2), 26);
  EXPECT_EQ(CountLabel(data, 3), 25);
}

TEST(MakeBlobs, WithoutSpreadEveryClassSitsOnOneCentreInsideTheBox) {
  const double box = 3.0;
  const Dataset data = MakeBlobs(60, 3, 5, 0.0, box, 8);
  // The first row of each class is its centre; every other row must equal it.
  Matrix centres(5, 3);
  std::vector<bool> found(5, false);
  for (Index i = 0; i < data.size(); ++i) {
    const Index c = static_cast<Index>(data.y[i]);
    if (!found[c]) centres.row(c) = data.x.row(i);
    found[c] = true;
    EXPECT_TRUE(data.x.row(i) == centres.row(c)) << i;
  }
  ASSERT_EQ(std::count(found.begin(), found.end(), true), 5);
  EXPECT_LE(centres.cwiseAbs().maxCoeff(), box);
  for (Index a = 0; a < centres.rows(); ++a) {
    for (Index b = a + 1; b < centres.rows(); ++b) {
      EXPECT_GT((centres.row(a) - centres.row(b)).norm(), 0.0);
    }
  }
}

TEST(MakeBlobs, ClassMeansAreNearTheCentres) {
  // The centres do not depend on n or stddev, so stddev = 0 reveals them.
  const int n = 4000;
  const int classes = 4;
  const double stddev = 0.8;
  const Matrix centres = ClassMeans(MakeBlobs(classes, 3, classes, 0.0, 10.0, 33));
  const Dataset data = MakeBlobs(n, 3, classes, stddev, 10.0, 33);
  const Matrix means = ClassMeans(data);
  // Each mean coordinate has stddev stddev / sqrt(n / classes) = 0.016; allow 5 sigma.
  const double tolerance = 5 * stddev / std::sqrt(n / classes);
  EXPECT_LE((means - centres).cwiseAbs().maxCoeff(), tolerance);
  // And the spread around the centre matches stddev.
  double sum_sq = 0.0;
  for (Index i = 0; i < data.size(); ++i) {
    sum_sq += (data.x.row(i) - centres.row(static_cast<Index>(data.y[i]))).squaredNorm();
  }
  EXPECT_NEAR(std::sqrt(sum_sq / (n * 3.0)), stddev, 0.05 * stddev);
}

// ---------------------------------------------------------------------------
// PolynomialFeatures.

TEST(PolynomialFeatures, TwoInputsCubicGiveNineFeaturesInScikitLearnOrder) {
  Matrix x(2, 2);
  x << 2, 3,  //
      -1.5, 0.5;
  const Matrix p = PolynomialFeatures(x, 3);
  ASSERT_EQ(p.cols(), 9);
  ASSERT_EQ(p.rows(), 2);
  for (Index i = 0; i < 2; ++i) {
    const double a = x(i, 0);
    const double b = x(i, 1);
    // x0, x1, x0^2, x0 x1, x1^2, x0^3, x0^2 x1, x0 x1^2, x1^3
    const double expected[9] = {a,         b,         a * a,     a * b,    b * b,
                                a * a * a, a * a * b, a * b * b, b * b * b};
    for (Index j = 0; j < 9; ++j) EXPECT_EQ(p(i, j), expected[j]) << i << "," << j;
  }
  EXPECT_EQ(p(0, 6), 12.0);    // 2^2 * 3
  EXPECT_EQ(p(0, 7), 18.0);    // 2 * 3^2
  EXPECT_EQ(p(1, 5), -3.375);  // (-1.5)^3
}

TEST(PolynomialFeatures, ThreeInputsCubicFollowCombinationsWithReplacement) {
  // Primes as inputs make every monomial's value identify its exponents.
  const int primes[3] = {2, 3, 5};
  Matrix x(1, 3);
  x << 2, 3, 5;
  const Matrix p = PolynomialFeatures(x, 3);
  // Expected order: for each degree, non-decreasing index tuples in lexicographic order.
  std::vector<double> expected;
  for (int i = 0; i < 3; ++i) expected.push_back(primes[i]);
  for (int i = 0; i < 3; ++i) {
    for (int j = i; j < 3; ++j) expected.push_back(primes[i] * primes[j]);
  }
  for (int i = 0; i < 3; ++i) {
    for (int j = i; j < 3; ++j) {
      for (int k = j; k < 3; ++k) expected.push_back(primes[i] * primes[j] * primes[k]);
    }
  }
  ASSERT_EQ(p.cols(), static_cast<Index>(expected.size()));
  for (Index c = 0; c < p.cols(); ++c) EXPECT_EQ(p(0, c), expected[c]) << c;
}

TEST(PolynomialFeatures, DegreeOneIsTheIdentity) {
  Matrix x(3, 4);
  x.setRandom();
  const Matrix p = PolynomialFeatures(x, 1);
  EXPECT_TRUE(p == x);
}

TEST(PolynomialFeatures, ColumnCountMatchesPolynomialFeatureCount) {
  Matrix x = Matrix::Ones(2, 1);
  for (int d = 1; d <= 5; ++d) {
    x = Matrix::Constant(2, d, 1.5);
    for (int degree = 1; degree <= 4; ++degree) {
      EXPECT_EQ(PolynomialFeatures(x, degree).cols(), PolynomialFeatureCount(d, degree))
          << d << "," << degree;
    }
  }
}

// Number of exponent vectors in N^dim with total degree in 1..degree, by brute force.
int CountMonomials(int dim, int degree) {
  int count = 0;
  std::vector<int> e(dim, 0);
  while (true) {
    int total = 0;
    for (int v : e) total += v;
    if (total >= 1 && total <= degree) ++count;
    int k = 0;
    while (k < dim && ++e[k] > degree) e[k++] = 0;
    if (k == dim) return count;
  }
}

TEST(PolynomialFeatureCount, MatchesBruteForceEnumeration) {
  for (int d = 1; d <= 6; ++d) {
    for (int degree = 1; degree <= 4; ++degree) {
      EXPECT_EQ(PolynomialFeatureCount(d, degree), CountMonomials(d, degree)) << d << "," << degree;
    }
  }
  EXPECT_EQ(PolynomialFeatureCount(2, 3), 9);
  EXPECT_EQ(PolynomialFeatureCount(6, 3), 83);
}

// ---------------------------------------------------------------------------
// TrainTestSplit.

TEST(TrainTestSplit, SizesFollowTheRoundedFraction) {
  const Dataset data = Numbered(10, 2);
  const Split split = TrainTestSplit(data, 0.3, 1);
  EXPECT_EQ(split.test.size(), 3);
  EXPECT_EQ(split.train.size(), 7);
  const Split split2 = TrainTestSplit(Numbered(99, 2), 0.2, 1);
  EXPECT_EQ(split2.test.size(), 20);  // 19.8 rounds to 20
  EXPECT_EQ(split2.train.size(), 79);
}

TEST(TrainTestSplit, PartsAreDisjointAndCoverEveryRowWithItsLabel) {
  const Dataset data = Numbered(57, 3);
  const Split split = TrainTestSplit(data, 0.25, 17);
  std::multiset<int> seen;
  for (const Dataset* part : {&split.train, &split.test}) {
    EXPECT_EQ(part->num_classes, 3);
    EXPECT_EQ(part->dim(), 2);
    for (Index i = 0; i < part->size(); ++i) {
      const int id = static_cast<int>(part->x(i, 0));
      seen.insert(id);
      EXPECT_EQ(part->x(i, 1), -id);
      EXPECT_EQ(part->y[i], id % 3);
    }
  }
  ASSERT_EQ(seen.size(), 57u);
  for (int id = 0; id < 57; ++id) EXPECT_EQ(seen.count(id), 1u) << id;
}

TEST(TrainTestSplit, RowsArePermuted) {
  const Split split = TrainTestSplit(Numbered(50, 2), 0.0, 3);
  ASSERT_EQ(split.train.size(), 50);
  EXPECT_EQ(split.test.size(), 0);
  int in_place = 0;
  for (Index i = 0; i < 50; ++i) in_place += split.train.x(i, 0) == i;
  EXPECT_LT(in_place, 10);
}

TEST(TrainTestSplit, FractionOneTakesEveryRowAsTest) {
  const Split split = TrainTestSplit(Numbered(12, 2), 1.0, 3);
  EXPECT_EQ(split.test.size(), 12);
  EXPECT_EQ(split.train.size(), 0);
}

TEST(TrainTestSplit, IsDeterministicInTheSeedAndDiffersAcrossSeeds) {
  const Dataset data = Numbered(40, 2);
  const Split a = TrainTestSplit(data, 0.5, 5);
  const Split b = TrainTestSplit(data, 0.5, 5);
  const Split c = TrainTestSplit(data, 0.5, 6);
  EXPECT_TRUE(a.test.x == b.test.x);
  EXPECT_TRUE(a.train.x == b.train.x);
  EXPECT_FALSE(a.test.x == c.test.x);
}

}  // namespace
}  // namespace agt
