#include "server/observability/rpc_observer.h"

#include <grpcpp/server_context.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <utility>

#include "absl/strings/str_format.h"
#include "agt/v1/models.pb.h"
#include "agt/v1/privacy.pb.h"
#include "agt/v1/unlearning.pb.h"
#include "server/observability/log.h"

namespace agt::server {
namespace {

using Clock = std::chrono::steady_clock;
using grpc::experimental::InterceptionHookPoints;
using json = nlohmann::json;

// The audited methods.
enum class Audited {
  kNone,
  kPrivatePredict,
  kRequestDeletion,
  kCheckUnlearning,
  kRetrainInPlace,
  kCertifyPredictions,
  kCertifyDataset
};

Audited AuditedMethod(const std::string& method) {
  static const std::map<std::string, Audited>* const kMethods = new std::map<std::string, Audited>{
      {"/agt.v1.PrivacyService/PrivatePredict", Audited::kPrivatePredict},
      {"/agt.v1.UnlearningService/RequestDeletion", Audited::kRequestDeletion},
      {"/agt.v1.UnlearningService/CheckUnlearning", Audited::kCheckUnlearning},
      {"/agt.v1.UnlearningService/RetrainInPlace", Audited::kRetrainInPlace},
      {"/agt.v1.ModelService/CertifyPredictions", Audited::kCertifyPredictions},
      {"/agt.v1.ModelService/CertifyDataset", Audited::kCertifyDataset}};
  auto it = kMethods->find(method);
  return it == kMethods->end() ? Audited::kNone : it->second;
}

std::string NewRequestId() {
  thread_local std::mt19937_64 bits{std::random_device{}()};
  return absl::StrFormat("%016x", bits());
}

json BudgetsJson(const std::vector<MetricsBudget>& budgets) {
  json out = json::array();
  for (const MetricsBudget& b : budgets) {
    json one = {{"n", b.n}};
    if (b.label_n != 0) one["label_n"] = b.label_n;
    out.push_back(std::move(one));
  }
  return out;
}

// What was asked, from the request (never the inputs themselves).
json RequestSummary(Audited kind, const void* message) {
  switch (kind) {
    case Audited::kPrivatePredict: {
      const auto& r = *static_cast<const agt::v1::PrivatePredictRequest*>(message);
      json out = {{"model", r.model_id()},
                  {"points", r.inputs().rows()},
                  {"epsilon_per_label", r.epsilon()},
                  {"mechanism", agt::v1::PrivacyMechanism_Name(r.mechanism())}};
      if (!r.request_id().empty()) out["client_request_id"] = r.request_id();
      return out;
    }
    case Audited::kRequestDeletion: {
      const auto& r = *static_cast<const agt::v1::RequestDeletionRequest*>(message);
      json out = {{"model", r.model_id()},
                  {"rows", json(std::vector<int64_t>(r.row_ids().begin(), r.row_ids().end()))},
                  {"retrain_if_needed", r.retrain_if_needed()}};
      if (!r.request_id().empty()) out["client_request_id"] = r.request_id();
      return out;
    }
    case Audited::kCheckUnlearning: {
      const auto& r = *static_cast<const agt::v1::CheckUnlearningRequest*>(message);
      return {{"model", r.model_id()}, {"points", r.inputs().rows()}};
    }
    case Audited::kRetrainInPlace: {
      const auto& r = *static_cast<const agt::v1::RetrainInPlaceRequest*>(message);
      return {{"model", r.model_id()}};
    }
    case Audited::kCertifyPredictions: {
      const auto& r = *static_cast<const agt::v1::CertifyPredictionsRequest*>(message);
      return {{"model", r.model_id()},
              {"points", r.inputs().rows()},
              {"test_epsilon", r.test_epsilon()},
              {"labelled", r.labels_size() > 0}};
    }
    case Audited::kCertifyDataset: {
      const auto& r = *static_cast<const agt::v1::CertifyDatasetRequest*>(message);
      return {
          {"model", r.model_id()}, {"dataset", r.dataset_id()}, {"test_epsilon", r.test_epsilon()}};
    }
    case Audited::kNone:
      break;
  }
  return json::object();
}

// What was answered, from the response.
json AnswerSummary(Audited kind, const void* message, const std::vector<MetricsBudget>& budgets) {
  switch (kind) {
    case Audited::kPrivatePredict: {
      const auto& r = *static_cast<const agt::v1::PrivatePredictResponse*>(message);
      json labels = json::array();
      for (const agt::v1::PrivateLabel& l : r.labels()) labels.push_back(l.label());
      return {{"labels", std::move(labels)},
              {"dataset", r.budget().dataset_id()},
              {"client", r.budget().client()},
              {"epsilon_charged", r.epsilon_spent()},
              {"quanta_charged", r.quanta_charged()},
              {"budget_spent_epsilon", r.budget().spent_epsilon()},
              {"budget_remaining_epsilon", r.budget().remaining_epsilon()}};
    }
    case Audited::kRequestDeletion: {
      const auto& r = *static_cast<const agt::v1::RequestDeletionResponse*>(message);
      return {{"decision", r.accepted() ? "accepted" : "refused"},
              {"why", r.message()},
              {"newly_accepted", r.newly_accepted()},
              {"duplicates", r.duplicates()},
              {"deletions", r.deletions()},
              {"max_deletions_per_batch", r.max_deletions_per_batch()},
              {"max_budget", r.max_budget()},
              {"retraining_required", r.retraining_required()},
              {"retraining_job", r.retraining_job_id()}};
    }
    case Audited::kCheckUnlearning: {
      const auto& r = *static_cast<const agt::v1::CheckUnlearningResponse*>(message);
      int64_t unchanged = 0;
      for (const agt::v1::UnlearningCheck& p : r.points()) unchanged += p.certified_unchanged();
      return {{"points", r.points_size()},
              {"certified_unchanged", unchanged},
              {"deletions", r.deletions()},
              {"max_deletions_per_batch", r.max_deletions_per_batch()},
              {"max_budget", r.max_budget()}};
    }
    case Audited::kRetrainInPlace: {
      const auto& r = *static_cast<const agt::v1::RetrainInPlaceResponse*>(message);
      return {{"decision", r.enqueued() ? "retraining enqueued" : "no retraining enqueued"},
              {"why", r.message()},
              {"job", r.job_id()},
              {"removed_rows", r.removed_rows()},
              {"budgets", json(std::vector<int>(r.budgets().begin(), r.budgets().end()))},
              {"dropped_budgets",
               json(std::vector<int>(r.dropped_budgets().begin(), r.dropped_budgets().end()))}};
    }
    case Audited::kCertifyPredictions: {
      const auto& r = *static_cast<const agt::v1::CertifyPredictionsResponse*>(message);
      std::vector<int64_t> stable, correct;
      int64_t unchanged = 0;
      bool has_unchanged = false;
      for (const agt::v1::PointCertificate& p : r.points()) {
        if (stable.size() < static_cast<size_t>(p.stable_size())) stable.resize(p.stable_size());
        for (int j = 0; j < p.stable_size(); ++j) stable[j] += p.stable(j);
        if (correct.size() < static_cast<size_t>(p.correct_size())) {
          correct.resize(p.correct_size());
        }
        for (int j = 0; j < p.correct_size(); ++j) correct[j] += p.correct(j);
        if (p.has_certified_unchanged()) {
          has_unchanged = true;
          unchanged += p.certified_unchanged();
        }
      }
      json out = {{"points", r.points_size()}, {"stable_per_budget", json(stable)}};
      if (!budgets.empty()) out["budgets"] = BudgetsJson(budgets);
      if (!correct.empty()) out["correct_per_budget"] = json(correct);
      if (has_unchanged) out["certified_unchanged"] = unchanged;
      return out;
    }
    case Audited::kCertifyDataset: {
      const auto& r = *static_cast<const agt::v1::CertifyDatasetResponse*>(message);
      json per_budget = json::array();
      for (const agt::v1::DatasetCertificate& c : r.budgets()) {
        json one = {{"n", c.budget().n()}};
        if (c.budget().label_n() != 0) one["label_n"] = c.budget().label_n();
        one["accuracy_nominal"] = c.accuracy_nominal();
        one["accuracy_worst"] = c.accuracy_worst();
        one["accuracy_best"] = c.accuracy_best();
        one["stable_fraction"] = c.stable_fraction();
        one["mse_nominal"] = c.mse_nominal();
        one["mse_worst"] = c.mse_worst();
        one["mse_best"] = c.mse_best();
        per_budget.push_back(std::move(one));
      }
      return {{"rows", r.num_rows()}, {"budgets", std::move(per_budget)}};
    }
    case Audited::kNone:
      break;
  }
  return json::object();
}

const char* AuditEvent(Audited kind) {
  switch (kind) {
    case Audited::kPrivatePredict:
      return "privacy_release";
    case Audited::kRequestDeletion:
    case Audited::kCheckUnlearning:
    case Audited::kRetrainInPlace:
      return "deletion_decision";
    case Audited::kCertifyPredictions:
    case Audited::kCertifyDataset:
      return "certificate";
    case Audited::kNone:
      break;
  }
  return "";
}

LogLevel LevelOf(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return LogLevel::kInfo;
    case grpc::StatusCode::INTERNAL:
    case grpc::StatusCode::UNKNOWN:
    case grpc::StatusCode::DATA_LOSS:
      return LogLevel::kError;
    default:
      return LogLevel::kWarn;
  }
}

class ObservingInterceptor final : public grpc::experimental::Interceptor {
 public:
  ObservingInterceptor(const RpcObserverOptions* options, grpc::experimental::ServerRpcInfo* info)
      : options_(options),
        context_(info->server_context()),
        method_(info->method() != nullptr ? info->method() : ""),
        audited_(options->audit != nullptr || options->metrics != nullptr ? AuditedMethod(method_)
                                                                          : Audited::kNone),
        start_(Clock::now()) {}

