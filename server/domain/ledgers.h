// The ledger decisions of the service, made here and carried out by the
// store's atomic primitives: a private prediction's charge against its
// privacy budget (Store::DebitPrivacyBudget, a conditional debit) and the
// acceptance of a deletion request (Store::AppendDeletions, whose decider is
// agt::DecideDeletion). The store guarantees that each read-check-write is
// one transaction, serialised against every other on the same budget or
// model, from any process or replica; this layer owns the arithmetic
// (core/privacy/budget.h, core/unlearn/unlearn.h) and the wording of the
// refusals.
//
// Thread-safety: as the store (all functions may be called concurrently).
#ifndef AGT_SERVER_DOMAIN_LEDGERS_H_
#define AGT_SERVER_DOMAIN_LEDGERS_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/train/batches.h"
#include "core/unlearn/unlearn.h"
#include "server/store/store.h"

namespace agt::server {

// ---- privacy budget

// One private prediction's charge against its budget.
struct PrivacyCharge {
  std::string client;        // who asks (recorded in its share)
  int64_t total_quanta = 0;  // the configured total, agt::TotalQuanta
  int64_t quanta = 0;        // the charge, agt::ChargeQuanta (>= 1)
  int64_t releases = 0;      // labels released (>= 1)
};

// The outcome of SpendPrivacyBudget: the budget after the charge and the
// answer stored with it (replayed: a retry of an earlier request, whose
// stored answer this is; nothing was charged now).
struct PrivacySpendResult {
  PrivacySpendRecord record;
  std::string response;
  bool replayed = false;
};

// A privacy budget refusal (ResourceExhausted) with its structured details:
// reason PRIVACY_BUDGET_EXHAUSTED, quota subject
// "tenant:<tenant>/dataset:<dataset>" (the budget is per tenant and training
// dataset) and metadata model_id, dataset_id, client.
absl::Status PrivacyBudgetRefusal(absl::Status status, const std::string& tenant,
                                  const std::string& model_id, const PrivacySpendRecord& record);

// ResourceExhausted (not yet a PrivacyBudgetRefusal) naming the budget's
// dataset, spent, requested and remaining (epsilon and quanta), unless
// `quanta` more fit `record` against `total_quanta`. InvalidArgument for a
// negative total.
absl::Status WouldFitPrivacyBudget(const std::string& tenant, const PrivacySpendRecord& record,
                                   int64_t quanta, int64_t total_quanta);

// Charges `charge.quanta` for `charge.releases` labels to the budget of
// (tenant, root dataset of model `model_id`) and records `answer`'s answer,
// in one store transaction (Store::DebitPrivacyBudget with limit = the
// total): a retry of `tag` is its stored answer, replayed, charging nothing;
// a charge that would pass the total is a PrivacyBudgetRefusal, charging
// nothing; concurrent calls from any replica never pass the total.
// InvalidArgument for quanta or releases < 1 or total < 0; NotFound for an
// unknown or foreign model.
absl::StatusOr<PrivacySpendResult> SpendPrivacyBudget(
    Store& store, const std::string& tenant, const std::string& model_id,
    const PrivacyCharge& charge, const RequestTag& tag,
    const std::function<std::string(const PrivacySpendRecord&)>& answer);

// ---- deletion ledger (paper section 10.1)

struct DeletionAppend {
  std::optional<agt::DeletionDecision> decision;  // unset: a retried request
  std::string answer;  // answer_of(decision), or the first answer of a retry
};

// Decides and records a deletion request for `row_ids` of model `model_id`
// (Store::AppendDeletions): agt::DecideDeletion on the ledger's accepted rows
// as they are in the store's transaction (budgets_sorted: the model's
// distinct removal budgets, ascending; training: the batches the model was
// trained on; deletions are counted per batch); the new rows are recorded,
// accepted iff the decision is. Concurrent calls (threads, processes,
// replicas) are serialised per model, so a row is never counted twice or
// lost. NotFound for an unknown or foreign model; DecideDeletion's errors
// (InvalidArgument naming an unknown row id) leave the ledger unchanged.
// With a non-empty `tag`, a retry is the first answer (decision unset), and
// answer_of(decision) is stored with the tag otherwise.
absl::StatusOr<DeletionAppend> AppendDeletions(
    Store& store, const std::string& tenant, const std::string& model_id,
    const std::vector<int>& budgets_sorted, const agt::BatchPlan& training,
    const std::vector<int64_t>& row_ids, const std::string& requested_by,
    const RequestTag& tag = {},
    const std::function<std::string(const agt::DeletionDecision&)>& answer_of = nullptr);

}  // namespace agt::server

#endif  // AGT_SERVER_DOMAIN_LEDGERS_H_
