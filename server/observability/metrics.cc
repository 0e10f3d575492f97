#include "server/observability/metrics.h"

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>

#include <cmath>
#include <exception>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/observability/log.h"

namespace agt::server {
namespace {

// 0.5 ms .. ~65 s in factors of 2: unary reads take well under a
// millisecond, certify calls and uploads seconds.
prometheus::Histogram::BucketBoundaries LatencyBuckets() {
  prometheus::Histogram::BucketBoundaries b;
  for (double s = 0.0005; s < 70; s *= 2) b.push_back(s);
  return b;
}

// 0.1 ms .. ~100 s in factors of 4: a step of a tiny model is well under a
// millisecond, one of a large model with many budgets takes seconds.
prometheus::Histogram::BucketBoundaries StepBuckets() {
  prometheus::Histogram::BucketBoundaries b;
  for (double s = 0.0001; s < 110; s *= 4) b.push_back(s);
  return b;
}

}  // namespace

// agt_jobs{state}, computed at scrape time from the store.
class Metrics::JobStates final : public prometheus::Collectable {
 public:
  void Set(JobStateCounter counter) {
    std::lock_guard<std::mutex> lock(mu_);
    counter_ = std::move(counter);
  }

  std::vector<prometheus::MetricFamily> Collect() const override {
    // Read under the lock, so that Set(nullptr) returns only once no scrape
    // uses the old counter (the store it reads may be closed next).
    std::lock_guard<std::mutex> lock(mu_);
    if (!counter_) return {};
    absl::StatusOr<std::map<std::string, int64_t>> counts = counter_();
    if (!counts.ok()) {
      Log(LogLevel::kWarn, "metrics_jobs_unreadable", {{"error", counts.status().ToString()}});
      return {};
    }
    prometheus::MetricFamily family;
    family.name = "agt_jobs";
    family.help = "Jobs by state, all tenants (read from the database at scrape time)";
    family.type = prometheus::MetricType::Gauge;
    for (const auto& [state, count] : *counts) {
      prometheus::ClientMetric metric;
      metric.label.push_back({"state", state});
      metric.gauge.value = static_cast<double>(count);
      family.metric.push_back(std::move(metric));
    }
    return {std::move(family)};
  }

 private:
  mutable std::mutex mu_;
  JobStateCounter counter_;
};

Metrics::Metrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      job_states_(std::make_shared<JobStates>()),
      rpc_requests_(prometheus::BuildCounter()
                        .Name("agt_rpc_requests_total")
                        .Help("Finished RPCs by full method name and gRPC status code")
                        .Register(*registry_)),
      rpc_latency_(prometheus::BuildHistogram()
                       .Name("agt_rpc_latency_seconds")
                       .Help("RPC latency from the call's start to its status, by method")
                       .Register(*registry_)),
      iterations_(prometheus::BuildCounter()
                      .Name("agt_training_iterations_total")
                      .Help("Certified training iterations done (rate() gives iterations/s)")
                      .Register(*registry_)
                      .Add({})),
      step_seconds_(prometheus::BuildHistogram()
                        .Name("agt_certified_step_seconds")
                        .Help("Wall time of one certified training iteration")
                        .Register(*registry_)
                        .Add({}, StepBuckets())),
      epsilon_spent_(prometheus::BuildCounter()
                         .Name("agt_privacy_epsilon_spent_total")
                         .Help("Privacy epsilon charged by private predictions, by tenant")
                         .Register(*registry_)),
      deletions_accepted_(prometheus::BuildCounter()
                              .Name("agt_deletions_accepted_total")
                              .Help("Deletion rows newly accepted (certified unlearning)")
                              .Register(*registry_)
                              .Add({})),
      jobs_vacuous_(prometheus::BuildCounter()
                        .Name("agt_jobs_vacuous_total")
                        .Help("Finished jobs whose certificates were flagged vacuous")
                        .Register(*registry_)
                        .Add({})),
      job_width_(prometheus::BuildGauge()
                     .Name("agt_job_bound_width")
                     .Help("Total width of the parameter box of a running job, per budget")
                     .Register(*registry_)),
      job_width_growth_(prometheus::BuildGauge()
                            .Name("agt_job_bound_width_growth")
                            .Help("Total width of a running job's box over its width after the "
                                  "first iteration this server process saw, per budget")
                            .Register(*registry_)) {}

Metrics::~Metrics() = default;

absl::Status Metrics::Serve(const std::string& host_port) {
  try {
    // One thread: scrapes are rare and small.
    exposer_ = std::make_unique<prometheus::Exposer>(host_port, 1);
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("--metrics-listen: cannot serve on ", host_port,
                     " (address in use or not on this machine?): ", e.what()));
  }
  exposer_->RegisterCollectable(registry_);
  exposer_->RegisterCollectable(job_states_);
  const std::vector<int> ports = exposer_->GetListeningPorts();
  port_ = ports.empty() ? 0 : ports.front();
  return absl::OkStatus();
}

