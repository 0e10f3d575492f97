"""Fine-tuning a PyTorch network through the service (issue 15), end to end.

A small CNN is built and exported in the test with torch.onnx.export (float64,
opset 13), uploaded as a model artifact (agtctl artifact upload, and the
Python client), with an IDX image pair written in the test (the first
Fashion-MNIST training images when Debian's dataset-fashion-mnist is
installed, else synthetic patches) uploaded by agtctl dataset upload. Its
conv layers are frozen and the dense head is fine-tuned under bounded
poisoning (epsilon through the frozen convolutions, label flips) and under
removal; then certify, request_deletion + check_unlearning, private_predict,
and the ONNX export run again in PyTorch (its initializers loaded into the
torch module), whose logits must equal the service's nominal logits to
1e-12. Also: the upload's description, tenant scoping, an unsupported op
refused naming the node and op type, and deletion leaving the models intact.

Expected values come from PyTorch, from the file the test wrote, or from the
server's raw answers, never from the package under test. Skipped when torch
or onnx cannot be imported, or when AGTCTL_BINARY is not set.
"""

import gzip
import json
import os
import shutil
import struct
import subprocess
import tempfile
import unittest

import numpy as np

import agt_client
from agt_client import errors
from server_fixture import AgtServer

try:
    import onnx
    from onnx import numpy_helper
    import torch
    from torch import nn
except Exception as error:  # pragma: no cover - the skip path
    torch = None
    IMPORT_ERROR = str(error)

TRAINER = "art-trainer-token"
OTHER = "art-other-tenant-token"
TOKENS = [(TRAINER, "trainer", "acme", "art"), (OTHER, "admin", "beta")]
ROWS = 300
CLASSES = 10
FASHION = "/usr/share/datasets/fashion-mnist"


def make_net():
    """[1, 28, 28] -> conv 4@5x5 stride 3 -> relu -> flatten -> 256 -> 16 -> relu -> 10."""
    torch.manual_seed(3)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 5, stride=3)
            self.flat = nn.Flatten()
            self.fc1 = nn.Linear(4 * 8 * 8, 16)
            self.fc2 = nn.Linear(16, CLASSES)

        def forward(self, x):
            x = self.flat(torch.relu(self.conv(x)))
            return self.fc2(torch.relu(self.fc1(x)))

    return Net().double().eval()


def export_onnx(model, path, example):
    torch.onnx.export(model, example, path, opset_version=13, input_names=["x"],
                      output_names=["y"], dynamic_axes={"x": {0: "N"}, "y": {0: "N"}})


