// agt_privacy_utility: reproduces the paper's Figure 13 (left), private
// prediction accuracy vs epsilon on blobs for the smooth-sensitivity
// mechanism with AGT's n* and the global-sensitivity Laplace baseline.
// Writes privacy_utility.csv and privacy_utility.svg to --out-dir and prints a
// table; see examples/README.md.

#include "examples/privacy_utility.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace agt::examples {
namespace {

constexpr char kUsage[] =
    "Usage: agt_privacy_utility [flags]\n"
    "  Trains a 6-128-1 ReLU network on blobs with AGT (substitution budgets 1..K in one\n"
    "  training), certifies n* per test point and measures private-prediction accuracy\n"
    "  vs epsilon for the smooth-sensitivity (Cauchy) and global-sensitivity (Laplace)\n"
    "  mechanisms (paper Fig. 13, left).\n"
    "Flags:\n"
    "  --out-dir DIR      where privacy_utility.csv and .svg go (default .)\n"
    "  --repeats R        releases of every test point per epsilon (default 20)\n"
    "  --max-budget K     largest substitution budget n (default 100)\n"
    "  --seed S           seed of the data, split and initialisation (default 7)\n"
    "  --help             this text\n";

struct Options {
  std::string out_dir = ".";
  int repeats = 20;
  int max_budget = 100;
  uint64_t seed = 7;
};

template <typename T>
bool ParseNumber(std::string_view text, T* value) {
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, *value);
  return ec == std::errc() && ptr == end;
}

// InvalidArgument naming the flag for a bad flag or value; prints the usage
// and exits on --help.
absl::StatusOr<Options> ParseOptions(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      std::cout << kUsage;
      std::exit(0);
    }
    if (i + 1 >= argc) return absl::InvalidArgumentError(absl::StrCat(flag, " needs a value"));
    const std::string value = argv[++i];
    bool ok = true;
    if (flag == "--out-dir") {
      options.out_dir = value;
    } else if (flag == "--repeats") {
      ok = ParseNumber(value, &options.repeats) && options.repeats >= 1;
    } else if (flag == "--max-budget") {
      ok = ParseNumber(value, &options.max_budget) && options.max_budget >= 1;
    } else if (flag == "--seed") {
      ok = ParseNumber(value, &options.seed);
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag ", flag, "\n", kUsage));
    }
    if (!ok) {
      return absl::InvalidArgumentError(
          absl::StrCat(flag, " ", value,
                       " is not valid: --repeats and --max-budget take an integer >= 1, "
                       "--seed an unsigned integer"));
    }
  }
  return options;
}

absl::Status WriteCsv(const std::vector<AccuracyPoint>& points, double noise_free,
                      const std::string& path) {
  std::ofstream out(path);
  if (!out) return absl::UnavailableError(absl::StrCat("cannot write ", path));
  out << "epsilon,mechanism,mean_accuracy,std_accuracy\n";
  for (const AccuracyPoint& p : points) {
    out << absl::StrFormat("%.6g,%s,%.6f,%.6f\n", p.epsilon, MechanismName(p.mechanism), p.mean,
                           p.stddev);
  }
  out << absl::StrFormat("0,noise_free,%.6f,0\n", noise_free);
  return out.good() ? absl::OkStatus() : absl::UnavailableError(absl::StrCat("writing ", path));
}

// A hand-written SVG line chart: log-scale epsilon on x, accuracy on y.
class SvgPlot {
 public:
  SvgPlot(double eps_lo, double eps_hi, double acc_lo, double acc_hi)
      : log_lo_(std::log10(eps_lo)),
        log_hi_(std::log10(eps_hi)),
        acc_lo_(acc_lo),
        acc_hi_(acc_hi) {}

  double X(double epsilon) const {
    return kLeft + (std::log10(epsilon) - log_lo_) / (log_hi_ - log_lo_) * kPlotW;
  }
  double Y(double accuracy) const {
    return kTop + (acc_hi_ - accuracy) / (acc_hi_ - acc_lo_) * kPlotH;
  }

