// Query-input CSVs and job files as the client reads them.
#include "client/lib/inputs.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/match.h"

namespace agt::client {
namespace {

TEST(ClientParseInputsCsv, HeaderLabelsAndRowMajorValues) {
  auto rows = ParseInputsCsv("x0,x1,y\n-0.9,0.3,0\r\n\n1.5, 2 ,1\n", "q.csv", true);
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_EQ(rows->header, (std::vector<std::string>{"x0", "x1", "y"}));
  EXPECT_EQ(rows->inputs.rows(), 2);
  EXPECT_EQ(rows->inputs.cols(), 2);
  EXPECT_EQ(std::vector<double>(rows->inputs.values().begin(), rows->inputs.values().end()),
            (std::vector<double>{-0.9, 0.3, 1.5, 2}));
  EXPECT_EQ(rows->labels, (std::vector<double>{0, 1}));
}

TEST(ClientParseInputsCsv, WithoutLabelsEveryColumnIsAnInput) {
  auto rows = ParseInputsCsv("1,2,3\n4,5,6\n", "q.csv", false);
  ASSERT_TRUE(rows.ok());
  EXPECT_TRUE(rows->header.empty());
  EXPECT_EQ(rows->inputs.cols(), 3);
  EXPECT_EQ(rows->inputs.values_size(), 6);
  EXPECT_TRUE(rows->labels.empty());
}

TEST(ClientParseInputsCsv, ErrorsNameLineColumnAndText) {
  auto ragged = ParseInputsCsv("a,b\n1,2\n3\n", "q.csv", false);
  ASSERT_FALSE(ragged.ok());
  EXPECT_EQ(ragged.status().message(), "q.csv:3: 1 columns, expected 2");
  auto text = ParseInputsCsv("1,2\n3,abc\n", "q.csv", false);
  ASSERT_FALSE(text.ok());
  EXPECT_EQ(text.status().message(), "q.csv:2: column 2: 'abc' is not a number");
  auto nan = ParseInputsCsv("1,2\nnan,1\n", "q.csv", false);
  ASSERT_FALSE(nan.ok());
  EXPECT_TRUE(absl::StrContains(nan.status().message(), "q.csv:2: column 1: 'nan' is not finite"))
      << nan.status();
  EXPECT_FALSE(ParseInputsCsv("x,y\n", "q.csv", false).ok());
  EXPECT_FALSE(ParseInputsCsv("", "q.csv", false).ok());
  EXPECT_FALSE(ParseInputsCsv("1\n2\n", "q.csv", true).ok());
}

TEST(ClientParseInputsCsv, NumbersAreReadAsTheServerReadsThem) {
  // Hexadecimal floats are not numbers, and a value that would silently read
  // as 0 is refused (core/common/decimal.h, shared with the server's CSV).
  auto hex = ParseInputsCsv("1,2\n0x1p3,1\n", "q.csv", false);
  ASSERT_FALSE(hex.ok());
  EXPECT_EQ(hex.status().message(), "q.csv:2: column 1: '0x1p3' is not a number");
  auto tiny = ParseInputsCsv("1,2\n3,1e-400\n", "q.csv", false);
  ASSERT_FALSE(tiny.ok());
  EXPECT_TRUE(absl::StrContains(tiny.status().message(),
                                "q.csv:2: column 2: \"1e-400\" is too small for a double"))
      << tiny.status();
  auto subnormal = ParseInputsCsv("1,2\n3,4.9e-324\n", "q.csv", false);
  ASSERT_TRUE(subnormal.ok()) << subnormal.status();
  EXPECT_GT(subnormal->inputs.values(3), 0.0);
}

TEST(ClientReadInputsCsv, MissingFileIsNotFoundNamingThePath) {
  auto rows = ReadInputsCsv("/nonexistent/q.csv", false);
  ASSERT_FALSE(rows.ok());
  EXPECT_TRUE(absl::IsNotFound(rows.status()));
  EXPECT_TRUE(absl::StrContains(rows.status().message(), "/nonexistent/q.csv"));
}

TEST(ClientReadInputsCsv, TheProjectsQueryFileParses) {
  auto rows =
      ReadInputsCsv(std::string(AGT_TEST_DATA_DIR) + "/../../examples/moons_queries.csv", true);
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_EQ(rows->inputs.cols(), 2);
  EXPECT_GT(rows->inputs.rows(), 0);
  EXPECT_EQ(static_cast<int64_t>(rows->labels.size()), rows->inputs.rows());
}

TEST(ClientParseTrainingJobSpec, SnakeAndCamelCaseAndEnumNames) {
  auto spec = ParseTrainingJobSpec(R"({
      "name": "moons", "dataset_id": "ds-1", "polynomialDegree": 3,
      "loss": "LOSS_BINARY_CROSS_ENTROPY", "batch_size": 1000, "epochs": 4,
      "optimizer": {"learning_rate": 2.0, "lr_decay": 0.5},
      "perturbation": {"kind": "PERTURBATION_KIND_REMOVAL"},
      "budgets": [{"n": 1}, {"n": 20}], "seed": "7"})",
                                   "job.json");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->dataset_id(), "ds-1");
  EXPECT_EQ(spec->polynomial_degree(), 3);
  EXPECT_EQ(spec->loss(), agt::v1::LOSS_BINARY_CROSS_ENTROPY);
  EXPECT_EQ(spec->budgets_size(), 2);
  EXPECT_EQ(spec->budgets(1).n(), 20);
  EXPECT_EQ(spec->seed(), 7u);
  EXPECT_DOUBLE_EQ(spec->optimizer().lr_decay(), 0.5);
}

TEST(ClientParseTrainingJobSpec, UnknownFieldsAndBadValuesAreErrorsNamingTheFile) {
  auto unknown = ParseTrainingJobSpec(R"({"name": "x", "learning_rate": 1})", "job.json");
  ASSERT_FALSE(unknown.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(unknown.status()));
  EXPECT_TRUE(absl::StartsWith(unknown.status().message(), "job.json: "));
  EXPECT_TRUE(absl::StrContains(unknown.status().message(), "learning_rate")) << unknown.status();
  EXPECT_FALSE(ParseTrainingJobSpec(R"({"loss": "LOSS_NOPE"})", "job.json").ok());
  EXPECT_FALSE(ParseTrainingJobSpec(R"({"epochs": "many"})", "job.json").ok());
  EXPECT_FALSE(ParseTrainingJobSpec("{", "job.json").ok());
}

TEST(ClientReadTrainingJobSpec, ReadsAFile) {
  std::filesystem::path path =
      std::filesystem::temp_directory_path() / ("agt_job_" + std::to_string(getpid()) + ".json");
  {
    std::ofstream out(path);
    out << R"({"dataset_id": "ds-9", "epochs": 2})";
  }
  auto spec = ReadTrainingJobSpec(path.string());
  std::filesystem::remove(path);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->dataset_id(), "ds-9");
  EXPECT_EQ(spec->epochs(), 2);
}

}  // namespace
}  // namespace agt::client
