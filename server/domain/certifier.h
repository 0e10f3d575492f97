// Certificates from a stored model (paper sections 8-9): per-point logit
// bounds, stability and correctness per budget and the largest stable budget;
// certified accuracy / MSE bounds over a labelled set. The maths is the
// core's (core/certify/certify.h); this layer validates requests, applies the
// model's polynomial expansion, orders budgets by size and phrases the
// guarantee.
//
// Soundness claim (inherited from the core): if each stored box contains
// every parameter vector reachable under its budget, a point reported stable
// at a budget gets the nominal prediction from every such model (and, with
// test_epsilon > 0, for every input within that l-infinity radius of the
// expanded input); worst/best accuracy and MSE bound every such model.
// Every response carries a `guarantee` text stating the assumptions.
//
// Regression models (num_classes 0) have no classes: their points carry
// logit bounds only (stable/correct empty, predicted_class 0,
// largest_stable_budget -1); labels are refused for them in
// CertifyPredictions.
//
// Thread-safety: CertifyPredictions / CertifyDataset are pure; ModelCache is
// thread-safe.
#ifndef AGT_SERVER_DOMAIN_CERTIFIER_H_
#define AGT_SERVER_DOMAIN_CERTIFIER_H_

#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"
#include "agt/v1/models.pb.h"
#include "core/data/dataset.h"
#include "server/store/store.h"

namespace agt::server {

// The most input rows one CertifyPredictions call may carry.
inline constexpr int64_t kMaxCertifyRows = 100'000;
// The largest test_epsilon accepted (a radius beyond this certifies nothing
// and only risks overflow).
inline constexpr double kMaxTestEpsilon = 1e6;

// Validates the request against the model (inputs.rows >= 1 and <=
// kMaxCertifyRows, inputs.cols == model.input_features, values size ==
// rows * cols, all values finite, test_epsilon finite in [0, kMaxTestEpsilon],
// stability_rule known, labels empty or one per row and valid classes) and
// certifies every row against every stored box. Errors: InvalidArgument
// naming the request field ("inputs.cols: ..."); DataLoss if the model's
// stored spec does not parse. request.model_id is not looked at.
absl::StatusOr<agt::v1::CertifyPredictionsResponse> CertifyPredictions(
    const ModelRecord& model, const agt::v1::CertifyPredictionsRequest& request);

// Per budget (in the model's budget order): classification accuracy
// (nominal / worst / best) and stable fraction, or regression MSE (nominal /
// worst / best), over every row of `data` (raw features, expanded here).
// The data must have model.input_features columns, at least one row, and for
// classification models labels that are classes of the model (dataset
// num_classes equal to the model's). Rows are processed in chunks, so memory
// stays bounded for large sets.
absl::StatusOr<agt::v1::CertifyDatasetResponse> CertifyDataset(const ModelRecord& model,
                                                               const agt::Dataset& data,
                                                               double test_epsilon,
                                                               agt::v1::StabilityRule rule);

// The model's distinct budgets n (Budget.n of its boxes), ascending.
std::vector<int> DistinctBudgets(const ModelRecord& model);

// Per distinct budget (`budgets` from DistinctBudgets) and per point of a
// CertifyPredictions response of the model (its `stable` in the model's box
// order): stable at n iff stable in some box of that n.
std::vector<std::vector<bool>> StablePerDistinctBudget(
    const ModelRecord& model, const std::vector<int>& budgets,
    const agt::v1::CertifyPredictionsResponse& certified);

// The assumptions under which the model's certificates hold, in words: fixed
// data order, initialisation and hyper-parameters; budgets per batch; the
// floating-point rounding caveat; the momentum caveat when the job used it;
// the test-time radius when > 0.
std::string GuaranteeText(const ModelRecord& model, double test_epsilon);

// A thread-safe LRU cache of stored models (immutable once written), keyed by
// tenant and model id, so repeated certify calls do not read SQLite. Holds at
// most `capacity` models (capacity >= 1); returned pointers stay valid after
// eviction. Errors from the store (NotFound for unknown or foreign ids) are
// returned and not cached.
class ModelCache {
 public:
  explicit ModelCache(size_t capacity);
  ModelCache(const ModelCache&) = delete;
  ModelCache& operator=(const ModelCache&) = delete;

  absl::StatusOr<std::shared_ptr<const ModelRecord>> Get(Store* store, const std::string& tenant,
                                                         const std::string& model_id);

  size_t size() const;
  int64_t hits() const;
  int64_t misses() const;

 private:
  using Key = std::string;  // tenant + '\0' + model id
  struct Entry {
    Key key;
    std::shared_ptr<const ModelRecord> model;
  };

  const size_t capacity_;
  mutable std::mutex mu_;
  std::list<Entry> lru_;  // most recently used first
  std::unordered_map<Key, std::list<Entry>::iterator> index_;
  int64_t hits_ = 0;
  int64_t misses_ = 0;
};

}  // namespace agt::server

#endif  // AGT_SERVER_DOMAIN_CERTIFIER_H_
