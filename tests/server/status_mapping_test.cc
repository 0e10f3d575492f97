// ToGrpcStatus and the status detail helpers: what a client finds in
// grpc-status-details-bin for each kind of error, decoded from the bytes the
// grpc::Status carries (as a client would).
#include "server/service/status_mapping.h"

#include <gtest/gtest.h>

#include <string>

#include "core/common/status_details.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"

namespace agt::server {
namespace {

constexpr char kRpc[] = "/agt.v1.TrainingService/SubmitTrainingJob";

struct Decoded {
  google::rpc::Status status;
  bool has_info = false, has_bad = false, has_quota = false;
  google::rpc::ErrorInfo info;
  google::rpc::BadRequest bad;
  google::rpc::QuotaFailure quota;
};

Decoded Decode(const grpc::Status& status) {
  Decoded d;
  EXPECT_TRUE(d.status.ParseFromString(status.error_details()));
  for (const auto& any : d.status.details()) {
    if (any.UnpackTo(&d.info)) {
      EXPECT_FALSE(d.has_info) << "one ErrorInfo";
      d.has_info = true;
    } else if (any.UnpackTo(&d.bad)) {
      d.has_bad = true;
    } else if (any.UnpackTo(&d.quota)) {
      d.has_quota = true;
    } else {
      ADD_FAILURE() << "unexpected detail " << any.type_url();
    }
  }
  return d;
}

TEST(StatusMappingTest, OkHasNoDetails) {
  const grpc::Status ok = ToGrpcStatus(absl::OkStatus(), kRpc);
  EXPECT_TRUE(ok.ok());
  EXPECT_TRUE(ok.error_details().empty());
}

TEST(StatusMappingTest, NamedFieldBecomesABadRequestAndInvalidField) {
  const absl::Status s =
      WithField(absl::InvalidArgumentError("spec.batch_size: 0 must be >= 1"), "spec.batch_size");
  const grpc::Status g = ToGrpcStatus(s, kRpc);
  EXPECT_EQ(g.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(g.error_message(), "spec.batch_size: 0 must be >= 1") << "messages are unchanged";
  const Decoded d = Decode(g);
  EXPECT_EQ(d.status.code(), 3);
  EXPECT_EQ(d.status.message(), g.error_message());
  ASSERT_TRUE(d.has_info);
  EXPECT_EQ(d.info.domain(), "agt.v1");
  EXPECT_EQ(d.info.reason(), "INVALID_FIELD");
  EXPECT_EQ(d.info.metadata().at("method"), kRpc);
  ASSERT_TRUE(d.has_bad);
  ASSERT_EQ(d.bad.field_violations_size(), 1);
  EXPECT_EQ(d.bad.field_violations(0).field(), "spec.batch_size");
  EXPECT_EQ(d.bad.field_violations(0).description(), g.error_message());
  EXPECT_FALSE(d.has_quota);
}

TEST(StatusMappingTest, AnExplicitFieldWinsOverTheMessage) {
  const Decoded d = Decode(ToGrpcStatus(
      WithField(absl::InvalidArgumentError("message 1: the first message must carry metadata"),
                "metadata"),
      kRpc));
  ASSERT_TRUE(d.has_bad);
  EXPECT_EQ(d.bad.field_violations(0).field(), "metadata");
}

TEST(StatusMappingTest, FieldPathIsReadFromAValidationMessageWithoutOne) {
  const Decoded d =
      Decode(ToGrpcStatus(absl::InvalidArgumentError("spec.budgets[2].n: 70 must be < 64"), kRpc));
  ASSERT_TRUE(d.has_bad);
  EXPECT_EQ(d.bad.field_violations(0).field(), "spec.budgets[2].n");
  EXPECT_EQ(d.info.reason(), "INVALID_FIELD");
}

TEST(StatusMappingTest, MessagesThatDoNotStartWithAFieldGetNoBadRequest) {
  for (const char* message :
       {"empty upload: no metadata", "CSV: line 3 has 2 columns", "request_id has 200 characters",
        "spec[x]: bad index", "spec.: nothing after the dot", "spec.epochs:missing space"}) {
    const Decoded d = Decode(ToGrpcStatus(absl::InvalidArgumentError(message), kRpc));
    EXPECT_FALSE(d.has_bad) << message;
    EXPECT_EQ(d.info.reason(), "INVALID_ARGUMENT") << message;
  }
}

TEST(StatusMappingTest, LeadingFieldPathAcceptsOnlyFieldPaths) {
  EXPECT_EQ(LeadingFieldPath("spec.optimizer.l2: must be >= 0"), "spec.optimizer.l2");
  EXPECT_EQ(LeadingFieldPath("inputs.rows[3]: not finite"), "inputs.rows[3]");
  EXPECT_EQ(LeadingFieldPath("row_ids: required"), "row_ids");
  EXPECT_EQ(LeadingFieldPath("model 3: x"), "");
  EXPECT_EQ(LeadingFieldPath("Spec: x"), "");
  EXPECT_EQ(LeadingFieldPath("a[]: x"), "");
  EXPECT_EQ(LeadingFieldPath("a[1: x"), "");
  EXPECT_EQ(LeadingFieldPath(""), "");
  EXPECT_EQ(LeadingFieldPath("spec"), "");
}

TEST(StatusMappingTest, ResourceExhaustedAlwaysHasAQuotaFailure) {
  const absl::Status refused = WithMetadata(
      WithQuota(WithReason(absl::ResourceExhaustedError("privacy budget exceeded: asked 2 of 1"),
                           kReasonPrivacyBudgetExhausted),
                "tenant:acme/dataset:ds-1"),
      "model_id", "m-1");
  const Decoded d = Decode(ToGrpcStatus(refused, kRpc));
  EXPECT_EQ(d.info.reason(), "PRIVACY_BUDGET_EXHAUSTED");
  EXPECT_EQ(d.info.metadata().at("model_id"), "m-1");
  ASSERT_TRUE(d.has_quota);
  ASSERT_EQ(d.quota.violations_size(), 1);
  EXPECT_EQ(d.quota.violations(0).subject(), "tenant:acme/dataset:ds-1");
  EXPECT_EQ(d.quota.violations(0).description(), "privacy budget exceeded: asked 2 of 1");
  EXPECT_FALSE(d.has_bad);

  // Without a subject or reason: "server" and the code's name.
  const Decoded plain = Decode(ToGrpcStatus(absl::ResourceExhaustedError("too much"), kRpc));
  ASSERT_TRUE(plain.has_quota);
  EXPECT_EQ(plain.quota.violations(0).subject(), "server");
  EXPECT_EQ(plain.info.reason(), "RESOURCE_EXHAUSTED");
}

TEST(StatusMappingTest, LongMessagesAreCappedInTheDescriptionsOnly) {
  const std::string message = "spec.name: " + std::string(5000, 'x');
  const grpc::Status g = ToGrpcStatus(absl::InvalidArgumentError(message), kRpc);
  EXPECT_EQ(g.error_message(), message);
  const Decoded d = Decode(g);
  ASSERT_TRUE(d.has_bad);
  EXPECT_EQ(d.bad.field_violations(0).field(), "spec.name");
  EXPECT_EQ(d.bad.field_violations(0).description().size(), 1024u + 3u);
  EXPECT_LT(g.error_details().size(), 2 * 1100u + message.size());
}

TEST(StatusMappingTest, EveryCodeGetsItsDefaultReason) {
  EXPECT_EQ(Decode(ToGrpcStatus(absl::NotFoundError("x"), kRpc)).info.reason(), "NOT_FOUND");
  EXPECT_EQ(Decode(ToGrpcStatus(absl::UnauthenticatedError("x"), kRpc)).info.reason(),
            "UNAUTHENTICATED");
  EXPECT_EQ(Decode(ToGrpcStatus(absl::PermissionDeniedError("x"), kRpc)).info.reason(),
            "PERMISSION_DENIED");
  EXPECT_EQ(Decode(ToGrpcStatus(absl::FailedPreconditionError("x"), kRpc)).info.reason(),
            "FAILED_PRECONDITION");
  EXPECT_EQ(Decode(ToGrpcStatus(absl::DeadlineExceededError("x"), kRpc)).info.reason(),
            "DEADLINE_EXCEEDED");
  EXPECT_EQ(Decode(ToGrpcStatus(absl::CancelledError("x"), kRpc)).info.reason(), "CANCELLED");
}

TEST(StatusMappingTest, InternalErrorsShowNeitherTheirMessageNorTheirDetails) {
  const absl::Status internal = WithMetadata(
      WithField(absl::InternalError("sqlite: disk I/O error at /secret/path"), "spec.name"), "path",
      "/secret/path");
  const grpc::Status g = ToGrpcStatus(internal, kRpc);
  EXPECT_EQ(g.error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_EQ(g.error_message().find("secret"), std::string::npos) << g.error_message();
  EXPECT_EQ(g.error_details().find("secret"), std::string::npos);
  const Decoded d = Decode(g);
  EXPECT_EQ(d.info.reason(), "INTERNAL");
  EXPECT_FALSE(d.has_bad);
  EXPECT_EQ(d.info.metadata().count("path"), 0u);
  EXPECT_EQ(Decode(ToGrpcStatus(absl::UnknownError("boom"), kRpc)).info.reason(), "INTERNAL");
}

TEST(StatusDetailsTest, DetailsSurviveCopiesAndRewording) {
  absl::Status s =
      WithReason(WithQuota(absl::ResourceExhaustedError("a"), "tenant:t"), kReasonTenantJobLimit);
  s = WithMetadata(std::move(s), "job_id", "j-1");
  const absl::Status reworded = WithMessage(s, "retraining: a");
  EXPECT_EQ(reworded.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(reworded.message(), "retraining: a");
  const StatusDetails d = DetailsOf(reworded);
  EXPECT_EQ(d.reason, "TENANT_JOB_LIMIT");
  EXPECT_EQ(d.quota_subject, "tenant:t");
  ASSERT_EQ(d.metadata.size(), 1u);
  EXPECT_EQ(d.metadata[0].first, "job_id");
  EXPECT_EQ(d.metadata[0].second, "j-1");
  // A status rebuilt from the message alone has none.
  EXPECT_TRUE(DetailsOf(absl::Status(s.code(), s.message())).reason.empty());
  // OK stays OK and carries nothing.
  EXPECT_TRUE(WithReason(absl::OkStatus(), "X").ok());
  EXPECT_TRUE(DetailsOf(WithReason(absl::OkStatus(), "X")).reason.empty());
}

}  // namespace
}  // namespace agt::server