  std::string Render(const std::vector<AccuracyPoint>& points, double noise_free,
                     const std::string& subtitle) const {
    std::string svg = absl::StrFormat(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
        "font-family=\"Helvetica, Arial, sans-serif\" font-size=\"14\">\n"
        "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
        kWidth, kHeight);
    absl::StrAppend(&svg, Axes(), Title(subtitle));
    absl::StrAppend(
        &svg,
        absl::StrFormat("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#444\" "
                        "stroke-width=\"2\" stroke-dasharray=\"8,5\"/>\n",
                        X(std::pow(10.0, log_lo_)), Y(noise_free), X(std::pow(10.0, log_hi_)),
                        Y(noise_free)));
    absl::StrAppend(&svg, Series(points, PrivacyMechanism::kSmoothSensitivityCauchy, kSsColor),
                    Series(points, PrivacyMechanism::kGlobalSensitivityLaplace, kGsColor));
    absl::StrAppend(&svg, Legend(), "</svg>\n");
    return svg;
  }

 private:
  static constexpr int kWidth = 720;
  static constexpr int kHeight = 480;
  static constexpr double kLeft = 80;
  static constexpr double kTop = 60;
  static constexpr double kPlotW = 600;
  static constexpr double kPlotH = 340;
  static constexpr char kSsColor[] = "#d62728";
  static constexpr char kGsColor[] = "#1f77b4";

  std::string Axes() const {
    std::string svg;
    const double bottom = kTop + kPlotH;
    absl::StrAppend(&svg, absl::StrFormat("<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
                                          "height=\"%.1f\" fill=\"none\" stroke=\"black\"/>\n",
                                          kLeft, kTop, kPlotW, kPlotH));
    for (int e = static_cast<int>(std::ceil(log_lo_ - 1e-9)); e <= log_hi_ + 1e-9; ++e) {
      const double x = X(std::pow(10.0, e));
      absl::StrAppend(
          &svg,
          absl::StrFormat(
              "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n"
              "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n"
              "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%g</text>\n",
              x, kTop, x, bottom, x, bottom, x, bottom + 6, x, bottom + 24, std::pow(10.0, e)));
      for (int m = 2; m <= 9 && e + std::log10(m) < log_hi_; ++m) {
        const double xm = X(m * std::pow(10.0, e));
        absl::StrAppend(&svg, absl::StrFormat("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" "
                                              "y2=\"%.1f\" stroke=\"black\"/>\n",
                                              xm, bottom, xm, bottom + 3));
      }
    }
    for (double a = std::ceil(acc_lo_ * 10 - 1e-9) / 10; a <= acc_hi_ + 1e-9; a += 0.1) {
      const double y = Y(a);
      absl::StrAppend(
          &svg, absl::StrFormat(
                    "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n"
                    "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n"
                    "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.1f</text>\n",
                    kLeft, y, kLeft + kPlotW, y, kLeft - 6, y, kLeft, y, kLeft - 10, y + 5, a));
    }
    absl::StrAppend(
        &svg, absl::StrFormat("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">"
                              "Privacy loss per query (&#949;, log scale)</text>\n"
                              "<text transform=\"translate(%.1f,%.1f) rotate(-90)\" "
                              "text-anchor=\"middle\">Accuracy of private predictions</text>\n",
                              kLeft + kPlotW / 2, bottom + 50, kLeft - 50, kTop + kPlotH / 2));
    return svg;
  }

  static std::string Title(const std::string& subtitle) {
    return absl::StrFormat(
        "<text x=\"%.1f\" y=\"26\" text-anchor=\"middle\" font-size=\"18\" font-weight=\"bold\">"
        "Private prediction on blobs: smooth vs global sensitivity</text>\n"
        "<text x=\"%.1f\" y=\"46\" text-anchor=\"middle\" font-size=\"12\" "
        "fill=\"#444\">%s</text>\n",
        kLeft + kPlotW / 2, kLeft + kPlotW / 2, subtitle);
  }

