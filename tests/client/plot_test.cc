// The SVG chart writer (client/lib/plot.h): nice ticks on linear and log
// axes, tick labels, and the structure of a rendered chart (one path per
// series with its own colour and dash, gaps for points an axis cannot show,
// the labels and the legend). agtctl_plot_e2e_test parses whole files.
#include "client/lib/plot.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace agt::client::plot {
namespace {

int Count(const std::string& text, const std::string& needle) {
  int n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) {
    ++n;
  }
  return n;
}

// The value of attribute `name` in every element that has it, in order.
std::vector<std::string> Attributes(const std::string& svg, const std::string& name) {
  std::vector<std::string> out;
  const std::string key = absl::StrCat(" ", name, "=\"");
  for (size_t at = svg.find(key); at != std::string::npos; at = svg.find(key, at + 1)) {
    const size_t start = at + key.size();
    out.push_back(svg.substr(start, svg.find('"', start) - start));
  }
  return out;
}

TEST(NiceLinearTicksTest, StepsAreOneTwoOrFiveTimesAPowerOfTenAndCoverTheData) {
  struct Case {
    double lo, hi, step, first, last;
  } cases[] = {
      {0, 1, 0.2, 0, 1},       {0.13, 0.87, 0.2, 0, 1},    {1, 50, 10, 0, 50},
      {-7, 12, 5, -10, 15},    {1, 20000, 5000, 0, 20000}, {0.001, 0.0042, 0.001, 0.001, 0.005},
      {1, 1001, 200, 0, 1200},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(absl::StrCat("[", c.lo, ", ", c.hi, "]"));
    const LinearTicks t = NiceLinearTicks(c.lo, c.hi);
    EXPECT_DOUBLE_EQ(t.step, c.step);
    EXPECT_DOUBLE_EQ(t.lo, c.first);
    EXPECT_DOUBLE_EQ(t.hi, c.last);
    EXPECT_LE(t.lo, c.lo);
    EXPECT_GE(t.hi, c.hi);
    ASSERT_GE(t.ticks.size(), 2u);
    EXPECT_LE(t.ticks.size(), 11u);
    for (size_t i = 1; i < t.ticks.size(); ++i) {
      EXPECT_NEAR(t.ticks[i] - t.ticks[i - 1], t.step, t.step * 1e-9);
    }
  }
}

TEST(NiceLinearTicksTest, ASingleValueGetsARangeAroundIt) {
  const LinearTicks t = NiceLinearTicks(3, 3);
  EXPECT_LT(t.lo, 3);
  EXPECT_GT(t.hi, 3);
  const LinearTicks zero = NiceLinearTicks(0, 0);
  EXPECT_LT(zero.lo, 0);
  EXPECT_GT(zero.hi, 0);
  // Zero is written 0, not -0 or 1e-17.
  for (double v : zero.ticks) {
    if (std::abs(v) < zero.step / 2) {
      EXPECT_EQ(FormatTick(v, zero.step), "0");
    }
  }
}

TEST(NiceLogTicksTest, DecadesCoverTheDataAndLabelsAreThinnedToMultiples) {
  LogTicks t = NiceLogTicks(2, 8);
  EXPECT_EQ(t.lo_exp, 0);
  EXPECT_EQ(t.hi_exp, 1);
  EXPECT_EQ(t.exponents, (std::vector<int>{0, 1}));

  t = NiceLogTicks(0.03, 250);
  EXPECT_EQ(t.lo_exp, -2);
  EXPECT_EQ(t.hi_exp, 3);
  EXPECT_EQ(t.every, 1);
  EXPECT_EQ(t.exponents, (std::vector<int>{-2, -1, 0, 1, 2, 3}));

  // The exploded job of the issue: widths from 0.5 to 3.64e32.
  t = NiceLogTicks(0.5, 3.64e32);
  EXPECT_EQ(t.lo_exp, -1);
  EXPECT_EQ(t.hi_exp, 33);
  EXPECT_LE(t.exponents.size(), 8u);
  EXPECT_EQ(t.every, 5);
  EXPECT_EQ(t.exponents, (std::vector<int>{0, 5, 10, 15, 20, 25, 30}));

  t = NiceLogTicks(100, 100);  // exactly a power of ten
  EXPECT_EQ(t.lo_exp, 2);
  EXPECT_EQ(t.hi_exp, 3);
}

TEST(FormatTickTest, DigitsFollowTheStep) {
  EXPECT_EQ(FormatTick(0.2, 0.2), "0.2");
  EXPECT_EQ(FormatTick(0.4, 0.2), "0.4");
  EXPECT_EQ(FormatTick(1.0, 0.2), "1.0");
  EXPECT_EQ(FormatTick(1000, 500), "1000");
  EXPECT_EQ(FormatTick(0.005, 0.001), "0.005");
  EXPECT_EQ(FormatTick(-10, 5), "-10");
  EXPECT_EQ(FormatTick(2e7, 5e6), "2e+07");
  EXPECT_EQ(FormatTick(0, 0.2), "0");
}

