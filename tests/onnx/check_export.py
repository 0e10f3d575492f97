"""Checks an ONNX file written by agt's exporter and evaluates it without an
ONNX runtime (python3-onnx 1.12 has no onnx.reference): onnx.checker with
full shape inference, then a small NumPy evaluator of the ops the exporter
writes (Conv, Relu, Flatten, Gemm), written here independently of the C++
code.

Usage: check_export.py MODEL.onnx INPUTS.json OUTPUTS.json
INPUTS.json: {"input": [[...], ...]} (rows of flattened samples).
OUTPUTS.json gets {"output": [[...], ...], "input_dtype": ..., "opset": ...}.
Exits 3 when onnx or numpy cannot be imported.
"""
import json
import sys

try:
    import numpy as np
    import onnx
    from onnx import numpy_helper
except Exception as e:  # pragma: no cover
    print(f"onnx/numpy not importable: {e}", file=sys.stderr)
    sys.exit(3)


def attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def conv(x, w, b, strides, pads):
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    ph, pw = pads[0], pads[1]
    assert pads[0] == pads[2] and pads[1] == pads[3]
    xp = np.zeros((n, c, h + 2 * ph, wd + 2 * pw), dtype=x.dtype)
    xp[:, :, ph:ph + h, pw:pw + wd] = x
    sh, sw = strides
    ho = (h + 2 * ph - kh) // sh + 1
    wo = (wd + 2 * pw - kw) // sw + 1
    y = np.zeros((n, o, ho, wo), dtype=x.dtype)
    for i in range(ho):
        for j in range(wo):
            patch = xp[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw]  # n c kh kw
            y[:, :, i, j] = np.tensordot(patch, w, axes=([1, 2, 3], [1, 2, 3])) + b
    return y


def main():
    path, inputs_path, outputs_path = sys.argv[1:4]
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    graph = model.graph
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    inp = graph.input[0]
    elem = inp.type.tensor_type.elem_type
    dtype = np.float64 if elem == onnx.TensorProto.DOUBLE else np.float32
    dims = [d.dim_value for d in inp.type.tensor_type.shape.dim[1:]]
    with open(inputs_path) as f:
        rows = np.array(json.load(f)["input"], dtype=np.float64)
    values = {inp.name: rows.reshape([rows.shape[0]] + dims).astype(dtype)}
    for node in graph.node:
        a = attrs(node)
        x = values[node.input[0]]
        if node.op_type == "Conv":
            y = conv(x, inits[node.input[1]], inits[node.input[2]].reshape(1, -1),
                     a.get("strides", [1, 1]), a.get("pads", [0, 0, 0, 0]))
        elif node.op_type == "Relu":
            y = np.maximum(x, 0)
        elif node.op_type == "Flatten":
            assert a.get("axis", 1) == 1
            y = x.reshape(x.shape[0], -1)
        elif node.op_type == "Gemm":
            w = inits[node.input[1]]
            if a.get("transB", 0):
                w = w.T
            y = x @ w + inits[node.input[2]]
        else:
            raise SystemExit(f"unexpected op {node.op_type}")
        values[node.output[0]] = y
    out = values[graph.output[0].name]
    with open(outputs_path, "w") as f:
        json.dump({"output": out.astype(np.float64).tolist(),
                   "input_dtype": "double" if dtype == np.float64 else "float",
                   "opset": model.opset_import[0].version}, f)


main()