def images_and_labels():
    """(ROWS, 28, 28) uint8 images and (ROWS,) labels."""
    images = os.path.join(FASHION, "train-images-idx3-ubyte.gz")
    labels = os.path.join(FASHION, "train-labels-idx1-ubyte.gz")
    if os.path.exists(images) and os.path.exists(labels):
        with gzip.open(images, "rb") as f:
            x = np.frombuffer(f.read(16 + ROWS * 784)[16:], dtype=np.uint8)
        with gzip.open(labels, "rb") as f:
            y = np.frombuffer(f.read(8 + ROWS)[8:], dtype=np.uint8)
        return x.reshape(ROWS, 28, 28), y.copy()
    rng = np.random.default_rng(5)
    x = rng.integers(0, 60, size=(ROWS, 28, 28)).astype(np.uint8)
    y = (np.arange(ROWS) % CLASSES).astype(np.uint8)
    for r in range(ROWS):
        top, left = 2 + 8 * (y[r] // 4), 2 + 6 * (y[r] % 4)
        x[r, top:top + 6, left:left + 6] = 220
    return x, y


def write_idx(path, array):
    """An IDX file (unsigned bytes) of `array`, gzipped."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + b"".join(
        struct.pack(">I", d) for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def setUpModule():
    global SERVER
    if torch is None:
        raise unittest.SkipTest(f"torch/onnx not importable: {IMPORT_ERROR}")
    if not os.environ.get("AGTCTL_BINARY"):
        raise unittest.SkipTest("AGTCTL_BINARY is not set (tests/python/CMakeLists.txt sets it)")
    SERVER = AgtServer(["--privacy-budget", "100"], tokens=TOKENS)


def tearDownModule():
    SERVER.close()


class FineTuneE2eTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="agt_art_")
        cls.net = make_net()
        cls.onnx_path = os.path.join(cls.dir, "cnn.onnx")
        export_onnx(cls.net, cls.onnx_path, torch.zeros(2, 1, 28, 28, dtype=torch.float64))
        cls.pixels, cls.labels = images_and_labels()
        cls.x = cls.pixels.astype(np.float64).reshape(ROWS, 784) / 255.0
        write_idx(os.path.join(cls.dir, "train-images-idx3-ubyte.gz"), cls.pixels)
        write_idx(os.path.join(cls.dir, "train-labels-idx1-ubyte.gz"), cls.labels)
        cls.client = agt_client.Client(SERVER.target, TRAINER)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def agtctl(self, *args):
        result = subprocess.run(
            [os.environ["AGTCTL_BINARY"], "--server", SERVER.target, "--token", TRAINER,
             "--json", *args], capture_output=True, text=True, timeout=60)
        self.assertEqual(result.returncode, 0, f"agtctl {' '.join(args)}: {result.stderr}")
        return json.loads(result.stdout)

    def upload_images(self):
        return self.agtctl("dataset", "upload",
                           os.path.join(self.dir, "train-images-idx3-ubyte.gz"), "--labels",
                           os.path.join(self.dir, "train-labels-idx1-ubyte.gz"))["dataset"]

    def torch_logits(self, state, x):
        """The torch module with `state` loaded, on rows x of [1, 28, 28]."""
        model = make_net()
        model.load_state_dict(state)
        with torch.no_grad():
            return model(torch.from_numpy(x.reshape(-1, 1, 28, 28))).numpy()

    def test_upload_describes_the_network_is_tenant_scoped_and_refuses_unsupported_ops(self):
        artifact = self.agtctl("artifact", "upload", self.onnx_path, "--name", "cnn")["artifact"]
        self.assertTrue(artifact["id"].startswith("art-"))
        self.assertEqual(artifact["input_shape"], [1, 28, 28])
        ops = [layer.get("op_type") for layer in artifact["layers"]]
        self.assertEqual(ops, ["Conv", "Relu", "Flatten", "Gemm", "Relu", "Gemm"])
        self.assertEqual(int(artifact["num_parameters"]),
                         sum(p.numel() for p in self.net.parameters()))
        with open(self.onnx_path, "rb") as f:
            import hashlib
            self.assertEqual(artifact["sha256"], hashlib.sha256(f.read()).hexdigest())
        self.assertIn(artifact["id"], [a.id for a in self.client.list_model_artifacts()])

        with agt_client.Client(SERVER.target, OTHER) as other:
            with self.assertRaises(errors.NotFound):
                other.get_model_artifact(artifact["id"])
            self.assertNotIn(artifact["id"], [a.id for a in other.list_model_artifacts()])
            with self.assertRaises(errors.NotFound):
                other.delete_model_artifact(artifact["id"])

        class WithSigmoid(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 2)

            def forward(self, x):
                return torch.sigmoid(self.fc(x))

        path = os.path.join(self.dir, "sigmoid.onnx")
        export_onnx(WithSigmoid().double(), path, torch.zeros(1, 4, dtype=torch.float64))
        node = onnx.load(path).graph.node[-1]
        self.assertEqual(node.op_type, "Sigmoid")
        with self.assertRaises(errors.Unimplemented) as refused:
            self.client.upload_model_artifact(path)
        self.assertIn("Sigmoid", refused.exception.message)
        self.assertIn(node.name, refused.exception.message)

    def test_fine_tuned_head_certifies_unlearns_predicts_and_exports_to_torch(self):
        dataset = self.upload_images()
        self.assertEqual(dataset["sample_shape"], [1, 28, 28])
        artifact = self.client.upload_model_artifact(self.onnx_path)

        # Bounded poisoning through the frozen convolutions, by agtctl with a
        # JSON spec (labels flipped too).
        spec = {"name": "fine-tune-poisoning", "dataset_id": dataset["id"],
                "loss": "LOSS_CROSS_ENTROPY", "batch_size": 100, "epochs": 2,
                "optimizer": {"learning_rate": 0.05},
                "perturbation": {"kind": "PERTURBATION_KIND_POISONING", "epsilon": 0.002,
                                 "labels": {"flip": True}},
                "budgets": [{"n": 1, "label_n": 1}, {"n": 2, "label_n": 2}], "seed": 1,
                "model_artifact": {"artifact_id": artifact.id, "frozen_layers": 3}}
        spec_path = os.path.join(self.dir, "poisoning.json")
        with open(spec_path, "w") as f:
            json.dump(spec, f)
        job = self.agtctl("train", spec_path, "--wait")["job"]
        self.assertEqual(job["state"], "JOB_STATE_SUCCEEDED", job)
        poisoned_id = job["model_id"]
        # The stored spec holds the file's frozen conv: its weights, exactly.
        frozen = np.array(job["spec"]["architecture"]["frozen"]["parameters"])
        conv = np.concatenate([self.net.conv.weight.detach().numpy().ravel(),
                               self.net.conv.bias.detach().numpy()])
        np.testing.assert_array_equal(frozen, conv)

        certified = self.client.certify(poisoned_id, self.x[:40], self.labels[:40])
        self.assertEqual(list(certified.n), [1, 2])
        self.assertTrue(np.all(certified.lower <= certified.nominal_logits[:, None, :]))
        self.assertTrue(np.all(certified.upper >= certified.nominal_logits[:, None, :]))

        # The export, run in PyTorch: initializers in the torch module's order.
        data = self.client.export_onnx(poisoned_id, os.path.join(self.dir, "tuned.onnx"))
        model = onnx.load_from_string(data)
        weights = [numpy_helper.to_array(t) for t in model.graph.initializer]
        self.assertTrue(all(w.dtype == np.float64 for w in weights))
        names = list(make_net().state_dict().keys())
        self.assertEqual(len(weights), len(names))
        state = {name: torch.from_numpy(w.reshape(make_net().state_dict()[name].shape).copy())
                 for name, w in zip(names, weights)}
        logits = self.torch_logits(state, self.x[:40])
        np.testing.assert_allclose(logits, certified.nominal_logits, rtol=0, atol=1e-12)
        # The frozen conv is the uploaded one; the head moved from its start.
        np.testing.assert_array_equal(state["conv.weight"].numpy(),
                                      self.net.conv.weight.detach().numpy())
        self.assertGreater(np.abs(state["fc2.weight"].numpy()
                                  - self.net.fc2.weight.detach().numpy()).max(), 0)
        # agtctl writes the same file.
        agtctl_path = os.path.join(self.dir, "agtctl.onnx")
        self.agtctl("model", "export", poisoned_id, "--format", "onnx", "-o", agtctl_path)
        with open(agtctl_path, "rb") as f:
            self.assertEqual(f.read(), data)

        # Removal with frozen_until, through the Python client: unlearning
        # and private predictions on the fine-tuned head.
        flatten = [layer.node_name for layer in artifact.layers][2]
        removal = self.client.train(dataset=dataset["id"], model_artifact=artifact,
                                    frozen_until=flatten, loss="cross_entropy",
                                    batch_size=100, epochs=2, learning_rate=0.05,
                                    perturbation="removal", budgets=[1, 3], seed=2)
        self.assertEqual(len(removal.spec.architecture.frozen.layers), 3)
        answer = self.client.request_deletion(removal.model_id, [0, 5])
        self.assertTrue(answer.accepted)
        checks = self.client.check_unlearning(removal.model_id, self.x[:10])
        self.assertEqual(len(checks.certified_unchanged), 10)
        private = self.client.private_predict(removal.model_id, self.x[:3], 1.0,
                                              mechanism="report_noisy_argmax")
        self.assertEqual(len(private.labels), 3)
        self.assertTrue(all(0 <= label < CLASSES for label in private.labels))

        # Deleting the artifact leaves both models served.
        self.client.delete_model_artifact(artifact.id)
        with self.assertRaises(errors.NotFound):
            self.client.get_model_artifact(artifact.id)
        again = self.client.certify(poisoned_id, self.x[:5])
        np.testing.assert_array_equal(again.nominal_logits, certified.nominal_logits[:5])
        # And the in-place retraining without the deleted rows runs from the
        # stored spec alone.
        retraining = self.client.retrain_in_place(removal.model_id)
        self.assertEqual(retraining.removed_rows, 2)
        retrained = self.client.wait(retraining.job_id)
        self.assertEqual(list(retrained.spec.removed_rows), [0, 5])
        self.assertEqual(retrained.spec.architecture.initial_parameters,
                         removal.spec.architecture.initial_parameters)

    def test_bad_references_are_refused_at_submit(self):
        dataset = self.upload_images()
        artifact = self.client.upload_model_artifact(self.onnx_path)
        base = dict(dataset=dataset["id"], model_artifact=artifact.id, loss="cross_entropy",
                    batch_size=100, epochs=1, learning_rate=0.05, perturbation="removal",
                    budgets=[1])
        with self.assertRaises(errors.InvalidArgument) as past:
            self.client.submit_job(base, frozen_layers=6)
        self.assertIn("spec.model_artifact.frozen_layers", past.exception.message)
        with self.assertRaises(errors.InvalidArgument) as unknown:
            self.client.submit_job(base, frozen_until="nope")
        self.assertIn("\"nope\" names no layer node", unknown.exception.message)
        with self.assertRaises(errors.NotFound):
            self.client.submit_job(dict(base, model_artifact="art-00000000000000000000"))
        with agt_client.Client(SERVER.target, OTHER) as other:
            foreign = other.upload_dataset(self.x[:100], self.labels[:100].astype(np.float64))
            with self.assertRaises(errors.NotFound):
                other.submit_job(dict(base, dataset=foreign.id), frozen_layers=3)


if __name__ == "__main__":
    unittest.main()
