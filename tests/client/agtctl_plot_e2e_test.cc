// agtctl plot certified | width and the vacuous-certificate warnings, as a
// user runs them: agtctl as a process against a real agt-server on loopback
// with a fresh SQLite file. Each SVG is parsed by Python's xml.etree
// (/usr/bin/python3) and checked for its title, axis labels and one series
// (and legend entry) per line; a .png is checked for the PNG signature when
// rsvg-convert is installed.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <random>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "tests/client/agtctl_fixture.h"

namespace agt::client {
namespace {

using testing::CommandResult;
using testing::MoonsCsv;
using testing::RunCommand;

// Logistic regression on cubic features under removal budgets 0, 1, 2, 5
// (the README's main job, smaller): on 1000 rows, certifies most rows at
// n = 1 and some at n = 5.
constexpr char kJob[] = R"({
  "name": "moons-plot",
  "polynomial_degree": 3,
  "loss": "LOSS_BINARY_CROSS_ENTROPY",
  "batch_size": 250,
  "epochs": 3,
  "optimizer": {"learning_rate": 2.0, "lr_decay": 0.5},
  "perturbation": {"kind": "PERTURBATION_KIND_REMOVAL"},
  "budgets": [{"n": 0}, {"n": 1}, {"n": 2}, {"n": 5}],
  "seed": 0
})";

// Removal of half of every batch with a large step: bounds explode (finite).
constexpr char kExplodingJob[] = R"({
  "name": "exploding",
  "hidden_widths": [8],
  "loss": "LOSS_BINARY_CROSS_ENTROPY",
  "batch_size": 20,
  "epochs": 4,
  "optimizer": {"learning_rate": 2.0},
  "perturbation": {"kind": "PERTURBATION_KIND_REMOVAL"},
  "budgets": [{"n": 0}, {"n": 10}],
  "seed": 7
})";

// Prints, one per line: title, x label, y label, the number of series
// groups, then each legend entry, for the SVG at argv[1]. Fails (exit 1) if
// it does not parse as XML or is not an <svg> document.
constexpr char kChecker[] = R"py(
import sys
import xml.etree.ElementTree as ET
NS = "{http://www.w3.org/2000/svg}"
root = ET.parse(sys.argv[1]).getroot()
assert root.tag == NS + "svg", root.tag
def text(cls):
    for e in root.iter(NS + "text"):
        if e.get("class") == cls:
            return "".join(e.itertext())
    return ""
print("title=" + text("title"))
print("xlabel=" + text("xlabel"))
print("ylabel=" + text("ylabel"))
series = [g for g in root.iter(NS + "g") if g.get("class") == "series"]
print("series=%d" % len(series))
print("paths=%d" % sum(1 for g in series for p in g.iter(NS + "path")))
colours = set(g.get("stroke") for g in series)
print("colours=%d" % len(colours))
for e in root.iter(NS + "text"):
    if e.get("class") == "legend-entry":
        print("legend=" + "".join(e.itertext()))
)py";

class AgtctlPlotE2eTest : public testing::AgtctlServerTest {
 protected:
  // The checker's output for `svg`; fails the test when it does not parse.
  std::string CheckSvg(const std::string& svg) {
    const std::string checker = Write("check_svg.py", kChecker);
    CommandResult r = RunCommand({"/usr/bin/python3", checker, svg}, {}, std::chrono::seconds(30));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out;
  }
  static bool HasRsvgConvert() { return std::system("command -v rsvg-convert >/dev/null") == 0; }
};

