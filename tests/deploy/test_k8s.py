"""deploy/k8s passes check_k8s.py, and check_k8s.py catches what it claims to.

Each broken copy changes one thing in the real manifests and must be refused
with a message naming it: the check is only worth running if it can fail.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.environ.get("AGT_SOURCE_DIR", os.path.join(HERE, "..", ".."))
K8S = os.path.join(SOURCE, "deploy", "k8s")
SERVER = os.environ.get("AGT_SERVER_BINARY")


def check(directory):
    args = [sys.executable, os.path.join(HERE, "check_k8s.py"), "--dir", directory]
    if SERVER:
        args += ["--server-binary", SERVER]
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


class K8sManifestsTest(unittest.TestCase):

    def test_the_manifests_are_valid(self):
        run = check(K8S)
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
        self.assertIn("8 documents", run.stdout)

    def broken(self, file, old, new, expected):
        work = tempfile.mkdtemp(prefix="agt_k8s_")
        try:
            for name in os.listdir(K8S):
                shutil.copy(os.path.join(K8S, name), work)
            path = os.path.join(work, file)
            with open(path) as f:
                text = f.read()
            self.assertIn(old, text, "the mutation must apply")
            with open(path, "w") as f:
                f.write(text.replace(old, new, 1))
            run = check(work)
            self.assertNotEqual(run.returncode, 0, f"{old!r} -> {new!r} passed")
            self.assertIn(expected, run.stdout)
        finally:
            shutil.rmtree(work)

    def test_an_unknown_field_is_refused(self):
        self.broken("api.yaml", "readinessProbe:", "readinesProbe:",
                    "readinesProbe: unknown field of V1Container")

    def test_a_wrong_type_is_refused(self):
        self.broken("worker.yaml", "replicas: 2", "replicas: two",
                    "spec.replicas: expected int, got str 'two'")

    def test_a_missing_required_field_is_refused(self):
        self.broken("worker.yaml", "- name: agt-server\n", "- image: x\n",
                    "V1Container: Invalid value for `name`, must not be `None`")

    def test_a_grpc_probe_needs_its_port(self):
        self.broken("worker.yaml", "grpc: {port: 50051}", "grpc: {service: x}",
                    "missing required field port")

    def test_a_secret_key_must_be_defined(self):
        self.broken("api.yaml", "secretKeyRef: {name: agt-db, key: password}",
                    "secretKeyRef: {name: agt-db, key: passwd}",
                    "secret agt-db key passwd is not in secrets.example.yaml")

    def test_a_service_must_select_pods(self):
        self.broken("api.yaml", "  selector:\n    app.kubernetes.io/name: agt-api",
                    "  selector:\n    app.kubernetes.io/name: agt-apx",
                    "matches no Deployment's pods")

    @unittest.skipUnless(SERVER, "AGT_SERVER_BINARY not set")
    def test_an_unknown_server_flag_is_refused(self):
        self.broken("worker.yaml", "- --job-lease-seconds", "- --job-lease-secs",
                    "agt-server has no flag --job-lease-secs")


if __name__ == "__main__":
    unittest.main()
