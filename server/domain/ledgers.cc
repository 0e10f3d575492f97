#include "server/domain/ledgers.h"

#include <string>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "core/common/status_details.h"
#include "core/privacy/budget.h"

namespace agt::server {
namespace {

// Tenants and clients in messages come from callers: escaped and shortened.
std::string Quoted(absl::string_view text) {
  constexpr size_t kMaxShown = 80;
  std::string shown = absl::CHexEscape(text.substr(0, kMaxShown));
  if (text.size() > kMaxShown) shown += "...";
  return shown;
}

}  // namespace

absl::Status PrivacyBudgetRefusal(absl::Status status, const std::string& tenant,
                                  const std::string& model_id, const PrivacySpendRecord& record) {
  status = WithQuota(WithReason(std::move(status), kReasonPrivacyBudgetExhausted),
                     absl::StrCat("tenant:", tenant, "/dataset:", record.dataset_id));
  status = WithMetadata(std::move(status), "model_id", model_id);
  status = WithMetadata(std::move(status), "dataset_id", record.dataset_id);
  return WithMetadata(std::move(status), "client", record.client);
}

absl::Status WouldFitPrivacyBudget(const std::string& tenant, const PrivacySpendRecord& record,
                                   int64_t quanta, int64_t total_quanta) {
  absl::StatusOr<agt::PrivacyBudget> budget =
      agt::PrivacyBudget::Create(total_quanta, record.spent_quanta);
  if (!budget.ok()) return budget.status();
  const std::string whose =
      absl::StrCat("privacy budget of tenant \"", Quoted(tenant), "\"", " for dataset ",
                   record.dataset_id, " (every model trained on it, every token)");
  if (record.spent_quanta > total_quanta) {
    // The total was lowered below what was spent: nothing is left.
    return absl::ResourceExhaustedError(absl::StrCat(
        whose, " is used up: spent epsilon ", agt::EpsilonOfQuantaUp(record.spent_quanta), " (",
        record.spent_quanta, " quanta) of a total of ", agt::EpsilonOfQuantaDown(total_quanta),
        "; client \"", Quoted(record.client), "\"", " asked for ", agt::EpsilonOfQuantaUp(quanta),
        "; nothing was spent"));
  }
  if (absl::Status s = budget->Spend(quanta); !s.ok()) {
    if (!absl::IsResourceExhausted(s)) return s;
    return absl::ResourceExhaustedError(absl::StrCat(
        whose, " exceeded: client \"", Quoted(record.client), "\" asked for epsilon ",
        agt::EpsilonOfQuantaUp(quanta), " (", quanta, " quanta of 2^-40) but only ",
        agt::EpsilonOfQuantaDown(budget->remaining_quanta()), " (", budget->remaining_quanta(),
        " quanta) of ", agt::EpsilonOfQuantaDown(total_quanta), " remains (spent ",
        agt::EpsilonOfQuantaUp(record.spent_quanta), "); nothing was spent"));
  }
  return absl::OkStatus();
}

absl::StatusOr<PrivacySpendResult> SpendPrivacyBudget(
    Store& store, const std::string& tenant, const std::string& model_id,
    const PrivacyCharge& charge, const RequestTag& tag,
    const std::function<std::string(const PrivacySpendRecord&)>& answer) {
  if (charge.releases < 1 || charge.quanta < 1 || charge.total_quanta < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("privacy charge of ", charge.quanta, " quanta for ", charge.releases,
                     " releases against a total of ", charge.total_quanta,
                     " quanta: quanta and releases must be >= 1, the total >= 0"));
  }
  // The budget's rule (core/privacy/budget.h) is spent + charge <= total in
  // integer quanta: exactly the store's conditional debit with the total as
  // its limit.
  PrivacyDebit debit;
  debit.client = charge.client;
  debit.limit_quanta = charge.total_quanta;
  debit.quanta = charge.quanta;
  debit.releases = charge.releases;
  absl::StatusOr<PrivacyDebitResult> debited =
      store.DebitPrivacyBudget(tenant, model_id, debit, tag, answer);
  if (!debited.ok()) return debited.status();
  if (!debited->replayed && !debited->debited) {
    absl::Status refused =
        WouldFitPrivacyBudget(tenant, debited->record, charge.quanta, charge.total_quanta);
    if (refused.ok()) {
      // The store and the budget disagree: a bug, never a silent charge.
      return absl::InternalError(absl::StrCat("the store refused a privacy debit of ",
                                              charge.quanta, " quanta that fits the total ",
                                              charge.total_quanta));
    }
    if (!absl::IsResourceExhausted(refused)) return refused;
    return PrivacyBudgetRefusal(std::move(refused), tenant, model_id, debited->record);
  }
  PrivacySpendResult out;
  out.record = std::move(debited->record);
  out.response = std::move(debited->response);
  out.replayed = debited->replayed;
  return out;
}

absl::StatusOr<DeletionAppend> AppendDeletions(
    Store& store, const std::string& tenant, const std::string& model_id,
    const std::vector<int>& budgets_sorted, const agt::BatchPlan& training,
    const std::vector<int64_t>& row_ids, const std::string& requested_by, const RequestTag& tag,
    const std::function<std::string(const agt::DeletionDecision&)>& answer_of) {
  // The decision the committed transaction was made with (the store may
  // call the decider again when it retries; the last call is the one that
  // committed).
  std::optional<agt::DeletionDecision> decided;
  const DeletionDecider decide =
      [&](const std::vector<int64_t>& accepted) -> absl::StatusOr<DeletionWrite> {
    absl::StatusOr<agt::DeletionDecision> decision =
        agt::DecideDeletion(budgets_sorted, training, accepted, row_ids);
    if (!decision.ok()) return decision.status();
    DeletionWrite write;
    write.rows = decision->new_rows;
    write.accepted = decision->accepted;
    if (answer_of) write.answer = answer_of(*decision);
    decided = *std::move(decision);
    return write;
  };
  absl::StatusOr<Store::DeletionWriteResult> written =
      store.AppendDeletions(tenant, model_id, requested_by, tag, decide);
  if (!written.ok()) return written.status();
  DeletionAppend out;
  out.answer = std::move(written->answer);
  if (!written->replayed) out.decision = std::move(decided);
  return out;
}

}  // namespace agt::server
