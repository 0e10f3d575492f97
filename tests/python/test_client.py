"""agt_client against a real agt-server on loopback (tokens, a fresh SQLite file).

Expected values come from the server's own raw answers (through the
generated stubs, not the package) or from the data the test made, never
from the package under test.
"""

import os
import shutil
import subprocess
import tempfile
import unittest

import grpc
import numpy as np

import agt_client
from agt.v1 import common_pb2, models_pb2, models_pb2_grpc, training_pb2
from agt_client import errors
from server_fixture import AgtServer

TRAINER = "py-trainer-token"
QUERIER = "py-querier-token"
PRIVATE = "py-private-token"
OTHER = "py-other-tenant-token"
TOKENS = [(TRAINER, "trainer", "acme", "py"), (QUERIER, "querier", "acme"),
          (PRIVATE, "private-querier", "acme"), (OTHER, "admin", "beta")]
PRIVACY_BUDGET = 4.0
# Budgets whose n values differ from every index (0..3): a client that
# reported indices would fail the n checks.
REMOVAL_BUDGETS = [1, 3, 10, 30]


def linear_data(rows, seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, size=(rows, 2))
    return x, (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.float64)


def removal_spec(dataset_id):
    return dict(dataset=dataset_id, loss="binary_cross_entropy", batch_size=200, epochs=3,
                learning_rate=0.5, perturbation="removal", budgets=REMOVAL_BUDGETS, seed=7)


def substitution_spec(dataset_id):
    return dict(dataset=dataset_id, hidden_widths=[8], loss="binary_cross_entropy",
                batch_size=50, epochs=2, learning_rate=0.1, clip_gamma=1.0,
                perturbation={"kind": "substitution"}, budgets=[1, 2, 4], seed=7)


# Points far from, near to and on both sides of the boundary x0 + x1/2 = 0.
QUERIES = np.array([[2.0, 1.0], [1.0, 0.5], [0.5, 0.2], [0.2, 0.1], [0.05, 0.0],
                    [-1.0, -1.0], [-3.0, 0.0], [0.0, 0.01]])


def setUpModule():
    global SERVER
    SERVER = AgtServer(["--privacy-budget", str(PRIVACY_BUDGET)], tokens=TOKENS)


def tearDownModule():
    SERVER.close()


