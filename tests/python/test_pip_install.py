"""The documented offline install: a venv that sees Debian's python3-grpcio,
python3-protobuf and python3-numpy, and pip building client/python in it
(no build isolation, no index: nothing is fetched).

It runs on a copy of client/python and proto/ (the layout setup.py expects),
so that the build leaves nothing in the source tree and cannot pick up stubs
generated there: the installed package must have generated its own.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import unittest

from server_fixture import AgtServer

SOURCE = os.environ.get("AGT_SOURCE_DIR",
                        os.path.join(os.path.dirname(__file__), "..", ".."))


class PipInstallTest(unittest.TestCase):

    def test_offline_install_into_a_venv_imports_and_talks_to_a_server(self):
        with tempfile.TemporaryDirectory(prefix="agt_pip_") as tmp:
            repo = os.path.join(tmp, "repo")
            shutil.copytree(os.path.join(SOURCE, "client", "python"),
                            os.path.join(repo, "client", "python"),
                            ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
            shutil.copytree(os.path.join(SOURCE, "proto"), os.path.join(repo, "proto"))
            env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
            venv = os.path.join(tmp, "venv")
            subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", venv],
                           check=True, env=env, timeout=120)
            install = subprocess.run(
                [os.path.join(venv, "bin", "pip"), "install", "--no-build-isolation",
                 "--no-index", "./client/python"],
                cwd=repo, env=env, capture_output=True, text=True, timeout=120)
            self.assertEqual(install.returncode, 0, install.stdout + install.stderr)
            with AgtServer() as server:
                script = ("import agt_client, agt.v1.models_pb2 as m\n"
                          "with agt_client.Client(%r) as c:\n"
                          "    print(agt_client.__file__, m.__file__, len(c.list_models()))\n"
                          % server.target)
                run = subprocess.run([os.path.join(venv, "bin", "python"), "-c", script],
                                     cwd=tmp, env=env, capture_output=True, text=True,
                                     timeout=60)
            self.assertEqual(run.returncode, 0, run.stderr)
            package, stubs, models = run.stdout.split()
            site = os.path.join(venv, "lib")
            self.assertTrue(package.startswith(site), package)
            self.assertTrue(stubs.startswith(site), stubs)
            self.assertEqual(models, "0")


if __name__ == "__main__":
    unittest.main()
