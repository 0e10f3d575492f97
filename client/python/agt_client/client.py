"""The AGT client: one gRPC channel to agt-server and its five agt.v1 services.

Thread-safety: a Client may be shared by threads (gRPC channels and stubs
are); its model cache is a dict filled with immutable answers, so a race
only fetches a model twice.
"""

import hashlib
import os
import secrets
import time

import grpc
import numpy as np

from . import errors, results, spec as _spec
from ._stubs import pb

# The server refuses upload chunks over 1 MiB and requests over 64 MiB
# (agt-server --help).
UPLOAD_CHUNK_BYTES = 1 << 20
MAX_REQUEST_BYTES = 64 << 20
# Rows per CertifyPredictions call, as agtctl certify: bounded requests and
# answers however many rows are asked for.
CERTIFY_ROWS_PER_CALL = 1000
_FINAL_STATES = frozenset({pb.training.JOB_STATE_SUCCEEDED, pb.training.JOB_STATE_FAILED,
                           pb.training.JOB_STATE_CANCELLED})


def new_request_id():
    """A fresh idempotency key (what agtctl makes, with a Python prefix)."""
    return "agt-py-" + secrets.token_hex(12)


def to_matrix(inputs, name="inputs"):
    """An agt.v1.Matrix from a (rows, cols) array-like of numbers.

    A 1-D array is one row; images (rows, C, H, W) or (rows, H, W) become rows
    of their values in C order, the layout of a [C, H, W] sample shape.
    """
    array = np.asarray(inputs, dtype=np.float64)
    if array.ndim == 1:
        array = array.reshape(1, -1)
    if array.ndim in (3, 4):
        array = array.reshape(array.shape[0], -1)
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2-D (rows, features), or images (rows, H, W) or "
                         f"(rows, C, H, W), got shape {array.shape}")
    matrix = pb.common.Matrix(rows=array.shape[0], cols=array.shape[1])
    matrix.values.extend(array.ravel().tolist())
    return matrix


