"""Errors of the AGT client: one exception class per gRPC status code.

Every failed call raises a subclass of AgtError carrying the gRPC code, the
server's message and the google.rpc error details the server attached in the
``grpc-status-details-bin`` trailer (ErrorInfo reason/domain/metadata,
BadRequest field violations, QuotaFailure violations). When the google.rpc
stubs were not generated (the repository had no proto/google/rpc), or the
server sent no details, the detail attributes are empty and only the code
and message are known.
"""

from dataclasses import dataclass

import grpc

try:  # Generated at build time only when proto/google/rpc exists.
    from google.rpc import error_details_pb2 as _details_pb2
    from google.rpc import status_pb2 as _status_pb2
except ImportError:  # pragma: no cover - depends on the build
    _details_pb2 = None
    _status_pb2 = None

_DETAILS_KEY = "grpc-status-details-bin"


@dataclass(frozen=True)
class FieldViolation:
    """One invalid request field (google.rpc.BadRequest.FieldViolation)."""

    field: str
    description: str


@dataclass(frozen=True)
class QuotaViolation:
    """One quota a request would pass (google.rpc.QuotaFailure.Violation)."""

    subject: str
    description: str


class AgtError(Exception):
    """A call to agt-server failed.

    Attributes:
      code: the grpc.StatusCode.
      message: the server's message (names the field, the value and the limit).
      reason, domain, metadata: google.rpc.ErrorInfo ("" / {} when absent).
      field_violations: list of FieldViolation (google.rpc.BadRequest).
      quota_violations: list of QuotaViolation (google.rpc.QuotaFailure).
      details: every detail as a google.protobuf.Any, known or not.
    """

    code = grpc.StatusCode.UNKNOWN

    def __init__(self, message, code=None, details=()):
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message
        self.details = list(details)
        self.reason = ""
        self.domain = ""
        self.metadata = {}
        self.field_violations = []
        self.quota_violations = []
        for any_detail in self.details:
            self._decode(any_detail)

    def _decode(self, any_detail):
        if _details_pb2 is None:
            return
        if any_detail.Is(_details_pb2.ErrorInfo.DESCRIPTOR):
            info = _details_pb2.ErrorInfo()
            any_detail.Unpack(info)
            self.reason, self.domain = info.reason, info.domain
            self.metadata = dict(info.metadata)
        elif any_detail.Is(_details_pb2.BadRequest.DESCRIPTOR):
            bad = _details_pb2.BadRequest()
            any_detail.Unpack(bad)
            self.field_violations.extend(
                FieldViolation(v.field, v.description) for v in bad.field_violations)
        elif any_detail.Is(_details_pb2.QuotaFailure.DESCRIPTOR):
            quota = _details_pb2.QuotaFailure()
            any_detail.Unpack(quota)
            self.quota_violations.extend(
                QuotaViolation(v.subject, v.description) for v in quota.violations)

    def __str__(self):
        name = self.code.name if isinstance(self.code, grpc.StatusCode) else str(self.code)
        text = f"{name}: {self.message}"
        if self.reason:
            text += f" [{self.domain}/{self.reason}]" if self.domain else f" [{self.reason}]"
        return text


class Cancelled(AgtError):
    code = grpc.StatusCode.CANCELLED


class Unknown(AgtError):
    code = grpc.StatusCode.UNKNOWN


class InvalidArgument(AgtError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class DeadlineExceeded(AgtError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class NotFound(AgtError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(AgtError):
    code = grpc.StatusCode.ALREADY_EXISTS


class PermissionDenied(AgtError):
    code = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhausted(AgtError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class FailedPrecondition(AgtError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Aborted(AgtError):
    code = grpc.StatusCode.ABORTED


class OutOfRange(AgtError):
    code = grpc.StatusCode.OUT_OF_RANGE


class Unimplemented(AgtError):
    code = grpc.StatusCode.UNIMPLEMENTED


class Internal(AgtError):
    code = grpc.StatusCode.INTERNAL


class Unavailable(AgtError):
    code = grpc.StatusCode.UNAVAILABLE


class DataLoss(AgtError):
    code = grpc.StatusCode.DATA_LOSS


class Unauthenticated(AgtError):
    code = grpc.StatusCode.UNAUTHENTICATED


_BY_CODE = {cls.code: cls for cls in (
    Cancelled, Unknown, InvalidArgument, DeadlineExceeded, NotFound, AlreadyExists,
    PermissionDenied, ResourceExhausted, FailedPrecondition, Aborted, OutOfRange,
    Unimplemented, Internal, Unavailable, DataLoss, Unauthenticated)}


class JobFailed(Exception):
    """A training job ended FAILED or CANCELLED; .job is its final agt.v1.Job."""

    def __init__(self, job):
        from agt.v1 import training_pb2  # noqa: PLC0415 - stubs load lazily

        state = training_pb2.JobState.Name(job.state)
        super().__init__(f"job {job.id} ended {state}" + (f": {job.error}" if job.error else ""))
        self.job = job


def decode_status_details(data):
    """The google.protobuf.Any details of a serialised google.rpc.Status.

    Returns [] when the google.rpc stubs are absent or the bytes do not parse.
    """
    if _status_pb2 is None or not data:
        return []
    status = _status_pb2.Status()
    try:
        status.ParseFromString(data)
    except Exception:  # noqa: BLE001 - a malformed trailer must not hide the error
        return []
    return list(status.details)


def error_from_code(code, message, details=()):
    """The AgtError subclass for `code` (a grpc.StatusCode)."""
    return _BY_CODE.get(code, AgtError)(message, code=code, details=details)


def from_rpc_error(error):
    """Maps a grpc.RpcError (a failed call) to the AgtError subclass of its code."""
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    message = error.details() if hasattr(error, "details") else str(error)
    details = []
    trailing = error.trailing_metadata() if hasattr(error, "trailing_metadata") else None
    for key, value in trailing or ():
        if key == _DETAILS_KEY:
            details = decode_status_details(value)
    return error_from_code(code, message or "", details)
