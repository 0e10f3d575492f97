#!/usr/bin/python3
"""The whole AGT flow from Python, cell by cell (# %% marks a notebook cell).

Start a server, then run this against it:

    build/server/agt-server --listen 127.0.0.1:50051 --db /tmp/agt.db &
    PYTHONPATH=build/python:client/python /usr/bin/python3 examples/python_flow.py \
        --target 127.0.0.1:50051

(or, with the package pip-installed, just `python examples/python_flow.py ...`).
It uploads half-moons data made with NumPy, trains a certified MLP under
removal budgets with a progress line, certifies query points (budgets as n
values), certifies a held-out set per n, asks for deletions and checks which
predictions they leave unchanged, trains under substitution budgets and
releases differentially private labels, and shows an error as an exception.
"""

# %% Connect.
import argparse
import sys

import numpy as np

import agt_client

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--target", required=True, help="agt-server host:port")
parser.add_argument("--token", default=None, help="bearer token (none in local mode)")
args = parser.parse_args()
agt = agt_client.Client(args.target, token=args.token)


# %% Data: two interleaved half-moons, labels 0/1, as NumPy arrays.
def moons(rows, noise, seed):
    rng = np.random.default_rng(seed)
    upper = rng.integers(0, 2, size=rows)
    angle = rng.uniform(0.0, np.pi, size=rows)
    x = np.where(upper, np.cos(angle), 1.0 - np.cos(angle))
    y = np.where(upper, np.sin(angle), 0.5 - np.sin(angle))
    points = np.column_stack([x, y]) + rng.normal(scale=noise, size=(rows, 2))
    return points, (1 - upper).astype(np.float64)


x_train, y_train = moons(3000, 0.1, seed=1)
x_test, y_test = moons(500, 0.1, seed=2)
train = agt.upload_dataset(x_train, y_train, name="moons-train", num_classes=2)
test = agt.upload_dataset(x_test, y_test, name="moons-test", num_classes=2)
print(f"uploaded {train.id}: {train.num_rows} rows x {train.num_features} features")


# %% Train under removal budgets (unlearning), with a progress line: the
# paper's half-moons setting (Fig. 7), a linear model on cubic features.
def show(event):
    p = event.progress
    if p.total_iterations:
        widths = " ".join(f"{w:.3g}" for w in p.total_width)
        print(f"\r  step {p.iteration}/{p.total_iterations} loss {p.nominal_loss:.3f} "
              f"width {widths}   ", end="", file=sys.stderr)


job = agt.train(dataset=train, polynomial_degree=3, loss="binary_cross_entropy",
                batch_size=1000, epochs=4, learning_rate=2.0, lr_decay=0.5,
                perturbation="removal", budgets=[1, 2, 5, 10, 20], seed=0, on_progress=show)
print(file=sys.stderr)
model = agt.get_model(job.model_id)
print(f"job {job.id} trained model {model.id}; budgets n =",
      [b.budget.n for b in model.budgets])

# %% Certify query points: per point, the largest n at which it is stable.
queries = np.array([[-1.0, 0.5], [0.0, 1.0], [0.5, 0.25], [1.0, -0.5], [2.0, 0.5]])
cert = agt.certify(model.id, queries)
for point, cls, n in zip(queries, cert.predicted, cert.largest_stable_n):
    print(f"  x={point.tolist()}: class {cls}, " +
          (f"certified up to n={n}" if n >= 0 else "not certified at any n"))

# %% Certified accuracy of the held-out set, per n.
per_n = agt.certify_dataset(model.id, test.id)
for n, worst, stable in zip(per_n.n, per_n.accuracy_worst, per_n.stable_fraction):
    print(f"  n={n:>2}: certified accuracy {worst:.3f}, stable fraction {stable:.3f}")

# %% Unlearning: delete three training rows; which predictions stay certified?
answer = agt.request_deletion(model.id, [3, 14, 15])
print(f"deletion accepted={answer.accepted}: {answer.message}")
check = agt.check_unlearning(model.id, queries)
print("  certified unchanged:", check.certified_unchanged.tolist())

# %% Private prediction (paper Fig. 13): two Gaussian blobs in 6-D, a 6-128-1
# network trained under substitution budgets, and epsilon-DP labels whose
# noise shrinks where the prediction is certified.
rng = np.random.default_rng(7)
centers = rng.uniform(-2.0, 2.0, size=(2, 6))
blob = rng.integers(0, 2, size=2400)
blobs = agt.upload_dataset(centers[blob] + rng.normal(size=(2400, 6)), blob,
                           name="blobs-train", num_classes=2)
private = agt.train(dataset=blobs, hidden_widths=[128], loss="binary_cross_entropy",
                    batch_size=2400, epochs=4, learning_rate=1.0, lr_decay=0.6,
                    clip_gamma=0.06, perturbation="substitution", budgets=[5, 10, 20, 40],
                    seed=0)
blob_queries = centers[[0, 1, 0, 1, 0]] + rng.normal(size=(5, 6))
released = agt.private_predict(private.model_id, blob_queries, epsilon=1.0)
print(f"private labels {released.labels.tolist()} (n* {released.n_star.tolist()}); "
      f"spent {released.epsilon_spent}, left {released.epsilon_remaining}")

# %% Errors are exceptions carrying the gRPC code and the server's message.
try:
    agt.get_model("mdl-does-not-exist")
except agt_client.NotFound as error:
    print(f"{type(error).__name__} ({error.code.name}): {error.message}")

agt.close()