  std::string Series(const std::vector<AccuracyPoint>& points, PrivacyMechanism mechanism,
                     const char* color) const {
    std::string path;
    std::string dots;
    std::string upper;  // the mean +- one standard deviation band
    std::string lower;
    for (const AccuracyPoint& p : points) {
      if (p.mechanism != mechanism) continue;
      absl::StrAppend(&upper, absl::StrFormat("%.1f,%.1f ", X(p.epsilon), Y(p.mean + p.stddev)));
      lower =
          absl::StrCat(absl::StrFormat("%.1f,%.1f ", X(p.epsilon), Y(p.mean - p.stddev)), lower);
      absl::StrAppend(&path, path.empty() ? "" : " ",
                      absl::StrFormat("%.1f,%.1f", X(p.epsilon), Y(p.mean)));
      absl::StrAppend(&dots, absl::StrFormat("<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" "
                                             "fill=\"%s\"/>\n",
                                             X(p.epsilon), Y(p.mean), color));
    }
    return absl::StrCat(absl::StrFormat("<polygon points=\"%s%s\" fill=\"%s\" "
                                        "fill-opacity=\"0.2\" stroke=\"none\"/>\n",
                                        upper, lower, color),
                        absl::StrFormat("<polyline points=\"%s\" fill=\"none\" stroke=\"%s\" "
                                        "stroke-width=\"2.5\"/>\n",
                                        path, color),
                        dots);
  }

  static std::string Legend() {
    const double x = kLeft + kPlotW - 250;
    const double y = kTop + kPlotH - 86;
    std::string svg = absl::StrFormat(
        "<rect x=\"%.1f\" y=\"%.1f\" width=\"240\" height=\"76\" fill=\"white\" "
        "stroke=\"#999\"/>\n",
        x, y);
    const struct {
      const char* label;
      const char* color;
      const char* dash;
    } entries[] = {{"Non-private (noise-free)", "#444", "8,5"},
                   {"Pred. sens. (SS, AGT n*)", kSsColor, "none"},
                   {"Pred. sens. (GS, Laplace)", kGsColor, "none"}};
    for (int i = 0; i < 3; ++i) {
      const double yy = y + 18 + 22 * i;
      absl::StrAppend(
          &svg, absl::StrFormat("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                                "stroke=\"%s\" stroke-width=\"2.5\" stroke-dasharray=\"%s\"/>\n"
                                "<text x=\"%.1f\" y=\"%.1f\">%s</text>\n",
                                x + 10, yy, x + 40, yy, entries[i].color, entries[i].dash, x + 48,
                                yy + 5, entries[i].label));
    }
    return svg;
  }

  double log_lo_;
  double log_hi_;
  double acc_lo_;
  double acc_hi_;
};

absl::Status WriteText(const std::string& text, const std::string& path) {
  std::ofstream out(path);
  out << text;
  return out.good() ? absl::OkStatus()
                    : absl::UnavailableError(absl::StrCat("cannot write ", path));
}

void PrintTable(const std::vector<AccuracyPoint>& points) {
  std::cout << absl::StrFormat("%10s  %22s  %22s\n", "epsilon", "smooth sens. (SS)",
                               "global sens. (GS)");
  for (size_t i = 0; i + 1 < points.size(); i += 2) {
    std::cout << absl::StrFormat("%10.4g  %13.4f +- %.4f  %13.4f +- %.4f\n", points[i].epsilon,
                                 points[i].mean, points[i].stddev, points[i + 1].mean,
                                 points[i + 1].stddev);
  }
}

