// FromGrpcStatus and ErrorDetailsOf: the google.rpc details of a gRPC status
// survive the conversion to absl::Status and decode field by field; unknown
// detail types are skipped, and missing or broken details read as none.
#include "client/lib/error_details.h"

#include <grpcpp/support/status.h>
#include <gtest/gtest.h>

#include "agt/v1/common.pb.h"
#include "client/lib/client.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"

namespace agt::client {
namespace {

grpc::Status RichGrpcStatus() {
  google::rpc::Status rich;
  rich.set_code(8);
  rich.set_message("budget exceeded");
  google::rpc::ErrorInfo info;
  info.set_reason("PRIVACY_BUDGET_EXHAUSTED");
  info.set_domain("agt.v1");
  (*info.mutable_metadata())["model_id"] = "mdl-1";
  rich.add_details()->PackFrom(info);
  google::rpc::QuotaFailure quota;
  auto* v = quota.add_violations();
  v->set_subject("tenant:acme/dataset:ds-1");
  v->set_description("budget exceeded");
  rich.add_details()->PackFrom(quota);
  google::rpc::BadRequest bad;
  auto* f = bad.add_field_violations();
  f->set_field("epsilon");
  f->set_description("too large");
  rich.add_details()->PackFrom(bad);
  // A detail type this client does not know.
  agt::v1::Matrix other;
  other.set_rows(1);
  rich.add_details()->PackFrom(other);
  return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "budget exceeded",
                      rich.SerializeAsString());
}

TEST(ErrorDetailsTest, FromGrpcStatusKeepsEveryDetail) {
  const absl::Status status = FromGrpcStatus(RichGrpcStatus());
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(status.message(), "budget exceeded");
  const std::optional<ErrorDetails> d = ErrorDetailsOf(status);
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->reason, "PRIVACY_BUDGET_EXHAUSTED");
  EXPECT_EQ(d->domain, "agt.v1");
  ASSERT_EQ(d->metadata.size(), 1u);
  EXPECT_EQ(d->metadata.at("model_id"), "mdl-1");
  ASSERT_EQ(d->quota_violations.size(), 1u);
  EXPECT_EQ(d->quota_violations[0].subject, "tenant:acme/dataset:ds-1");
  EXPECT_EQ(d->quota_violations[0].description, "budget exceeded");
  ASSERT_EQ(d->field_violations.size(), 1u);
  EXPECT_EQ(d->field_violations[0].field, "epsilon");
  EXPECT_EQ(d->field_violations[0].description, "too large");
}

TEST(ErrorDetailsTest, NoOrBrokenDetailsReadAsNone) {
  EXPECT_FALSE(ErrorDetailsOf(FromGrpcStatus(grpc::Status(grpc::StatusCode::UNAVAILABLE, "down")))
                   .has_value());
  EXPECT_FALSE(ErrorDetailsOf(FromGrpcStatus(grpc::Status(grpc::StatusCode::INTERNAL, "x",
                                                          std::string("\xff\xff\xff", 3))))
                   .has_value());
  EXPECT_FALSE(ErrorDetailsOf(absl::NotFoundError("local")).has_value());
  // OK never carries details.
  EXPECT_TRUE(FromGrpcStatus(grpc::Status::OK).ok());
  EXPECT_FALSE(ErrorDetailsOf(WithRpcStatus(absl::OkStatus(), "abc")).has_value());
}

}  // namespace
}  // namespace agt::client
