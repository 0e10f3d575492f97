// agtctl with image files against a real agt-server: IDX images (gzipped)
// and labels written here are uploaded with `dataset upload --labels`, get
// their [1, H, W] sample shape, train a conv model from a job file, and are
// certified from an .npy of query images; the same pixels from an .npz give
// the same certificates. Malformed files fail before any call, naming the
// file; a 2 000-image slice of the real Fashion-MNIST files is uploaded when
// Debian's dataset-fashion-mnist is installed.
#include <gtest/gtest.h>
#include <zlib.h>

#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "tests/client/agtctl_fixture.h"
#include "tests/client/process.h"

namespace agt::client {
namespace {

#if defined(AGT_SERVER_BINARY) && defined(AGTCTL_BINARY)

using testing::CommandResult;

constexpr int kSide = 12;
constexpr int kRows = 120;

std::string Big32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
          static_cast<char>(v)};
}

std::string Gzip(const std::string& data) {
  z_stream zs;
  std::memset(&zs, 0, sizeof zs);
  deflateInit2(&zs, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&zs, data.size()) + 64, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

// Pixel (r, i, j) of image r: class r % 3 lights the left, middle or right
// third; a little deterministic texture elsewhere.
unsigned char Pixel(int r, int i, int j) {
  const int label = r % 3;
  const bool lit = j / 4 == label;
  return static_cast<unsigned char>(lit ? 200 + (i + r) % 50 : (i * 7 + j * 3 + r) % 40);
}

std::string IdxImages(int rows) {
  std::string s("\0\0\x08\x03", 4);
  s += Big32(rows) + Big32(kSide) + Big32(kSide);
  for (int r = 0; r < rows; ++r) {
    for (int i = 0; i < kSide; ++i) {
      for (int j = 0; j < kSide; ++j) s.push_back(static_cast<char>(Pixel(r, i, j)));
    }
  }
  return s;
}

std::string IdxLabels(int rows) {
  std::string s("\0\0\x08\x01", 4);
  s += Big32(rows);
  for (int r = 0; r < rows; ++r) s.push_back(static_cast<char>(r % 3));
  return s;
}

// The first `rows` images as an .npy of uint8 [rows, 1, 12, 12].
std::string NpyImages(int rows) {
  std::string header = absl::StrCat("{'descr': '|u1', 'fortran_order': False, 'shape': (", rows,
                                    ", 1, ", kSide, ", ", kSide, "), }");
  while ((10 + header.size() + 1) % 64 != 0) header.push_back(' ');
  header.push_back('\n');
  std::string s = std::string("\x93NUMPY\x01\x00", 8);
  s.push_back(static_cast<char>(header.size() & 0xff));
  s.push_back(static_cast<char>(header.size() >> 8));
  s += header;
  for (int r = 0; r < rows; ++r) {
    for (int i = 0; i < kSide; ++i) {
      for (int j = 0; j < kSide; ++j) s.push_back(static_cast<char>(Pixel(r, i, j)));
    }
  }
  return s;
}

// [1, 12, 12] -> conv 2@3x3 stride 3 -> [2, 4, 4] -> relu -> flatten -> 3.
constexpr char kJob[] = R"({
  "name": "images-e2e",
  "architecture": {
    "input_shape": [1, 12, 12],
    "layers": [
      {"conv2d": {"in_channels": 1, "out_channels": 2, "kernel_h": 3, "kernel_w": 3,
                  "stride_h": 3, "stride_w": 3}},
      {"relu": {}}, {"flatten": {}}, {"dense": {"in": 32, "out": 3}}
    ]
  },
  "loss": "LOSS_CROSS_ENTROPY",
  "batch_size": 40,
  "epochs": 3,
  "optimizer": {"learning_rate": 0.2},
  "perturbation": {"kind": "PERTURBATION_KIND_REMOVAL"},
  "budgets": [{"n": 1}, {"n": 2}],
  "seed": 3
})";

class AgtctlImagesE2eTest : public testing::AgtctlServerTest {};