  ~ObservingInterceptor() override {
    // A call that ended without a status sent (the client went away first).
    if (!finished_) Finish(grpc::Status(grpc::StatusCode::CANCELLED, "the call ended early"));
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_INITIAL_METADATA)) {
      ReadClientMetadata(methods->GetRecvInitialMetadata());
      // Fixed before the handler runs, so later hooks (possibly on other
      // threads, for streams) only read it.
      RequestId();
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_MESSAGE) &&
        audited_ != Audited::kNone && !have_request_) {
      if (const void* message = methods->GetRecvMessage(); message != nullptr) {
        request_ = RequestSummary(audited_, message);
        have_request_ = true;
      }
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      methods->GetSendInitialMetadata()->emplace(kRequestIdMetadataKey, RequestId());
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_MESSAGE) &&
        audited_ != Audited::kNone) {
      if (const void* message = methods->GetSendMessage(); message != nullptr) {
        answer_ = AnswerSummary(audited_, message, Budgets());
        have_answer_ = true;
      }
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      std::multimap<std::string, std::string>* trailers = methods->GetSendTrailingMetadata();
      if (auto it = trailers->find(kReplayedMetadataKey); it != trailers->end()) {
        replayed_ = true;
        trailers->erase(kReplayedMetadataKey);
      }
      trailers->emplace(kRequestIdMetadataKey, RequestId());
      Finish(methods->GetSendStatus());
    }
    methods->Proceed();
  }

 private:
  void ReadClientMetadata(std::multimap<grpc::string_ref, grpc::string_ref>* metadata) {
    if (metadata == nullptr) return;
    std::string authorization;
    int authorizations = 0;
    for (const auto& [key, value] : *metadata) {
      const std::string name(key.data(), key.size());
      if (name == kRequestIdMetadataKey && request_id_.empty()) {
        std::string id(value.data(), value.size());
        if (IsValidRequestId(id)) request_id_ = std::move(id);
      } else if (name == "authorization") {
        authorization.assign(value.data(), value.size());
        ++authorizations;
      }
    }
    if (authorizations <= 1 && options_->tokens != nullptr) {
      absl::StatusOr<Principal> who =
          options_->tokens->Authenticate(authorizations == 1 ? &authorization : nullptr);
      if (who.ok()) principal_ = *std::move(who);
    }
  }

  const std::string& RequestId() {
    if (request_id_.empty()) request_id_ = NewRequestId();
    return request_id_;
  }

  std::vector<MetricsBudget> Budgets() {
    if (audited_ != Audited::kCertifyPredictions || !principal_.has_value() ||
        !options_->model_budgets || !request_.contains("model")) {
      return {};
    }
    return options_->model_budgets(principal_->tenant, request_["model"].get<std::string>());
  }

  void Finish(const grpc::Status& status) {
    finished_ = true;
    const double seconds = std::chrono::duration<double>(Clock::now() - start_).count();
    const std::string code = StatusCodeName(status.error_code());
    const std::string& request_id = RequestId();
    json fields = {{"method", method_}};
    if (principal_.has_value()) {
      fields["tenant"] = principal_->tenant;
      fields["principal"] = ClientName(*principal_);
      fields["role"] = RoleName(principal_->role);
    }
    if (context_ != nullptr) fields["peer"] = context_->peer();
    fields["code"] = code;
    fields["latency_ms"] = std::round(seconds * 1e6) / 1e3;  // to the microsecond
    fields["request_id"] = request_id;
    if (!status.ok()) fields["error"] = status.error_message();
    Log(LevelOf(status.error_code()), "rpc", fields);
    if (status.error_code() == grpc::StatusCode::UNAUTHENTICATED ||
        status.error_code() == grpc::StatusCode::PERMISSION_DENIED) {
      Log(LogLevel::kWarn, "auth_failure",
          {{"method", method_},
           {"peer", fields.value("peer", "")},
           {"code", code},
           {"reason", status.error_message()},
           {"request_id", request_id}});
    }
    if (options_->metrics != nullptr) {
      options_->metrics->RpcFinished(method_, code, seconds);
      if (status.ok() && have_answer_ && !replayed_ && principal_.has_value()) {
        if (audited_ == Audited::kPrivatePredict) {
          options_->metrics->PrivacyEpsilonSpent(principal_->tenant,
                                                 answer_.value("epsilon_charged", 0.0));
        } else if (audited_ == Audited::kRequestDeletion) {
          options_->metrics->DeletionsAccepted(answer_.value("newly_accepted", int64_t{0}));
        }
      }
    }
    if (options_->audit != nullptr && audited_ != Audited::kNone) Audit(status, code, request_id);
  }

  void Audit(const grpc::Status& status, const std::string& code, const std::string& request_id) {
    json record = {{"event", AuditEvent(audited_)}, {"method", method_}};
    if (principal_.has_value()) {
      record["who"] = {{"tenant", principal_->tenant},
                       {"client", ClientName(*principal_)},
                       {"role", RoleName(principal_->role)}};
    } else {
      record["who"] = nullptr;  // did not authenticate
    }
    if (context_ != nullptr) record["peer"] = context_->peer();
    record["request_id"] = request_id;
    if (have_request_) {
      for (auto& [key, value] : request_.items()) record[key] = value;
    }
    record["code"] = code;
    if (status.ok() && have_answer_) {
      if (replayed_) {
        // The stored first answer, returned again: nothing new was charged
        // or accepted by this call.
        record["replayed"] = true;
        if (audited_ == Audited::kPrivatePredict) {
          answer_["epsilon_charged"] = 0.0;
          answer_["quanta_charged"] = 0;
        }
      }
      record["answer"] = answer_;
    } else if (!status.ok()) {
      record["refused"] = status.error_message();
    }
    options_->audit->Append(std::move(record));
  }

  const RpcObserverOptions* const options_;
  grpc::ServerContextBase* const context_;
  const std::string method_;
  const Audited audited_;
  const Clock::time_point start_;
  std::string request_id_;
  std::optional<Principal> principal_;
  json request_;
  json answer_;
  bool have_request_ = false;
  bool have_answer_ = false;
  bool replayed_ = false;
  bool finished_ = false;
};