class ClientE2eTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.client = agt_client.Client(SERVER.target, token=TRAINER, timeout=30)
        cls.x, cls.y = linear_data(400, 0)
        cls.dataset = cls.client.upload_dataset(cls.x, cls.y, name="linear", num_classes=2)
        cls.job = cls.client.train(removal_spec(cls.dataset.id))
        cls.model_id = cls.job.model_id
        # The raw stubs: the independent view of what the server answers.
        cls.channel = grpc.insecure_channel(SERVER.target)
        cls.models = models_pb2_grpc.ModelServiceStub(cls.channel)
        cls.metadata = (("authorization", f"Bearer {TRAINER}"),)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.channel.close()

    def raw_model(self, model_id):
        return self.models.GetModel(models_pb2.GetModelRequest(model_id=model_id), timeout=30,
                                    metadata=self.metadata).model

    # -- datasets -----------------------------------------------------------

    def test_upload_from_numpy_stores_every_row(self):
        self.assertEqual(self.dataset.num_rows, 400)
        self.assertEqual(self.dataset.num_features, 2)
        self.assertEqual(self.dataset.num_classes, 2)
        self.assertEqual(self.client.get_dataset(self.dataset.id), self.dataset)
        self.assertIn(self.dataset.id, [d.id for d in self.client.list_datasets()])

    def test_same_rows_same_checksum_other_rows_other_checksum(self):
        again = self.client.upload_dataset(self.x, self.y, name="again", num_classes=2)
        self.assertNotEqual(again.id, self.dataset.id)
        self.assertEqual(again.checksum, self.dataset.checksum)
        moved = self.x.copy()
        moved[123, 1] += 1e-9
        other = self.client.upload_dataset(moved, self.y, name="moved", num_classes=2)
        self.assertNotEqual(other.checksum, self.dataset.checksum)

    def test_upload_over_one_chunk_arrives_whole(self):
        # 15000 rows x 11 doubles = 1.32 MB: two chunks of at most 1 MiB.
        rng = np.random.default_rng(5)
        x = rng.normal(size=(15000, 10))
        y = rng.integers(0, 3, size=15000)
        dataset = self.client.upload_dataset(x, y, name="big")
        self.assertEqual((dataset.num_rows, dataset.num_features, dataset.num_classes),
                         (15000, 10, 3))

    def test_a_retried_request_id_stores_the_dataset_once(self):
        first = self.client.upload_dataset(self.x, self.y, name="idem", request_id="py-idem-1")
        second = self.client.upload_dataset(self.x, self.y, name="idem", request_id="py-idem-1")
        self.assertEqual(first.id, second.id)
        with self.assertRaises(agt_client.InvalidArgument):
            self.client.upload_dataset(self.x[:10], self.y[:10], name="idem",
                                       request_id="py-idem-1")

    def test_image_arrays_upload_with_their_sample_shape(self):
        images = np.arange(6 * 2 * 3 * 4, dtype=np.float64).reshape(6, 2, 3, 4)
        dataset = self.client.upload_dataset(images, np.arange(6) % 2, name="images")
        self.assertEqual(list(dataset.sample_shape), [2, 3, 4])
        self.assertEqual(dataset.num_features, 24)
        grey = self.client.upload_dataset(images[:, 0], np.arange(6) % 2, name="grey")
        self.assertEqual(list(grey.sample_shape), [1, 3, 4])
        flat = self.client.get_dataset(self.dataset.id)
        self.assertEqual(list(flat.sample_shape), [flat.num_features])

    def test_badly_shaped_arrays_are_refused_before_sending(self):
        with self.assertRaisesRegex(ValueError, "2-D"):
            self.client.upload_dataset(np.zeros(5), np.zeros(5))
        with self.assertRaisesRegex(ValueError, r"\(5,\)"):
            self.client.upload_dataset(np.zeros((5, 2)), np.zeros(4))

    # -- jobs ---------------------------------------------------------------

    def test_progress_callback_follows_the_job_to_its_end(self):
        # 40 steps per epoch, 100 epochs: a few tenths of a second, so the
        # watch starts before the end and sees more than the final event.
        events = []
        spec = removal_spec(self.dataset.id)
        spec.update(batch_size=10, epochs=100, learning_rate=0.01, budgets=[1, 2])
        job = self.client.train(spec, on_progress=events.append)
        self.assertEqual(job.state, training_pb2.JOB_STATE_SUCCEEDED)
        self.assertGreaterEqual(len(events), 2)
        self.assertEqual(events[-1].state, training_pb2.JOB_STATE_SUCCEEDED)
        self.assertEqual(events[-1].model_id, job.model_id)
        iterations = [e.progress.iteration for e in events]
        self.assertEqual(iterations, sorted(iterations))
        last = events[-1].progress
        self.assertEqual((last.iteration, last.total_iterations), (4000, 4000))
        self.assertEqual(len(last.total_width), 2)

    def test_watch_iterates_to_the_final_state(self):
        job = self.client.submit_job(removal_spec(self.dataset.id), epochs=2)
        self.assertEqual(job.spec.epochs, 2)
        self.assertEqual(list(job.spec.budgets), [training_pb2.Budget(n=n)
                                                  for n in REMOVAL_BUDGETS])
        events = list(self.client.watch(job.id))
        self.assertEqual(events[-1].state, training_pb2.JOB_STATE_SUCCEEDED)
        self.assertEqual(self.client.get_job(job.id).model_id, events[-1].model_id)
        self.assertIn(job.id, [j.id for j in self.client.list_jobs(state="succeeded")])

    def test_unknown_spec_key_is_refused_naming_it_and_nothing_is_submitted(self):
        before = len(self.client.list_jobs())
        with self.assertRaisesRegex(ValueError, r"'lerning_rate'.*learning_rate"):
            self.client.submit_job(removal_spec(self.dataset.id), lerning_rate=0.1)
        with self.assertRaisesRegex(ValueError, r"optimizer\.momentun"):
            self.client.submit_job(dataset=self.dataset.id, optimizer={"momentun": 0.9})
        with self.assertRaisesRegex(ValueError, "not a Loss"):
            self.client.submit_job(removal_spec(self.dataset.id), loss="hinge_squared")
        self.assertEqual(len(self.client.list_jobs()), before)

    def test_a_cancelled_job_raises_job_failed(self):
        spec = removal_spec(self.dataset.id)
        spec.update(epochs=10000, batch_size=10, budgets=[1])
        job = self.client.submit_job(spec)
        self.client.cancel_job(job.id)
        with self.assertRaises(agt_client.JobFailed) as caught:
            self.client.wait(job.id)
        self.assertEqual(caught.exception.job.state, training_pb2.JOB_STATE_CANCELLED)

    def test_training_history_follows_the_job_with_n_values(self):
        history = self.client.training_history(self.job.id)
        by_model = self.client.training_history(model_id=self.model_id)
        np.testing.assert_array_equal(history.iteration, by_model.iteration)
        self.assertEqual(list(history.n), REMOVAL_BUDGETS)
        self.assertEqual(history.total_width.shape, (len(history.iteration), len(REMOVAL_BUDGETS)))
        self.assertEqual(history.iteration[0], 1)
        self.assertEqual(history.iteration[-1], self.job.progress.total_iterations)
        self.assertTrue(np.all(np.diff(history.iteration) > 0))
        # The last point is the job's final progress; boxes nest, so widths
        # grow with n.
        np.testing.assert_array_equal(history.total_width[-1], list(self.job.progress.total_width))
        self.assertTrue(np.all(np.diff(history.total_width[-1]) >= 0))
        np.testing.assert_array_equal(history.width_at(10), history.total_width[:, 2])
        with self.assertRaises(ValueError):
            self.client.training_history()
        with self.assertRaises(agt_client.NotFound):
            self.client.training_history("job-00000000000000000000")

    def test_models_and_jobs_are_deleted_in_order(self):
        spec = removal_spec(self.dataset.id)
        spec.update(epochs=1)
        job = self.client.train(spec)
        self.client.certify(job.model_id, QUERIES[:2])
        with self.assertRaises(agt_client.FailedPrecondition) as caught:
            self.client.delete_job(job.id)
        self.assertIn("delete the model first", caught.exception.message)
        self.client.delete_model(job.model_id)
        with self.assertRaises(agt_client.NotFound):
            self.client.certify(job.model_id, QUERIES[:2])
        self.assertNotIn(job.model_id, [m.id for m in self.client.list_models()])
        self.client.delete_job(job.id)
        with self.assertRaises(agt_client.NotFound):
            self.client.get_job(job.id)

    # -- certificates -------------------------------------------------------

    def test_certificates_report_n_values_of_the_models_budgets(self):
        labels = (QUERIES[:, 0] + 0.5 * QUERIES[:, 1] > 0).astype(float)
        cert = self.client.certify(self.model_id, QUERIES, labels=labels)
        model = self.raw_model(self.model_id)
        ns = [b.budget.n for b in model.budgets]
        self.assertEqual(ns, REMOVAL_BUDGETS)
        self.assertEqual(cert.n.tolist(), ns)
        raw = self.models.CertifyPredictions(
            models_pb2.CertifyPredictionsRequest(
                model_id=self.model_id, labels=labels.tolist(),
                inputs={"rows": len(QUERIES), "cols": 2, "values": QUERIES.ravel().tolist()}),
            timeout=30, metadata=self.metadata)
        expected = [ns[p.largest_stable_budget] if p.largest_stable_budget >= 0 else -1
                    for p in raw.points]
        self.assertEqual(cert.largest_stable_n.tolist(), expected)
        # The data must exercise the mapping: some point stable beyond n = 3.
        self.assertTrue(any(n > 3 for n in expected), expected)
        self.assertEqual(cert.predicted.tolist(), [p.predicted_class for p in raw.points])
        self.assertEqual(cert.lower.shape, (len(QUERIES), len(ns), 1))
        for i, point in enumerate(raw.points):
            self.assertEqual(cert.stable[i].tolist(), list(point.stable))
            self.assertEqual(cert.correct[i].tolist(), list(point.correct))
            for b, bounds in enumerate(point.bounds):
                self.assertEqual(cert.lower[i, b].tolist(), list(bounds.lower))
                self.assertEqual(cert.upper[i, b].tolist(), list(bounds.upper))
            self.assertEqual(cert.nominal_logits[i].tolist(), list(point.nominal_logits))
        np.testing.assert_array_equal(cert.stable_at(30), cert.stable[:, 3])
        # In calls of 3 rows (3 + 3 + 2): the same certificates, in order.
        split = self.client.certify(self.model_id, QUERIES, labels=labels, rows_per_call=3)
        np.testing.assert_array_equal(split.lower, cert.lower)
        np.testing.assert_array_equal(split.upper, cert.upper)
        np.testing.assert_array_equal(split.largest_stable_n, cert.largest_stable_n)
        np.testing.assert_array_equal(split.correct, cert.correct)
        with self.assertRaisesRegex(ValueError, "n=2 is not a budget"):
            cert.stable_at(2)
        self.assertTrue(cert.certified_unchanged.all())  # no deletions on this model
        self.assertIn("Abstract Gradient Training", cert.guarantee)

    def test_certify_dataset_gives_one_entry_per_n(self):
        result = self.client.certify_dataset(self.model_id, self.dataset.id)
        raw = self.models.CertifyDataset(
            models_pb2.CertifyDatasetRequest(model_id=self.model_id, dataset_id=self.dataset.id),
            timeout=30, metadata=self.metadata)
        self.assertEqual(result.n.tolist(), REMOVAL_BUDGETS)
        self.assertEqual(result.num_rows, 400)
        self.assertEqual(result.stable_fraction.tolist(),
                         [b.stable_fraction for b in raw.budgets])
        self.assertEqual(result.accuracy_worst.tolist(),
                         [b.accuracy_worst for b in raw.budgets])
        self.assertTrue(np.all(np.diff(result.stable_fraction) <= 0))

    # -- unlearning ---------------------------------------------------------

    def test_deletions_and_unlearning_checks(self):
        job = self.client.train(removal_spec(self.dataset.id))
        before = self.client.certify(job.model_id, QUERIES)
        answer = self.client.request_deletion(job.model_id, [0, 1, 1, 250])
        self.assertTrue(answer.accepted)
        self.assertEqual((answer.deletions, answer.duplicates), (3, 1))
        # Rows 0, 1 share batch 0 and row 250 is in batch 1: m = 2.
        self.assertEqual(answer.max_deletions_per_batch, 2)
        check = self.client.check_unlearning(job.model_id, QUERIES)
        self.assertEqual((check.deletions, check.max_deletions_per_batch, check.max_budget),
                         (3, 2, 30))
        self.assertEqual(check.largest_stable_n.tolist(), before.largest_stable_n.tolist())
        self.assertEqual(check.certified_unchanged.tolist(),
                         (before.largest_stable_n >= 2).tolist())
        status = self.client.unlearning_status(job.model_id)
        self.assertEqual(status.deletions, 3)
        self.assertEqual([d.row_id for d in self.client.list_deletions(job.model_id)],
                         [0, 1, 250])

    # -- private prediction --------------------------------------------------

    def test_private_predictions_charge_rows_times_epsilon(self):
        x, y = linear_data(200, 1)
        dataset = self.client.upload_dataset(x, y, name="private", num_classes=2)
        model_id = self.client.train(substitution_spec(dataset.id)).model_id
        answer = self.client.private_predict(model_id, QUERIES[:4], 0.25)
        self.assertEqual(answer.mechanism, "PRIVACY_MECHANISM_SMOOTH_SENSITIVITY")
        self.assertTrue(set(answer.labels.tolist()) <= {0, 1})
        self.assertEqual(answer.epsilon_spent, 1.0)
        self.assertEqual(answer.epsilon_remaining, PRIVACY_BUDGET - 1.0)
        self.assertTrue(set(answer.n_star.tolist()) <= {0, 1, 2, 4}, answer.n_star)
        np.testing.assert_allclose(answer.sensitivity, np.exp(-0.25 * answer.n_star / 6))
        self.assertEqual(self.client.privacy_budget(model_id).spent_epsilon, 1.0)
        with agt_client.Client(SERVER.target, token=PRIVATE) as private:
            withheld = private.private_predict(model_id, QUERIES[:2], 0.25)
            self.assertEqual(withheld.n_star.tolist(), [-1, -1])
            with self.assertRaises(agt_client.PermissionDenied) as caught:
                private.certify(model_id, QUERIES[:2])
            self.assertEqual(caught.exception.code, grpc.StatusCode.PERMISSION_DENIED)
        # 1.5 spent of 4: 3 more rows at 1.0 would pass it, and charge nothing.
        with self.assertRaises(agt_client.ResourceExhausted) as caught:
            self.client.private_predict(model_id, QUERIES[:3], 1.0)
        self.assertEqual(caught.exception.code, grpc.StatusCode.RESOURCE_EXHAUSTED)
        self.assertEqual(self.client.privacy_budget(model_id).spent_epsilon, 1.5)
        if caught.exception.details:  # a server that sends google.rpc details
            self.assertTrue(caught.exception.quota_violations or caught.exception.reason)

    # -- errors -------------------------------------------------------------

    def test_errors_are_exceptions_of_their_code(self):
        with self.assertRaises(agt_client.NotFound) as caught:
            self.client.get_model("mdl-00000000000000000000")
        error = caught.exception
        self.assertIsInstance(error, agt_client.AgtError)
        self.assertEqual(error.code, grpc.StatusCode.NOT_FOUND)
        self.assertIn("mdl-00000000000000000000", error.message)
        self.assertIn("NOT_FOUND", str(error))

        with self.assertRaises(agt_client.InvalidArgument) as caught:
            self.client.submit_job(removal_spec(self.dataset.id), batch_size=0)
        self.assertEqual(caught.exception.code, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("batch_size", caught.exception.message)
        if caught.exception.details:
            self.assertTrue(any("batch_size" in v.field
                                for v in caught.exception.field_violations))

        with self.assertRaises(agt_client.FailedPrecondition) as caught:
            self.client.private_predict(self.model_id, QUERIES[:1], 0.1)
        self.assertIn("PERTURBATION_KIND_SUBSTITUTION", caught.exception.message)

        with agt_client.Client(SERVER.target, token="not-a-token") as stranger:
            with self.assertRaises(agt_client.Unauthenticated) as caught:
                stranger.list_models()
        self.assertEqual(caught.exception.code, grpc.StatusCode.UNAUTHENTICATED)

        with agt_client.Client(SERVER.target, token=QUERIER) as querier:
            with self.assertRaises(agt_client.PermissionDenied):
                querier.upload_dataset(self.x, self.y)
            # A querier reads and certifies.
            self.assertEqual(querier.get_model(self.model_id).id, self.model_id)

        with agt_client.Client(SERVER.target, token=OTHER) as other:
            with self.assertRaises(agt_client.NotFound):  # tenants never see each other
                other.get_model(self.model_id)


class ShutdownTest(unittest.TestCase):

    def test_a_server_stopping_mid_job_raises_unavailable_from_wait(self):
        with AgtServer() as server, agt_client.Client(server.target) as client:
            x, y = linear_data(400, 2)
            dataset = client.upload_dataset(x, y, num_classes=2)
            spec = removal_spec(dataset.id)
            spec.update(epochs=10000, batch_size=10, budgets=[1])
            job = client.submit_job(spec)
            events = []

            def stop_after_first_progress(event):
                events.append(event)
                if event.progress.iteration > 0 and server.process.poll() is None:
                    server.process.terminate()

            # The server ends the stream with UNAVAILABLE: an exception, not
            # a JobFailed for a job that is only paused.
            with self.assertRaises(agt_client.Unavailable) as caught:
                client.wait(job.id, on_progress=stop_after_first_progress)
            self.assertEqual(caught.exception.code, grpc.StatusCode.UNAVAILABLE)
            self.assertNotIn(events[-1].state, (training_pb2.JOB_STATE_SUCCEEDED,
                                                training_pb2.JOB_STATE_FAILED,
                                                training_pb2.JOB_STATE_CANCELLED))


@unittest.skipIf(shutil.which("openssl") is None, "no openssl command")
class TlsTest(unittest.TestCase):
    """Client(tls=True) against agt-server --tls-cert/--tls-key with a self-signed cert."""

    def test_the_ca_file_is_trusted_and_the_system_roots_are_not(self):
        with tempfile.TemporaryDirectory(prefix="agt_py_tls_") as tmp:
            cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                            "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
                            "-subj", "/CN=agt-test", "-addext",
                            "subjectAltName=DNS:agt-test,IP:127.0.0.1",
                            "-keyout", key, "-out", cert],
                           check=True, capture_output=True, timeout=60)
            with AgtServer(["--tls-cert", cert, "--tls-key", key]) as server:
                with agt_client.Client(server.target, tls=True, tls_ca_file=cert,
                                       tls_server_name="agt-test") as client:
                    self.assertEqual(client.list_models(), [])
                with agt_client.Client(server.target, tls=True, timeout=5) as untrusted:
                    with self.assertRaises(agt_client.Unavailable):
                        untrusted.list_models()
                with agt_client.Client(server.target, timeout=5) as plain:
                    with self.assertRaises(agt_client.Unavailable):
                        plain.list_models()