TEST_F(AgtctlImagesE2eTest, IdxUploadTrainsAConvModelCertifiedFromNpyInputs) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  const std::string images = Write("train-images-idx3-ubyte.gz", Gzip(IdxImages(kRows)));
  const std::string labels = Write("train-labels-idx1-ubyte", IdxLabels(kRows));
  CommandResult upload =
      Ctl({"dataset", "upload", images, "--labels", labels, "--name", "tiles", "--json"});
  ASSERT_EQ(upload.exit_code, 0) << upload.out << upload.err;
  const nlohmann::json uploaded = nlohmann::json::parse(upload.out)["dataset"];
  EXPECT_EQ(uploaded["sample_shape"], nlohmann::json::array({1, kSide, kSide})) << upload.out;
  EXPECT_EQ(uploaded["num_features"], kSide * kSide);
  EXPECT_EQ(uploaded["num_rows"], std::to_string(kRows));
  EXPECT_EQ(uploaded["num_classes"], 3);
  const std::string dataset = uploaded["id"];
  CommandResult shown = Ctl({"dataset", "get", dataset});
  EXPECT_TRUE(absl::StrContains(shown.out, "[1, 12, 12]")) << shown.out;

  CommandResult train = Ctl({"train", Write("job.json", kJob), "--dataset", dataset, "--wait"});
  ASSERT_EQ(train.exit_code, 0) << train.out << train.err;
  CommandResult models = Ctl({"model", "list", "-q"});
  const std::string model = Line(models.out);

  const std::string npy = Write("queries.npy", NpyImages(6));
  CommandResult from_npy = Ctl({"certify", model, npy, "--json"});
  ASSERT_EQ(from_npy.exit_code, 0) << from_npy.out << from_npy.err;
  const nlohmann::json points = nlohmann::json::parse(from_npy.out)["points"];
  ASSERT_EQ(points.size(), 6u);
  // The nominal model separates the tiles: the lit third is the class.
  int right = 0;
  for (int i = 0; i < 6; ++i) right += points[i].value("predicted_class", 0) == i % 3;
  EXPECT_GE(right, 5) << from_npy.out;

  // Query images of the wrong size fail, naming both widths.
  std::string small = IdxImages(2);
  small[11] = 11;  // width 11: 132 values per row
  small.resize(16 + 2 * 12 * 11);
  CommandResult wrong = Ctl({"certify", model, Write("small-idx3-ubyte", small)});
  EXPECT_NE(wrong.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(wrong.err, "132 input columns")) << wrong.err;
  EXPECT_TRUE(absl::StrContains(wrong.err, "144")) << wrong.err;
}

TEST_F(AgtctlImagesE2eTest, MalformedFilesFailBeforeAnyCallNamingTheFile) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  std::string images = IdxImages(10);
  const std::string labels = Write("l-idx1-ubyte", IdxLabels(10));
  const std::string truncated = Write("t-idx3-ubyte", images.substr(0, images.size() - 3));
  CommandResult r = Ctl({"dataset", "upload", truncated, "--labels", labels});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(absl::StrContains(r.err, "t-idx3-ubyte: truncated")) << r.err;
  const std::string few = Write("few-idx1-ubyte", IdxLabels(9));
  r = Ctl({"dataset", "upload", Write("i-idx3-ubyte", images), "--labels", few});
  EXPECT_TRUE(absl::StrContains(r.err, "9 labels for 10 rows")) << r.err;
  r = Ctl({"dataset", "upload", Write("i2-idx3-ubyte", images)});
  EXPECT_TRUE(absl::StrContains(r.err, "no labels")) << r.err;
  CommandResult listed = Ctl({"dataset", "list", "-q"});
  EXPECT_EQ(listed.out, "") << "nothing was uploaded";
}

TEST_F(AgtctlImagesE2eTest, AFashionMnistSliceUploadsWithItsShape) {
  const std::string dir = "/usr/share/datasets/fashion-mnist";
  if (!std::filesystem::exists(dir + "/t10k-images-idx3-ubyte.gz")) {
    GTEST_SKIP() << "Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)";
  }
  ASSERT_NO_FATAL_FAILURE(StartServer());
  // The 10 000-image test set, whole, through agtctl's IDX reader.
  CommandResult upload = Ctl({"dataset", "upload", dir + "/t10k-images-idx3-ubyte.gz", "--labels",
                              dir + "/t10k-labels-idx1-ubyte.gz", "--json"});
  ASSERT_EQ(upload.exit_code, 0) << upload.err;
  const nlohmann::json d = nlohmann::json::parse(upload.out)["dataset"];
  EXPECT_EQ(d["sample_shape"], nlohmann::json::array({1, 28, 28}));
  EXPECT_EQ(d["num_rows"], "10000");
  EXPECT_EQ(d["num_classes"], 10);
}

#endif

}  // namespace
}  // namespace agt::client