class Client:
    """A connection to agt-server.

    Args:
      target: "host:port" of the server.
      token: the bearer token (None in the server's local single-user mode).
      tls: serve over TLS; tls_ca_file is a PEM file of trusted roots (None:
        the system's), tls_server_name overrides the name checked.
      timeout: seconds per unary call and upload (default 60); watches have
        none unless watch_timeout is given.
      retries: how many times a call that carries a request id (uploads,
        submissions, deletions, private predictions) is retried, with the
        same id, when the server is UNAVAILABLE. The server answers a retry
        with the first call's result, so nothing happens twice.

    Use as a context manager, or call close(). Every failed call raises an
    agt_client.errors.AgtError subclass named after the gRPC code.
    """

    def __init__(self, target, token=None, *, tls=False, tls_ca_file=None, tls_server_name=None,
                 timeout=60.0, watch_timeout=None, retries=2):
        options = [("grpc.max_receive_message_length", 256 << 20),
                   ("grpc.max_send_message_length", MAX_REQUEST_BYTES)]
        if tls:
            roots = None
            if tls_ca_file:
                with open(tls_ca_file, "rb") as f:
                    roots = f.read()
            if tls_server_name:
                options.append(("grpc.ssl_target_name_override", tls_server_name))
            self._channel = grpc.secure_channel(
                target, grpc.ssl_channel_credentials(root_certificates=roots), options)
        else:
            self._channel = grpc.insecure_channel(target, options)
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self._timeout = timeout
        self._watch_timeout = watch_timeout
        self._retries = retries
        self._datasets = pb.datasets_grpc.DatasetServiceStub(self._channel)
        self._artifacts = pb.artifacts_grpc.ModelArtifactServiceStub(self._channel)
        self._training = pb.training_grpc.TrainingServiceStub(self._channel)
        self._models = pb.models_grpc.ModelServiceStub(self._channel)
        self._unlearning = pb.unlearning_grpc.UnlearningServiceStub(self._channel)
        self._privacy = pb.privacy_grpc.PrivacyServiceStub(self._channel)
        self._model_cache = {}

    # -- lifetime ----------------------------------------------------------

    def close(self):
        """Closes the channel; calls after it fail."""
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # -- plumbing ----------------------------------------------------------

    def _call(self, method, request, retry=False):
        """method(request) under the client's deadline and token; errors as AgtError.

        retry: the request carries a request id, so an UNAVAILABLE answer
        (the call may or may not have reached the server) is retried as is.
        A streaming request is given as a function that makes a fresh
        iterator for every attempt.
        """
        attempts = 1 + (self._retries if retry else 0)
        for attempt in range(attempts):
            try:
                return method(request() if callable(request) else request,
                              timeout=self._timeout, metadata=self._metadata)
            except grpc.RpcError as error:
                if retry and attempt + 1 < attempts and \
                        error.code() == grpc.StatusCode.UNAVAILABLE:
                    time.sleep(0.2 * 2 ** attempt)
                    continue
                raise errors.from_rpc_error(error) from None
        raise AssertionError("unreachable")

    def _pages(self, method, request, field):
        while True:
            response = self._call(method, request)
            yield from getattr(response, field)
            if not response.next_page_token:
                return
            request.page_token = response.next_page_token

    # -- datasets ----------------------------------------------------------

    def upload_dataset(self, features, labels, *, name="dataset", num_classes=-1,
                       request_id=None):
        """Uploads features (N, D) and labels (N,) as a dataset; returns its agt.v1.Dataset.

        Image features (N, C, H, W), or (N, H, W) read as one channel, are
        sent as rows of their C*H*W values in C order with the sample shape
        [C, H, W] (Dataset.sample_shape), for models with that input shape.

        The rows go as raw float64 in chunks of at most 1 MiB, with the total
        size declared up front (so an upload over the server's limit is
        refused before any byte is sent). num_classes: 0 = regression, 2 =
        binary 0/1, C = classes 0..C-1, -1 = inferred from the labels.
        request_id (default: a fresh one) makes retries return the stored
        dataset instead of storing it twice.
        """
        x = np.asarray(features, dtype=np.float64)
        y = np.asarray(labels, dtype=np.float64)
        sample_shape = []
        if x.ndim == 3:
            x = x[:, np.newaxis, :, :]
        if x.ndim == 4:
            sample_shape = list(x.shape[1:])
            x = x.reshape(x.shape[0], -1)
        if x.ndim != 2:
            raise ValueError("features must be 2-D (rows, features), or images (rows, H, W) or "
                             f"(rows, C, H, W), got shape {x.shape}")
        if y.shape != (x.shape[0],):
            raise ValueError(f"labels must have shape ({x.shape[0]},), got {y.shape}")
        data = np.ascontiguousarray(np.column_stack([x, y]), dtype="<f8").tobytes()
        metadata = pb.datasets.DatasetMetadata(
            name=name, format=pb.datasets.DATASET_FORMAT_FLOAT64, num_classes=num_classes,
            num_features=x.shape[1], request_id=request_id or new_request_id(),
            size_bytes=len(data), sample_shape=sample_shape)

        def messages():
            yield pb.datasets.UploadDatasetRequest(metadata=metadata)
            for at in range(0, len(data), UPLOAD_CHUNK_BYTES):
                yield pb.datasets.UploadDatasetRequest(chunk=data[at:at + UPLOAD_CHUNK_BYTES])

        return self._call(self._datasets.UploadDataset, messages, retry=True).dataset

    def get_dataset(self, dataset_id):
        """The agt.v1.Dataset with this id."""
        return self._call(self._datasets.GetDataset,
                          pb.datasets.GetDatasetRequest(dataset_id=dataset_id)).dataset

    def list_datasets(self):
        """Every dataset of the caller's tenant (all pages), as agt.v1.Dataset."""
        return list(self._pages(self._datasets.ListDatasets,
                                pb.datasets.ListDatasetsRequest(page_size=1000), "datasets"))

    def delete_dataset(self, dataset_id):
        """Deletes a dataset (FailedPrecondition while a queued or running job uses it)."""
        self._call(self._datasets.DeleteDataset,
                   pb.datasets.DeleteDatasetRequest(dataset_id=dataset_id))

    # -- model artifacts ---------------------------------------------------

    def upload_model_artifact(self, model, *, name=None, input_shape=None):
        """Uploads an ONNX file (a path, or its bytes); returns its agt.v1.ModelArtifact.

        The server parses it on arrival: the answer lists its layers (index,
        node name, op type), input shape and parameter count, and an
        unsupported operator is refused (Unimplemented) naming the node and
        its op type. The size and SHA-256 go first, so an upload over the
        server's --max-artifact-mib is refused before any byte is sent and a
        corrupted one is refused at the end. name: default the file's name.
        input_shape: [D] or [C, H, W] for a graph whose input dims are
        symbolic.
        """
        if isinstance(model, (bytes, bytearray, memoryview)):
            data = bytes(model)
            name = name or "model.onnx"
        else:
            path = os.fspath(model)
            with open(path, "rb") as f:
                data = f.read()
            name = name or os.path.basename(path)
        metadata = pb.artifacts.ModelArtifactMetadata(
            name=name, format=pb.artifacts.MODEL_ARTIFACT_FORMAT_ONNX, size_bytes=len(data),
            sha256=hashlib.sha256(data).hexdigest(), input_shape=list(input_shape or []))

        def messages():
            yield pb.artifacts.UploadModelArtifactRequest(metadata=metadata)
            for at in range(0, len(data), UPLOAD_CHUNK_BYTES):
                yield pb.artifacts.UploadModelArtifactRequest(
                    chunk=data[at:at + UPLOAD_CHUNK_BYTES])

        return self._call(self._artifacts.UploadModelArtifact, messages).artifact

    def get_model_artifact(self, artifact_id):
        """The agt.v1.ModelArtifact with this id."""
        return self._call(self._artifacts.GetModelArtifact,
                          pb.artifacts.GetModelArtifactRequest(artifact_id=artifact_id)).artifact

    def list_model_artifacts(self):
        """Every model artifact of the caller's tenant (all pages), as agt.v1.ModelArtifact."""
        return list(self._pages(self._artifacts.ListModelArtifacts,
                                pb.artifacts.ListModelArtifactsRequest(page_size=1000),
                                "artifacts"))

    def delete_model_artifact(self, artifact_id):
        """Deletes a model artifact (jobs and models made from it keep their copy)."""
        self._call(self._artifacts.DeleteModelArtifact,
                   pb.artifacts.DeleteModelArtifactRequest(artifact_id=artifact_id))

    # -- training ----------------------------------------------------------

    def submit_job(self, spec=None, *, request_id=None, **kwargs):
        """Submits a training job; returns its agt.v1.Job (QUEUED).

        spec: an agt.v1.TrainingJobSpec, or a dict; keyword arguments add to
        (or override) a dict. See agt_client.spec.make_job_spec for the keys;
        an unknown key raises ValueError before anything is sent.
        """
        if isinstance(spec, pb.training.TrainingJobSpec):
            if kwargs:
                raise ValueError("give either a TrainingJobSpec or keyword arguments, not both")
            message = spec
        else:
            message = _spec.make_job_spec(spec, **kwargs)
        request = pb.training.SubmitTrainingJobRequest(
            spec=message, request_id=request_id or new_request_id())
        return self._call(self._training.SubmitTrainingJob, request, retry=True).job

    def get_job(self, job_id):
        """The agt.v1.Job with this id (its state and last progress)."""
        return self._call(self._training.GetJob, pb.training.GetJobRequest(job_id=job_id)).job

    def list_jobs(self, state=None):
        """Every job of the tenant (all pages); state: a JobState name or number to filter."""
        request = pb.training.ListJobsRequest(page_size=1000)
        if state is not None:
            request.state = _job_state(state)
        return list(self._pages(self._training.ListJobs, request, "jobs"))

    def cancel_job(self, job_id):
        """Asks a queued or running job to stop; returns the agt.v1.Job."""
        return self._call(self._training.CancelJob,
                          pb.training.CancelJobRequest(job_id=job_id)).job

    def training_history(self, job_id=None, *, model_id=None):
        """The recorded width history of a job (or of the job that trained model_id).

        Returns agt_client.TrainingHistory: iteration, epoch, nominal_loss
        (T,) and total_width (T, B) arrays, with the budgets' n values.
        """
        if (job_id is None) == (model_id is None):
            raise ValueError("give exactly one of job_id and model_id")
        request = (pb.training.GetTrainingHistoryRequest(job_id=job_id) if job_id is not None
                   else pb.training.GetTrainingHistoryRequest(model_id=model_id))
        return results.training_history_from_proto(
            self._call(self._training.GetTrainingHistory, request))

    def delete_job(self, job_id):
        """Deletes a finished job and its checkpoint.

        FailedPrecondition while it is queued or running (cancel it first) or
        while the model it produced exists (delete_model first).
        """
        self._call(self._training.DeleteJob, pb.training.DeleteJobRequest(job_id=job_id))

    def watch(self, job_id):
        """Iterates over the job's agt.v1.JobEvent messages until it reaches a final state.

        The first event is the current state; every later one a progress
        update (event.progress.iteration, .total_iterations, .total_width per
        budget, .eta_seconds). Raises AgtError if the stream fails.
        """
        stream = self._training.WatchJob(pb.training.WatchJobRequest(job_id=job_id),
                                         timeout=self._watch_timeout, metadata=self._metadata)
        try:
            for event in stream:
                yield event
        except grpc.RpcError as error:
            raise errors.from_rpc_error(error) from None
        finally:
            stream.cancel()

    def wait(self, job_id, on_progress=None, raise_on_failure=True):
        """Waits for a job to end; returns its final agt.v1.Job.

        on_progress(event) is called with every agt.v1.JobEvent. A job that
        ends FAILED or CANCELLED raises agt_client.JobFailed (carrying .job)
        unless raise_on_failure is False.
        """
        for event in self.watch(job_id):
            if on_progress is not None:
                on_progress(event)
            if event.state in _FINAL_STATES:
                break
        job = self.get_job(job_id)
        if job.state not in _FINAL_STATES:
            # The server ends watches when it shuts down; the job stays queued.
            raise errors.Unavailable(
                f"the watch of job {job_id} ended while it was "
                f"{pb.training.JobState.Name(job.state)} (server shutting down?); wait again")
        if raise_on_failure and job.state != pb.training.JOB_STATE_SUCCEEDED:
            raise errors.JobFailed(job)
        return job

    def train(self, spec=None, *, on_progress=None, request_id=None, **kwargs):
        """submit_job then wait: returns the SUCCEEDED agt.v1.Job (its model_id is the model)."""
        job = self.submit_job(spec, request_id=request_id, **kwargs)
        return self.wait(job.id, on_progress=on_progress)

    # -- models and certificates ------------------------------------------

    def get_model(self, model_id):
        """The agt.v1.Model (architecture, budgets with their widths, nominal parameters)."""
        model = self._model_cache.get(model_id)
        if model is None:
            model = self._call(self._models.GetModel,
                               pb.models.GetModelRequest(model_id=model_id)).model
            self._model_cache[model_id] = model  # models never change once trained
        return model

    def list_models(self):
        """Every model of the tenant (all pages), as agt.v1.Model."""
        return list(self._pages(self._models.ListModels,
                                pb.models.ListModelsRequest(page_size=1000), "models"))

    def export_model(self, model_id):
        """The agt.v1.ExportModelResponse: the model and every budget's parameter box."""
        return self._call(self._models.ExportModel,
                          pb.models.ExportModelRequest(model_id=model_id))

    def export_onnx(self, model_id, path=None, *, float32=False):
        """The model's nominal network as an ONNX file; returns its bytes.

        path: also write the file there. The file's SHA-256 (sent first by
        the server) is checked. float32: float32 weights (default float64,
        the parameters exactly).
        """
        request = pb.models.ExportModelOnnxRequest(model_id=model_id, float32=float32)
        try:
            chunks = list(self._models.ExportModelOnnx(request, timeout=self._timeout,
                                                       metadata=self._metadata))
        except grpc.RpcError as error:
            raise errors.from_rpc_error(error) from None
        data = b"".join(c.chunk for c in chunks)
        if not chunks or len(data) != chunks[0].size_bytes or \
                hashlib.sha256(data).hexdigest() != chunks[0].sha256:
            raise errors.DataLoss("the exported ONNX file arrived incomplete or altered")
        if path is not None:
            with open(path, "wb") as f:
                f.write(data)
        return data

    def delete_model(self, model_id):
        """Deletes a model with its boxes and deletion ledger; its job stays.

        The privacy budget of its training data stays (a model trained again
        on the same data spends from it). FailedPrecondition while a
        retraining of the model is queued or running.
        """
        self._call(self._models.DeleteModel, pb.models.DeleteModelRequest(model_id=model_id))
        self._model_cache.pop(model_id, None)

    def certify(self, model_id, inputs, labels=None, *, test_epsilon=0.0, stability_rule=None,
                rows_per_call=CERTIFY_ROWS_PER_CALL):
        """Certifies predictions for inputs (P, D); returns results.Certificates.

        Per-budget axes follow Certificates.n, the model's budgets' n values;
        largest_stable_n is an n (-1: stable at none). labels (P,) fill
        Certificates.correct. test_epsilon > 0 also lets every input move in
        that l-infinity ball. stability_rule: "margin" (default) or "softmax".
        The rows go in calls of at most rows_per_call (certificates are per
        row, so the split changes nothing but the size of each call).
        """
        x = np.asarray(inputs, dtype=np.float64)
        x = x.reshape(1, -1) if x.ndim == 1 else x
        y = None if labels is None else np.asarray(labels, dtype=np.float64).ravel()
        if y is not None and y.shape[0] != x.shape[0]:
            raise ValueError(f"{y.shape[0]} labels for {x.shape[0]} input rows")
        rule = None if stability_rule is None else _enum(
            pb.common.StabilityRule, "STABILITY_RULE_", stability_rule)
        merged = pb.models.CertifyPredictionsResponse()
        for begin in range(0, max(x.shape[0], 1), rows_per_call):
            request = pb.models.CertifyPredictionsRequest(
                model_id=model_id, inputs=to_matrix(x[begin:begin + rows_per_call]),
                test_epsilon=test_epsilon)
            if rule is not None:
                request.stability_rule = rule
            if y is not None:
                request.labels.extend(y[begin:begin + rows_per_call].tolist())
            response = self._call(self._models.CertifyPredictions, request)
            merged.points.extend(response.points)
            merged.guarantee = response.guarantee
        return results.certificates_from_proto(merged, self.get_model(model_id),
                                               labels is not None)

    def certify_dataset(self, model_id, dataset_id, *, test_epsilon=0.0, stability_rule=None):
        """Certified accuracy (or MSE bounds) of a stored dataset per budget n."""
        request = pb.models.CertifyDatasetRequest(model_id=model_id, dataset_id=dataset_id,
                                                  test_epsilon=test_epsilon)
        if stability_rule is not None:
            request.stability_rule = _enum(pb.common.StabilityRule, "STABILITY_RULE_",
                                           stability_rule)
        return results.dataset_certificates_from_proto(
            self._call(self._models.CertifyDataset, request))

    # -- unlearning --------------------------------------------------------

    def request_deletion(self, model_id, rows, *, retrain_if_needed=False, request_id=None):
        """Asks to delete training rows; returns the agt.v1.RequestDeletionResponse.

        .accepted is True when every predicted certificate still covers the
        deletions (m <= max N); else .retraining_required.
        """
        request = pb.unlearning.RequestDeletionRequest(
            model_id=model_id, row_ids=[int(r) for r in np.asarray(rows).ravel()],
            retrain_if_needed=retrain_if_needed, request_id=request_id or new_request_id())
        return self._call(self._unlearning.RequestDeletion, request, retry=True)

    def unlearning_status(self, model_id):
        """The agt.v1.GetUnlearningStatusResponse (d, m, max N, state, audit fraction)."""
        return self._call(self._unlearning.GetUnlearningStatus,
                          pb.unlearning.GetUnlearningStatusRequest(model_id=model_id))

    def check_unlearning(self, model_id, inputs):
        """Whether each input's prediction is certified unchanged by the accepted deletions."""
        response = self._call(self._unlearning.CheckUnlearning,
                              pb.unlearning.CheckUnlearningRequest(model_id=model_id,
                                                                   inputs=to_matrix(inputs)))
        return results.unlearning_checks_from_proto(response)

    def list_deletions(self, model_id):
        """The model's deletion ledger (all pages), as agt.v1.Deletion in row order."""
        return list(self._pages(self._unlearning.ListDeletions,
                                pb.unlearning.ListDeletionsRequest(model_id=model_id,
                                                                   page_size=1000),
                                "deletions"))

    def retrain_in_place(self, model_id):
        """Enqueues the in-place retraining; returns the agt.v1.RetrainInPlaceResponse."""
        return self._call(self._unlearning.RetrainInPlace,
                          pb.unlearning.RetrainInPlaceRequest(model_id=model_id))

    # -- private prediction ------------------------------------------------

    def private_predict(self, model_id, inputs, epsilon, *, mechanism=None, request_id=None):
        """Releases one epsilon-DP label per input row; returns results.PrivatePredictions.

        Charges rows x epsilon to the training data's budget, all or nothing
        (ResourceExhausted, charging nothing, past the total). mechanism:
        "smooth_sensitivity" (the default), "global_laplace",
        "report_noisy_argmax". A retry with the same request_id returns the
        first answer and charges nothing.
        """
        request = pb.privacy.PrivatePredictRequest(
            model_id=model_id, inputs=to_matrix(inputs), epsilon=epsilon,
            request_id=request_id or new_request_id())
        if mechanism is not None:
            request.mechanism = _enum(pb.privacy.PrivacyMechanism, "PRIVACY_MECHANISM_",
                                      mechanism)
        return results.private_predictions_from_proto(
            self._call(self._privacy.PrivatePredict, request, retry=True))

    def privacy_budget(self, model_id):
        """The agt.v1.PrivacyBudget the model's releases draw on."""
        return self._call(self._privacy.GetPrivacyBudget,
                          pb.privacy.GetPrivacyBudgetRequest(model_id=model_id)).budget


def _enum(enum, prefix, value):
    if isinstance(value, int):
        return value
    name = value.upper()
    if not name.startswith(prefix):
        name = prefix + name
    try:
        return enum.Value(name)
    except ValueError:
        known = [n[len(prefix):].lower() for n in enum.keys() if not n.endswith("UNSPECIFIED")]
        raise ValueError(f"{value!r} is not one of {', '.join(known)}") from None


def _job_state(state):
    return _enum(pb.training.JobState, "JOB_STATE_", state)
