"""agt_client: the Python client of the AGT certification service.

    import agt_client
    with agt_client.Client("127.0.0.1:50051", token=TOKEN) as agt:
        ds = agt.upload_dataset(X, y, name="moons", num_classes=2)
        job = agt.train(dataset=ds, hidden_widths=[8], loss="binary_cross_entropy",
                        batch_size=20, epochs=3, learning_rate=0.1,
                        perturbation="removal", budgets=[1, 2, 5])
        cert = agt.certify(job.model_id, X[:5])
        cert.n, cert.largest_stable_n  # budgets as n values, not indices

Errors are agt_client.errors.AgtError subclasses (InvalidArgument, NotFound,
ResourceExhausted, ...) with .code, .message and decoded google.rpc details.
"""

from . import errors
from .client import Client, new_request_id, to_matrix
from .errors import (AgtError, Aborted, AlreadyExists, Cancelled, DataLoss, DeadlineExceeded,
                     FailedPrecondition, FieldViolation, Internal, InvalidArgument, JobFailed,
                     NotFound, OutOfRange, PermissionDenied, QuotaViolation, ResourceExhausted,
                     Unauthenticated, Unavailable, Unimplemented, Unknown)
from .results import (Certificates, DatasetCertificates, PrivatePredictions, TrainingHistory,
                      UnlearningChecks)
from .spec import make_job_spec

__version__ = "0.1.0"

__all__ = [
    "Client", "make_job_spec", "new_request_id", "to_matrix", "errors",
    "Certificates", "DatasetCertificates", "PrivatePredictions", "TrainingHistory",
    "UnlearningChecks",
    "AgtError", "Aborted", "AlreadyExists", "Cancelled", "DataLoss", "DeadlineExceeded",
    "FailedPrecondition", "FieldViolation", "Internal", "InvalidArgument", "JobFailed",
    "NotFound", "OutOfRange", "PermissionDenied", "QuotaViolation", "ResourceExhausted",
    "Unauthenticated", "Unavailable", "Unimplemented", "Unknown",
]
