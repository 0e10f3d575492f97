#include "server/auth/permissions.h"

#include "absl/strings/str_cat.h"

namespace agt::server {

std::string ActionName(Action action) {
  switch (action) {
    case Action::kRead:
      return "read";
    case Action::kCertify:
      return "certify";
    case Action::kWrite:
      return "write";
    case Action::kPrivatePredict:
      return "private-prediction";
  }
  return "unknown";
}

const std::vector<RpcPermission>& RpcPermissionTable() {
  static const auto* const table = new std::vector<RpcPermission>{
      {"/agt.v1.DatasetService/UploadDataset", Action::kWrite},
      {"/agt.v1.DatasetService/ListDatasets", Action::kRead},
      {"/agt.v1.DatasetService/GetDataset", Action::kRead},
      {"/agt.v1.DatasetService/DeleteDataset", Action::kWrite},
      {"/agt.v1.ModelArtifactService/UploadModelArtifact", Action::kWrite},
      {"/agt.v1.ModelArtifactService/ListModelArtifacts", Action::kRead},
      {"/agt.v1.ModelArtifactService/GetModelArtifact", Action::kRead},
      {"/agt.v1.ModelArtifactService/DeleteModelArtifact", Action::kWrite},
      {"/agt.v1.TrainingService/SubmitTrainingJob", Action::kWrite},
      {"/agt.v1.TrainingService/GetJob", Action::kRead},
      {"/agt.v1.TrainingService/ListJobs", Action::kRead},
      {"/agt.v1.TrainingService/CancelJob", Action::kWrite},
      {"/agt.v1.TrainingService/DeleteJob", Action::kWrite},
      {"/agt.v1.TrainingService/WatchJob", Action::kRead},
      {"/agt.v1.TrainingService/GetTrainingHistory", Action::kRead},
      {"/agt.v1.ModelService/GetModel", Action::kRead},
      {"/agt.v1.ModelService/ListModels", Action::kRead},
      {"/agt.v1.ModelService/ExportModel", Action::kRead},
      {"/agt.v1.ModelService/ExportModelOnnx", Action::kRead},
      {"/agt.v1.ModelService/CertifyPredictions", Action::kCertify},
      {"/agt.v1.ModelService/CertifyDataset", Action::kCertify},
      {"/agt.v1.ModelService/DeleteModel", Action::kWrite},
      {"/agt.v1.UnlearningService/RequestDeletion", Action::kWrite},
      {"/agt.v1.UnlearningService/GetUnlearningStatus", Action::kRead},
      {"/agt.v1.UnlearningService/CheckUnlearning", Action::kCertify},
      {"/agt.v1.UnlearningService/ListDeletions", Action::kRead},
      {"/agt.v1.UnlearningService/RetrainInPlace", Action::kWrite},
      {"/agt.v1.PrivacyService/PrivatePredict", Action::kPrivatePredict},
      {"/agt.v1.PrivacyService/GetPrivacyBudget", Action::kPrivatePredict},
  };
  return *table;
}

bool RoleMayPerform(Role role, Action action) {
  switch (role) {
    case Role::kAdmin:
    case Role::kTrainer:
      return true;
    case Role::kQuerier:
      return action != Action::kWrite;
    case Role::kPrivateQuerier:
      return action == Action::kPrivatePredict;
  }
  return false;
}

absl::Status Authorize(const Principal& principal, absl::string_view method) {
  for (const RpcPermission& row : RpcPermissionTable()) {
    if (method != row.method) continue;
    if (RoleMayPerform(principal.role, row.action)) return absl::OkStatus();
    return absl::PermissionDeniedError(absl::StrCat("role ", RoleName(principal.role),
                                                    " may not call ", method, " (needs ",
                                                    ActionName(row.action), " rights)"));
  }
  return absl::PermissionDeniedError(
      absl::StrCat("method ", method, " has no permission entry and is denied"));
}

}  // namespace agt::server
