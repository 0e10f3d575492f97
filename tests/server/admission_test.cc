// Admission control for jobs (domain/admission.h): the estimate of the
// issue-17 job that took the server down is what the finding computed and is
// refused; a checkpoint over SQLite's blob limit is refused; and the estimate
// is an upper bound, within a sane factor, of the peak resident memory of real
// training runs of several shapes (each run in a child process, its peak RSS
// read from /proc after resetting the high-water mark).
#include "server/domain/admission.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/data/dataset.h"
#include "core/train/train.h"
#include "server/domain/job_spec.h"
#include "server/store/blob.h"

namespace agt::server {
namespace {

DatasetRecord Shape(int64_t rows, int features, int classes = 2) {
  DatasetRecord d;
  d.id = "ds_test";
  d.tenant = "t";
  d.num_rows = rows;
  d.num_features = features;
  d.num_classes = classes;
  return d;
}

agt::v1::TrainingJobSpec Spec(std::vector<int> hidden, int batch, std::vector<int> budgets,
                              agt::v1::PerturbationKind kind = agt::v1::PERTURBATION_KIND_REMOVAL) {
  agt::v1::TrainingJobSpec spec;
  spec.set_dataset_id("ds_test");
  for (int w : hidden) spec.add_hidden_widths(w);
  spec.set_loss(agt::v1::LOSS_BINARY_CROSS_ENTROPY);
  spec.set_batch_size(batch);
  spec.set_epochs(1);
  spec.mutable_optimizer()->set_learning_rate(0.01);
  spec.mutable_perturbation()->set_kind(kind);
  if (kind == agt::v1::PERTURBATION_KIND_SUBSTITUTION) spec.set_clip_gamma(1.0);
  if (kind == agt::v1::PERTURBATION_KIND_POISONING) {
    spec.mutable_perturbation()->set_epsilon(0.01);
  }
  for (int n : budgets) spec.add_budgets()->set_n(n);
  spec.set_seed(3);
  return spec;
}

ResolvedJob Resolve(const agt::v1::TrainingJobSpec& spec, const DatasetRecord& d) {
  absl::StatusOr<ResolvedJob> r = ResolveJobSpec(spec, d);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : ResolvedJob{};
}

TEST(AdmissionTest, TheFindingsJobNeedsAbout34GBOfAggregatorsAndIsRefusedNamingBoth) {
  // moons (2 000 rows), hidden [2048, 2048], BCE, batch 1000, removal, n = 500.
  const DatasetRecord d = Shape(2000, 2);
  const ResolvedJob job = Resolve(Spec({2048, 2048}, 1000, {500}), d);
  const JobEstimate e = EstimateJob(job.config, d.num_rows, 2, 1);
  const double p = static_cast<double>(job.config.model.NumParameters());
  EXPECT_NEAR(p, 4.2e6, 0.05e6);
  // 2 sides x 500 kept values x P x 8 B, plus a few vectors of P.
  EXPECT_GE(e.aggregator_bytes, 2 * 500 * p * 8);
  EXPECT_LE(e.aggregator_bytes, 2 * 510 * p * 8);
  EXPECT_GE(e.peak_bytes, e.aggregator_bytes);

  JobLimits limits;
  limits.max_job_memory_bytes = int64_t{16} * 1000 * 1000 * 1000;
  absl::StatusOr<JobEstimate> admitted = AdmitJob(job, d, limits);
  ASSERT_FALSE(admitted.ok());
  EXPECT_EQ(admitted.status().code(), absl::StatusCode::kResourceExhausted);
  const std::string message(admitted.status().message());
  std::printf("[the finding's job] %s\n", message.c_str());
  EXPECT_TRUE(absl::StartsWith(message, "job needs an estimated 3")) << message;
  EXPECT_TRUE(absl::StrContains(message, " GB (aggregators 33.")) << message;
  EXPECT_TRUE(absl::StrContains(message, "aggregators 33.")) << message;
  EXPECT_TRUE(absl::StrContains(message, "--max-job-memory is 16.0 GB")) << message;

  // The same job fits a server with enough memory.
  limits.max_job_memory_bytes = int64_t{40} * 1000 * 1000 * 1000;
  EXPECT_TRUE(AdmitJob(job, d, limits).ok());
}

// A conv job on 64x64 RGB images: the patch matrices (every input value up to
// kh x kw times) and, with the conv frozen, its widest layer dominate. Both
// grow with the batch, and a big one is refused naming the figure and the
// limit.
agt::v1::TrainingJobSpec ConvJob(bool frozen, int batch) {
  agt::v1::TrainingJobSpec spec = Spec({}, batch, {5});
  spec.set_loss(agt::v1::LOSS_CROSS_ENTROPY);
  agt::v1::ModelArchitecture* arch = spec.mutable_architecture();
  for (int d : {3, 64, 64}) arch->add_input_shape(d);
  auto* prefix = frozen ? arch->mutable_frozen()->mutable_layers() : arch->mutable_layers();
  agt::v1::Conv2dLayer* c = prefix->Add()->mutable_conv2d();
  c->set_in_channels(3);
  c->set_out_channels(32);
  c->set_kernel_h(5);
  c->set_kernel_w(5);
  c->set_pad_h(2);
  c->set_pad_w(2);
  prefix->Add()->mutable_relu();
  if (frozen) {
    prefix->Add()->mutable_flatten();
    for (int k = 0; k < 32 * 75 + 32; ++k) arch->mutable_frozen()->add_parameters(0.01);
  } else {
    agt::v1::Conv2dLayer* down = arch->add_layers()->mutable_conv2d();
    down->set_in_channels(32);
    down->set_out_channels(4);
    down->set_kernel_h(8);
    down->set_kernel_w(8);
    down->set_stride_h(8);
    down->set_stride_w(8);
    arch->add_layers()->mutable_flatten();
  }
  agt::v1::DenseLayer* dense = arch->add_layers()->mutable_dense();
  dense->set_in(frozen ? 32 * 64 * 64 : 4 * 8 * 8);
  dense->set_out(10);
  return spec;
}

TEST(AdmissionTest, ConvJobsCountTheirPatchesAndBigOnesAreRefusedNamingTheFigure) {
  const DatasetRecord base = Shape(2000, 3 * 64 * 64, 10);
  DatasetRecord d = base;
  d.sample_shape = {3, 64, 64};
  for (bool frozen : {false, true}) {
    SCOPED_TRACE(frozen ? "frozen" : "trained conv");
    const ResolvedJob small = Resolve(ConvJob(frozen, 20), d);
    const ResolvedJob big = Resolve(ConvJob(frozen, 2000), d);
    const JobEstimate es = EstimateJob(small.config, d.num_rows, d.num_features, 1);
    const JobEstimate eb = EstimateJob(big.config, d.num_rows, d.num_features, 1);
    // Per row of the batch at least the conv's patches (32 x 64 x 64 outputs
    // each reading 3 x 5 x 5 inputs: 64 x 64 x 75 values), 8 bytes each.
    const double patches = 64.0 * 64 * 75 * 8;
    EXPECT_GE(static_cast<double>(eb.pass_bytes), 2000 * patches);
    EXPECT_GT(eb.pass_bytes, 20 * es.pass_bytes);
    JobLimits limits;
    limits.max_job_memory_bytes = int64_t{8} * 1000 * 1000 * 1000;
    std::printf("[conv %s] batch 20: %s; batch 2000: %s\n", frozen ? "frozen" : "trained",
                es.Describe().c_str(), eb.Describe().c_str());
    EXPECT_TRUE(AdmitJob(small, d, limits).ok()) << es.Describe();
    absl::StatusOr<JobEstimate> refused = AdmitJob(big, d, limits);
    ASSERT_FALSE(refused.ok()) << eb.Describe();
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
    const std::string message(refused.status().message());
    EXPECT_TRUE(absl::StartsWith(message, "job needs an estimated ")) << message;
    EXPECT_TRUE(absl::StrContains(message, "passes ")) << message;
    EXPECT_TRUE(absl::StrContains(message, "is 8.0 GB")) << message;
  }
}

// "Where a job can be made to fit, prefer that to refusing": every trainer
// thread holds its own in-flight chunks, so a job over the limit with many
// threads is admitted with one when that fits.
TEST(AdmissionTest, AJobThatFitsOnlyWithOneThreadIsAdmittedWithOne) {
  const DatasetRecord d = Shape(2000, 2);
  const ResolvedJob job = Resolve(Spec({2048, 2048}, 1000, {2}), d);
  const JobEstimate many = EstimateJob(job.config, d.num_rows, 2, 16);
  const JobEstimate one = EstimateJob(job.config, d.num_rows, 2, 1);
  EXPECT_EQ(many.threads, 16);
  EXPECT_EQ(one.threads, 1);
  ASSERT_GT(many.peak_bytes, one.peak_bytes + (int64_t{1} << 30));
  JobLimits limits;
  limits.threads_per_job = 16;
  limits.max_job_memory_bytes = (many.peak_bytes + one.peak_bytes) / 2;
  absl::StatusOr<JobEstimate> admitted = AdmitJob(job, d, limits);
  ASSERT_TRUE(admitted.ok()) << admitted.status();
  EXPECT_EQ(admitted->threads, 1);
  EXPECT_EQ(admitted->peak_bytes, one.peak_bytes);
  // Below what any fallback needs: refused, naming the configured estimate.
  limits.max_job_memory_bytes = int64_t{1} << 20;
  admitted = AdmitJob(job, d, limits);
  ASSERT_EQ(admitted.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(absl::StrContains(admitted.status().message(), FormatBytes(many.peak_bytes)))
      << admitted.status();
  // A job that fits as configured keeps its threads.
  limits.max_job_memory_bytes = many.peak_bytes;
  EXPECT_EQ(AdmitJob(job, d, limits)->threads, 16);
}

// The second example: a degree-2 polynomial linear model on a wide
// CSV, whose passes (every pass holds b x 45 450 inputs) dominate. Held 256
// rows at a time, the passes no longer grow with the batch: admitted so
// rather than refused.
TEST(AdmissionTest, AJobWhosePassesDoNotFitIsAdmittedWithGroupedFactors) {
  const DatasetRecord d = Shape(1000, 300);
  agt::v1::TrainingJobSpec spec = Spec({}, 1000, {10, 20, 30});
  spec.set_polynomial_degree(2);
  const ResolvedJob job = Resolve(spec, d);
  const JobEstimate whole = EstimateJob(job.config, d.num_rows, 300, 1);
  agt::TrainConfig grouped_config = job.config;
  grouped_config.factor_rows = 256;
  const JobEstimate grouped = EstimateJob(grouped_config, d.num_rows, 300, 1);
  std::printf("[polynomial job] whole batch: %s; 256 rows at a time: %s\n",
              whole.Describe().c_str(), grouped.Describe().c_str());
  EXPECT_EQ(grouped.factor_rows, 256);
  EXPECT_GT(whole.pass_bytes, 2 * grouped.pass_bytes);
  JobLimits limits;
  limits.threads_per_job = 1;
  limits.max_job_memory_bytes = (whole.peak_bytes + grouped.peak_bytes) / 2;
  absl::StatusOr<JobEstimate> admitted = AdmitJob(job, d, limits);
  ASSERT_TRUE(admitted.ok()) << admitted.status();
  EXPECT_EQ(admitted->factor_rows, 256);
  EXPECT_EQ(admitted->threads, 1);
  // Even grouped it may not fit: refused with the configuration's figure.
  limits.max_job_memory_bytes = grouped.peak_bytes - 1;
  admitted = AdmitJob(job, d, limits);
  ASSERT_EQ(admitted.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(absl::StrContains(admitted.status().message(), FormatBytes(whole.peak_bytes)))
      << admitted.status();
}

TEST(AdmissionTest, AggregatorsKeepMinOfNAndBMinusN) {
  const DatasetRecord d = Shape(2000, 2);
  auto aggregators = [&](int n) {
    return EstimateJob(Resolve(Spec({64}, 100, {n}), d).config, d.num_rows, 2, 1)
        .aggregator_bytes;
  };
  EXPECT_EQ(aggregators(10), aggregators(90));
  EXPECT_LT(aggregators(10), aggregators(50));
  EXPECT_GT(aggregators(50), aggregators(49));
  // Each budget adds its own aggregator.
  const ResolvedJob two = Resolve(Spec({64}, 100, {10, 20}), d);
  EXPECT_GT(EstimateJob(two.config, d.num_rows, 2, 1).aggregator_bytes, aggregators(20));
}

TEST(AdmissionTest, ACheckpointOverTheBlobLimitIsRefusedEvenWithoutAMemoryLimit) {
  // 4.2 M parameters and 30 budgets: (1 + 2 x 30) x 33.6 MB = 2 GB of state.
  const DatasetRecord d = Shape(2000, 2);
  std::vector<int> budgets;
  for (int n = 1; n <= 30; ++n) budgets.push_back(n);
  const ResolvedJob job = Resolve(Spec({2048, 2048}, 1000, budgets), d);
  JobLimits limits;
  limits.max_blob_bytes = 1000000000;  // SQLite's default SQLITE_MAX_LENGTH
  absl::StatusOr<JobEstimate> admitted = AdmitJob(job, d, limits);
  ASSERT_FALSE(admitted.ok());
  EXPECT_EQ(admitted.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(absl::StrContains(admitted.status().message(), "checkpoint")) << admitted.status();
  EXPECT_TRUE(absl::StrContains(admitted.status().message(), "blob limit of 1.0 GB"))
      << admitted.status();
  // One budget's checkpoint (3 x 33.6 MB) fits.
  EXPECT_TRUE(AdmitJob(Resolve(Spec({2048, 2048}, 1000, {1}), d), d, limits).ok());
}

TEST(AdmissionTest, ByteSizesParseAndPrint) {
  EXPECT_EQ(*ParseByteSize("512"), 512);
  EXPECT_EQ(*ParseByteSize("16G"), int64_t{16} * 1000 * 1000 * 1000);
  EXPECT_EQ(*ParseByteSize("16GB"), int64_t{16} * 1000 * 1000 * 1000);
  EXPECT_EQ(*ParseByteSize("1.5m"), 1500000);
  EXPECT_EQ(*ParseByteSize("2GiB"), int64_t{2} << 30);
  EXPECT_EQ(*ParseByteSize("1T"), int64_t{1000} * 1000 * 1000 * 1000);
  for (const char* bad : {"", "G", "-5G", "5X", "0", "1e30", "abc"}) {
    EXPECT_FALSE(ParseByteSize(bad).ok()) << bad;
  }
  EXPECT_EQ(FormatBytes(33600000000), "33.6 GB");
  EXPECT_EQ(FormatBytes(512), "512 B");
  EXPECT_EQ(FormatBytes(1500000), "1.5 MB");
}

TEST(AdmissionTest, TheDefaultLimitIsThreeQuartersOfTheMachinePerWorker) {
  absl::StatusOr<int64_t> machine = MachineMemoryBytes();
  ASSERT_TRUE(machine.ok()) << machine.status();
  EXPECT_GT(*machine, int64_t{64} << 20);
  std::string source;
  EXPECT_EQ(DefaultMaxJobMemory(int64_t{8} << 30, 2, &source), int64_t{3} << 30);
  EXPECT_TRUE(absl::StrContains(source, "75%")) << source;
  EXPECT_TRUE(absl::StrContains(source, "2 workers")) << source;
}

// ---- estimate vs reality

int64_t StatusKiB(const std::string& key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key, 0) == 0) {
      std::istringstream fields(line.substr(key.size()));
      int64_t kib = 0;
      fields >> kib;
      return kib;
    }
  }
  return -1;
}

// Trains `steps` steps of the job in a child process the way the job runner
// does (data, polynomial expansion, trainer, a checkpoint encoded and copied)
// and returns its peak RSS growth in bytes (-1 on failure).
int64_t MeasurePeakBytes(const ResolvedJob& job, const DatasetRecord& d, int steps) {
  int pipe_fds[2];
  if (pipe(pipe_fds) != 0) return -1;
  const pid_t pid = fork();
  if (pid == 0) {
    close(pipe_fds[0]);
    // Reset the high-water mark to the current RSS (Linux clear_refs "5").
    {
      std::ofstream clear("/proc/self/clear_refs");
      clear << "5";
    }
    const int64_t base = StatusKiB("VmRSS:");
    agt::Dataset data = agt::MakeBlobs(static_cast<int>(d.num_rows), d.num_features, 2, 1.0, 3.0, 5);
    if (job.polynomial_degree > 1) data.x = agt::PolynomialFeatures(data.x, job.polynomial_degree);
    agt::TrainConfig config = job.config;
    config.threads = 1;
    const agt::Vector init = agt::InitParameters(config.model, 3);
    int64_t result = -1;
    {
      absl::StatusOr<std::unique_ptr<agt::Trainer>> trainer =
          agt::Trainer::Create(config, data, init);
      if (trainer.ok()) {
        bool ok = true;
        for (int s = 0; s < steps && ok && !(*trainer)->done(); ++s) ok = (*trainer)->Step().ok();
        const std::string checkpoint = EncodeTrainState((*trainer)->state());
        const std::string bound_copy = checkpoint;  // SQLite's SQLITE_TRANSIENT copy
        if (ok && !bound_copy.empty()) result = (StatusKiB("VmHWM:") - base) * 1024;
      }
    }
    const ssize_t written = write(pipe_fds[1], &result, sizeof result);
    _exit(written == sizeof result ? 0 : 1);
  }
  close(pipe_fds[1]);
  int64_t result = -1;
  if (read(pipe_fds[0], &result, sizeof result) != sizeof result) result = -1;
  close(pipe_fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  return result;
}

struct Case {
  std::string name;
  DatasetRecord dataset;
  agt::v1::TrainingJobSpec spec;
  int factor_rows = 0;
};

TEST(AdmissionTest, TheEstimateBoundsTheMeasuredPeakOfRealRunsWithinAFactorOfFour) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "a sanitizer's shadow memory and quarantine change every peak";
#endif
  std::vector<Case> cases;
  cases.push_back({"removal mlp [256,256] b=200 n={50,100}", Shape(400, 2),
                   Spec({256, 256}, 200, {50, 100})});
  {
    Case c{"removal linear, degree-2 polynomial of 100 features b=500 n={100,250}",
           Shape(1000, 100), Spec({}, 500, {100, 250})};
    c.spec.set_polynomial_degree(2);
    cases.push_back(c);
  }
  {
    Case c{"removal linear, degree-2 polynomial of 100 features b=1000 n={100,250}, factors 256 "
           "rows at a time",
           Shape(1000, 100), Spec({}, 1000, {100, 250})};
    c.spec.set_polynomial_degree(2);
    c.factor_rows = 256;
    cases.push_back(c);
  }
  cases.push_back({"substitution mlp [1024,512] b=64 n={1,8}", Shape(128, 20),
                   Spec({1024, 512}, 64, {1, 8}, agt::v1::PERTURBATION_KIND_SUBSTITUTION)});
  cases.push_back({"poisoning mlp [512,256] of 200 features b=200 n={10,20}", Shape(400, 200),
                   Spec({512, 256}, 200, {10, 20}, agt::v1::PERTURBATION_KIND_POISONING)});
  for (const Case& c : cases) {
    ResolvedJob job = Resolve(c.spec, c.dataset);
    job.config.factor_rows = c.factor_rows;
    const JobEstimate e = EstimateJob(job.config, c.dataset.num_rows, c.dataset.num_features, 1);
    const int64_t measured = MeasurePeakBytes(job, c.dataset, 2);
    ASSERT_GT(measured, 0) << c.name;
    std::printf("[estimate vs measured] %s: estimated %s, measured peak RSS growth %s (x%.2f)\n",
                c.name.c_str(), e.Describe().c_str(), FormatBytes(measured).c_str(),
                static_cast<double>(e.peak_bytes) / static_cast<double>(measured));
    EXPECT_GE(e.peak_bytes, measured) << c.name << ": the estimate must be an upper bound";
    EXPECT_LE(e.peak_bytes, 4 * measured) << c.name << ": the estimate is far too pessimistic";
  }
}

}  // namespace
}  // namespace agt::server
