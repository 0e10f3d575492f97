#!/usr/bin/env python3
"""Pre-trains a small CNN on Fashion-MNIST in PyTorch and exports it as ONNX.

The network is the "small" convolutional architecture of Gowal et al. (2018)
that the AGT paper fine-tunes in its image experiments (section 9.4): two
convolutions (16 and 32 channels) and a dense layer of 100 units, here with
stride-2 4x4 kernels and padding 1 so the 28x28 images give 32x7x7 features:

  conv 1->16 4x4/2 -> ReLU -> conv 16->32 4x4/2 -> ReLU -> flatten (1568)
  -> dense 1568->100 -> ReLU -> dense 100->10

Pre-training is ordinary training (Adam), on a small labelled set: by default
the first 5 000 training images, 2 epochs. Fine-tuning (fine_tune.py) then
trains the last layer on all 60 000 under AGT. --classes C keeps labels
0..C-1 only (the paper pre-trains without the class fine-tuning brings in).
--binary-out also writes the same extractor with a new footwear-vs-rest head
(one output, fitted by logistic regression on the frozen features), for the
private predictions, whose smooth-sensitivity mechanism is binary. Exports are
in float64 (opset 13), which the service imports exactly.

  pretrain.py --out cnn.onnx [--binary-out footwear.onnx] [--rows N] [--epochs E]
              [--classes C]
"""

import argparse
import sys
import time

import numpy as np
import torch
from torch import nn

import fmnist


def make_network():
    return nn.Sequential(
        nn.Conv2d(1, 16, 4, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(16, 32, 4, stride=2, padding=1), nn.ReLU(),
        nn.Flatten(),
        nn.Linear(32 * 7 * 7, 100), nn.ReLU(),
        nn.Linear(100, 10))


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="the ONNX file to write")
    parser.add_argument("--data-dir", default=fmnist.DEFAULT_DIR)
    parser.add_argument("--rows", type=int, default=5000,
                        help="pre-train on the first ROWS training images (default 5000)")
    parser.add_argument("--classes", type=int, default=10,
                        help="pre-train on labels 0..classes-1 only (default 10: all)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--binary-out", default=None,
                        help="also write the extractor with a footwear-vs-rest head (1 output)")
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    x, y = fmnist.load("train", args.data_dir, args.rows)
    keep = y < args.classes
    x, y = torch.from_numpy(x[keep]).float(), torch.from_numpy(y[keep])
    net = make_network()
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-3)
    loss_fn = nn.CrossEntropyLoss()
    start = time.time()
    for epoch in range(args.epochs):
        order = torch.randperm(len(x))
        total = 0.0
        for i in range(0, len(x), 128):
            idx = order[i:i + 128]
            optimizer.zero_grad()
            loss = loss_fn(net(x[idx]), y[idx])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        print(f"pretrain: epoch {epoch + 1}/{args.epochs}: loss {total / len(x):.4f} "
              f"({time.time() - start:.0f} s)", file=sys.stderr)

    net = net.double().eval()
    xt, yt = fmnist.load("test", args.data_dir)
    with torch.no_grad():
        predicted = net(torch.from_numpy(xt)).argmax(1).numpy()
    seen = yt < args.classes
    print(f"pretrain: test accuracy {np.mean(predicted == yt):.4f} on all 10 classes, "
          f"{np.mean(predicted[seen] == yt[seen]):.4f} on the {args.classes} pre-training classes",
          file=sys.stderr)
    export(net, args.out)
    if args.binary_out:
        binary = binary_head(net, x, y)
        with torch.no_grad():
            footwear = binary(torch.from_numpy(xt)).numpy().ravel() > 0
        print(f"pretrain: footwear-vs-rest head: test accuracy "
              f"{np.mean(footwear == np.isin(yt, FOOTWEAR)):.4f}", file=sys.stderr)
        export(binary, args.binary_out)


# The binary question of the private-prediction part: is it footwear
# (Sandal, Sneaker, Ankle boot)?
FOOTWEAR = [5, 7, 9]


def binary_head(net, x, y):
    """The same frozen extractor (every layer but the last) with a new 100 -> 1
    head for footwear-vs-rest, fitted by logistic regression on its features:
    the initial parameters the service's fine-tuning starts from."""
    extractor = net[:-1]
    with torch.no_grad():
        features = extractor(x.double())
    target = torch.from_numpy(np.isin(y.numpy(), FOOTWEAR).astype(np.float64))
    head = nn.Linear(100, 1).double()
    optimizer = torch.optim.Adam(head.parameters(), lr=1e-2)
    for _ in range(200):
        optimizer.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(head(features).ravel(), target)
        loss.backward()
        optimizer.step()
    return nn.Sequential(*extractor, head).eval()


def export(net, path):
    torch.onnx.export(net, torch.zeros(1, 1, 28, 28, dtype=torch.float64), path,
                      opset_version=13, input_names=["x"], output_names=["logits"],
                      dynamic_axes={"x": {0: "N"}, "logits": {0: "N"}})
    print(f"pretrain: wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
