#!/usr/bin/python3
"""Writes the issue-20 perf case in the goldens' format (tests/data/goldens/README.md).

A 784-128-10 ReLU MLP, cross entropy, on the first 2000 Fashion-MNIST training rows (pixels / 255),
batch 1000, one epoch each of feature poisoning (k=10, eps=0.01) and removal (k=10), evaluated on
the first 500 test rows. init.json is uniform in +-1/sqrt(fan_in) (numpy default_rng(20)). No
expected.json: the case is for timing `agt golden` (and the reference) on files of this shape.

Usage: /usr/bin/python3 bench/make_perf_case.py OUT_DIR [FASHION_MNIST_DIR]
"""
import gzip
import json
import os
import sys

import numpy as np


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def write_csv(path, x, y):
    with open(path, "w") as f:
        f.write(",".join([f"x{i}" for i in range(x.shape[1])] + ["y"]) + "\n")
        for row, label in zip(x, y):
            f.write(",".join(repr(float(v)) for v in row) + f",{float(label)!r}\n")


def main():
    out = sys.argv[1]
    src = sys.argv[2] if len(sys.argv) > 2 else "/usr/share/datasets/fashion-mnist"
    os.makedirs(out, exist_ok=True)
    n_train, n_test = 2000, 500
    xtr = read_idx(f"{src}/train-images-idx3-ubyte.gz")[:n_train].reshape(n_train, -1) / 255.0
    ytr = read_idx(f"{src}/train-labels-idx1-ubyte.gz")[:n_train]
    xte = read_idx(f"{src}/t10k-images-idx3-ubyte.gz")[:n_test].reshape(n_test, -1) / 255.0
    yte = read_idx(f"{src}/t10k-labels-idx1-ubyte.gz")[:n_test]
    write_csv(f"{out}/train.csv", xtr, ytr)
    write_csv(f"{out}/test.csv", xte, yte)
    rng = np.random.default_rng(20)
    layers = []
    for fan_in, fan_out in ((784, 128), (128, 10)):
        b = 1.0 / np.sqrt(fan_in)
        layers.append({"weight": rng.uniform(-b, b, (fan_out, fan_in)).tolist(),
                       "bias": rng.uniform(-b, b, fan_out).tolist()})
    with open(f"{out}/init.json", "w") as f:
        json.dump({"layers": layers}, f)
    case = {
        "name": "fashion_mlp_perf",
        "description": "issue 20's perf case: Fashion-MNIST (first 2000 train rows, pixels/255, "
                       "first 500 test rows), 784-128-10 ReLU MLP, cross entropy, batch 1000, one "
                       "epoch each of feature poisoning k=10 eps=0.01 and removal k=10",
        "model": [{"type": "dense", "in": 784, "out": 128}, {"type": "relu"},
                  {"type": "dense", "in": 128, "out": 10}],
        "loss": "cross_entropy", "batch_size": 1000, "n_epochs": 1, "learning_rate": 0.1,
        "lr_decay": 0.0, "lr_min": 0.0, "l1_reg": 0.0, "l2_reg": 0.0, "clip_gamma": None,
        "clip_method": "clamp", "fragsize": 10000, "optimizer": "SGD", "optimizer_kwargs": {},
        "bound_model": {"type": "interval", "interval_matmul": "rump"},
        "n_train": n_train, "n_test": n_test,
        "runs": [{"name": "features_k10_e0.01", "mode": "poisoning", "k_poison": 10,
                  "epsilon": 0.01},
                 {"name": "removal_k10", "mode": "unlearning", "k_unlearn": 10}],
    }
    with open(f"{out}/case.json", "w") as f:
        json.dump(case, f, indent=1)


if __name__ == "__main__":
    main()
