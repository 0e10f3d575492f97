// Which role may call which RPC: a table with one row per RPC of the public
// API, and the role rules over four kinds of action.
//
//   read     Get/List/Watch/Export: see the tenant's datasets, jobs, models.
//   certify  CertifyPredictions/CertifyDataset: compute certificates.
//   write    Upload/Delete datasets, Submit/Cancel jobs: change the tenant's
//            data or spend its compute.
//   private-prediction  PrivatePredict/GetPrivacyBudget: differentially
//            private labels, spending the caller's privacy budget.
//
//   admin            read, certify, write, private-prediction (everything
//                    within its own tenant).
//   trainer          read, certify, write, private-prediction.
//   querier          read, certify, private-prediction.
//   private-querier  private-prediction only: it sees nothing but private
//                    labels and its own budget, so the epsilon-DP guarantee
//                    is the whole of what it learns about the training data.
//
// Admin and trainer have the same rights over today's RPCs; admin is the role
// future operator RPCs (tenant and token management) will require. Methods
// are named as gRPC names them: "/agt.v1.DatasetService/UploadDataset". A
// method missing from the table is denied (deny by default), so a new RPC
// cannot be reached before someone decides who may call it; a test checks
// that every RPC of the protos has a row. Health checking and reflection are
// not in the table: they reveal nothing of any tenant and are served without
// credentials.
//
// Thread-safety: stateless; the table is immutable.
#ifndef AGT_SERVER_AUTH_PERMISSIONS_H_
#define AGT_SERVER_AUTH_PERMISSIONS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "server/auth/tokens.h"

namespace agt::server {

enum class Action { kRead, kCertify, kWrite, kPrivatePredict };

std::string ActionName(Action action);

struct RpcPermission {
  const char* method;  // "/package.Service/Method"
  Action action;
};

// Every RPC of agt.v1 and the action it needs.
const std::vector<RpcPermission>& RpcPermissionTable();

bool RoleMayPerform(Role role, Action action);

// OK iff the principal's role may call `method`. PermissionDenied naming the
// role, the method and the action otherwise, and for a method not in the
// table.
absl::Status Authorize(const Principal& principal, absl::string_view method);

}  // namespace agt::server

#endif  // AGT_SERVER_AUTH_PERMISSIONS_H_
