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
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "absl/status/statusor.h"
#include "agt/v1/models.pb.h"
#include "core/data/dataset.h"
#include "server/domain/working_memory.h"
#include "server/store/store.h"

namespace agt::server {

// The most input rows one CertifyPredictions call may carry.
inline constexpr int64_t kMaxCertifyRows = 100'000;
// Working memory one certify call may use at a time. Rows are expanded,
// bounded and reduced in chunks of as many rows as fit in it
// (CertifyChunkRows), so a call's memory does not grow with its row count.
inline constexpr int64_t kCertifyWorkingBytes = int64_t{64} << 20;
// The most rows in one chunk (small models need no more for speed).
inline constexpr int64_t kMaxCertifyChunkRows = 4096;
// The most rows x trained parameters in one chunk: bounds the work between
// two cancellation checks to a few tens of milliseconds.
inline constexpr int64_t kCertifyChunkWork = int64_t{1} << 24;

struct CertifyOptions {
  int64_t working_bytes = kCertifyWorkingBytes;
  // Asked before every chunk (KeepGoing, working_memory.h).
  KeepGoing keep_going;
  // Optional: the server-wide budget the call reserves its chunk's bytes
  // from (waiting while others hold it); chunks then also fit its limit.
  WorkingMemory* memory = nullptr;
};

// An upper estimate of the bytes certifying one row of `model` takes: its
// expanded input, the interval activations of every layer and the
// temporaries of the bound computation (12 doubles per expanded input and
// per layer output; the core's passes take about 10).
int64_t CertifyRowBytes(const ModelRecord& model);

// Rows per chunk: min(kMaxCertifyChunkRows, working_bytes /
// CertifyRowBytes(model), kCertifyChunkWork / parameters), at least 1.
// ResourceExhausted naming both figures when not even one row fits in
// working_bytes.
absl::StatusOr<int64_t> CertifyChunkRows(const ModelRecord& model, int64_t working_bytes);
// The largest test_epsilon accepted (a radius beyond this certifies nothing
// and only risks overflow).
inline constexpr double kMaxTestEpsilon = 1e6;

// Validates the request against the model (inputs.rows >= 1 and <=
// kMaxCertifyRows, inputs.cols == model.input_features, values size ==
// rows * cols, all values finite, test_epsilon finite in [0, kMaxTestEpsilon],
// stability_rule known, labels empty or one per row and valid classes) and
// certifies every row against every stored box, a chunk of rows at a time
// (CertifyChunkRows). Errors: InvalidArgument naming the request field
// ("inputs.cols: ..."); DataLoss if the model's stored spec does not parse;
// ResourceExhausted when one row does not fit in options.working_bytes or
// an allocation fails; whatever options.keep_going returns. No exception
// escapes. request.model_id is not looked at.
absl::StatusOr<agt::v1::CertifyPredictionsResponse> CertifyPredictions(
    const ModelRecord& model, const agt::v1::CertifyPredictionsRequest& request,
    const CertifyOptions& options = {});

// Per budget (in the model's budget order): classification accuracy
// (nominal / worst / best) and stable fraction, or regression MSE (nominal /
// worst / best), over every row of `data` (raw features, expanded here).
// The data must have model.input_features columns, at least one row, and for
// classification models labels that are classes of the model (dataset
// num_classes equal to the model's). Rows are processed in chunks
// (CertifyChunkRows), so memory beyond `data` stays within
// options.working_bytes; options.keep_going is asked before every chunk and
// box. Errors as CertifyPredictions.
absl::StatusOr<agt::v1::CertifyDatasetResponse> CertifyDataset(const ModelRecord& model,
                                                               const agt::Dataset& data,
                                                               double test_epsilon,
                                                               agt::v1::StabilityRule rule,
                                                               const CertifyOptions& options = {});

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
// returned and not cached. A model deleted from the store is Forget-ten: its
// entry goes and the id is remembered (ids are never reused), so a read that
// raced the deletion cannot put it back; later Gets are NotFound.
class ModelCache {
 public:
  explicit ModelCache(size_t capacity);
  ModelCache(const ModelCache&) = delete;
  ModelCache& operator=(const ModelCache&) = delete;

  absl::StatusOr<std::shared_ptr<const ModelRecord>> Get(Store* store, const std::string& tenant,
                                                         const std::string& model_id);
  // After the store deleted the model: drops it and refuses it from now on.
  void Forget(const std::string& tenant, const std::string& model_id);

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
  std::unordered_set<Key> forgotten_;  // one short string per deleted model
  int64_t hits_ = 0;
  int64_t misses_ = 0;
};

}  // namespace agt::server

#endif  // AGT_SERVER_DOMAIN_CERTIFIER_H_
