"""Writes ONNX files made by torch.onnx.export, and PyTorch's own outputs on
random inputs, for the C++ import tests (tests/onnx/torch_import_test.cc).

Usage: make_torch_models.py OUTDIR

OUTDIR/cases.json lists
  "models": supported networks: file, the input batch, PyTorch's outputs
            (float64, from model.double(), or float32 for the float32 file),
            the number of core layers, a frozen prefix (layers) for the
            round-trip and fine-tuning tests, and the tolerance;
  "unsupported": networks with an op the importer must refuse, with the index,
            name and op type of the first unsupported node as the file has
            them.
Exits with status 3 (and says so) when torch or onnx cannot be imported, so
that the C++ test can skip.
"""
import json
import os
import sys

try:
    import torch
    from torch import nn
    import onnx
except Exception as e:  # pragma: no cover - the skip path
    print(f"torch/onnx not importable: {e}", file=sys.stderr)
    sys.exit(3)

out_dir = sys.argv[1]
os.makedirs(out_dir, exist_ok=True)
torch.manual_seed(0)


class Dense(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(6, 8)
        self.fc2 = nn.Linear(8, 3)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


class Conv(nn.Module):
    """Conv, ReLU, a strided conv without padding, nn.Flatten, Linear."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(2, 4, 3, padding=1)
        self.c2 = nn.Conv2d(4, 6, (3, 2), stride=(2, 1))
        self.flat = nn.Flatten()
        self.fc = nn.Linear(6 * 3 * 5, 4)

    def forward(self, x):
        x = torch.relu(self.c2(torch.relu(self.c1(x))))
        return self.fc(self.flat(x))


class Mixed(nn.Module):
    """A strided padded conv, x.view(x.size(0), -1), Linear, an explicit
    x @ W + b (MatMul + Add), and a Linear without bias (MatMul)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3, stride=2, padding=1)
        self.fc = nn.Linear(3 * 4 * 4, 10)
        self.w = nn.Parameter(torch.randn(10, 7) * 0.3)
        self.b = nn.Parameter(torch.randn(7) * 0.1)
        self.head = nn.Linear(7, 2, bias=False)

    def forward(self, x):
        x = torch.relu(self.conv(x))
        x = x.view(x.size(0), -1)
        x = torch.relu(self.fc(x))
        x = torch.relu(x @ self.w + self.b)
        return self.head(x)


class Sigmoid(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 5)
        self.fc2 = nn.Linear(5, 2)

    def forward(self, x):
        return self.fc2(torch.sigmoid(self.fc1(x)))


class MaxPool(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.fc = nn.Linear(2 * 3 * 3, 2)

    def forward(self, x):
        x = nn.functional.max_pool2d(torch.relu(self.conv(x)), 2)
        return self.fc(torch.flatten(x, 1))


class BatchNorm(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 5)
        self.bn = nn.BatchNorm1d(5)
        self.fc2 = nn.Linear(5, 2)

    def forward(self, x):
        return self.fc2(torch.relu(self.bn(self.fc1(x))))


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 4)
        self.fc2 = nn.Linear(4, 4)
        self.fc3 = nn.Linear(4, 2)

    def forward(self, x):
        h = torch.relu(self.fc1(x))
        return self.fc3(self.fc2(h) + h)


def export(model, example, name, dynamic=True, keep_initializers=False):
    path = os.path.join(out_dir, name + ".onnx")
    axes = {"x": {0: "N"}, "y": {0: "N"}} if dynamic else None
    torch.onnx.export(model, example, path, opset_version=13, input_names=["x"],
                      output_names=["y"], dynamic_axes=axes,
                      keep_initializers_as_inputs=keep_initializers)
    return path


def supported(name, model, sample, layers, frozen, dtype=torch.float64, tol=1e-12, batch=5,
              dynamic=True, keep_initializers=False):
    model = model.eval().to(dtype)
    x = torch.randn(batch, *sample, dtype=dtype)
    export(model, x, name, dynamic=dynamic, keep_initializers=keep_initializers)
    with torch.no_grad():
        y = model(x)
    return {"name": name, "file": name + ".onnx", "input_shape": list(sample),
            "input": x.reshape(batch, -1).double().tolist(),
            "output": y.double().tolist(), "layers": layers, "frozen": frozen, "tol": tol}


def unsupported(name, model, sample, op):
    model = model.eval().double()
    path = export(model, torch.randn(3, *sample, dtype=torch.float64), name)
    graph = onnx.load(path).graph
    for i, node in enumerate(graph.node):
        if node.op_type == op:
            return {"name": name, "file": name + ".onnx", "op": op, "node_index": i,
                    "node_name": node.name}
    raise SystemExit(f"{name}: torch exported no {op} node")


cases = {"torch_version": torch.__version__, "onnx_version": onnx.__version__,
         "models": [], "unsupported": []}
models = cases["models"]
models.append(supported("dense", Dense(), (6,), 3, 2))
models.append(supported("conv", Conv(), (2, 7, 6), 6, 5))
models.append(supported("mixed", Mixed(), (1, 8, 8), 8, 3))
# Exported for batch 2 without dynamic axes: the view's target is the
# constant [2, -1]; initializers also listed as graph inputs.
models.append(supported("mixed_static", Mixed(), (1, 8, 8), 8, 3, batch=2, dynamic=False,
                        keep_initializers=True))
# float32 weights, compared with PyTorch's float32 forward pass.
models.append(supported("dense_float32", Dense(), (6,), 3, 2, dtype=torch.float32, tol=1e-5))
un = cases["unsupported"]
un.append(unsupported("sigmoid", Sigmoid(), (4,), "Sigmoid"))
un.append(unsupported("maxpool", MaxPool(), (1, 8, 8), "MaxPool"))
un.append(unsupported("batchnorm", BatchNorm(), (4,), "BatchNormalization"))
un.append(unsupported("residual", Residual(), (4,), "Add"))
with open(os.path.join(out_dir, "cases.json"), "w") as f:
    json.dump(cases, f)
print(f"wrote {len(models)} models and {len(un)} unsupported ones to {out_dir} "
      f"(torch {torch.__version__}, onnx {onnx.__version__})")
