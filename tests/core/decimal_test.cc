// The strict decimal reader (core/common/decimal.h) shared by CSV parsing,
// flags and the client: what it accepts is read correctly rounded, and hex
// floats, stray text and silent underflow to zero are refused.
#include "core/common/decimal.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <string>

namespace agt {
namespace {

DecimalParse Parse(const std::string& text, double* value) { return ParseDecimal(text, value); }

TEST(ParseDecimal, PlainDecimalsAreReadCorrectlyRounded) {
  for (const char* text : {"0", "-0", "+1", "1.5", ".5", "5.", "-2.5e-3", "1E10", "+6.02e+23",
                           "0.1", "9007199254740993", "2.2250738585072011e-308",
                           "1.7976931348623157e308"}) {
    double value = 12345.0;
    ASSERT_EQ(Parse(text, &value), DecimalParse::kOk) << text;
    const std::string unsigned_text = text[0] == '+' ? std::string(text + 1) : std::string(text);
    EXPECT_EQ(std::bit_cast<uint64_t>(value),
              std::bit_cast<uint64_t>(std::strtod(unsigned_text.c_str(), nullptr)))
        << text;
  }
  double negative_zero = 1.0;
  ASSERT_EQ(Parse("-0.0", &negative_zero), DecimalParse::kOk);
  EXPECT_TRUE(std::signbit(negative_zero));
}

TEST(ParseDecimal, NonFiniteSpellingsAreNumbersForTheCallerToJudge) {
  double value = 0;
  ASSERT_EQ(Parse("inf", &value), DecimalParse::kOk);
  EXPECT_TRUE(std::isinf(value));
  ASSERT_EQ(Parse("-Infinity", &value), DecimalParse::kOk);
  EXPECT_TRUE(std::isinf(value) && value < 0);
  ASSERT_EQ(Parse("NaN", &value), DecimalParse::kOk);
  EXPECT_TRUE(std::isnan(value));
  value = 7.0;
  EXPECT_FALSE(ParseFiniteDecimal("inf", &value));
  EXPECT_FALSE(ParseFiniteDecimal("nan", &value));
  EXPECT_EQ(value, 7.0);
  EXPECT_TRUE(ParseFiniteDecimal("-3.25", &value));
  EXPECT_EQ(value, -3.25);
}

TEST(ParseDecimal, HexFloatsAndStrayTextAreNotNumbers) {
  for (const char* text : {"", " 1", "1 ", "0x1p3", "0X10", "-0x1.8p1", "1e", "1e+", "e5", "1.2.3",
                           "++1", "+-1", "1,5", "1_000", "abc", "0b101", "1d", "--1", "+"}) {
    double value = 42.0;
    EXPECT_EQ(Parse(text, &value), DecimalParse::kNotANumber) << '"' << text << '"';
    EXPECT_EQ(value, 42.0) << text;
  }
  EXPECT_EQ(DecimalProblem("0x1p3", DecimalParse::kNotANumber), "\"0x1p3\" is not a number");
}

TEST(ParseDecimal, SubnormalsAreKeptButUnderflowToZeroIsRefused) {
  double value = 0;
  ASSERT_EQ(Parse("4.9e-324", &value), DecimalParse::kOk);
  EXPECT_EQ(value, std::numeric_limits<double>::denorm_min());
  ASSERT_EQ(Parse("1e-310", &value), DecimalParse::kOk);
  EXPECT_GT(value, 0.0);
  // Zero spelled with any exponent is zero, not an underflow.
  for (const char* zero : {"0e-999", "-0.000e-400", "0.0E+500"}) {
    ASSERT_EQ(Parse(zero, &value), DecimalParse::kOk) << zero;
    EXPECT_EQ(value, 0.0) << zero;
  }
  for (const char* tiny : {"1e-400", "-1e-400", "2e-324", "0.00001e-320"}) {
    value = 5.0;
    EXPECT_EQ(Parse(tiny, &value), DecimalParse::kUnderflow) << tiny;
    EXPECT_EQ(value, 5.0) << tiny;
  }
  EXPECT_EQ(DecimalProblem("1e-400", DecimalParse::kUnderflow),
            "\"1e-400\" is too small for a double (it is not 0 but would read as 0)");
}

TEST(ParseDecimal, OverflowIsRefused) {
  double value = 0;
  EXPECT_EQ(Parse("1e309", &value), DecimalParse::kOverflow);
  EXPECT_EQ(Parse("-1.8e308", &value), DecimalParse::kOverflow);
  EXPECT_FALSE(ParseFiniteDecimal("1e999", &value));
}

}  // namespace
}  // namespace agt