Chart ThreeSeries() {
  Chart chart;
  chart.title = "Certified accuracy vs budget n";
  chart.x.label = "budget n";
  chart.y.label = "fraction of rows";
  chart.y.min = 0;
  chart.y.max = 1;
  chart.markers = true;
  for (int k = 0; k < 3; ++k) {
    Series s;
    s.label = absl::StrCat("series ", k);
    for (int n : {1, 2, 5, 10}) {
      s.x.push_back(n);
      s.y.push_back(1.0 / (n + k));
    }
    chart.series.push_back(s);
  }
  return chart;
}

TEST(RenderSvgTest, OnePathPerSeriesWithItsOwnColourAndDashAndTheLabels) {
  absl::StatusOr<std::string> svg = RenderSvg(ThreeSeries());
  ASSERT_TRUE(svg.ok()) << svg.status();
  EXPECT_TRUE(absl::StartsWith(*svg, "<svg xmlns=\"http://www.w3.org/2000/svg\""));
  EXPECT_TRUE(absl::StrContains(*svg, ">Certified accuracy vs budget n</text>"));
  EXPECT_TRUE(absl::StrContains(*svg, ">budget n</text>"));
  EXPECT_TRUE(absl::StrContains(*svg, ">fraction of rows</text>"));
  EXPECT_EQ(Count(*svg, "class=\"series\""), 3);
  EXPECT_EQ(Count(*svg, "class=\"legend-entry\""), 3);
  EXPECT_EQ(Count(*svg, "<path "), 3);
  EXPECT_EQ(Count(*svg, "<circle "), 3 * 4 + 3);  // points and legend markers
  std::set<std::string> series_colours;
  for (const char* label : {"series 0", "series 1", "series 2"}) {
    const size_t at = svg->find(absl::StrCat("data-label=\"", label, "\""));
    ASSERT_NE(at, std::string::npos) << label;
    const size_t s = svg->find("stroke=\"", at) + 8;
    series_colours.insert(svg->substr(s, 7));
  }
  EXPECT_EQ(series_colours.size(), 3u);
  // The first series is solid, the others dashed differently.
  std::vector<std::string> dashes = Attributes(*svg, "stroke-dasharray");
  std::set<std::string> distinct(dashes.begin(), dashes.end());
  EXPECT_EQ(distinct.size(), 2u);  // two dashed series (path and legend alike)
  // Y ticks of a [0, 1] axis.
  for (const char* tick : {">0<", ">0.2<", ">0.4<", ">0.6<", ">0.8<", ">1.0<"}) {
    EXPECT_TRUE(absl::StrContains(*svg, tick)) << tick;
  }
}

TEST(RenderSvgTest, PointsALogAxisCannotShowBreakTheLine) {
  Chart chart;
  chart.title = "width";
  chart.x.label = "iteration";
  chart.y.label = "width";
  chart.y.log = true;
  Series zero{"n=0", {1, 2, 3}, {0, 0, 0}};
  Series gap{"n=5", {1, 2, 3, 4, 5}, {1, 10, std::numeric_limits<double>::quiet_NaN(), 1e3, 1e30}};
  chart.series = {zero, gap};
  absl::StatusOr<std::string> svg = RenderSvg(chart);
  ASSERT_TRUE(svg.ok()) << svg.status();
  EXPECT_EQ(Count(*svg, "<path "), 1);  // n=0 has nothing to draw
  EXPECT_TRUE(absl::StrContains(*svg, ">n=0 (not drawn)</text>"));
  const std::vector<std::string> d = Attributes(*svg, "d");
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(Count(d[0], "M"), 2) << d[0];  // two runs around the NaN
  EXPECT_EQ(Count(d[0], "L"), 2) << d[0];
  // Decades labelled as powers of ten.
  EXPECT_TRUE(absl::StrContains(*svg, "10<tspan"));
}

TEST(RenderSvgTest, RefusesWhatItCannotDraw) {
  Chart chart = ThreeSeries();
  chart.series[1].y.pop_back();
  EXPECT_EQ(RenderSvg(chart).status().code(), absl::StatusCode::kInvalidArgument);
  chart.series.clear();
  EXPECT_EQ(RenderSvg(chart).status().code(), absl::StatusCode::kInvalidArgument);
  Chart empty = ThreeSeries();
  for (Series& s : empty.series) {
    for (double& y : s.y) y = std::numeric_limits<double>::infinity();
  }
  EXPECT_EQ(RenderSvg(empty).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(RenderSvgTest, TextIsEscaped) {
  Chart chart = ThreeSeries();
  chart.title = "a < b & \"c\"";
  absl::StatusOr<std::string> svg = RenderSvg(chart);
  ASSERT_TRUE(svg.ok());
  EXPECT_TRUE(absl::StrContains(*svg, "a &lt; b &amp; &quot;c&quot;"));
}

TEST(WritePlotTest, RefusesAnUnknownExtension) {
  EXPECT_EQ(WritePlot("<svg/>", testing::TempDir() + "/x.jpg", 800, 500).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace agt::client::plot
