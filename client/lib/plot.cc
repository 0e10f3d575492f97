#include "client/lib/plot.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"

extern char** environ;

namespace agt::client::plot {
namespace {

// Okabe-Ito: told apart with every common colour-vision deficiency.
constexpr const char* kColours[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7",
                                    "#000000", "#E69F00", "#56B4E9", "#999933"};
constexpr const char* kDashes[] = {"", "9 4", "2 3", "9 3 2 3", "5 5", "12 3 2 3 2 3"};
constexpr int kColourCount = sizeof(kColours) / sizeof(kColours[0]);
constexpr int kDashCount = sizeof(kDashes) / sizeof(kDashes[0]);

std::string Escape(const std::string& text) {
  return absl::StrReplaceAll(text,
                             {{"&", "&amp;"}, {"<", "&lt;"}, {">", "&gt;"}, {"\"", "&quot;"}});
}

// One axis mapped onto pixels [p0, p1] (p1 < p0 for the y axis).
struct Scale {
  bool log = false;
  double lo = 0, hi = 1;  // data units (exponents' powers on a log axis)
  double p0 = 0, p1 = 1;
  double operator()(double v) const {
    const double t = log ? (std::log10(v) - std::log10(lo)) / (std::log10(hi) - std::log10(lo))
                         : (v - lo) / (hi - lo);
    return p0 + t * (p1 - p0);
  }
};

bool Drawable(double v, bool log) { return std::isfinite(v) && (!log || v > 0.0); }

struct Range {
  double lo = std::numeric_limits<double>::infinity();
  double hi = -std::numeric_limits<double>::infinity();
  bool empty() const { return !(lo <= hi); }
  void Add(double v) {
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
};

// Ticks and pixel mapping for one axis.
struct AxisLayout {
  Scale scale;
  std::vector<std::pair<double, std::string>> labelled;  // value, label
  std::vector<int> log_exponents;                        // for log labels
  std::vector<double> minor;                             // grid lines without labels
};

AxisLayout LayOut(const Axis& axis, Range data, double p0, double p1) {
  AxisLayout out;
  out.scale.log = axis.log;
  out.scale.p0 = p0;
  out.scale.p1 = p1;
  if (axis.min) data.lo = *axis.min;
  if (axis.max) data.hi = *axis.max;
  if (axis.log) {
    const LogTicks t = NiceLogTicks(data.lo, data.hi);
    out.scale.lo = std::pow(10.0, t.lo_exp);
    out.scale.hi = std::pow(10.0, t.hi_exp);
    for (int e = t.lo_exp; e <= t.hi_exp; ++e) {
      if (std::find(t.exponents.begin(), t.exponents.end(), e) != t.exponents.end()) {
        out.log_exponents.push_back(e);
      } else if (t.hi_exp - t.lo_exp <= 40) {
        out.minor.push_back(std::pow(10.0, e));
      }
    }
  } else {
    const LinearTicks t = NiceLinearTicks(data.lo, data.hi);
    out.scale.lo = axis.min ? *axis.min : t.lo;
    out.scale.hi = axis.max ? *axis.max : t.hi;
    for (double v : t.ticks) {
      if (v < out.scale.lo - 1e-9 * t.step || v > out.scale.hi + 1e-9 * t.step) continue;
      out.labelled.push_back({v, FormatTick(v, t.step)});
    }
  }
  return out;
}

// "10" with the exponent raised, as SVG text content.
std::string PowerOfTen(int e) {
  if (e == 0) return "1";
  if (e == 1) return "10";
  return absl::StrCat("10<tspan dy=\"-7\" font-size=\"10\">", e, "</tspan>");
}

}  // namespace

LinearTicks NiceLinearTicks(double lo, double hi, int target) {
  LinearTicks out;
  if (!(lo < hi)) {
    const double pad = std::max(0.5, std::abs(lo) * 0.1);
    lo -= pad;
    hi += pad;
  }
  target = std::max(target, 1);
  // A span past the double range (e.g. -1e308 to 1e308) is halved first.
  const double scale_down = std::isfinite(hi - lo) ? 1.0 : 0.5;
  const double raw = (hi * scale_down - lo * scale_down) / target / scale_down;
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  double step = magnitude;
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    step = m * magnitude;
    if (step >= raw * (1 - 1e-12)) break;
  }
  out.step = step;
  out.lo = std::floor(lo / step + 1e-9) * step;
  out.hi = std::ceil(hi / step - 1e-9) * step;
  const double count = std::round(out.hi / step - out.lo / step);
  const int n = count >= 0 && count <= 1000 ? static_cast<int>(count) : 0;
  for (int i = 0; i <= n; ++i) {
    double v = out.lo + i * step;
    if (std::abs(v) < step * 1e-9) v = 0.0;  // no "-0" or 1e-17 at zero
    out.ticks.push_back(v);
  }
  return out;
}

LogTicks NiceLogTicks(double lo, double hi, int max_labels) {
  LogTicks out;
  out.lo_exp = static_cast<int>(std::floor(std::log10(lo) + 1e-12));
  out.hi_exp = static_cast<int>(std::ceil(std::log10(hi) - 1e-12));
  if (out.hi_exp <= out.lo_exp) out.hi_exp = out.lo_exp + 1;
  max_labels = std::max(max_labels, 2);
  const int decades = out.hi_exp - out.lo_exp + 1;
  out.every = (decades + max_labels - 1) / max_labels;
  for (int e = out.lo_exp; e <= out.hi_exp; ++e) {
    // Multiples of `every` (10^0, 10^5, 10^10, ...) read better than offsets.
    if (((e % out.every) + out.every) % out.every == 0) out.exponents.push_back(e);
  }
  return out;
}

std::string FormatTick(double value, double step) {
  if (value == 0.0 || std::abs(value) < std::abs(step) * 1e-9) return "0";
  const double a = std::abs(value);
  if (a >= 1e6 || a < 1e-4) return absl::StrFormat("%.3g", value);
  const int decimals = std::max(0, static_cast<int>(-std::floor(std::log10(step) + 1e-9)));
  return absl::StrFormat("%.*f", decimals, value);
}

absl::StatusOr<std::string> RenderSvg(const Chart& chart) {
  if (chart.series.empty()) return absl::InvalidArgumentError("a chart needs at least one series");
  if (chart.width < 300 || chart.height < 200) {
    return absl::InvalidArgumentError(absl::StrCat("chart size ", chart.width, "x", chart.height,
                                                   " is below the minimum 300x200"));
  }
  Range xr, yr;
  std::vector<bool> has_points;
  for (const Series& s : chart.series) {
    if (s.x.size() != s.y.size()) {
      return absl::InvalidArgumentError(absl::StrCat("series \"", s.label, "\" has ", s.x.size(),
                                                     " x values and ", s.y.size(), " y values"));
    }
    bool any = false;
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!Drawable(s.x[i], chart.x.log) || !Drawable(s.y[i], chart.y.log)) continue;
      xr.Add(s.x[i]);
      yr.Add(s.y[i]);
      any = true;
    }
    has_points.push_back(any);
  }
  if (xr.empty()) return absl::InvalidArgumentError("no series has a point the axes can show");

  // Legend beside the plot area, as wide as its longest entry needs
  // (about 7 px per character at 12 px).
  size_t longest = 0;
  for (size_t k = 0; k < chart.series.size(); ++k) {
    longest = std::max(longest, chart.series[k].label.size() + (has_points[k] ? 0 : 14));
  }
  const double legend_w = std::min(0.4 * chart.width, 48.0 + 6.8 * longest);
  const double left = 84, right = chart.width - legend_w - 24;
  const double top = chart.subtitle.empty() ? 50 : 64, bottom = chart.height - 58.0;

  const AxisLayout xa = LayOut(chart.x, xr, left, right);
  const AxisLayout ya = LayOut(chart.y, yr, bottom, top);

  std::ostringstream svg;
  svg << absl::StrFormat(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d "
      "%d\" font-family=\"DejaVu Sans, Verdana, sans-serif\">\n",
      chart.width, chart.height, chart.width, chart.height);
  svg << absl::StrFormat("<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n", chart.width,
                         chart.height);
  svg << absl::StrFormat(
      "<text class=\"title\" x=\"%.1f\" y=\"28\" font-size=\"18\" font-weight=\"bold\" "
      "text-anchor=\"middle\">%s</text>\n",
      chart.width / 2.0, Escape(chart.title));
  if (!chart.subtitle.empty()) {
    svg << absl::StrFormat(
        "<text class=\"subtitle\" x=\"%.1f\" y=\"48\" font-size=\"12\" fill=\"#444\" "
        "text-anchor=\"middle\">%s</text>\n",
        chart.width / 2.0, Escape(chart.subtitle));
  }

  // Grid and ticks.
  svg << "<g class=\"grid\" stroke=\"#dddddd\" stroke-width=\"1\">\n";
  auto vline = [&](double px, const char* colour) {
    svg << absl::StrFormat("<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"%s/>\n", px, top,
                           px, bottom, colour);
  };
  auto hline = [&](double py, const char* colour) {
    svg << absl::StrFormat("<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"%s/>\n", left, py,
                           right, py, colour);
  };
  const char* kMinor = " stroke=\"#f0f0f0\"";
  for (double v : xa.minor) vline(xa.scale(v), kMinor);
  for (double v : ya.minor) hline(ya.scale(v), kMinor);
  for (const auto& [v, label] : xa.labelled) vline(xa.scale(v), "");
  for (int e : xa.log_exponents) vline(xa.scale(std::pow(10.0, e)), "");
  for (const auto& [v, label] : ya.labelled) hline(ya.scale(v), "");
  for (int e : ya.log_exponents) hline(ya.scale(std::pow(10.0, e)), "");
  svg << "</g>\n";
  svg << absl::StrFormat(
      "<rect class=\"frame\" x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"none\" "
      "stroke=\"#444\" stroke-width=\"1\"/>\n",
      left, top, right - left, bottom - top);
  svg << "<g class=\"ticks\" font-size=\"12\" fill=\"#222\">\n";
  for (const auto& [v, label] : xa.labelled) {
    svg << absl::StrFormat("<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\">%s</text>\n",
                           xa.scale(v), bottom + 18, Escape(label));
  }
  for (int e : xa.log_exponents) {
    svg << absl::StrFormat("<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\">%s</text>\n",
                           xa.scale(std::pow(10.0, e)), bottom + 20, PowerOfTen(e));
  }
  for (const auto& [v, label] : ya.labelled) {
    svg << absl::StrFormat("<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"end\">%s</text>\n", left - 8,
                           ya.scale(v) + 4, Escape(label));
  }
  for (int e : ya.log_exponents) {
    svg << absl::StrFormat("<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"end\">%s</text>\n", left - 8,
                           ya.scale(std::pow(10.0, e)) + 5, PowerOfTen(e));
  }
  svg << "</g>\n";
  svg << absl::StrFormat(
      "<text class=\"xlabel\" x=\"%.2f\" y=\"%.2f\" font-size=\"14\" "
      "text-anchor=\"middle\">%s</text>\n",
      (left + right) / 2, bottom + 44, Escape(chart.x.label));
  svg << absl::StrFormat(
      "<text class=\"ylabel\" x=\"%.2f\" y=\"%.2f\" font-size=\"14\" text-anchor=\"middle\" "
      "transform=\"rotate(-90 %.2f %.2f)\">%s</text>\n",
      22.0, (top + bottom) / 2, 22.0, (top + bottom) / 2, Escape(chart.y.label));

  // Series, clipped to the plot area.
  svg << absl::StrFormat(
      "<clipPath id=\"area\"><rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\"/>"
      "</clipPath>\n",
      left - 4, top - 4, right - left + 8, bottom - top + 8);
  for (size_t k = 0; k < chart.series.size(); ++k) {
    const Series& s = chart.series[k];
    const char* colour = kColours[k % kColourCount];
    const char* dash = kDashes[k % kDashCount];
    std::string path;
    bool pen_down = false;
    std::string dots;
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!Drawable(s.x[i], chart.x.log) || !Drawable(s.y[i], chart.y.log)) {
        pen_down = false;  // a gap in the line
        continue;
      }
      const double px = xa.scale(s.x[i]), py = ya.scale(s.y[i]);
      absl::StrAppend(&path, pen_down ? " L" : " M", absl::StrFormat("%.2f %.2f", px, py));
      pen_down = true;
      if (chart.markers) {
        absl::StrAppend(&dots,
                        absl::StrFormat("<circle cx=\"%.2f\" cy=\"%.2f\" r=\"3.5\"/>", px, py));
      }
    }
    svg << absl::StrFormat(
        "<g class=\"series\" data-label=\"%s\" clip-path=\"url(#area)\" stroke=\"%s\" "
        "fill=\"%s\">\n",
        Escape(s.label), colour, colour);
    if (!path.empty()) {
      svg << absl::StrFormat(
          "<path d=\"%s\" fill=\"none\" stroke-width=\"2.2\" stroke-linejoin=\"round\"%s/>\n",
          path.substr(1), *dash ? absl::StrCat(" stroke-dasharray=\"", dash, "\"") : "");
    }
    if (!dots.empty()) svg << "<g stroke=\"none\">" << dots << "</g>\n";
    svg << "</g>\n";
  }

  // Legend.
  const double lx = right + 18;
  double ly = top + 8;
  svg << "<g class=\"legend\" font-size=\"12\" fill=\"#222\">\n";
  for (size_t k = 0; k < chart.series.size(); ++k) {
    const char* colour = kColours[k % kColourCount];
    const char* dash = kDashes[k % kDashCount];
    svg << absl::StrFormat(
        "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"%s\" "
        "stroke-width=\"2.2\"%s/>\n",
        lx, ly, lx + 30, ly, colour, *dash ? absl::StrCat(" stroke-dasharray=\"", dash, "\"") : "");
    if (chart.markers) {
      svg << absl::StrFormat("<circle cx=\"%.2f\" cy=\"%.2f\" r=\"3.5\" fill=\"%s\"/>\n", lx + 15,
                             ly, colour);
    }
    std::string label = chart.series[k].label;
    if (!has_points[k]) absl::StrAppend(&label, " (not drawn)");
    svg << absl::StrFormat("<text class=\"legend-entry\" x=\"%.2f\" y=\"%.2f\">%s</text>\n",
                           lx + 38, ly + 4, Escape(label));
    ly += 22;
  }
  svg << "</g>\n</svg>\n";
  return svg.str();
}