void Metrics::SetJobStateCounter(JobStateCounter counter) { job_states_->Set(std::move(counter)); }

void Metrics::RpcFinished(const std::string& method, const std::string& code, double seconds) {
  rpc_requests_.Add({{"method", method}, {"code", code}}).Increment();
  // Add() with the same labels returns the existing histogram (the
  // boundaries are used only the first time).
  static const prometheus::Histogram::BucketBoundaries* const kBuckets =
      new prometheus::Histogram::BucketBoundaries(LatencyBuckets());
  rpc_latency_.Add({{"method", method}}, *kBuckets).Observe(seconds);
}

void Metrics::TrainingIteration(const std::string& job_id, double step_seconds,
                                const std::vector<MetricsBudget>& budgets,
                                const std::vector<double>& total_width) {
  iterations_.Increment();
  step_seconds_.Observe(step_seconds);
  std::lock_guard<std::mutex> lock(jobs_mu_);
  auto [it, inserted] = jobs_.try_emplace(job_id);
  JobGauges& gauges = it->second;
  const size_t k = std::min(budgets.size(), total_width.size());
  if (inserted || gauges.width.size() != k) {
    for (prometheus::Gauge* g : gauges.width) job_width_.Remove(g);
    for (prometheus::Gauge* g : gauges.growth) job_width_growth_.Remove(g);
    gauges = JobGauges();
    for (size_t j = 0; j < k; ++j) {
      const std::map<std::string, std::string> labels = {
          {"job", job_id},
          {"n", absl::StrCat(budgets[j].n)},
          {"label_n", absl::StrCat(budgets[j].label_n)}};
      gauges.width.push_back(&job_width_.Add(labels));
      gauges.growth.push_back(&job_width_growth_.Add(labels));
      gauges.first_width.push_back(total_width[j]);
    }
  }
  for (size_t j = 0; j < k; ++j) {
    gauges.width[j]->Set(total_width[j]);
    const double first = gauges.first_width[j];
    // A box of width 0 (budget 0) that stays 0 has grown by a factor 1.
    gauges.growth[j]->Set(first > 0 ? total_width[j] / first
                                    : (total_width[j] == 0 ? 1.0 : INFINITY));
  }
}

void Metrics::JobEnded(const std::string& job_id) {
  std::lock_guard<std::mutex> lock(jobs_mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return;
  for (prometheus::Gauge* g : it->second.width) job_width_.Remove(g);
  for (prometheus::Gauge* g : it->second.growth) job_width_growth_.Remove(g);
  jobs_.erase(it);
}

void Metrics::PrivacyEpsilonSpent(const std::string& tenant, double epsilon) {
  if (!(epsilon > 0) || !std::isfinite(epsilon)) return;
  epsilon_spent_.Add({{"tenant", tenant}}).Increment(epsilon);
}

void Metrics::DeletionsAccepted(int64_t rows) {
  if (rows > 0) deletions_accepted_.Increment(static_cast<double>(rows));
}

void Metrics::JobVacuous() { jobs_vacuous_.Increment(); }

std::string Metrics::Scrape() const {
  std::vector<prometheus::MetricFamily> families = registry_->Collect();
  for (prometheus::MetricFamily& f : job_states_->Collect()) families.push_back(std::move(f));
  return prometheus::TextSerializer().Serialize(families);
}

}  // namespace agt::server
