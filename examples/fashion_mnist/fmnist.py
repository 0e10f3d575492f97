"""Fashion-MNIST from Debian's dataset-fashion-mnist package, as NumPy arrays.

The package installs the four IDX files (gzipped) under
/usr/share/datasets/fashion-mnist. Pixels are scaled to [0, 1] and images kept as
[N, 1, 28, 28] float64, the layout the ONNX network and the service's
[C, H, W] sample shape both use.
"""

import gzip
import os

import numpy as np

DEFAULT_DIR = "/usr/share/datasets/fashion-mnist"

CLASS_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def _open(path):
    if os.path.exists(path):
        return open(path, "rb")
    if os.path.exists(path + ".gz"):
        return gzip.open(path + ".gz", "rb")
    raise FileNotFoundError(
        f"{path}[.gz] not found: install Debian's dataset-fashion-mnist "
        "(apt-get install dataset-fashion-mnist) or pass --data-dir")


def _read_idx(path, expected_magic):
    with _open(path) as f:
        data = f.read()
    magic = int.from_bytes(data[0:4], "big")
    if magic != expected_magic:
        raise ValueError(f"{path}: IDX magic {magic:#x}, expected {expected_magic:#x}")
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    payload = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims)
    if payload.size != int(np.prod(shape)):
        raise ValueError(f"{path}: {payload.size} values for shape {shape}")
    return payload.reshape(shape)


def load(split, data_dir=DEFAULT_DIR, rows=None):
    """Returns (images [N,1,28,28] float64 in [0,1], labels [N] int64)."""
    prefix = "train" if split == "train" else "t10k"
    images = _read_idx(os.path.join(data_dir, f"{prefix}-images-idx3-ubyte"), 0x803)
    labels = _read_idx(os.path.join(data_dir, f"{prefix}-labels-idx1-ubyte"), 0x801)
    if rows is not None:
        images, labels = images[:rows], labels[:rows]
    x = images.astype(np.float64).reshape(-1, 1, 28, 28) / 255.0
    return x, labels.astype(np.int64)
