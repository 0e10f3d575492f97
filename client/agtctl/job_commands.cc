// agtctl train, and agtctl jobs list | get | cancel | watch.
#include <chrono>
#include <optional>
#include <ostream>
#include <string>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "client/agtctl/agtctl.h"
#include "client/agtctl/output.h"
#include "client/lib/exit_codes.h"
#include "client/lib/format.h"
#include "client/lib/inputs.h"
#include "google/protobuf/descriptor.h"

namespace agt::client {
namespace {

// A watch broken by a server restart is resumed for up to this long.
constexpr auto kWatchReconnectFor = std::chrono::seconds(60);

// Enum value by name: case-insensitive, with or without the enum's prefix;
// `aliases` map short names first.
template <typename Enum>
absl::StatusOr<Enum> ParseEnum(const char* flag, const std::string& text,
                               const google::protobuf::EnumDescriptor* descriptor,
                               const std::string& prefix,
                               const std::vector<std::pair<std::string, std::string>>& aliases) {
  std::string name = absl::AsciiStrToLower(text);
  for (const auto& [alias, full] : aliases) {
    if (name == alias) name = full;
  }
  name = absl::AsciiStrToUpper(name);
  absl::StrReplaceAll({{"-", "_"}}, &name);
  if (!absl::StartsWith(name, prefix)) name = prefix + name;
  const google::protobuf::EnumValueDescriptor* value = descriptor->FindValueByName(name);
  if (value == nullptr || value->number() == 0) {
    std::vector<std::string> choices;
    for (int i = 1; i < descriptor->value_count(); ++i) {
      choices.push_back(absl::AsciiStrToLower(descriptor->value(i)->name().substr(prefix.size())));
    }
    return absl::InvalidArgumentError(
        absl::StrCat(flag, " '", text, "' is not one of ", absl::StrJoin(choices, ", ")));
  }
  return static_cast<Enum>(value->number());
}

// The product a legacy --bound-method name stands for ("interval_exact",
// "exact", ...), or nullopt for "ibp"; InvalidArgument for anything else.
absl::StatusOr<std::optional<agt::v1::IntervalProduct>> ParseBoundMethodFlag(
    const std::string& text) {
  std::string name = absl::AsciiStrToLower(text);
  absl::StrReplaceAll({{"-", "_"}}, &name);
  if (absl::StartsWith(name, "bound_method_")) name = name.substr(13);
  if (name == "ibp") return std::nullopt;
  if (absl::StartsWith(name, "interval_")) name = name.substr(9);
  if (name == "rump") return agt::v1::INTERVAL_PRODUCT_RUMP;
  if (name == "exact") return agt::v1::INTERVAL_PRODUCT_EXACT;
  if (name == "nguyen") return agt::v1::INTERVAL_PRODUCT_NGUYEN;
  return absl::InvalidArgumentError(
      absl::StrCat("--bound-method '", text,
                   "' is not one of ibp (deprecated: interval_rump, interval_exact, "
                   "interval_nguyen; use --interval-product)"));
}

// --bound-method and --interval-product. A legacy bound method (from the spec
// file or the flag) is sent in the current form, IBP plus its product; a
// product that contradicts it is an error here rather than at the server.
absl::Status ApplyBoundOverrides(const ParsedArgs& args, agt::v1::TrainingJobSpec& spec) {
  const int file_method = static_cast<int>(spec.bound_method());
  if ((file_method == 2 || file_method == 3) &&
      spec.interval_product() == agt::v1::INTERVAL_PRODUCT_UNSPECIFIED) {
    spec.set_bound_method(agt::v1::BOUND_METHOD_IBP);
    spec.set_interval_product(static_cast<agt::v1::IntervalProduct>(file_method));
  }
  std::optional<agt::v1::IntervalProduct> legacy;
  if (auto v = args.Get("bound-method")) {
    absl::StatusOr<std::optional<agt::v1::IntervalProduct>> parsed = ParseBoundMethodFlag(*v);
    if (!parsed.ok()) return parsed.status();
    legacy = *parsed;
    spec.set_bound_method(agt::v1::BOUND_METHOD_IBP);
    if (legacy.has_value()) spec.set_interval_product(*legacy);
  }
  if (auto v = args.Get("interval-product")) {
    absl::StatusOr<agt::v1::IntervalProduct> product = ParseEnum<agt::v1::IntervalProduct>(
        "--interval-product", *v, agt::v1::IntervalProduct_descriptor(), "INTERVAL_PRODUCT_", {});
    if (!product.ok()) return product.status();
    if (legacy.has_value() && *legacy != *product) {
      return absl::InvalidArgumentError(absl::StrCat("--bound-method ", *args.Get("bound-method"),
                                                     " conflicts with --interval-product ", *v));
    }
    spec.set_interval_product(*product);
  }
  return absl::OkStatus();
}

// Applies the flag overrides of `agtctl train` to `spec`.
absl::Status ApplyOverrides(const ParsedArgs& args, agt::v1::TrainingJobSpec& spec) {
  if (auto v = args.Get("dataset")) spec.set_dataset_id(*v);
  if (auto v = args.Get("name")) spec.set_name(*v);
  if (auto v = args.Get("epochs")) {
    absl::StatusOr<int64_t> n = ParseInt("--epochs", *v, 1, 1 << 30);
    if (!n.ok()) return n.status();
    spec.set_epochs(static_cast<int>(*n));
  }
  if (auto v = args.Get("batch-size")) {
    absl::StatusOr<int64_t> n = ParseInt("--batch-size", *v, 1, 1 << 30);
    if (!n.ok()) return n.status();
    spec.set_batch_size(static_cast<int>(*n));
  }
  if (auto v = args.Get("backend")) {
    if (*v == "auto") {
      spec.set_backend(agt::v1::COMPUTE_BACKEND_AUTO);
    } else if (*v == "cpu") {
      spec.set_backend(agt::v1::COMPUTE_BACKEND_CPU);
    } else if (*v == "cuda") {
      spec.set_backend(agt::v1::COMPUTE_BACKEND_CUDA);
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("--backend: \"", *v, "\" is not one of auto, cpu, cuda"));
    }
  }
  if (auto v = args.Get("seed")) {
    absl::StatusOr<uint64_t> n = ParseUint64("--seed", *v);
    if (!n.ok()) return n.status();
    spec.set_seed(*n);
  }
  if (auto v = args.Get("degree")) {
    absl::StatusOr<int64_t> n = ParseInt("--degree", *v, 1, 16);
    if (!n.ok()) return n.status();
    spec.set_polynomial_degree(static_cast<int>(*n));
  }
  if (auto v = args.Get("hidden")) {
    // The flag replaces the file's model, whichever form it had.
    spec.clear_hidden_widths();
    spec.clear_architecture();
    if (!v->empty() && *v != "none") {
      absl::StatusOr<std::vector<int64_t>> widths = ParseIntList("--hidden", *v, 1, 1 << 20);
      if (!widths.ok()) return widths.status();
      for (int64_t w : *widths) spec.add_hidden_widths(static_cast<int>(w));
    }
  }
  if (auto v = args.Get("model-artifact")) {
    // A pre-trained network replaces the file's model, whichever form it had.
    spec.clear_hidden_widths();
    spec.clear_architecture();
    spec.mutable_model_artifact()->set_artifact_id(*v);
  }
  if (args.Has("frozen-layers") && args.Has("frozen-until")) {
    return absl::InvalidArgumentError("give --frozen-layers or --frozen-until, not both");
  }
  if ((args.Has("frozen-layers") || args.Has("frozen-until")) && !spec.has_model_artifact()) {
    return absl::InvalidArgumentError(
        "--frozen-layers and --frozen-until choose the frozen prefix of a model artifact: "
        "give --model-artifact ID (or model_artifact in JOB.json)");
  }
  if (auto v = args.Get("frozen-layers")) {
    absl::StatusOr<int64_t> k = ParseInt("--frozen-layers", *v, 0, 1 << 20);
    if (!k.ok()) return k.status();
    spec.mutable_model_artifact()->set_frozen_layers(static_cast<int>(*k));
  }
  if (auto v = args.Get("frozen-until")) {
    spec.mutable_model_artifact()->set_frozen_until(*v);
  }
  if (auto v = args.Get("budgets")) {
    absl::StatusOr<std::vector<int64_t>> budgets = ParseIntList("--budgets", *v, 0, 1 << 30);
    if (!budgets.ok()) return budgets.status();
    spec.clear_budgets();
    for (int64_t n : *budgets) spec.add_budgets()->set_n(static_cast<int>(n));
  }
  if (auto v = args.Get("learning-rate")) {
    absl::StatusOr<double> a = ParseDouble("--learning-rate", *v, 0, 1e12);
    if (!a.ok()) return a.status();
    spec.mutable_optimizer()->set_learning_rate(*a);
  }
  if (auto v = args.Get("lr-decay")) {
    absl::StatusOr<double> eta = ParseDouble("--lr-decay", *v, 0, 1e12);
    if (!eta.ok()) return eta.status();
    spec.mutable_optimizer()->set_lr_decay(*eta);
  }
  if (auto v = args.Get("clip")) {
    absl::StatusOr<double> gamma = ParseDouble("--clip", *v, 0, 1e300);
    if (!gamma.ok()) return gamma.status();
    spec.set_clip_gamma(*gamma);
  }
  if (auto v = args.Get("loss")) {
    absl::StatusOr<agt::v1::Loss> loss =
        ParseEnum<agt::v1::Loss>("--loss", *v, agt::v1::Loss_descriptor(), "LOSS_",
                                 {{"bce", "binary_cross_entropy"}, {"ce", "cross_entropy"}});
    if (!loss.ok()) return loss.status();
    spec.set_loss(*loss);
  }
  if (auto v = args.Get("perturbation")) {
    absl::StatusOr<agt::v1::PerturbationKind> kind = ParseEnum<agt::v1::PerturbationKind>(
        "--perturbation", *v, agt::v1::PerturbationKind_descriptor(), "PERTURBATION_KIND_", {});
    if (!kind.ok()) return kind.status();
    spec.mutable_perturbation()->set_kind(*kind);
  }
  if (auto v = args.Get("epsilon")) {
    absl::StatusOr<double> eps = ParseDouble("--epsilon", *v, 0, 1e300);
    if (!eps.ok()) return eps.status();
    spec.mutable_perturbation()->set_epsilon(*eps);
  }
  return ApplyBoundOverrides(args, spec);
}

bool Succeeded(const agt::v1::Job& job) { return job.state() == agt::v1::JOB_STATE_SUCCEEDED; }

bool IsFinalState(agt::v1::JobState state) {
  return state == agt::v1::JOB_STATE_SUCCEEDED || state == agt::v1::JOB_STATE_FAILED ||
         state == agt::v1::JOB_STATE_CANCELLED;
}

// Watches `job_id` until it ends, showing progress on stderr unless quiet;
// then fetches the final job. Resumes a watch broken by a server restart.
absl::StatusOr<agt::v1::Job> WaitForJob(CommandContext& ctx, const Client& client,
                                        const agt::v1::Job& job) {
  ProgressDisplay display(ctx.err(), ctx.stderr_is_tty(), job.id(),
                          BudgetLabels(job.spec().budgets()), job.spec().epochs());
  agt::v1::WatchJobRequest request;
  request.set_job_id(job.id());
  const auto give_up = std::chrono::steady_clock::now() + kWatchReconnectFor;
  absl::StatusOr<agt::v1::JobEvent> last;
  for (;;) {
    last = client.WatchJob(request, [&](const agt::v1::JobEvent& event) {
      if (!ctx.quiet()) display.Update(event);
      return true;
    });
    // A stream that ended before a final state (server restart: UNAVAILABLE,
    // or a server that closed it early) is resumed; the job lives on the server.
    const bool interrupted =
        last.ok() ? !IsFinalState(last->state()) : absl::IsUnavailable(last.status());
    if (!interrupted || std::chrono::steady_clock::now() >= give_up) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  if (last.ok() && !IsFinalState(last->state())) {
    display.Finish();
    return absl::UnavailableError(absl::StrCat("lost the watch of job ", job.id(),
                                               " before it ended; it may still be running"));
  }
  display.Finish();
  if (!last.ok()) return last.status();
  agt::v1::GetJobRequest get;
  get.set_job_id(job.id());
  absl::StatusOr<agt::v1::GetJobResponse> final_job = client.GetJob(get);
  if (!final_job.ok()) return final_job.status();
  return final_job->job();
}

// Prints a finished job (as the active output mode says) and returns the exit code.
int ReportFinal(CommandContext& ctx, const agt::v1::Job& job) {
  PrintWarnings(ctx.err(), absl::StrCat("job ", job.id()), job.warnings());
  if (ctx.json()) {
    agt::v1::GetJobResponse response;
    *response.mutable_job() = job;
    ctx.out() << ToJson(response);
  } else if (ctx.quiet()) {
    if (Succeeded(job)) ctx.out() << job.model_id() << "\n";
  } else {
    PrintKeyValues(ctx.out(), JobKeyValues(job));
  }
  if (Succeeded(job)) return kExitOk;
  ctx.err() << "agtctl: job " << job.id() << " ended " << JobStateName(job.state())
            << (job.error().empty() ? "" : ": ") << job.error() << "\n";
  return kExitJobNotSucceeded;
}

int Train(CommandContext& ctx) {
  agt::v1::TrainingJobSpec spec;
  if (!ctx.positionals().empty()) {
    absl::StatusOr<agt::v1::TrainingJobSpec> from_file = ReadTrainingJobSpec(ctx.positionals()[0]);
    if (!from_file.ok()) return ctx.FailUsage(from_file.status());
    spec = *std::move(from_file);
  }
  if (absl::Status status = ApplyOverrides(ctx.args(), spec); !status.ok()) {
    return ctx.FailUsage(status);
  }
  if (spec.dataset_id().empty()) {
    return ctx.FailUsage(absl::InvalidArgumentError(
        "no dataset: set dataset_id in the job file or pass --dataset DATASET_ID"));
  }
  absl::StatusOr<const Client*> client = ctx.client();
  if (!client.ok()) return ctx.FailUsage(client.status());
  agt::v1::SubmitTrainingJobRequest request;
  *request.mutable_spec() = spec;
  request.set_request_id(ctx.RequestId());
  absl::StatusOr<agt::v1::SubmitTrainingJobResponse> submitted =
      ctx.CallIdempotent([&] { return (*client)->SubmitTrainingJob(request); });
  if (!submitted.ok()) return ctx.Fail(submitted.status());
  const agt::v1::Job& job = submitted->job();
  if (!ctx.args().Has("wait")) {
    if (ctx.json()) {
      ctx.out() << ToJson(*submitted);
    } else if (ctx.quiet()) {
      ctx.out() << job.id() << "\n";
    } else {
      ctx.out() << "submitted job " << job.id() << " (" << JobStateName(job.state())
                << "); follow it with: agtctl jobs watch " << job.id() << "\n";
    }
    return kExitOk;
  }
  if (!ctx.quiet()) ctx.err() << "submitted job " << job.id() << "\n";
  absl::StatusOr<agt::v1::Job> final_job = WaitForJob(ctx, **client, job);
  if (!final_job.ok()) return ctx.Fail(final_job.status());
  return ReportFinal(ctx, *final_job);
}

int ListJobs(CommandContext& ctx) {
  agt::v1::ListJobsRequest request;
  if (auto state = ctx.args().Get("state")) {
    absl::StatusOr<agt::v1::JobState> parsed = ParseJobState(*state);
    if (!parsed.ok()) return ctx.FailUsage(parsed.status());
    request.set_state(*parsed);
  }
  absl::StatusOr<const Client*> client = ctx.client();
  if (!client.ok()) return ctx.FailUsage(client.status());
  absl::StatusOr<agt::v1::ListJobsResponse> listed = ListAllPages<agt::v1::ListJobsResponse>(
      request, [&](const agt::v1::ListJobsRequest& r) { return (*client)->ListJobs(r); });
  if (!listed.ok()) return ctx.Fail(listed.status());
  const agt::v1::ListJobsResponse& all = *listed;
  if (ctx.json()) {
    ctx.out() << ToJson(all);
    return kExitOk;
  }
  if (ctx.quiet()) {
    for (const auto& j : all.jobs()) ctx.out() << j.id() << "\n";
    return kExitOk;
  }
  Table table({"ID", "NAME", "STATE", "PROGRESS", "DATASET", "MODEL", "CREATED"});
  for (const auto& j : all.jobs()) {
    std::string state = JobStateName(j.state());
    if (j.warnings_size() > 0) {
      absl::StrAppend(&state, " (", j.warnings_size(),
                      j.warnings_size() == 1 ? " warning)" : " warnings)");
    }
    table.AddRow({j.id(), j.spec().name(), state,
                  absl::StrCat(j.progress().iteration(), "/", j.progress().total_iterations()),
                  j.spec().dataset_id(), j.model_id().empty() ? "-" : j.model_id(),
                  FormatTimestamp(j.created())});
  }
  ctx.out() << table.Render();
  return kExitOk;
}

absl::StatusOr<agt::v1::Job> FetchJob(const Client& client, const std::string& id) {
  agt::v1::GetJobRequest request;
  request.set_job_id(id);
  absl::StatusOr<agt::v1::GetJobResponse> response = client.GetJob(request);
  if (!response.ok()) return response.status();
  return response->job();
}

int GetJob(CommandContext& ctx) {
  absl::StatusOr<const Client*> client = ctx.client();
  if (!client.ok()) return ctx.FailUsage(client.status());
  absl::StatusOr<agt::v1::Job> job = FetchJob(**client, ctx.positionals()[0]);
  if (!job.ok()) return ctx.Fail(job.status());
  if (ctx.json()) {
    agt::v1::GetJobResponse response;
    *response.mutable_job() = *job;
    ctx.out() << ToJson(response);
  } else if (ctx.quiet()) {
    ctx.out() << job->id() << "\n";
  } else {
    PrintKeyValues(ctx.out(), JobKeyValues(*job));
  }
  return kExitOk;
}

int CancelJob(CommandContext& ctx) {
  absl::StatusOr<const Client*> client = ctx.client();
  if (!client.ok()) return ctx.FailUsage(client.status());
  agt::v1::CancelJobRequest request;
  request.set_job_id(ctx.positionals()[0]);
  absl::StatusOr<agt::v1::CancelJobResponse> response = (*client)->CancelJob(request);
  if (!response.ok()) return ctx.Fail(response.status());
  if (ctx.json()) {
    ctx.out() << ToJson(*response);
  } else if (ctx.quiet()) {
    ctx.out() << response->job().id() << "\n";
  } else {
    ctx.out() << "job " << response->job().id() << ": " << JobStateName(response->job().state())
              << "\n";
  }
  return kExitOk;
}

int DeleteJob(CommandContext& ctx) {
  absl::StatusOr<const Client*> client = ctx.client();
  if (!client.ok()) return ctx.FailUsage(client.status());
  agt::v1::DeleteJobRequest request;
  request.set_job_id(ctx.positionals()[0]);
  absl::StatusOr<agt::v1::DeleteJobResponse> response = (*client)->DeleteJob(request);
  if (!response.ok()) return ctx.Fail(response.status());
  if (ctx.json()) {
    ctx.out() << ToJson(*response);
  } else if (!ctx.quiet()) {
    ctx.out() << "deleted job " << request.job_id() << "\n";
  }
  return kExitOk;
}

int WatchJob(CommandContext& ctx) {
  absl::StatusOr<const Client*> client = ctx.client();
  if (!client.ok()) return ctx.FailUsage(client.status());
  absl::StatusOr<agt::v1::Job> job = FetchJob(**client, ctx.positionals()[0]);
  if (!job.ok()) return ctx.Fail(job.status());
  absl::StatusOr<agt::v1::Job> final_job = WaitForJob(ctx, **client, *job);
  if (!final_job.ok()) return ctx.Fail(final_job.status());
  return ReportFinal(ctx, *final_job);
}

}  // namespace

std::vector<Command> JobCommands() {
  std::vector<Command> commands;
  commands.push_back(Command{
      {"train"},
      "[JOB.json] [--dataset ID] [overrides...] [--wait]",
      "submit a certified training job (and with --wait, follow it to the end)",
      "JOB.json is the proto3 JSON form of agt.v1.TrainingJobSpec (see\n"
      "proto/agt/v1/training.proto); unknown fields are errors. Flags override its fields,\n"
      "or build the whole spec without a file. Example:\n"
      "  {\"name\": \"moons\", \"dataset_id\": \"ds-...\", \"polynomial_degree\": 3,\n"
      "   \"loss\": \"LOSS_BINARY_CROSS_ENTROPY\", \"batch_size\": 1000, \"epochs\": 4,\n"
      "   \"optimizer\": {\"learning_rate\": 2.0, \"lr_decay\": 0.5},\n"
      "   \"perturbation\": {\"kind\": \"PERTURBATION_KIND_REMOVAL\"},\n"
      "   \"budgets\": [{\"n\": 1}, {\"n\": 2}, {\"n\": 5}], \"seed\": 0}\n"
      "Without --wait prints the job id. With --wait shows a progress bar on stderr\n"
      "(iteration, ETA, loss, bound width per budget), then the final job; exits 5 when\n"
      "the job ends FAILED or CANCELLED. With --wait --quiet prints only the model id.\n"
      "A job whose certificates are likely vacuous (bounds not finite or far wider than\n"
      "the parameters, or no training row certified at any n > 0) still SUCCEEDS, with\n"
      "warnings: printed as 'agtctl: WARNING: ...' on stderr and in the job.\n"
      "Ctrl-C stops watching only: the job keeps running on the server (jobs watch ID\n"
      "picks it up again; jobs cancel ID stops it).\n"
      "Fine-tuning a pre-trained network: --model-artifact ID (from agtctl artifact upload)\n"
      "with --frozen-layers K (layers 0..K-1 of agtctl artifact get are frozen) or\n"
      "--frozen-until NODE; the trained layers start from the file's parameters, e.g.\n"
      "  agtctl train --dataset ds-... --model-artifact art-... --frozen-layers 3 \\\n"
      "    --loss ce --batch-size 100 --epochs 2 --learning-rate 0.05 \\\n"
      "    --perturbation poisoning --epsilon 0.01 --budgets 1,2,5 --wait\n"
      "(in JOB.json: \"model_artifact\": {\"artifact_id\": \"art-...\", \"frozen_layers\": 3}).\n",
      {{"wait", false, 0, "", "follow the job until it ends"},
       {"dataset", true, 0, "ID", "dataset_id"},
       {"name", true, 0, "NAME", "name"},
       {"degree", true, 0, "D", "polynomial_degree (1 = raw features)"},
       {"hidden", true, 0, "W1,W2", "hidden_widths of a ReLU MLP ('none' = linear)"},
       {"model-artifact", true, 0, "ID", "fine-tune this uploaded network (model_artifact)"},
       {"frozen-layers", true, 0, "K", "model_artifact.frozen_layers: freeze its first K layers"},
       {"frozen-until", true, 0, "NODE",
        "model_artifact.frozen_until: freeze up to and including this node"},
       {"loss", true, 0, "LOSS", "mse | bce | ce | hinge"},
       {"batch-size", true, 0, "B", "batch_size"},
       {"epochs", true, 0, "E", "epochs"},
       {"learning-rate", true, 0, "A", "optimizer.learning_rate"},
       {"lr-decay", true, 0, "ETA", "optimizer.lr_decay"},
       {"clip", true, 0, "GAMMA", "clip_gamma (per-sample gradient clamp)"},
       {"perturbation", true, 0, "KIND", "removal | substitution | poisoning"},
       {"epsilon", true, 0, "E", "perturbation.epsilon (poisoning feature radius)"},
       {"budgets", true, 0, "N1,N2", "budgets (rows per batch), e.g. 1,2,5,10"},
       {"seed", true, 0, "S", "seed"},
       {"backend", true, 0, "B", "where to train: auto, cpu or cuda (default: the server's)"},
       {"bound-method", true, 0, "M",
        "ibp (interval bound propagation; interval_rump, interval_exact, interval_nguyen are "
        "deprecated aliases of ibp with that product)"},
       {"interval-product", true, 0, "P", "rump | exact | nguyen (interval matrix products)"}},
      0,
      1,
      Train});
  commands.push_back(Command{{"jobs", "list"},
                             "[--state STATE]",
                             "list your training jobs",
                             "",
                             {{"state", true, 0, "STATE",
                               "only jobs in this state (queued, running, succeeded, failed, "
                               "cancelled)"}},
                             0,
                             0,
                             ListJobs});
  commands.push_back(Command{{"jobs", "get"}, "JOB_ID", "show one job", "", {}, 1, 1, GetJob});
  commands.push_back(Command{
      {"jobs", "cancel"}, "JOB_ID", "cancel a queued or running job", "", {}, 1, 1, CancelJob});
  commands.push_back(Command{{"jobs", "rm"},
                             "JOB_ID",
                             "delete a finished job (succeeded, failed or cancelled)",
                             "Fails while the job is queued or running (cancel it first) and while "
                             "the model it\nproduced exists (delete the model first: agtctl model "
                             "rm).\n",
                             {},
                             1,
                             1,
                             DeleteJob});
  commands.push_back(Command{{"jobs", "watch"},
                             "JOB_ID",
                             "follow a job's progress until it ends (exit 5 unless it succeeds)",
                             "",
                             {},
                             1,
                             1,
                             WatchJob});
  return commands;
}

}  // namespace agt::client
