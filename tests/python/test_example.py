"""examples/python_flow.py runs to its end against a real agt-server."""

import os
import subprocess
import sys
import unittest

from server_fixture import AgtServer

SOURCE = os.environ.get("AGT_SOURCE_DIR",
                        os.path.join(os.path.dirname(__file__), "..", ".."))


class ExampleTest(unittest.TestCase):

    def test_python_flow_runs_every_cell(self):
        with AgtServer() as server:
            run = subprocess.run(
                [sys.executable, os.path.join(SOURCE, "examples", "python_flow.py"),
                 "--target", server.target],
                capture_output=True, text=True, timeout=120)
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
        out = run.stdout
        self.assertIn("budgets n = [1, 2, 5, 10, 20]", out)
        self.assertIn("n=20: certified accuracy", out)
        self.assertIn("deletion accepted=True", out)
        self.assertIn("private labels", out)
        self.assertIn("NotFound (NOT_FOUND): model mdl-does-not-exist not found", out)


if __name__ == "__main__":
    unittest.main()
