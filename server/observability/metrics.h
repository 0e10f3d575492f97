// The server's Prometheus metrics (`agt-server --metrics-listen HOST:PORT`,
// text exposition format at http://HOST:PORT/metrics; Debian's
// prometheus-cpp). One Metrics object owns the registry and every family;
// the parts of the server that count something hold a Metrics* that is null
// when metrics are off, so code and tests without metrics work unchanged.
//
// Families (server/README.md, "Metrics", lists them with their labels):
//   agt_rpc_requests_total{method,code}        counter, every finished RPC
//   agt_rpc_latency_seconds{method}            histogram, start to status
//   agt_jobs{state}                            gauge, read from the store at
//                                              every scrape (right across
//                                              restarts and processes)
//   agt_training_iterations_total              counter (rate() = iterations/s)
//   agt_certified_step_seconds                 histogram, wall time of one
//                                              certified training iteration
//   agt_privacy_epsilon_spent_total{tenant}    counter, epsilon charged
//   agt_deletions_accepted_total               counter, rows newly accepted
//   agt_job_bound_width{job,n,label_n}         gauge, running jobs only
//   agt_job_bound_width_growth{job,n,label_n}  gauge, the width over the
//                                              width after the first
//                                              iteration this process saw
//   agt_jobs_vacuous_total                     counter, jobs whose
//                                              certificates were flagged
//                                              vacuous
//
// Thread-safety: every method may be called from any thread.
#ifndef AGT_SERVER_OBSERVABILITY_METRICS_H_
#define AGT_SERVER_OBSERVABILITY_METRICS_H_

#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace agt::server {

// Counts of jobs by state name ("QUEUED", "RUNNING", ...), all tenants.
using JobStateCounter = std::function<absl::StatusOr<std::map<std::string, int64_t>>()>;

// One budget of a job: rows removed/moved (n) and labels flipped (label_n).
struct MetricsBudget {
  int n = 0;
  int label_n = 0;
};

class Metrics {
 public:
  Metrics();
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // Serves /metrics on `host_port` (e.g. "127.0.0.1:9464"; port 0 picks a
  // free one, see port()). Unavailable naming the address when it cannot be
  // bound. Call at most once.
  absl::Status Serve(const std::string& host_port);
  // The bound port once Serve succeeded, else 0.
  int port() const { return port_; }

  // agt_jobs{state} is read through `counter` at every scrape (an error is
  // logged and the family left out of that scrape). Set(nullptr) waits for
  // a scrape in progress, so the counter's objects may be closed after it.
  void SetJobStateCounter(JobStateCounter counter);

  // One finished RPC: `method` is the full name ("/agt.v1.X/Y"), `code` the
  // gRPC status code's canonical name ("OK", "NOT_FOUND", ...).
  void RpcFinished(const std::string& method, const std::string& code, double seconds);

  // One certified training iteration of a running job that took
  // `step_seconds`, with the total width of its parameter box per budget
  // (in the job's budget order) after it.
  void TrainingIteration(const std::string& job_id, double step_seconds,
                         const std::vector<MetricsBudget>& budgets,
                         const std::vector<double>& total_width);
  // The job stopped running here (finished, failed, cancelled or stopped):
  // its width gauges are removed.
  void JobEnded(const std::string& job_id);

  void PrivacyEpsilonSpent(const std::string& tenant, double epsilon);
  void DeletionsAccepted(int64_t rows);
  // A finished job's certificates were flagged vacuous (bounds non-finite
  // or too wide, or nothing certified at any n).
  void JobVacuous();

  // The text exposition of everything (what /metrics serves).
  std::string Scrape() const;

 private:
  class JobStates;
  struct JobGauges {
    std::vector<prometheus::Gauge*> width;
    std::vector<prometheus::Gauge*> growth;
    std::vector<double> first_width;
  };

  const std::shared_ptr<prometheus::Registry> registry_;
  const std::shared_ptr<JobStates> job_states_;
  prometheus::Family<prometheus::Counter>& rpc_requests_;
  prometheus::Family<prometheus::Histogram>& rpc_latency_;
  prometheus::Counter& iterations_;
  prometheus::Histogram& step_seconds_;
  prometheus::Family<prometheus::Counter>& epsilon_spent_;
  prometheus::Counter& deletions_accepted_;
  prometheus::Counter& jobs_vacuous_;
  prometheus::Family<prometheus::Gauge>& job_width_;
  prometheus::Family<prometheus::Gauge>& job_width_growth_;

  std::mutex jobs_mu_;
  std::map<std::string, JobGauges> jobs_;  // guarded by jobs_mu_; running jobs by id

  std::unique_ptr<prometheus::Exposer> exposer_;
  int port_ = 0;
};

}  // namespace agt::server

#endif  // AGT_SERVER_OBSERVABILITY_METRICS_H_