TEST_F(AgtctlPlotE2eTest, CertifiedAndWidthPlotsAreWellFormedSvgWithOneSeriesPerLine) {
  StartServer();
  const std::string model = TrainModel("moons", MoonsCsv(1000, 5), kJob);
  ASSERT_FALSE(model.empty());
  CommandResult test_set =
      Ctl({"dataset", "upload", Write("test.csv", MoonsCsv(200, 6)), "--name", "test", "-q"});
  ASSERT_EQ(test_set.exit_code, 0) << test_set.err;

  const std::string certified = (dir_ / "certified.svg").string();
  CommandResult plot = Ctl(
      {"plot", "certified", "--model", model, "--dataset", Line(test_set.out), "-o", certified});
  EXPECT_EXIT_CODE(plot, 0);
  EXPECT_TRUE(absl::StrContains(plot.out, "wrote " + certified)) << plot.out;
  const std::string c = CheckSvg(certified);
  EXPECT_TRUE(absl::StrContains(c, "title=Certified accuracy vs budget n\n")) << c;
  EXPECT_TRUE(absl::StrContains(c, "xlabel=budget n (perturbed rows per batch)\n")) << c;
  EXPECT_TRUE(absl::StrContains(c, "ylabel=fraction of rows\n")) << c;
  EXPECT_TRUE(absl::StrContains(c, "series=3\npaths=3\ncolours=3\n")) << c;
  EXPECT_TRUE(absl::StrContains(c, "legend=certified accuracy (worst case)\n")) << c;
  EXPECT_TRUE(absl::StrContains(c, "legend=nominal accuracy\n")) << c;
  EXPECT_TRUE(absl::StrContains(c, "legend=stable fraction\n")) << c;

  // Width: one line per budget; n=0 has width 0, not drawable on a log axis.
  const std::string width = (dir_ / "width.svg").string();
  plot = Ctl({"plot", "width", "--model", model, "-o", width});
  EXPECT_EXIT_CODE(plot, 0);
  const std::string w = CheckSvg(width);
  EXPECT_TRUE(absl::StrContains(w, "title=Bound width over training\n")) << w;
  EXPECT_TRUE(absl::StrContains(w, "xlabel=iteration\n")) << w;
  EXPECT_TRUE(absl::StrContains(w, "ylabel=total bound width (sum of upper - lower)\n")) << w;
  EXPECT_TRUE(absl::StrContains(w, "series=4\npaths=3\ncolours=4\n")) << w;
  for (const std::string& entry : std::vector<std::string>{"n=0 (not drawn)", "n=1", "n=2", "n=5"}) {
    EXPECT_TRUE(absl::StrContains(w, "legend=" + entry + "\n")) << entry << "\n" << w;
  }
  // By job id: the same history.
  CommandResult job = Ctl({"model", "get", model, "--json"});
  ASSERT_EQ(job.exit_code, 0);
  const size_t at = job.out.find("\"job_id\": \"");
  ASSERT_NE(at, std::string::npos) << job.out;
  const std::string job_id = job.out.substr(at + 11, job.out.find('"', at + 11) - at - 11);
  const std::string by_job = (dir_ / "by_job.svg").string();
  EXPECT_EXIT_CODE(Ctl({"plot", "width", "--job", job_id, "-o", by_job}), 0);
  EXPECT_EQ(CheckSvg(by_job), w);

  if (HasRsvgConvert()) {
    const std::string png = (dir_ / "width.png").string();
    EXPECT_EXIT_CODE(Ctl({"plot", "width", "--model", model, "-o", png}), 0);
    const std::string bytes = ReadText(png);
    ASSERT_GE(bytes.size(), 8u);
    EXPECT_EQ(bytes.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
    EXPECT_FALSE(std::filesystem::exists(png + ".tmp.svg"));
  }
}

TEST_F(AgtctlPlotE2eTest, BadPlotRequestsAreUsageOrNotFoundErrors) {
  StartServer();
  EXPECT_EXIT_CODE(Ctl({"plot", "width", "-o", (dir_ / "x.svg").string()}), 2);
  EXPECT_EXIT_CODE(Ctl({"plot", "width", "--job", "j", "--model", "m", "-o", "x.svg"}), 2);
  EXPECT_EXIT_CODE(Ctl({"plot", "certified", "--model", "mdl-x", "-o", "x.svg"}), 2);
  EXPECT_EXIT_CODE(
      Ctl({"plot", "width", "--job", "job-0000000000000000", "-o", (dir_ / "x.svg").string()}), 3);
  EXPECT_FALSE(std::filesystem::exists(dir_ / "x.svg"));
}

TEST_F(AgtctlPlotE2eTest, APngWithoutRsvgConvertIsAClearError) {
  StartServer();
  const std::string model = TrainModel("moons", MoonsCsv(1000, 5), kJob);
  ASSERT_FALSE(model.empty());
  // A PATH without rsvg-convert.
  std::filesystem::create_directories(dir_ / "empty_bin");
  const std::string png = (dir_ / "w.png").string();
  CommandResult r =
      RunCommand({AGTCTL_BINARY, "--server", target_, "plot", "width", "--model", model, "-o", png},
                 {{"PATH", (dir_ / "empty_bin").string()}}, std::chrono::seconds(60));
  EXPECT_EXIT_CODE(r, 1);
  EXPECT_TRUE(absl::StrContains(r.err, "rsvg-convert is not installed")) << r.err;
  EXPECT_TRUE(absl::StrContains(r.err, "librsvg2-bin")) << r.err;
  EXPECT_FALSE(std::filesystem::exists(png));
  EXPECT_FALSE(std::filesystem::exists(png + ".tmp.svg"));
}

TEST_F(AgtctlPlotE2eTest, AnExplodedJobWarnsInTrainJobsGetAndModelGet) {
  StartServer();
  CommandResult upload =
      Ctl({"dataset", "upload", Write("moons.csv", MoonsCsv(200, 8)), "--name", "m", "-q"});
  ASSERT_EQ(upload.exit_code, 0) << upload.err;
  CommandResult train = Ctl(
      {"train", Write("job.json", kExplodingJob), "--dataset", Line(upload.out), "--wait", "-q"});
  EXPECT_EXIT_CODE(train, 0);
  EXPECT_TRUE(absl::StrContains(train.err, "agtctl: WARNING: job ")) << train.err;
  EXPECT_TRUE(absl::StrContains(train.err, "budget n=10: the widest parameter interval"))
      << train.err;
  const std::string model = Line(train.out);
  CommandResult got = Ctl({"model", "get", model});
  EXPECT_EXIT_CODE(got, 0);
  EXPECT_TRUE(absl::StrContains(got.out, "WARNING")) << got.out;
  CommandResult jobs = Ctl({"jobs", "list"});
  EXPECT_TRUE(absl::StrContains(jobs.out, "SUCCEEDED (")) << jobs.out;

  // An ordinary job: no warning anywhere.
  CommandResult more =
      Ctl({"dataset", "upload", Write("more.csv", MoonsCsv(1000, 9)), "--name", "more", "-q"});
  ASSERT_EQ(more.exit_code, 0) << more.err;
  CommandResult fine =
      Ctl({"train", Write("fine.json", kJob), "--dataset", Line(more.out), "--wait", "-q"});
  EXPECT_EXIT_CODE(fine, 0);
  EXPECT_FALSE(absl::StrContains(fine.err, "WARNING")) << fine.err;
  CommandResult fine_model = Ctl({"model", "get", Line(fine.out)});
  EXPECT_FALSE(absl::StrContains(fine_model.out, "WARNING")) << fine_model.out;
}

}  // namespace
}  // namespace agt::client
