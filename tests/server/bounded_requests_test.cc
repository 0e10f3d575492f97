// Bounded requests (issue 17, findings 2 and 3) below the gRPC layer:
// chunked certification gives what one chunk gives and stops when asked;
// one row too big for the working memory is ResourceExhausted; uploads
// decode FLOAT64 rows as they arrive (rows split across chunks), check a
// declared size up front, refuse a CSV whose doubles would pass the limit,
// and fingerprint their content without the request id; the upload
// admission counts per tenant and reports a stalled upload once.
#include <atomic>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>

#include "core/common/rng.h"
#include "core/data/dataset.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/domain/certifier.h"
#include "server/domain/working_memory.h"
#include "server/service/dataset_upload.h"
#include "server/service/upload_admission.h"

namespace agt::server {
namespace {

using ::testing::HasSubstr;

ModelRecord MlpModel(int inputs, int degree, std::vector<int> widths) {
  ModelRecord m;
  m.id = "mdl-test";
  m.input_features = inputs;
  m.polynomial_degree = degree;
  m.num_classes = 2;
  std::vector<int> all = {degree > 1 ? agt::PolynomialFeatureCount(inputs, degree) : inputs};
  all.insert(all.end(), widths.begin(), widths.end());
  all.push_back(1);
  m.architecture = agt::ModelSpec::Mlp(all);
  agt::Rng rng(5);
  m.nominal.resize(m.architecture.NumParameters());
  for (agt::Index i = 0; i < m.nominal.size(); ++i) m.nominal[i] = rng.Uniform(-0.5, 0.5);
  for (int n : {1, 3}) {
    BoxRecord b;
    b.budget.n = n;
    b.box.lower = m.nominal.array() - 0.01 * n;
    b.box.upper = m.nominal.array() + 0.01 * n;
    m.boxes.push_back(b);
  }
  return m;
}

agt::v1::CertifyPredictionsRequest Request(int rows, int cols, uint64_t seed) {
  agt::v1::CertifyPredictionsRequest r;
  r.mutable_inputs()->set_rows(rows);
  r.mutable_inputs()->set_cols(cols);
  agt::Rng rng(seed);
  for (int k = 0; k < rows * cols; ++k) r.mutable_inputs()->add_values(rng.Uniform(-1.0, 1.0));
  for (int i = 0; i < rows; ++i) r.add_labels(i % 2);
  return r;
}

// Decisions equal; bounds equal up to the last bits (float64 without
// directed rounding, as the guarantee text says: the test does not rely on
// a row's bits being independent of the rows computed with it).
void ExpectSamePoints(const agt::v1::CertifyPredictionsResponse& a,
                      const agt::v1::CertifyPredictionsResponse& b) {
  ASSERT_EQ(a.points_size(), b.points_size());
  for (int i = 0; i < a.points_size(); ++i) {
    const agt::v1::PointCertificate& p = a.points(i);
    const agt::v1::PointCertificate& q = b.points(i);
    EXPECT_EQ(p.predicted_class(), q.predicted_class()) << i;
    EXPECT_EQ(p.largest_stable_budget(), q.largest_stable_budget()) << i;
    EXPECT_THAT(p.stable(), ::testing::ElementsAreArray(q.stable())) << i;
    EXPECT_THAT(p.correct(), ::testing::ElementsAreArray(q.correct())) << i;
    ASSERT_EQ(p.bounds_size(), q.bounds_size());
    for (int j = 0; j < p.bounds_size(); ++j) {
      for (int k = 0; k < p.bounds(j).lower_size(); ++k) {
        EXPECT_NEAR(p.bounds(j).lower(k), q.bounds(j).lower(k), 1e-12) << i;
        EXPECT_NEAR(p.bounds(j).upper(k), q.bounds(j).upper(k), 1e-12) << i;
      }
    }
  }
}

TEST(BoundedCertify, ChunkedResultsEqualOneChunk) {
  const ModelRecord m = MlpModel(3, 2, {6});
  const agt::v1::CertifyPredictionsRequest r = Request(37, 3, 1);
  CertifyOptions whole;  // 37 rows fit in one chunk
  CertifyOptions tiny;
  tiny.working_bytes = CertifyRowBytes(m) * 2;  // two rows per chunk
  ASSERT_EQ(*CertifyChunkRows(m, tiny.working_bytes), 2);
  absl::StatusOr<agt::v1::CertifyPredictionsResponse> a = CertifyPredictions(m, r, whole);
  absl::StatusOr<agt::v1::CertifyPredictionsResponse> b = CertifyPredictions(m, r, tiny);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  ASSERT_EQ(b->points_size(), 37);
  ExpectSamePoints(*a, *b);

  agt::Dataset data;
  data.x = Eigen::Map<const agt::Matrix>(r.inputs().values().data(), 37, 3);
  data.y.resize(37);
  for (int i = 0; i < 37; ++i) data.y[i] = i % 2;
  data.num_classes = 2;
  absl::StatusOr<agt::v1::CertifyDatasetResponse> da =
      CertifyDataset(m, data, 0.0, agt::v1::STABILITY_RULE_UNSPECIFIED, whole);
  absl::StatusOr<agt::v1::CertifyDatasetResponse> db =
      CertifyDataset(m, data, 0.0, agt::v1::STABILITY_RULE_UNSPECIFIED, tiny);
  ASSERT_TRUE(da.ok()) << da.status();
  ASSERT_TRUE(db.ok()) << db.status();
  // Counts are exact; fractions of them therefore too.
  EXPECT_EQ(da->SerializeAsString(), db->SerializeAsString());
}

TEST(BoundedCertify, KeepGoingStopsBetweenChunks) {
  const ModelRecord m = MlpModel(3, 1, {4});
  const agt::v1::CertifyPredictionsRequest r = Request(20, 3, 2);
  std::atomic<int> asked{0};
  CertifyOptions options;
  options.working_bytes = CertifyRowBytes(m) * 5;  // four chunks
  options.keep_going = [&]() -> absl::Status {
    return ++asked > 2 ? absl::DeadlineExceededError("past the deadline") : absl::OkStatus();
  };
  absl::StatusOr<agt::v1::CertifyPredictionsResponse> out = CertifyPredictions(m, r, options);
  EXPECT_EQ(out.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(asked.load(), 3);  // two chunks done, stopped before the third
}

TEST(BoundedCertify, ARowThatCannotFitIsResourceExhausted) {
  const ModelRecord m = MlpModel(40, 2, {});
  const int64_t row = CertifyRowBytes(m);
  EXPECT_GT(row, 8 * agt::PolynomialFeatureCount(40, 2));
  CertifyOptions options;
  options.working_bytes = row - 1;
  absl::StatusOr<agt::v1::CertifyPredictionsResponse> out =
      CertifyPredictions(m, Request(1, 40, 3), options);
  EXPECT_EQ(out.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(out.status().message(), HasSubstr(absl::StrCat(row, " bytes")));
  EXPECT_THAT(out.status().message(), HasSubstr(absl::StrCat(row - 1, " bytes")));
}

TEST(BoundedCertify, ChunksAreSmallForWideModels) {
  // 700 features at degree 2: a few rows per chunk, not all of them.
  const ModelRecord m = MlpModel(700, 2, {});
  absl::StatusOr<int64_t> rows = CertifyChunkRows(m, kCertifyWorkingBytes);
  ASSERT_TRUE(rows.ok());
  EXPECT_GE(*rows, 1);
  EXPECT_LE(*rows * CertifyRowBytes(m), kCertifyWorkingBytes);
  EXPECT_LE(*rows * m.architecture.NumParameters(), kCertifyChunkWork);
}

// ---- uploads

std::string Le(double v) {
  uint64_t bits;
  std::memcpy(&bits, &v, 8);
  std::string out;
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((bits >> (8 * i)) & 0xFF));
  return out;
}

agt::v1::DatasetMetadata Float64(int features) {
  agt::v1::DatasetMetadata m;
  m.set_name("d");
  m.set_format(agt::v1::DATASET_FORMAT_FLOAT64);
  m.set_num_features(features);
  m.set_num_classes(2);
  return m;
}

TEST(BoundedUpload, Float64RowsSplitAcrossChunksDecodeExactly) {
  std::string bytes;
  for (int r = 0; r < 9; ++r) bytes += Le(r * 0.5) + Le(-r * 1e-300) + Le(r % 2);
  for (size_t chunk : {1, 7, 24, 25, 1000}) {
    agt::v1::DatasetMetadata meta = Float64(2);
    if (chunk == 7) meta.set_size_bytes(static_cast<int64_t>(bytes.size()));
    absl::StatusOr<DatasetUpload> up = DatasetUpload::Begin(meta, UploadLimits{});
    ASSERT_TRUE(up.ok());
    for (size_t at = 0, i = 2; at < bytes.size(); at += chunk, ++i) {
      ASSERT_TRUE(up->AddChunk(absl::string_view(bytes).substr(at, chunk), i).ok());
    }
    absl::StatusOr<agt::Dataset> d = up->Finish();
    ASSERT_TRUE(d.ok()) << d.status();
    ASSERT_EQ(d->size(), 9);
    for (int r = 0; r < 9; ++r) {
      EXPECT_EQ(d->x(r, 0), r * 0.5);
      EXPECT_EQ(d->x(r, 1), -r * 1e-300);
      EXPECT_EQ(d->y[r], r % 2);
    }
  }
}

TEST(BoundedUpload, Float64ErrorsNameRowColumnAndOffsetAcrossChunks) {
  std::string bytes = Le(1) + Le(2) + Le(0) + Le(3) + Le(std::nan("")) + Le(1);
  absl::StatusOr<DatasetUpload> up = DatasetUpload::Begin(Float64(2), UploadLimits{});
  ASSERT_TRUE(up.ok());
  ASSERT_TRUE(up->AddChunk(absl::string_view(bytes).substr(0, 30), 2).ok());
  absl::Status s = up->AddChunk(absl::string_view(bytes).substr(30), 3);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("row 2, column 2 at byte offset 32"));
  // A missing tail is named at Finish.
  absl::StatusOr<DatasetUpload> short_up = DatasetUpload::Begin(Float64(2), UploadLimits{});
  ASSERT_TRUE(short_up->AddChunk(absl::string_view(bytes).substr(0, 20), 2).ok());
  EXPECT_THAT(short_up->Finish().status().message(), HasSubstr("the last row is incomplete"));
}

TEST(BoundedUpload, DeclaredSizeIsCheckedUpFrontAndHeldTo) {
  UploadLimits limits;
  limits.max_total_bytes = 1000;
  agt::v1::DatasetMetadata meta = Float64(2);
  meta.set_size_bytes(1008);
  absl::StatusOr<DatasetUpload> big = DatasetUpload::Begin(meta, limits);
  EXPECT_EQ(big.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(big.status().message(), HasSubstr("declares 1008 bytes"));
  meta.set_size_bytes(50);
  EXPECT_EQ(DatasetUpload::Begin(meta, limits).status().code(),
            absl::StatusCode::kInvalidArgument);  // not whole rows
  meta.set_size_bytes(48);
  absl::StatusOr<DatasetUpload> up = DatasetUpload::Begin(meta, limits);
  ASSERT_TRUE(up.ok());
  const std::string row = Le(1) + Le(2) + Le(1);
  ASSERT_TRUE(up->AddChunk(row, 2).ok());
  EXPECT_THAT(up->AddChunk(row + row, 3).message(), HasSubstr("more than the 48 bytes declared"));
  absl::StatusOr<DatasetUpload> fewer = DatasetUpload::Begin(meta, limits);
  ASSERT_TRUE(fewer->AddChunk(row, 2).ok());
  EXPECT_THAT(fewer->Finish().status().message(), HasSubstr("carried 24 bytes"));
}

TEST(BoundedUpload, CsvDoublesAreCountedAsChunksArrive) {
  UploadLimits limits;
  limits.max_total_bytes = 800;  // 100 doubles
  absl::StatusOr<DatasetUpload> up = DatasetUpload::Begin(
      [] {
        agt::v1::DatasetMetadata m;
        m.set_name("c");
        m.set_format(agt::v1::DATASET_FORMAT_CSV);
        m.set_num_classes(2);
        return m;
      }(),
      limits);
  ASSERT_TRUE(up.ok());
  // 30 values per chunk of 60 bytes: the fourth chunk passes 100 values.
  std::string chunk;
  for (int i = 0; i < 10; ++i) chunk += "1,0,1\n";
  for (int i = 2; i <= 4; ++i) ASSERT_TRUE(up->AddChunk(chunk, i).ok()) << i;
  absl::Status s = up->AddChunk(chunk, 5);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(s.message(), HasSubstr("message 5"));
  EXPECT_THAT(s.message(), HasSubstr("above the server's dataset size limit of 800 bytes"));
}

TEST(BoundedUpload, FingerprintIgnoresTheRequestIdOnly) {
  const std::string bytes = Le(1) + Le(2) + Le(1) + Le(3) + Le(4) + Le(0);
  auto fingerprint = [&](agt::v1::DatasetMetadata meta, const std::string& data) {
    absl::StatusOr<DatasetUpload> up = DatasetUpload::Begin(meta, UploadLimits{});
    EXPECT_TRUE(up->AddChunk(data, 2).ok());
    absl::StatusOr<agt::Dataset> d = up->Finish();
    EXPECT_TRUE(d.ok());
    return up->Fingerprint(*d);
  };
  agt::v1::DatasetMetadata a = Float64(2);
  a.set_request_id("one");
  agt::v1::DatasetMetadata b = a;
  b.set_request_id("two");
  agt::v1::DatasetMetadata renamed = a;
  renamed.set_name("other");
  EXPECT_EQ(fingerprint(a, bytes), fingerprint(b, bytes));
  EXPECT_NE(fingerprint(a, bytes), fingerprint(renamed, bytes));
  std::string changed = bytes;
  changed[3] ^= 1;
  EXPECT_NE(fingerprint(a, bytes), fingerprint(a, changed));
}

TEST(UploadAdmission, CountsPerTenantAndReleasesOnDestruction) {
  UploadAdmission admission({/*max_per_tenant=*/2, std::chrono::seconds(60)});
  auto a1 = admission.Acquire("a", [] {});
  auto a2 = admission.Acquire("a", [] {});
  ASSERT_TRUE(a1.ok() && a2.ok());
  auto a3 = admission.Acquire("a", [] {});
  EXPECT_EQ(a3.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(a3.status().message(), HasSubstr("already has 2 uploads in progress"));
  EXPECT_TRUE(admission.Acquire("b", [] {}).ok());  // released at once
  a1->reset();
  EXPECT_EQ(admission.in_progress("a"), 1);
  EXPECT_TRUE(admission.Acquire("a", [] {}).ok());
}

TEST(UploadAdmission, AllTenantsTogetherStayUnderTheServersLimit) {
  UploadAdmission admission({/*max_per_tenant=*/2, std::chrono::seconds(60), /*max_total=*/3});
  auto a1 = admission.Acquire("a", [] {});
  auto a2 = admission.Acquire("a", [] {});
  auto b1 = admission.Acquire("b", [] {});
  ASSERT_TRUE(a1.ok() && a2.ok() && b1.ok());
  // b has one of its two, but the server has its three.
  auto b2 = admission.Acquire("b", [] {});
  EXPECT_EQ(b2.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(b2.status().message(), HasSubstr("--max-uploads 3"));
  auto c1 = admission.Acquire("c", [] {});
  EXPECT_EQ(c1.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(admission.in_progress("c"), 0);
  // A refused request holds nothing; a finished upload frees a place for anyone.
  a1->reset();
  EXPECT_TRUE(admission.Acquire("c", [] {}).ok());
  (*a2)->ReleaseCount();
  (*a2)->ReleaseCount();  // idempotent: counted once
  auto c2 = admission.Acquire("c", [] {});
  auto c3 = admission.Acquire("c", [] {});
  EXPECT_TRUE(c2.ok() && c3.ok());  // b1, c2, c3: the server's three
  auto d1 = admission.Acquire("d", [] {});
  EXPECT_EQ(d1.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(d1.status().message(), HasSubstr("already has 3 uploads in progress"));
}

TEST(UploadAdmission, ReportsAStalledUploadOnceAndNotATouchedOrStoppedOne) {
  UploadAdmission admission({4, std::chrono::milliseconds(200)});
  std::atomic<int> stalled{0}, touched{0}, stopped{0};
  auto s = admission.Acquire("t", [&] { ++stalled; });
  auto t = admission.Acquire("t", [&] { ++touched; });
  auto p = admission.Acquire("t", [&] { ++stopped; });
  (*p)->StopWatching();
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(800);
  while (std::chrono::steady_clock::now() < end) {
    (*t)->Touch();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(stalled.load(), 1);
  EXPECT_EQ(touched.load(), 0);
  EXPECT_EQ(stopped.load(), 0);
}

TEST(WorkingMemory, CallsWaitForTheirShareAndStopWhenTold) {
  WorkingMemory memory(100);
  EXPECT_EQ(memory.Reserve(101, {}).status().code(), absl::StatusCode::kResourceExhausted);
  auto first = memory.Reserve(70, {});
  ASSERT_TRUE(first.ok());
  std::atomic<bool> got{false};
  std::thread waiter([&] {
    auto second = memory.Reserve(50, {});
    EXPECT_TRUE(second.ok());
    got = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_FALSE(got.load());  // 70 + 50 > 100: it waits
  EXPECT_EQ(memory.in_use(), 70);
  first->reset();
  waiter.join();
  EXPECT_TRUE(got.load());
  EXPECT_EQ(memory.in_use(), 0);
  auto held = memory.Reserve(100, {});
  int asked = 0;
  auto stopped = memory.Reserve(1, [&]() -> absl::Status {
    return ++asked >= 3 ? absl::CancelledError("gone") : absl::OkStatus();
  });
  EXPECT_EQ(stopped.status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(memory.in_use(), 100);
}

}  // namespace
}  // namespace agt::server