namespace {

absl::Status WriteFile(const std::string& path, const std::string& content) {
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file << content;
  file.close();
  if (!file) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot write ", path, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

std::string ReadSmallFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  if (text.size() > 2000) text.resize(2000);
  return text;
}

}  // namespace

absl::Status WritePlot(const std::string& svg, const std::string& path, int width, int height) {
  if (absl::EndsWithIgnoreCase(path, ".svg")) return WriteFile(path, svg);
  if (!absl::EndsWithIgnoreCase(path, ".png")) {
    return absl::InvalidArgumentError(
        absl::StrCat("-o ", path, ": the file name must end in .svg or .png"));
  }
  const std::string tmp_svg = absl::StrCat(path, ".tmp.svg");
  const std::string tmp_err = absl::StrCat(path, ".tmp.err");
  if (absl::Status s = WriteFile(tmp_svg, svg); !s.ok()) return s;
  const std::string w = absl::StrCat(width), h = absl::StrCat(height);
  std::vector<std::string> args = {"rsvg-convert", "-w",  w,    "-h", h,
                                   "-f",           "png", "-o", path, tmp_svg};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, tmp_err.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0600);
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, "rsvg-convert", &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  absl::Status result = absl::OkStatus();
  if (rc != 0) {
    result =
        rc == ENOENT
            ? absl::FailedPreconditionError(
                  "cannot write PNG: rsvg-convert is not installed (Debian package "
                  "librsvg2-bin); install it, or write an .svg file")
            : absl::InternalError(absl::StrCat("cannot run rsvg-convert: ", std::strerror(rc)));
  } else {
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      // posix_spawnp may report a missing program as exit status 127.
      const bool missing = WIFEXITED(status) && WEXITSTATUS(status) == 127;
      result = missing ? absl::FailedPreconditionError(
                             "cannot write PNG: rsvg-convert is not installed (Debian package "
                             "librsvg2-bin); install it, or write an .svg file")
                       : absl::InternalError(absl::StrCat("rsvg-convert failed converting to ",
                                                          path, ": ", ReadSmallFile(tmp_err)));
    }
  }
  std::remove(tmp_svg.c_str());
  std::remove(tmp_err.c_str());
  return result;
}

}  // namespace agt::client::plot