class JobSpecTest(unittest.TestCase):
    """make_job_spec against messages built field by field with the stubs."""

    def test_keys_shortcuts_and_enum_names_make_the_same_message(self):
        made = agt_client.make_job_spec(
            {"name": "p", "budgets": [1, {"n": 2, "label_n": 1}]}, dataset="ds-1",
            hidden_widths=np.array([8, 4]), loss="cross_entropy", learning_rate=0.1,
            momentum=0.9, perturbation={"kind": "poisoning", "epsilon": 0.05,
                                        "labels": {"flip": True}},
            rounding="ROUNDING_MODE_NEAREST", interval_product="exact")
        expected = training_pb2.TrainingJobSpec(
            name="p", dataset_id="ds-1", hidden_widths=[8, 4],
            loss=common_pb2.LOSS_CROSS_ENTROPY,
            optimizer=training_pb2.Optimizer(learning_rate=0.1, momentum=0.9),
            perturbation=training_pb2.Perturbation(
                kind=common_pb2.PERTURBATION_KIND_POISONING, epsilon=0.05,
                labels=training_pb2.LabelPerturbation(flip=True)),
            budgets=[training_pb2.Budget(n=1), training_pb2.Budget(n=2, label_n=1)],
            rounding=common_pb2.ROUNDING_MODE_NEAREST,
            interval_product=common_pb2.INTERVAL_PRODUCT_EXACT)
        self.assertEqual(made, expected)

    def test_an_optimizer_message_merges_with_top_level_keys(self):
        made = agt_client.make_job_spec(optimizer=training_pb2.Optimizer(l2=0.01),
                                        learning_rate=0.5)
        self.assertEqual(made.optimizer, training_pb2.Optimizer(l2=0.01, learning_rate=0.5))
        with self.assertRaisesRegex(ValueError, "both"):
            agt_client.make_job_spec(optimizer={"learning_rate": 1}, learning_rate=0.5)

    def test_wrong_types_name_the_field(self):
        with self.assertRaisesRegex(ValueError, "batch_size"):
            agt_client.make_job_spec(batch_size="big")
        with self.assertRaisesRegex(ValueError, r"budgets\[1\]"):
            agt_client.make_job_spec(budgets=[1, "two"])
        with self.assertRaisesRegex(ValueError, "hidden_widths: expected a list"):
            agt_client.make_job_spec(hidden_widths=8)


