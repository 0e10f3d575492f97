// Reads the google.rpc details agt-server sends with an error (the
// grpc-status-details-bin trailer, server/service/status_mapping.h) straight
// from a grpc::Status, for end-to-end tests that check a refusal is
// machine-readable as well as worded.
#ifndef AGT_TESTS_SERVER_RPC_ERROR_DETAILS_H_
#define AGT_TESTS_SERVER_RPC_ERROR_DETAILS_H_

#include <grpcpp/support/status.h>
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"

namespace agt::e2e {

// The ErrorInfo, the first field violation and the first quota violation;
// empty strings for what is absent (and a test failure when the trailer is
// missing or does not parse).
struct RpcErrorDetails {
  std::string reason;
  std::string domain;
  std::map<std::string, std::string> metadata;
  std::string field;
  std::string quota_subject;
  std::string quota_description;
};

inline RpcErrorDetails ReadRpcErrorDetails(const grpc::Status& status) {
  RpcErrorDetails out;
  google::rpc::Status rich;
  EXPECT_FALSE(status.error_details().empty()) << "no details: " << status.error_message();
  EXPECT_TRUE(rich.ParseFromString(status.error_details()));
  for (const auto& any : rich.details()) {
    google::rpc::ErrorInfo info;
    google::rpc::BadRequest bad;
    google::rpc::QuotaFailure quota;
    if (any.UnpackTo(&info)) {
      out.reason = info.reason();
      out.domain = info.domain();
      out.metadata.insert(info.metadata().begin(), info.metadata().end());
    } else if (any.UnpackTo(&bad) && bad.field_violations_size() > 0) {
      out.field = bad.field_violations(0).field();
    } else if (any.UnpackTo(&quota) && quota.violations_size() > 0) {
      out.quota_subject = quota.violations(0).subject();
      out.quota_description = quota.violations(0).description();
    }
  }
  return out;
}

}  // namespace agt::e2e

#endif  // AGT_TESTS_SERVER_RPC_ERROR_DETAILS_H_
