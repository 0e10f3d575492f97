#include "client/lib/format.h"

#include <algorithm>
#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "google/protobuf/util/json_util.h"

namespace agt::client {
namespace {

std::string StripPrefix(const std::string& name, absl::string_view prefix) {
  if (absl::StartsWith(name, prefix)) return name.substr(prefix.size());
  return name;
}

}  // namespace

Table::Table(std::vector<std::string> headers) : headers_(std::move(headers)) {}

void Table::AddRow(std::vector<std::string> cells) {
  cells.resize(headers_.size());
  rows_.push_back(std::move(cells));
}

bool LooksNumeric(const std::string& text) {
  double value = 0;
  return !text.empty() && absl::SimpleAtod(text, &value);
}

std::string Table::Render() const {
  const size_t columns = headers_.size();
  std::vector<size_t> width(columns, 0);
  std::vector<bool> numeric(columns, true);
  for (size_t c = 0; c < columns; ++c) {
    width[c] = headers_[c].size();
    bool any = false;
    for (const auto& row : rows_) {
      width[c] = std::max(width[c], row[c].size());
      if (row[c].empty() || row[c] == "-") continue;
      any = true;
      if (!LooksNumeric(row[c])) numeric[c] = false;
    }
    if (!any) numeric[c] = false;
  }
  auto render_line = [&](const std::vector<std::string>& cells) {
    std::string line;
    for (size_t c = 0; c < columns; ++c) {
      const std::string& cell = cells[c];
      std::string pad(width[c] - cell.size(), ' ');
      if (c > 0) line += "  ";
      if (numeric[c]) {
        absl::StrAppend(&line, pad, cell);
      } else {
        absl::StrAppend(&line, cell, pad);
      }
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    line += '\n';
    return line;
  };
  std::string out = render_line(headers_);
  for (const auto& row : rows_) out += render_line(row);
  return out;
}

std::string FormatDuration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  int64_t s = static_cast<int64_t>(std::llround(seconds));
  if (s < 60) return absl::StrCat(s, "s");
  if (s < 3600) return absl::StrFormat("%dm%02ds", s / 60, s % 60);
  if (s < 86400) return absl::StrFormat("%dh%02dm", s / 3600, (s % 3600) / 60);
  return absl::StrFormat("%dd%02dh", s / 86400, (s % 86400) / 3600);
}

std::string FormatNumber(double value, int digits) {
  return absl::StrFormat("%.*g", digits, value);
}

std::string FormatBytes(int64_t bytes) {
  if (bytes < 1024) return absl::StrCat(bytes, " B");
  const char* units[] = {"KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  int unit = -1;
  while (value >= 1024 && unit < 3) {
    value /= 1024;
    ++unit;
  }
  return absl::StrFormat("%.1f %s", value, units[unit]);
}

std::string FormatTimestamp(const google::protobuf::Timestamp& time) {
  if (time.seconds() == 0 && time.nanos() == 0) return "-";
  absl::Time t = absl::FromUnixSeconds(time.seconds()) + absl::Nanoseconds(time.nanos());
  return absl::FormatTime("%Y-%m-%d %H:%M:%S UTC", t, absl::UTCTimeZone());
}

std::string JobStateName(agt::v1::JobState state) {
  return StripPrefix(agt::v1::JobState_Name(state), "JOB_STATE_");
}

absl::StatusOr<agt::v1::JobState> ParseJobState(const std::string& text) {
  std::string upper = absl::AsciiStrToUpper(text);
  agt::v1::JobState state;
  if (!absl::StartsWith(upper, "JOB_STATE_")) upper = absl::StrCat("JOB_STATE_", upper);
  if (!agt::v1::JobState_Parse(upper, &state) || state == agt::v1::JOB_STATE_UNSPECIFIED) {
    return absl::InvalidArgumentError(absl::StrCat(
        "job state '", text, "' is not one of queued, running, succeeded, failed, cancelled"));
  }
  return state;
}

std::string LossName(agt::v1::Loss loss) {
  return absl::AsciiStrToLower(StripPrefix(agt::v1::Loss_Name(loss), "LOSS_"));
}

std::string PerturbationName(agt::v1::PerturbationKind kind) {
  return absl::AsciiStrToLower(
      StripPrefix(agt::v1::PerturbationKind_Name(kind), "PERTURBATION_KIND_"));
}

std::string BoundMethodName(agt::v1::BoundMethod method) {
  return absl::AsciiStrToLower(StripPrefix(agt::v1::BoundMethod_Name(method), "BOUND_METHOD_"));
}

std::string IntervalProductName(agt::v1::IntervalProduct product) {
  return absl::AsciiStrToLower(
      StripPrefix(agt::v1::IntervalProduct_Name(product), "INTERVAL_PRODUCT_"));
}

std::string RoundingModeName(agt::v1::RoundingMode mode) {
  return absl::AsciiStrToLower(StripPrefix(agt::v1::RoundingMode_Name(mode), "ROUNDING_MODE_"));
}

std::string DescribeBounds(agt::v1::BoundMethod method, agt::v1::IntervalProduct product,
                           agt::v1::RoundingMode rounding) {
  // Legacy bound methods 2 and 3 are IBP with the exact / Nguyen product.
  const int legacy = static_cast<int>(method);
  if ((legacy == 2 || legacy == 3) && product == agt::v1::INTERVAL_PRODUCT_UNSPECIFIED) {
    product = static_cast<agt::v1::IntervalProduct>(legacy);
  }
  if (legacy == 2 || legacy == 3 || method == agt::v1::BOUND_METHOD_UNSPECIFIED) {
    method = agt::v1::BOUND_METHOD_IBP;
  }
  if (product == agt::v1::INTERVAL_PRODUCT_UNSPECIFIED) product = agt::v1::INTERVAL_PRODUCT_RUMP;
  if (rounding == agt::v1::ROUNDING_MODE_UNSPECIFIED) rounding = agt::v1::ROUNDING_MODE_NEAREST;
  return absl::StrCat(BoundMethodName(method), ", interval product ", IntervalProductName(product),
                      ", rounding ", RoundingModeName(rounding));
}

std::string BudgetLabel(const agt::v1::Budget& budget) {
  if (budget.label_n() > 0) return absl::StrCat("n=", budget.n(), ",label_n=", budget.label_n());
  return absl::StrCat("n=", budget.n());
}

namespace {

std::string DescribeLayer(const agt::v1::Layer& layer) {
  if (layer.has_dense())
    return absl::StrCat("dense ", layer.dense().in(), "->", layer.dense().out());
  if (layer.has_relu()) return "relu";
  if (layer.has_flatten()) return "flatten";
  if (layer.has_conv2d()) {
    const agt::v1::Conv2dLayer& c = layer.conv2d();
    std::string out =
        absl::StrCat("conv2d ", c.out_channels(), "@", c.kernel_h(), "x", c.kernel_w());
    const int sh = c.stride_h() == 0 ? 1 : c.stride_h(), sw = c.stride_w() == 0 ? 1 : c.stride_w();
    if (sh != 1 || sw != 1) {
      absl::StrAppend(&out, " stride ", sh == sw ? absl::StrCat(sh) : absl::StrCat(sh, "x", sw));
    }
    if (c.pad_h() != 0 || c.pad_w() != 0) {
      absl::StrAppend(&out, " pad ",
                      c.pad_h() == c.pad_w() ? absl::StrCat(c.pad_h())
                                             : absl::StrCat(c.pad_h(), "x", c.pad_w()));
    }
    return out;
  }
  return "?";
}

}  // namespace

std::string DescribeArchitecture(const agt::v1::ModelArchitecture& architecture,
                                 const std::vector<int>& hidden_widths) {
  std::vector<std::string> parts;
  for (const agt::v1::Layer& layer : architecture.layers()) parts.push_back(DescribeLayer(layer));
  if (!parts.empty()) {
    std::string out = absl::StrJoin(parts, ", ");
    if (architecture.frozen().layers_size() > 0) {
      std::vector<std::string> frozen;
      for (const agt::v1::Layer& layer : architecture.frozen().layers()) {
        frozen.push_back(DescribeLayer(layer));
      }
      out = absl::StrCat("frozen(", absl::StrJoin(frozen, ", "), ") ", out);
    }
    if (architecture.input_shape_size() > 1) {
      out = absl::StrCat("[", absl::StrJoin(architecture.input_shape(), ", "), "] ", out);
    }
    return out;
  }
  if (hidden_widths.empty()) return "linear";
  return absl::StrCat("relu mlp, hidden ", absl::StrJoin(hidden_widths, "-"));
}

std::string FormatProgressLine(const agt::v1::JobProgress& progress,
                               const std::vector<std::string>& budget_labels, int bar_width,
                               int epochs) {
  std::string line;
  const int64_t total = progress.total_iterations();
  const int64_t done = std::clamp<int64_t>(progress.iteration(), 0, std::max<int64_t>(total, 0));
  const double fraction = total > 0 ? static_cast<double>(done) / static_cast<double>(total) : 0.0;
  if (bar_width > 0) {
    int filled = static_cast<int>(std::floor(fraction * bar_width));
    absl::StrAppend(&line, "[", std::string(filled, '#'), std::string(bar_width - filled, '-'),
                    "] ");
  }
  absl::StrAppend(&line, absl::StrFormat("%3d%%", static_cast<int>(std::floor(fraction * 100))),
                  "  iter ", progress.iteration(), "/", total);
  if (progress.iteration() > 0) {
    absl::StrAppend(&line, "  epoch ", progress.epoch() + 1);
    if (epochs > 0) absl::StrAppend(&line, "/", epochs);
    absl::StrAppend(&line, "  loss ", FormatNumber(progress.nominal_loss()));
  }
  if (progress.eta_seconds() > 0) {
    absl::StrAppend(&line, "  ETA ", FormatDuration(progress.eta_seconds()));
  }
  if (progress.total_width_size() > 0) {
    absl::StrAppend(&line, "  width");
    for (int i = 0; i < progress.total_width_size(); ++i) {
      std::string label =
          i < static_cast<int>(budget_labels.size()) ? budget_labels[i] : absl::StrCat("#", i);
      absl::StrAppend(&line, " ", label, " ", FormatNumber(progress.total_width(i), 3));
    }
  }
  return line;
}

std::string FitProgressLine(const agt::v1::JobProgress& progress,
                            const std::vector<std::string>& budget_labels, int epochs,
                            int columns) {
  constexpr int kFullBar = 24;
  if (columns <= 0) return FormatProgressLine(progress, budget_labels, kFullBar, epochs);
  const size_t room = static_cast<size_t>(std::max(columns - 1, 1));
  const std::string bare = FormatProgressLine(progress, budget_labels, 0, epochs);
  // "[" + bar + "] " costs bar + 3 columns; a bar narrower than 5 says nothing.
  if (bare.size() + 3 + 5 <= room) {
    const int bar = std::min<int>(kFullBar, static_cast<int>(room - bare.size() - 3));
    return FormatProgressLine(progress, budget_labels, bar, epochs);
  }
  if (bare.size() <= room) return bare;
  // Cut at a field boundary (two spaces separate fields) that fits.
  size_t cut = bare.rfind("  ", room);
  if (cut == std::string::npos || cut == 0) cut = room;
  return bare.substr(0, cut);
}

std::string WrapText(const std::string& text, size_t width) {
  std::string out;
  std::string line;
  for (absl::string_view word : absl::StrSplit(text, ' ', absl::SkipEmpty())) {
    if (!line.empty() && line.size() + 1 + word.size() > width) {
      absl::StrAppend(&out, line, "\n");
      line.clear();
    }
    absl::StrAppend(&line, line.empty() ? "" : " ", word);
  }
  if (!line.empty()) absl::StrAppend(&out, line, "\n");
  return out;
}

std::string ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string out;
  google::protobuf::util::Status status =
      google::protobuf::util::MessageToJsonString(message, &out, options);
  if (!status.ok())
    return absl::StrCat("{\"error\": \"cannot render ", message.GetTypeName(), " as JSON\"}\n");
  if (out.empty() || out.back() != '\n') out += '\n';
  return out;
}

}  // namespace agt::client