def _varint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number, payload):
    """A length-delimited field (wire type 2)."""
    if isinstance(payload, str):
        payload = payload.encode()
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _any(type_name, payload):
    return _field(1, "type.googleapis.com/" + type_name) + _field(2, payload)


@unittest.skipIf(errors._status_pb2 is None, "no google.rpc stubs in this build")
class ToMatrixTest(unittest.TestCase):

    def test_images_become_rows_of_their_values_in_c_order(self):
        images = np.arange(2 * 3 * 2 * 2, dtype=np.float64).reshape(2, 3, 2, 2)
        matrix = agt_client.to_matrix(images)
        self.assertEqual((matrix.rows, matrix.cols), (2, 12))
        self.assertEqual(list(matrix.values), list(range(24)))
        gray = agt_client.to_matrix(np.zeros((4, 5, 6)))
        self.assertEqual((gray.rows, gray.cols), (4, 30))
        self.assertEqual(agt_client.to_matrix([1.0, 2.0]).rows, 1)
        with self.assertRaisesRegex(ValueError, r"got shape \(1, 1, 1, 1, 1\)"):
            agt_client.to_matrix(np.zeros((1, 1, 1, 1, 1)))


class DetailsDecoderTest(unittest.TestCase):
    """The grpc-status-details-bin decoder on bytes written by hand from the
    public google.rpc field numbers."""

    def test_error_info_bad_request_and_quota_failure_are_decoded(self):
        info = _field(1, "BUDGET_EXHAUSTED") + _field(2, "agt.v1") + \
            _field(3, _field(1, "model_id") + _field(2, "mdl-1"))
        bad = _field(1, _field(1, "spec.batch_size") + _field(2, "must be > 0"))
        quota = _field(1, _field(1, "privacy:ds-1") + _field(2, "epsilon 5 > 4 left"))
        status = _varint(3 << 3 | 0) + _varint(8) + _field(2, "budget") + \
            _field(3, _any("google.rpc.ErrorInfo", info)) + \
            _field(3, _any("google.rpc.BadRequest", bad)) + \
            _field(3, _any("google.rpc.QuotaFailure", quota)) + \
            _field(3, _any("example.Unknown", b"\x08\x01"))
        details = errors.decode_status_details(status)
        self.assertEqual(len(details), 4)
        error = errors.error_from_code(grpc.StatusCode.RESOURCE_EXHAUSTED, "budget", details)
        self.assertIsInstance(error, agt_client.ResourceExhausted)
        self.assertEqual((error.reason, error.domain), ("BUDGET_EXHAUSTED", "agt.v1"))
        self.assertEqual(error.metadata, {"model_id": "mdl-1"})
        self.assertEqual(error.field_violations,
                         [agt_client.FieldViolation("spec.batch_size", "must be > 0")])
        self.assertEqual(error.quota_violations,
                         [agt_client.QuotaViolation("privacy:ds-1", "epsilon 5 > 4 left")])
        self.assertIn("agt.v1/BUDGET_EXHAUSTED", str(error))

    def test_malformed_details_leave_only_the_message(self):
        self.assertEqual(errors.decode_status_details(b"\xff\xff\xff"), [])
        error = errors.error_from_code(grpc.StatusCode.INTERNAL, "boom", [])
        self.assertIsInstance(error, agt_client.Internal)
        self.assertEqual((error.reason, error.field_violations), ("", []))


if __name__ == "__main__":
    unittest.main()
