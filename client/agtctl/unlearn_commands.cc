// agtctl unlearn request|status|check|ledger|retrain: deletion requests
// against a model trained under removal budgets, its unlearning status,
// which predictions are certified unchanged by the accepted deletions, the
// ledger, and the in-place retraining without the deleted rows.
#include <cstdint>
#include <limits>
#include <ostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/agtctl/agtctl.h"
#include "client/agtctl/output.h"
#include "client/lib/arrays.h"
#include "client/lib/exit_codes.h"
#include "client/lib/format.h"
#include "client/lib/inputs.h"
#include "nlohmann/json.hpp"

namespace agt::client {
namespace {

// Row ids separated by commas or white space; `what` names the source.
absl::Status AppendRowIds(absl::string_view what, absl::string_view text,
                          std::vector<int64_t>* out) {
  for (absl::string_view part :
       absl::StrSplit(text, absl::ByAnyChar(", \t\r\n"), absl::SkipWhitespace())) {
    absl::StatusOr<int64_t> id = ParseInt(what, part, 0, std::numeric_limits<int64_t>::max());
    if (!id.ok()) return id.status();
    out->push_back(*id);
  }
  return absl::OkStatus();
}

std::string StateName(agt::v1::UnlearningState state) {
  switch (state) {
    case agt::v1::UNLEARNING_STATE_ACTIVE:
      return "ACTIVE";
    case agt::v1::UNLEARNING_STATE_RETRAINING_REQUIRED:
      return "RETRAINING_REQUIRED";
    case agt::v1::UNLEARNING_STATE_SUPERSEDED:
      return "SUPERSEDED";
    default:
      return "UNSPECIFIED";
  }
}

int Request(CommandContext& ctx) {
  agt::v1::RequestDeletionRequest request;
  request.set_model_id(ctx.positionals()[0]);
  request.set_retrain_if_needed(ctx.args().Has("retrain"));
  std::vector<int64_t> rows;
  for (size_t i = 1; i < ctx.positionals().size(); ++i) {
    if (absl::Status s = AppendRowIds("ROW_IDS", ctx.positionals()[i], &rows); !s.ok()) {
      return ctx.FailUsage(s);
    }
  }
  if (auto path = ctx.args().Get("ids-file")) {
    absl::StatusOr<std::string> text = ReadFile(std::string(*path));
    if (!text.ok()) return ctx.FailUsage(text.status());
    if (absl::Status s = AppendRowIds(*path, *text, &rows); !s.ok()) return ctx.FailUsage(s);
  }
  if (rows.empty()) {
    return ctx.FailUsage(absl::InvalidArgumentError("give at least one row id (or --ids-file)"));
  }
  request.mutable_row_ids()->Add(rows.begin(), rows.end());
  absl::StatusOr<const Client*> client = ctx.client();
  if (!client.ok()) return ctx.FailUsage(client.status());
  request.set_request_id(ctx.RequestId());
  absl::StatusOr<agt::v1::RequestDeletionResponse> response =
      ctx.CallIdempotent([&] { return (*client)->RequestDeletion(request); });
  if (!response.ok()) return ctx.Fail(response.status());
  if (ctx.json()) {
    ctx.out() << ToJson(*response);
  } else if (ctx.quiet()) {
    ctx.out() << response->deletions() << "\n";
  } else {
    PrintKeyValues(
        ctx.out(),
        {{"accepted", response->accepted() ? "yes" : "no"},
         {"deletions", absl::StrCat(response->deletions(), " (at most ",
                                    response->max_deletions_per_batch(), " in one batch, max ",
                                    response->max_budget(), ")")},
         {"newly accepted", absl::StrCat(response->newly_accepted())},
         {"duplicates", absl::StrCat(response->duplicates())},
         {"retraining", response->retraining_required() ? "required" : "not needed"},
         {"retraining job",
          response->retraining_job_id().empty() ? "-" : response->retraining_job_id()},
         {"message", response->message()}});
  }
  return kExitOk;
}

int Status(CommandContext& ctx) {
  agt::v1::GetUnlearningStatusRequest request;
  request.set_model_id(ctx.positionals()[0]);
  absl::StatusOr<const Client*> client = ctx.client();
  if (!client.ok()) return ctx.FailUsage(client.status());
  absl::StatusOr<agt::v1::GetUnlearningStatusResponse> response =
      (*client)->GetUnlearningStatus(request);
  if (!response.ok()) return ctx.Fail(response.status());
  if (ctx.json()) {
    ctx.out() << ToJson(*response);
    return kExitOk;
  }
  if (ctx.quiet()) {
    ctx.out() << StateName(response->state()) << "\n";
    return kExitOk;
  }
  KeyValues rows = {
      {"state", StateName(response->state())},
      {"deletions", absl::StrCat(response->deletions(), " (at most ",
                                 response->max_deletions_per_batch(), " in one batch, max ",
                                 response->max_budget(), ")")},
      {"audit certified", response->has_audit()
                              ? absl::StrCat(FormatNumber(response->audit_certified_fraction()),
                                             " of ", response->audit_rows(), " training rows")
                              : std::string("no audit set (training dataset deleted)")}};
  if (!response->retraining_job_id().empty()) {
    rows.push_back({"retraining job", response->retraining_job_id()});
  }
  if (!response->successor_model_id().empty()) {
    rows.push_back({"successor model", response->successor_model_id()});
  }
  PrintKeyValues(ctx.out(), rows);
  return kExitOk;
}

int Check(CommandContext& ctx) {
  absl::StatusOr<InputRows> rows = ReadQueryInputs(ctx.positionals()[1], false);
  if (!rows.ok()) return ctx.FailUsage(rows.status());
  agt::v1::CheckUnlearningRequest request;
  request.set_model_id(ctx.positionals()[0]);
  *request.mutable_inputs() = rows->inputs;
  absl::StatusOr<const Client*> client = ctx.client();
  if (!client.ok()) return ctx.FailUsage(client.status());
  absl::StatusOr<agt::v1::CheckUnlearningResponse> response = (*client)->CheckUnlearning(request);
  if (!response.ok()) return ctx.Fail(response.status());
  if (ctx.json()) {
    ctx.out() << ToJson(*response);
    return kExitOk;
  }
  if (ctx.quiet()) {
    for (const auto& p : response->points()) {
      ctx.out() << (p.certified_unchanged() ? "certified" : "uncertified") << "\n";
    }
    return kExitOk;
  }
  Table table({"ROW", "PRED", "UNCHANGED", "LARGEST STABLE n"});
  int certified = 0;
  for (int i = 0; i < response->points_size(); ++i) {
    const agt::v1::UnlearningCheck& p = response->points(i);
    certified += p.certified_unchanged();
    table.AddRow({absl::StrCat(i), absl::StrCat(p.predicted_class()),
                  p.certified_unchanged() ? "certified" : "-",
                  p.largest_stable_budget() >= 0 ? absl::StrCat(p.largest_stable_budget())
                                                 : std::string("none")});
  }
  ctx.out() << table.Render() << "\n"
            << certified << "/" << response->points_size()
            << " predictions certified unchanged by d = " << response->deletions()
            << " deletions, at most m = " << response->max_deletions_per_batch()
            << " in one batch (max N " << response->max_budget() << ")\n";
  if (!response->guarantee().empty()) ctx.out() << "\n" << WrapText(response->guarantee(), 100);
  return kExitOk;
}

int Ledger(CommandContext& ctx) {
  absl::StatusOr<const Client*> client = ctx.client();
  if (!client.ok()) return ctx.FailUsage(client.status());
  agt::v1::ListDeletionsRequest request;
  request.set_model_id(ctx.positionals()[0]);
  absl::StatusOr<agt::v1::ListDeletionsResponse> listed =
      ListAllPages<agt::v1::ListDeletionsResponse>(
          request,
          [&](const agt::v1::ListDeletionsRequest& r) { return (*client)->ListDeletions(r); });
  if (!listed.ok()) return ctx.Fail(listed.status());
  const agt::v1::ListDeletionsResponse& all = *listed;
  if (ctx.json()) {
    ctx.out() << ToJson(all);
    return kExitOk;
  }
  if (ctx.quiet()) {
    for (const auto& d : all.deletions()) ctx.out() << d.row_id() << "\n";
    return kExitOk;
  }
  Table table({"ROW", "BATCH", "ACCEPTED", "REQUESTED BY", "REQUESTED"});
  int64_t accepted = 0;
  for (const auto& d : all.deletions()) {
    accepted += d.accepted();
    table.AddRow({absl::StrCat(d.row_id()),
                  d.batch() >= 0 ? absl::StrCat(d.batch()) : std::string("tail"),
                  d.accepted() ? "yes" : "no (past max N)", d.requested_by(),
                  FormatTimestamp(d.requested())});
  }
  ctx.out() << table.Render() << "\n"
            << all.deletions_size() << " row(s) in the ledger, " << accepted << " accepted (d)\n";
  return kExitOk;
}

int Retrain(CommandContext& ctx) {
  agt::v1::RetrainInPlaceRequest request;
  request.set_model_id(ctx.positionals()[0]);
  absl::StatusOr<const Client*> client = ctx.client();
  if (!client.ok()) return ctx.FailUsage(client.status());
  absl::StatusOr<agt::v1::RetrainInPlaceResponse> response = (*client)->RetrainInPlace(request);
  if (!response.ok()) return ctx.Fail(response.status());
  if (ctx.json()) {
    ctx.out() << ToJson(*response);
  } else if (ctx.quiet()) {
    ctx.out() << response->job_id() << "\n";
  } else {
    std::vector<std::string> kept, dropped;
    for (int n : response->budgets()) kept.push_back(absl::StrCat(n));
    for (int n : response->dropped_budgets()) dropped.push_back(absl::StrCat(n));
    PrintKeyValues(ctx.out(),
                   {{"job", response->job_id()},
                    {"enqueued", response->enqueued() ? "yes" : "no (the model's existing job)"},
                    {"removed rows", absl::StrCat(response->removed_rows())},
                    {"budgets", kept.empty() ? std::string("-") : absl::StrJoin(kept, ", ")},
                    {"dropped budgets",
                     dropped.empty() ? std::string("-") : absl::StrJoin(dropped, ", ")},
                    {"message", response->message()}});
  }
  return kExitOk;
}

}  // namespace

std::vector<Command> UnlearnCommands() {
  std::vector<Command> commands;
  commands.push_back(
      Command{{"unlearn", "request"},
              "MODEL_ID [ROW_IDS...] [--ids-file FILE] [--retrain]",
              "request deletion of training rows from a model trained under removal budgets",
              "ROW_IDS: 0-based training row indices, separated by spaces or commas; --ids-file\n"
              "adds ids from a file (commas or white space). Deletions are counted per batch:\n"
              "accepted while no trained batch holds more than the largest removal budget N of\n"
              "them (d in total may be far more); past it the answer is 'retraining required'\n"
              "and, with --retrain, the in-place retraining is enqueued (see 'unlearn retrain').\n"
              "With --quiet: d.\n",
              {{"ids-file", true, 0, "FILE", "read more row ids from FILE"},
               {"retrain", false, 0, "", "past max N, enqueue the in-place retraining"}},
              1,
              1 << 20,
              Request});
  commands.push_back(
      Command{{"unlearn", "status"},
              "MODEL_ID",
              "show a model's deletions, state and the audit fraction still certified",
              "State: ACTIVE, RETRAINING_REQUIRED, or SUPERSEDED (a retraining succeeded; the\n"
              "successor model is shown). The audit fraction certifies up to 1000 rows of the\n"
              "training dataset. With --quiet: the state.\n",
              {},
              1,
              1,
              Status});
  commands.push_back(
      Command{{"unlearn", "check"},
              "MODEL_ID INPUTS.csv",
              "which predictions are certified unchanged by the accepted deletions",
              "INPUTS.csv: one point per row (raw features), an optional header. A prediction is\n"
              "certified unchanged (for the model retrained in place without the deleted rows)\n"
              "iff it is stable at some trained removal budget n >= m, the most deleted rows in\n"
              "one batch.\n"
              "With --quiet: 'certified' or 'uncertified' per point.\n",
              {},
              2,
              2,
              Check});
  commands.push_back(
      Command{{"unlearn", "ledger"},
              "MODEL_ID",
              "list a model's deletion ledger: rows, who requested them, when, accepted or not",
              "One line per distinct training row ever requested, in row order, with its batch\n"
              "('tail': never trained). Accepted rows count in d; rows requested past max N are\n"
              "recorded as not accepted (retraining required) and are left out of a retraining\n"
              "too. With --quiet: the row ids.\n",
              {},
              1,
              1,
              Ledger});
  commands.push_back(Command{
      {"unlearn", "retrain"},
      "MODEL_ID",
      "retrain a model in place without its deleted rows, at any number of deletions",
      "Enqueues a training job with the model's spec on its own dataset, every ledger row\n"
      "(accepted or not, plus the rows the model's training already removed) removed in\n"
      "place: every other row stays in its batch, so the model's removal certificates are\n"
      "about this retraining. Budgets that no longer fit the smallest batch left are dropped\n"
      "(shown). Returns the model's existing retraining job while it is queued or running, or\n"
      "when it succeeded and already left out every ledger row. Needs the admin or trainer\n"
      "role. Follow the job with 'agtctl jobs watch'. With --quiet: the job id.\n",
      {},
      1,
      1,
      Retrain});
  return commands;
}

}  // namespace agt::client
