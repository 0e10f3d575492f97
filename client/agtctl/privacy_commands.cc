// agtctl predict --private and agtctl budget: differentially private labels
// released by the PrivacyService (paper section 10.2), and the caller's
// privacy budget for a model.
//
// predict takes --private on purpose: it releases noisy labels and spends
// privacy budget, and must never be mistaken for (or later silently become)
// a plain prediction; plain, certified predictions are `agtctl certify`.
#include <limits>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/agtctl/agtctl.h"
#include "client/agtctl/output.h"
#include "client/lib/arrays.h"
#include "client/lib/exit_codes.h"
#include "client/lib/format.h"
#include "client/lib/inputs.h"

namespace agt::client {
namespace {

// Budget numbers are sums of user-given epsilons: six significant digits
// show them as typed ("0.3", not "0.30000000000000004").
constexpr int kEpsilonDigits = 6;

std::string FormatEpsilon(double epsilon) { return FormatNumber(epsilon, kEpsilonDigits); }

absl::StatusOr<double> ParseEpsilon(const ParsedArgs& args) {
  std::optional<std::string> text = args.Get("epsilon");
  if (!text) {
    return absl::InvalidArgumentError(
        "--epsilon E is required: the privacy cost of each released label (e.g. 0.5)");
  }
  absl::StatusOr<double> epsilon = ParseDouble(
      "--epsilon", *text, -std::numeric_limits<double>::max(), std::numeric_limits<double>::max());
  if (!epsilon.ok()) return epsilon.status();
  if (*epsilon <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--epsilon ", *text, " must be > 0 (the privacy cost of each label)"));
  }
  return *epsilon;
}

absl::StatusOr<agt::v1::PrivacyMechanism> ParseMechanism(const ParsedArgs& args) {
  std::optional<std::string> name = args.Get("mechanism");
  // Unspecified: the server applies smooth sensitivity, or refuses the model
  // naming the mechanism that applies (never a silent fallback).
  if (!name) return agt::v1::PRIVACY_MECHANISM_UNSPECIFIED;
  if (*name == "smooth") return agt::v1::PRIVACY_MECHANISM_SMOOTH_SENSITIVITY;
  if (*name == "laplace") return agt::v1::PRIVACY_MECHANISM_GLOBAL_LAPLACE;
  if (*name == "argmax") return agt::v1::PRIVACY_MECHANISM_REPORT_NOISY_ARGMAX;
  return absl::InvalidArgumentError(
      absl::StrCat("--mechanism '", *name, "' is not smooth, laplace or argmax"));
}

std::string MechanismName(agt::v1::PrivacyMechanism mechanism) {
  switch (mechanism) {
    case agt::v1::PRIVACY_MECHANISM_SMOOTH_SENSITIVITY:
      return "smooth sensitivity (Cauchy noise scaled by the certified n*)";
    case agt::v1::PRIVACY_MECHANISM_GLOBAL_LAPLACE:
      return "global Laplace (noise scale 1/epsilon, no certificate)";
    case agt::v1::PRIVACY_MECHANISM_REPORT_NOISY_ARGMAX:
      return "report-noisy-argmax (Laplace noise 2/epsilon per class)";
    default:
      return "unspecified";
  }
}

std::string BudgetLine(const agt::v1::PrivacyBudget& budget) {
  return absl::StrCat("spent ", FormatEpsilon(budget.spent_epsilon()), " of ",
                      FormatEpsilon(budget.total_epsilon()), ", remaining ",
                      FormatEpsilon(budget.remaining_epsilon()), " (", budget.releases(),
                      " releases)");
}

// n* and the noise scale are -1 when the server withholds them (the caller
// may not read the model); n* means nothing for the global mechanisms.
std::string NStarCell(const agt::v1::PrivateLabel& label, agt::v1::PrivacyMechanism mechanism) {
  if (label.n_star() < 0) return "withheld";
  if (mechanism != agt::v1::PRIVACY_MECHANISM_SMOOTH_SENSITIVITY) return "-";
  return absl::StrCat(label.n_star());
}

std::string NoiseScaleCell(const agt::v1::PrivateLabel& label) {
  if (label.noise_scale() < 0) return "withheld";
  return FormatNumber(label.noise_scale());
}

void PrintRelease(std::ostream& out, const agt::v1::PrivatePredictResponse& response) {
  Table table({"ROW", "LABEL", "n*", "NOISE SCALE"});
  for (int i = 0; i < response.labels_size(); ++i) {
    const agt::v1::PrivateLabel& label = response.labels(i);
    table.AddRow({absl::StrCat(i), absl::StrCat(label.label()),
                  NStarCell(label, response.mechanism()), NoiseScaleCell(label)});
  }
  out << table.Render() << "\n";
  const std::string epsilon =
      absl::StrCat(FormatEpsilon(response.epsilon_per_label()), " per label, ",
                   FormatEpsilon(response.epsilon_spent()), " spent by this request (",
                   response.labels_size(), " labels)");
  PrintKeyValues(out, {{"mechanism", MechanismName(response.mechanism())},
                       {"epsilon", epsilon},
                       {"budget", BudgetLine(response.budget())},
                       {"client", response.budget().client()}});
  if (!response.guarantee().empty()) out << "\n" << WrapText(response.guarantee(), 100);
}

int Predict(CommandContext& ctx) {
  if (!ctx.args().Has("private")) {
    return ctx.FailUsage(absl::InvalidArgumentError(
        "predict releases differentially private labels only and needs --private; plain "
        "(certified) predictions are 'agtctl certify MODEL_ID INPUTS.csv'"));
  }
  absl::StatusOr<double> epsilon = ParseEpsilon(ctx.args());
  if (!epsilon.ok()) return ctx.FailUsage(epsilon.status());
  absl::StatusOr<agt::v1::PrivacyMechanism> mechanism = ParseMechanism(ctx.args());
  if (!mechanism.ok()) return ctx.FailUsage(mechanism.status());
  // Local input first: a bad file costs no round trip (and no budget).
  absl::StatusOr<InputRows> rows = ReadQueryInputs(ctx.positionals()[1], false);
  if (!rows.ok()) return ctx.FailUsage(rows.status());

  agt::v1::PrivatePredictRequest request;
  request.set_model_id(ctx.positionals()[0]);
  *request.mutable_inputs() = rows->inputs;
  request.set_epsilon(*epsilon);
  request.set_mechanism(*mechanism);
  absl::StatusOr<const Client*> client = ctx.client();
  if (!client.ok()) return ctx.FailUsage(client.status());
  request.set_request_id(ctx.RequestId());
  absl::StatusOr<agt::v1::PrivatePredictResponse> response =
      ctx.CallIdempotent([&] { return (*client)->PrivatePredict(request); });
  if (!response.ok()) {
    const int code = ctx.Fail(response.status());
    if (absl::IsResourceExhausted(response.status())) {
      ctx.err() << "agtctl: no label was released; 'agtctl budget " << request.model_id()
                << "' shows the epsilon you have left\n";
    }
    return code;
  }
  if (ctx.json()) {
    ctx.out() << ToJson(*response);
  } else if (ctx.quiet()) {
    for (const agt::v1::PrivateLabel& label : response->labels()) {
      ctx.out() << label.label() << "\n";
    }
  } else {
    PrintRelease(ctx.out(), *response);
  }
  return kExitOk;
}

int Budget(CommandContext& ctx) {
  agt::v1::GetPrivacyBudgetRequest request;
  request.set_model_id(ctx.positionals()[0]);
  absl::StatusOr<const Client*> client = ctx.client();
  if (!client.ok()) return ctx.FailUsage(client.status());
  absl::StatusOr<agt::v1::GetPrivacyBudgetResponse> response = (*client)->GetPrivacyBudget(request);
  if (!response.ok()) return ctx.Fail(response.status());
  const agt::v1::PrivacyBudget& budget = response->budget();
  if (ctx.json()) {
    ctx.out() << ToJson(*response);
  } else if (ctx.quiet()) {
    ctx.out() << FormatEpsilon(budget.remaining_epsilon()) << "\n";
  } else {
    PrintKeyValues(ctx.out(),
                   {{"client", budget.client()},
                    {"dataset", budget.dataset_id()},
                    {"total", FormatEpsilon(budget.total_epsilon())},
                    {"spent", FormatEpsilon(budget.spent_epsilon())},
                    {"remaining", FormatEpsilon(budget.remaining_epsilon())},
                    {"releases", absl::StrCat(budget.releases())},
                    {"yours", absl::StrCat(FormatEpsilon(budget.client_spent_epsilon()), " in ",
                                           budget.client_releases(), " releases")},
                    {"quanta", absl::StrCat(budget.spent_quanta(), " spent of ",
                                            budget.total_quanta(), " (2^-40 each)")}});
  }
  return kExitOk;
}

}  // namespace

std::vector<Command> PrivacyCommands() {
  std::vector<Command> commands;
  commands.push_back(Command{
      {"predict"},
      "MODEL_ID INPUTS.csv --private --epsilon E [--mechanism smooth|laplace|argmax]",
      "release differentially private labels for a batch of inputs (spends privacy budget)",
      "INPUTS.csv: one point per row (raw features), an optional header. One noisy label is\n"
      "released per row; each is epsilon-DP (delta = 0) with respect to the training data for\n"
      "a party that sees only the labels: a smaller epsilon means more noise, more privacy.\n"
      "Budget: every row spends epsilon (a request of R rows spends R x epsilon, each\n"
      "rounded up to quanta of 2^-40; a smaller epsilon is refused) from ONE budget per\n"
      "tenant and training dataset, shared by every token of your tenant and every model\n"
      "trained on that dataset. Releases compose sequentially: their epsilons add up, to at\n"
      "most the server's total (agt-server --privacy-budget, default 10).\n"
      "A request that would pass it is refused whole and spends nothing; so does any\n"
      "request the server rejects. 'agtctl budget MODEL_ID' shows what remains.\n"
      "Mechanisms (--mechanism):\n"
      "  smooth   the default: Cauchy noise scaled by exp(-epsilon n* / 6), n* being the\n"
      "           largest trained budget at which the row is certified stable (Theorem 11).\n"
      "           Only for binary classifiers trained with perturbation kind SUBSTITUTION,\n"
      "           clip_gamma > 0 and no momentum; other models are refused, naming the\n"
      "           mechanism that applies (never a silent fallback).\n"
      "  laplace  global Laplace noise 1/epsilon: any binary classifier, no certificate.\n"
      "  argmax   report-noisy-argmax, Laplace noise 2/epsilon per class: any classifier.\n"
      "Output: per row the released label, the n* used and the noise scale, then the\n"
      "mechanism, the epsilon spent, your budget after the request and the guarantee. n*\n"
      "depends on the training data: a private-querier token sees it (and the scale) as\n"
      "'withheld'. --private is required: predict only ever releases private labels; plain\n"
      "certified predictions are 'agtctl certify MODEL_ID INPUTS.csv'.\n"
      "With --quiet: one released label per line. With --json: agt.v1.PrivatePredictResponse.\n"
      "Exit code 1 when the budget would be exceeded (RESOURCE_EXHAUSTED, nothing spent) or\n"
      "the mechanism does not apply to the model (FAILED_PRECONDITION); 2 for a missing\n"
      "--private, a bad --epsilon or --mechanism, or an unreadable INPUTS.csv.\n",
      {{"private", false, 0, "", "release differentially private labels (required)"},
       {"epsilon", true, 0, "E", "privacy cost of each label: finite, >= 2^-40 (required)"},
       {"mechanism", true, 0, "M", "smooth (default) | laplace | argmax"}},
      2,
      2,
      Predict});
  commands.push_back(Command{
      {"budget"},
      "MODEL_ID",
      "show your privacy budget for a model: total, spent and remaining epsilon",
      "The budget is the model's training dataset's, one per tenant and dataset: the total\n"
      "is the server's --privacy-budget; spent is the sum of epsilon over every label\n"
      "released to any token of your tenant from any model trained on the dataset (or on\n"
      "one a retraining derived from it), remaining what a request may still spend; 'yours'\n"
      "is your own share. Exact amounts are in quanta of 2^-40. Your client is your token's\n"
      "label (its tenant when it has none; 'local' without tokens). Reading spends nothing.\n"
      "With --quiet: the remaining epsilon. With --json: agt.v1.GetPrivacyBudgetResponse.\n",
      {},
      1,
      1,
      Budget});
  return commands;
}

}  // namespace agt::client
