// Tables, durations, progress lines, names and JSON of the client's output layer.
#include "client/lib/format.h"

#include <gtest/gtest.h>

#include <algorithm>

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "client/lib/exit_codes.h"

namespace agt::client {
namespace {

TEST(ClientTable, AlignsTextLeftAndNumbersRight) {
  Table table({"ID", "ROWS", "NAME"});
  table.AddRow({"ds-1", "5", "moons"});
  table.AddRow({"ds-22", "1200", "a"});
  EXPECT_EQ(table.Render(),
            "ID     ROWS  NAME\n"
            "ds-1      5  moons\n"
            "ds-22  1200  a\n");
}

TEST(ClientTable, PadsShortRowsAndHasNoTrailingBlanks) {
  Table table({"A", "B", "C"});
  table.AddRow({"x"});
  table.AddRow({"longer", "y", "z", "dropped"});
  std::string text = table.Render();
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    EXPECT_FALSE(absl::EndsWith(line, " ")) << "'" << line << "'";
  }
  EXPECT_FALSE(absl::StrContains(text, "dropped"));
  EXPECT_EQ(table.num_rows(), 2u);
}

TEST(ClientTable, DashCellsDoNotMakeANumericColumnText) {
  Table table({"N", "WIDTH"});
  table.AddRow({"1", "-"});
  table.AddRow({"2", "0.25"});
  EXPECT_EQ(table.Render(), "N  WIDTH\n1      -\n2   0.25\n");
}

TEST(ClientFormatDuration, Units) {
  EXPECT_EQ(FormatDuration(0), "0s");
  EXPECT_EQ(FormatDuration(42.4), "42s");
  EXPECT_EQ(FormatDuration(185), "3m05s");
  EXPECT_EQ(FormatDuration(2 * 3600 + 7 * 60 + 30), "2h07m");
  EXPECT_EQ(FormatDuration(3 * 86400 + 4 * 3600), "3d04h");
  EXPECT_EQ(FormatDuration(-1), "?");
  EXPECT_EQ(FormatDuration(std::nan("")), "?");
}

TEST(ClientFormatBytesAndNumbers, Units) {
  EXPECT_EQ(FormatBytes(512), "512 B");
  EXPECT_EQ(FormatBytes(1536), "1.5 KiB");
  EXPECT_EQ(FormatBytes(int64_t{3} << 20), "3.0 MiB");
  EXPECT_EQ(FormatNumber(0.123456), "0.1235");
  EXPECT_EQ(FormatNumber(1.5e-7), "1.5e-07");
}

TEST(ClientFormatTimestamp, UtcAndUnset) {
  google::protobuf::Timestamp t;
  EXPECT_EQ(FormatTimestamp(t), "-");
  t.set_seconds(1700000000);
  EXPECT_EQ(FormatTimestamp(t), "2023-11-14 22:13:20 UTC");
}

TEST(ClientNames, EnumsWithoutPrefixes) {
  EXPECT_EQ(JobStateName(agt::v1::JOB_STATE_SUCCEEDED), "SUCCEEDED");
  EXPECT_EQ(LossName(agt::v1::LOSS_BINARY_CROSS_ENTROPY), "binary_cross_entropy");
  EXPECT_EQ(PerturbationName(agt::v1::PERTURBATION_KIND_REMOVAL), "removal");
  EXPECT_EQ(BoundMethodName(agt::v1::BOUND_METHOD_INTERVAL_EXACT), "interval_exact");
  EXPECT_EQ(*ParseJobState("running"), agt::v1::JOB_STATE_RUNNING);
  EXPECT_EQ(*ParseJobState("JOB_STATE_FAILED"), agt::v1::JOB_STATE_FAILED);
  EXPECT_FALSE(ParseJobState("unspecified").ok());
  EXPECT_FALSE(ParseJobState("done").ok());
}

TEST(ClientNames, BoundsNameTheMethodAndTheProductWithDefaultsAndLegacyResolved) {
  EXPECT_EQ(BoundMethodName(agt::v1::BOUND_METHOD_IBP), "ibp");
  EXPECT_EQ(IntervalProductName(agt::v1::INTERVAL_PRODUCT_NGUYEN), "nguyen");
  EXPECT_EQ(RoundingModeName(agt::v1::ROUNDING_MODE_NEAREST), "nearest");
  EXPECT_EQ(DescribeBounds(agt::v1::BOUND_METHOD_UNSPECIFIED, agt::v1::INTERVAL_PRODUCT_UNSPECIFIED,
                           agt::v1::ROUNDING_MODE_UNSPECIFIED),
            "ibp, interval product rump, rounding nearest");
  EXPECT_EQ(DescribeBounds(agt::v1::BOUND_METHOD_IBP, agt::v1::INTERVAL_PRODUCT_EXACT,
                           agt::v1::ROUNDING_MODE_NEAREST),
            "ibp, interval product exact, rounding nearest");
  EXPECT_EQ(
      DescribeBounds(agt::v1::BOUND_METHOD_INTERVAL_NGUYEN, agt::v1::INTERVAL_PRODUCT_UNSPECIFIED,
                     agt::v1::ROUNDING_MODE_UNSPECIFIED),
      "ibp, interval product nguyen, rounding nearest");
}

TEST(ClientNames, BudgetsAndArchitectures) {
  agt::v1::Budget b;
  b.set_n(5);
  EXPECT_EQ(BudgetLabel(b), "n=5");
  b.set_label_n(2);
  EXPECT_EQ(BudgetLabel(b), "n=5,label_n=2");
  agt::v1::ModelArchitecture arch;
  EXPECT_EQ(DescribeArchitecture(arch), "linear");
  EXPECT_EQ(DescribeArchitecture(arch, {64, 32}), "relu mlp, hidden 64-32");
  auto* d1 = arch.add_layers()->mutable_dense();
  d1->set_in(2);
  d1->set_out(16);
  arch.add_layers()->mutable_relu();
  auto* d2 = arch.add_layers()->mutable_dense();
  d2->set_in(16);
  d2->set_out(1);
  EXPECT_EQ(DescribeArchitecture(arch), "dense 2->16, relu, dense 16->1");
  // Image models: the input shape, the frozen prefix, conv strides and padding.
  agt::v1::ModelArchitecture conv;
  for (int d : {1, 28, 28}) conv.add_input_shape(d);
  agt::v1::Conv2dLayer* c = conv.mutable_frozen()->add_layers()->mutable_conv2d();
  c->set_in_channels(1);
  c->set_out_channels(4);
  c->set_kernel_h(5);
  c->set_kernel_w(5);
  c->set_stride_h(3);
  c->set_stride_w(3);
  conv.mutable_frozen()->add_layers()->mutable_relu();
  agt::v1::Conv2dLayer* t = conv.add_layers()->mutable_conv2d();
  t->set_in_channels(4);
  t->set_out_channels(2);
  t->set_kernel_h(3);
  t->set_kernel_w(3);
  t->set_pad_h(1);
  t->set_pad_w(1);
  conv.add_layers()->mutable_flatten();
  conv.add_layers()->mutable_dense()->set_in(128);
  conv.mutable_layers(2)->mutable_dense()->set_out(10);
  EXPECT_EQ(DescribeArchitecture(conv),
            "[1, 28, 28] frozen(conv2d 4@5x5 stride 3, relu) conv2d 2@3x3 pad 1, flatten, "
            "dense 128->10");
}

TEST(ClientFitProgressLine, NeverWiderThanTheTerminalAndTheBarGoesFirst) {
  agt::v1::JobProgress p;
  p.set_iteration(160);
  p.set_total_iterations(400);
  p.set_epoch(1);
  p.set_nominal_loss(0.4312);
  p.set_eta_seconds(72);
  for (double w : {0.0123, 0.0251, 0.05, 0.1, 0.2}) p.add_total_width(w);
  const std::vector<std::string> labels = {"n=1", "n=2", "n=5", "n=10", "n=20"};
  const std::string bare = FormatProgressLine(p, labels, 0, 4);
  const std::string full = FormatProgressLine(p, labels, 24, 4);
  // Wide, or unknown: the whole line with the full bar.
  EXPECT_EQ(FitProgressLine(p, labels, 4, 400), full);
  EXPECT_EQ(FitProgressLine(p, labels, 4, 0), full);
  for (int columns = 1; columns <= 200; ++columns) {
    const std::string line = FitProgressLine(p, labels, 4, columns);
    EXPECT_LE(line.size(), static_cast<size_t>(std::max(columns - 1, 1))) << columns;
    if (bare.size() + 3 + 5 <= static_cast<size_t>(columns - 1)) {
      // Room for the text and some bar: nothing of the text is lost.
      EXPECT_TRUE(absl::EndsWith(line, bare)) << columns << ": " << line;
      EXPECT_TRUE(absl::StartsWith(line, "[")) << columns;
    } else if (bare.size() <= static_cast<size_t>(columns - 1)) {
      EXPECT_EQ(line, bare) << columns;
    } else if (columns > 12) {
      // Cut at a field boundary: a prefix of the text, never half a number.
      EXPECT_TRUE(absl::StartsWith(bare, line)) << columns;
      EXPECT_EQ(bare.substr(line.size(), 2), "  ") << columns << ": " << line;
    }
  }
}

TEST(ClientFormatProgressLine, BarPercentEtaAndWidthsPerBudget) {
  agt::v1::JobProgress p;
  p.set_iteration(10);
  p.set_total_iterations(40);
  p.set_epoch(1);  // 0-based
  p.set_nominal_loss(0.5);
  p.set_eta_seconds(75);
  p.add_total_width(0.125);
  p.add_total_width(0.25);
  p.add_total_width(1);
  std::string line = FormatProgressLine(p, {"n=1", "n=2"}, 8, 4);
  EXPECT_EQ(line,
            "[##------]  25%  iter 10/40  epoch 2/4  loss 0.5  ETA 1m15s  width n=1 0.125 n=2 "
            "0.25 #2 1");
  EXPECT_TRUE(absl::StrContains(FormatProgressLine(p, {}, 0), "epoch 2  loss"));
  std::string no_bar = FormatProgressLine(p, {}, 0);
  EXPECT_FALSE(absl::StrContains(no_bar, "["));
  p.set_iteration(40);
  p.set_eta_seconds(0);
  std::string done = FormatProgressLine(p, {}, 4);
  EXPECT_TRUE(absl::StartsWith(done, "[####] 100%")) << done;
  EXPECT_FALSE(absl::StrContains(done, "ETA"));
}

TEST(ClientFormatProgressLine, UnknownTotalIsZeroPercentNotADivisionByZero) {
  agt::v1::JobProgress p;
  std::string line = FormatProgressLine(p, {}, 4);
  EXPECT_EQ(line, "[----]   0%  iter 0/0");  // no epoch or loss before the first step
}

TEST(ClientWrapText, BreaksAtSpacesWithinTheWidth) {
  EXPECT_EQ(WrapText("aa bb cc dd", 5), "aa bb\ncc dd\n");
  EXPECT_EQ(WrapText("a verylongword b", 4), "a\nverylongword\nb\n");
  EXPECT_EQ(WrapText("", 10), "");
}

TEST(ClientToJson, SnakeCaseEveryFieldAndEnumNames) {
  agt::v1::Dataset d;
  d.set_id("ds-1");
  d.set_num_rows(3);
  nlohmann::json json = nlohmann::json::parse(ToJson(d));
  EXPECT_EQ(json["id"], "ds-1");
  EXPECT_EQ(json["num_rows"], "3");    // int64 as a string, per the proto3 JSON mapping
  EXPECT_EQ(json["num_features"], 0);  // zero values are printed
  agt::v1::JobEvent e;
  e.set_state(agt::v1::JOB_STATE_FAILED);
  EXPECT_EQ(nlohmann::json::parse(ToJson(e))["state"], "JOB_STATE_FAILED");
}

TEST(ClientExitCodes, ByStatusCode) {
  EXPECT_EQ(ExitCodeFor(absl::OkStatus()), 0);
  EXPECT_EQ(ExitCodeFor(absl::UnavailableError("x")), 1);
  EXPECT_EQ(ExitCodeFor(absl::InternalError("x")), 1);
  EXPECT_EQ(ExitCodeFor(absl::FailedPreconditionError("x")), 1);
  EXPECT_EQ(ExitCodeFor(absl::InvalidArgumentError("x")), 2);
  EXPECT_EQ(ExitCodeFor(absl::OutOfRangeError("x")), 2);
  EXPECT_EQ(ExitCodeFor(absl::NotFoundError("x")), 3);
  EXPECT_EQ(ExitCodeFor(absl::UnauthenticatedError("x")), 4);
  EXPECT_EQ(ExitCodeFor(absl::PermissionDeniedError("x")), 4);
}

}  // namespace
}  // namespace agt::client
