"""examples/fashion_mnist at smoke size, end to end, against a real agt-server.

Pre-trains the CNN in PyTorch (python3-torch), uploads it as a model artifact
with Fashion-MNIST images (Debian's dataset-fashion-mnist), fine-tunes its
head under label flipping, feature poisoning and removal, certifies, checks
unlearning, releases private labels, exports to ONNX and runs the export in
PyTorch. Checked against the printed figures: the certified accuracy never
rises with n and never exceeds the nominal one, the plot is an SVG with one
line per threat model, and the export agrees with the service.
"""

import os
import re
import subprocess
import sys
import tempfile
import unittest

from server_fixture import AgtServer

SOURCE = os.environ.get("AGT_SOURCE_DIR",
                        os.path.join(os.path.dirname(__file__), "..", ".."))
EXAMPLE = os.path.join(SOURCE, "examples", "fashion_mnist")
DATA = "/usr/share/datasets/fashion-mnist"


def have(module):
    try:
        __import__(module)
        return True
    except ImportError:
        return False


@unittest.skipUnless(os.path.exists(os.path.join(DATA, "train-images-idx3-ubyte.gz"))
                     and have("torch") and have("onnx"),
                     "needs dataset-fashion-mnist, python3-torch and python3-onnx")
class FashionExampleTest(unittest.TestCase):

    def test_smoke_flow(self):
        work = tempfile.mkdtemp(prefix="agt_fm_")
        env = dict(os.environ, PYTHONPATH=os.environ.get("PYTHONPATH", "") + ":" + EXAMPLE)
        pretrain = subprocess.run(
            [sys.executable, os.path.join(EXAMPLE, "pretrain.py"), "--out",
             os.path.join(work, "cnn.onnx"), "--binary-out", os.path.join(work, "fw.onnx"),
             "--rows", "2000", "--epochs", "1"],
            capture_output=True, text=True, timeout=300, env=env)
        self.assertEqual(pretrain.returncode, 0, pretrain.stderr)
        svg = os.path.join(work, "plot.svg")
        with AgtServer(["--privacy-budget", "100"]) as server:
            run = subprocess.run(
                [sys.executable, os.path.join(EXAMPLE, "fine_tune.py"), "--target",
                 server.target, "--onnx", os.path.join(work, "cnn.onnx"), "--onnx-binary",
                 os.path.join(work, "fw.onnx"), "--smoke", "--svg", svg, "--export",
                 os.path.join(work, "ft.onnx")],
                capture_output=True, text=True, timeout=600, env=env)
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
        out = run.stdout
        nominal = [float(v) for v in re.findall(r"nominal accuracy (\d\.\d+)", out)]
        self.assertEqual(len(nominal), 3, out)
        rows = {}
        for label in ("label flipping", "features eps=0.01", "removal"):
            line = re.search(rf"^  {re.escape(label)} +((?:\d\.\d+ *)+)$", out, re.M)
            self.assertIsNotNone(line, out)
            rows[label] = [float(v) for v in line.group(1).split()]
        for (label, values), base in zip(rows.items(), nominal):
            self.assertEqual(len(values), 3, label)
            self.assertTrue(all(a >= b for a, b in zip(values, values[1:])), (label, values))
            self.assertLessEqual(values[0], base + 1e-12, label)
            # Not vacuous at the smallest budget: n=1 of 1000 rows per batch.
            self.assertGreater(values[0], 0.5 * base, label)
        # Poisoning was bounded against something: the largest budget costs accuracy.
        self.assertLess(rows["label flipping"][-1], nominal[0])
        self.assertRegex(out, r"unlearning: delete 10 rows .* accepted=True; \d+/100 test")
        self.assertIn("AGT smooth sensitivity", out)
        self.assertIn("epsilon spent 40 of 100", out)
        difference = float(re.search(r"max \|difference\| (\S+) over 100", out).group(1))
        self.assertLess(difference, 1e-9)
        with open(svg) as f:
            picture = f.read()
        self.assertTrue(picture.startswith("<svg"))
        self.assertEqual(picture.count("<polyline"), 3)
        self.assertIn("certified test accuracy", picture)


if __name__ == "__main__":
    unittest.main()