class ObserverFactory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit ObserverFactory(RpcObserverOptions options) : options_(std::move(options)) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new ObservingInterceptor(&options_, info);
  }

 private:
  const RpcObserverOptions options_;
};

}  // namespace

bool IsValidRequestId(const std::string& id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == ':' || c == '-';
    if (!ok) return false;
  }
  return true;
}

const char* StatusCodeName(int code) {
  static constexpr const char* kNames[] = {"OK",
                                           "CANCELLED",
                                           "UNKNOWN",
                                           "INVALID_ARGUMENT",
                                           "DEADLINE_EXCEEDED",
                                           "NOT_FOUND",
                                           "ALREADY_EXISTS",
                                           "PERMISSION_DENIED",
                                           "RESOURCE_EXHAUSTED",
                                           "FAILED_PRECONDITION",
                                           "ABORTED",
                                           "OUT_OF_RANGE",
                                           "UNIMPLEMENTED",
                                           "INTERNAL",
                                           "UNAVAILABLE",
                                           "DATA_LOSS",
                                           "UNAUTHENTICATED"};
  if (code < 0 || code >= static_cast<int>(std::size(kNames))) return "UNKNOWN";
  return kNames[code];
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> MakeRpcObserver(
    RpcObserverOptions options) {
  return std::make_unique<ObserverFactory>(std::move(options));
}

}  // namespace agt::server
