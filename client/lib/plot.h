// Line charts as SVG, for `agtctl plot`: certified accuracy / stable fraction
// vs the budget n, and bound width over training iterations. A small writer
// of our own (no plotting library on Debian's C++ side): axes with "nice"
// ticks (1, 2, 5 x 10^k on a linear axis; powers of ten, thinned to at most
// about eight labels, on a log axis), axis labels, a title, a legend beside
// the plot area, and one colour and dash pattern per series (colour-blind
// safe palette; the dash tells series apart in grey print too). Drawn for
// 800 x 500 by default; text is at least 12 px there.
//
// Points that an axis cannot show (NaN or infinite values, and values <= 0
// on a log axis) are left out and break the series' line; a series with no
// point left is still listed in the legend, marked "(not drawn: ...)".
//
// PNG: WritePlot converts with rsvg-convert (Debian's librsvg2-bin) when
// the file name ends in .png.
//
// Thread-safety: pure functions (WritePlot touches only its files).
#ifndef AGT_CLIENT_LIB_PLOT_H_
#define AGT_CLIENT_LIB_PLOT_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace agt::client::plot {

// Ticks of a linear axis: a step of 1, 2 or 5 x 10^k giving about `target`
// intervals over [lo, hi], and the range widened outwards to whole steps.
// lo == hi is widened to a unit-sized interval around the value. Requires
// finite lo <= hi.
struct LinearTicks {
  double lo = 0.0;  // first tick (<= the data's lo)
  double hi = 1.0;  // last tick (>= the data's hi)
  double step = 1.0;
  std::vector<double> ticks;  // lo, lo + step, ..., hi
};
LinearTicks NiceLinearTicks(double lo, double hi, int target = 6);

// Ticks of a log axis for positive lo <= hi: the powers of ten from
// 10^floor(log10 lo) to 10^ceil(log10 hi) (at least one decade), every
// `every`-th one labelled so that at most `max_labels` are (every >= 1).
struct LogTicks {
  int lo_exp = 0;  // the axis spans [10^lo_exp, 10^hi_exp]
  int hi_exp = 1;
  int every = 1;
  std::vector<int> exponents;  // labelled decades, ascending
};
LogTicks NiceLogTicks(double lo, double hi, int max_labels = 8);

// A tick value written with no more digits than `step` needs ("0.25",
// "1000", "1e+06" for very large or small magnitudes; "0" for zero).
std::string FormatTick(double value, double step);

struct Series {
  std::string label;
  std::vector<double> x;
  std::vector<double> y;  // same size as x
};

struct Axis {
  std::string label;
  bool log = false;
  // Fixed range (e.g. [0, 1] for fractions); unset = from the data.
  std::optional<double> min;
  std::optional<double> max;
};

struct Chart {
  std::string title;
  std::string subtitle;  // optional second line, smaller
  Axis x;
  Axis y;
  std::vector<Series> series;
  bool markers = false;  // a dot at every point (for few points)
  int width = 800;
  int height = 500;
};

// The chart as a standalone SVG document (white background).
// InvalidArgument for no series, a series whose x and y sizes differ, a
// size below 300 x 200, or no drawable point at all.
absl::StatusOr<std::string> RenderSvg(const Chart& chart);

// Writes `svg` to `path`: as is when it ends in .svg; converted to PNG of
// width x height with rsvg-convert when it ends in .png (FailedPrecondition
// naming the package when rsvg-convert is not installed; Internal with its
// message when it fails). InvalidArgument for another extension; the
// filesystem's error when a file cannot be written.
absl::Status WritePlot(const std::string& svg, const std::string& path, int width, int height);

}  // namespace agt::client::plot

#endif  // AGT_CLIENT_LIB_PLOT_H_