void PrintThresholds(const std::vector<AccuracyPoint>& points, double noise_free) {
  for (double fraction : {0.9, 0.95, 0.99}) {
    const double target = fraction * noise_free;
    const std::optional<double> ss =
        SmallestEpsilonReaching(points, PrivacyMechanism::kSmoothSensitivityCauchy, target);
    const std::optional<double> gs =
        SmallestEpsilonReaching(points, PrivacyMechanism::kGlobalSensitivityLaplace, target);
    std::cout << absl::StrFormat(
        "%.0f%% of noise-free accuracy (%.4f): SS at epsilon %s, GS at %s", fraction * 100, target,
        ss ? absl::StrFormat("%.3g", *ss) : "never", gs ? absl::StrFormat("%.3g", *gs) : "never");
    if (ss && gs) std::cout << absl::StrFormat(" -> SS needs %.1fx smaller epsilon", *gs / *ss);
    std::cout << "\n";
  }
}

int Run(const Options& options) {
  PrivacyUtilityConfig config;
  config.max_budget = options.max_budget;
  config.data_seed = options.seed;
  config.split_seed = options.seed + 1;
  config.init_seed = options.seed + 2;
  absl::StatusOr<CertifiedPredictions> model = TrainAndCertify(config);
  if (!model.ok()) {
    std::cerr << "training failed: " << model.status() << "\n";
    return 1;
  }
  int stable_any = 0;
  int stable_max = 0;
  double n_star_sum = 0.0;
  for (int n : model->n_star) {
    stable_any += n > 0;
    stable_max += n == config.max_budget;
    n_star_sum += n;
  }
  const double test_n = static_cast<double>(model->test.size());
  std::cout << absl::StrFormat(
      "blobs: %d samples, dim %d, stddev %.2f; train %d rows (batch %d), test %d rows\n"
      "model %d-%d-1 ReLU, BCE, lr %.2f, decay %.2f, %d epochs, clip %.3f, budgets n = 1..%d\n"
      "noise-free test accuracy %.4f; n* > 0 for %.1f%%, n* = %d for %.1f%%, mean n* %.1f\n\n",
      config.samples, config.dim, config.stddev, model->train_rows, model->batch_size,
      model->test.size(), config.dim, config.hidden, config.learning_rate, config.lr_decay,
      config.epochs, config.clip_gamma, config.max_budget, model->noise_free_accuracy,
      100.0 * stable_any / test_n, config.max_budget, 100.0 * stable_max / test_n,
      n_star_sum / test_n);

  absl::StatusOr<std::unique_ptr<SecureNoise>> noise = SecureNoise::Create();
  if (!noise.ok()) {
    std::cerr << noise.status() << "\n";
    return 1;
  }
  const std::vector<double> epsilons = LogSpace(0.01, 10.0, 31);
  absl::StatusOr<std::vector<AccuracyPoint>> points =
      MeasurePrivateAccuracy(*model, epsilons, options.repeats, **noise);
  if (!points.ok()) {
    std::cerr << points.status() << "\n";
    return 1;
  }
  PrintTable(*points);
  std::cout << "\n";
  PrintThresholds(*points, model->noise_free_accuracy);

  const std::string csv = options.out_dir + "/privacy_utility.csv";
  const std::string svg_path = options.out_dir + "/privacy_utility.svg";
  const SvgPlot plot(0.01, 10.0, 0.4, 1.0);
  const std::string subtitle = absl::StrFormat(
      "%d-%d-1 net, %d train / %d test points, substitution budgets n = 1..%d; "
      "mean &#177; 1 std of %d repeats",
      config.dim, config.hidden, model->train_rows, model->test.size(), config.max_budget,
      options.repeats);
  for (const absl::Status& status :
       {WriteCsv(*points, model->noise_free_accuracy, csv),
        WriteText(plot.Render(*points, model->noise_free_accuracy, subtitle), svg_path)}) {
    if (!status.ok()) {
      std::cerr << status << "\n";
      return 1;
    }
  }
  std::cout << "\nwrote " << csv << " and " << svg_path << "\n";
  return 0;
}

}  // namespace
}  // namespace agt::examples

int main(int argc, char** argv) {
  absl::StatusOr<agt::examples::Options> options = agt::examples::ParseOptions(argc, argv);
  if (!options.ok()) {
    std::cerr << options.status().message() << "\n";
    return 2;
  }
  return agt::examples::Run(*options);
}
