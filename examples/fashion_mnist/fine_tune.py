#!/usr/bin/python3
"""Certified fine-tuning of a pre-trained CNN on Fashion-MNIST, through the service.

The network comes from PyTorch as ONNX (pretrain.py). Its convolutional
feature extractor and its 100-unit dense layer stay frozen; the last dense
layer (100 -> 10) is fine-tuned under Abstract Gradient Training on the
Fashion-MNIST training images, once per threat model:

  - label flipping: up to n rows of every batch get any other label;
  - feature poisoning: up to n rows of every batch move within an
    l-infinity ball of radius epsilon in pixel space, pushed through the
    frozen convolutions by interval bound propagation;
  - removal (unlearning): up to n rows of every batch are left out;
  - substitution (privacy): up to n rows replaced, on a footwear-vs-rest
    head of the same extractor, for private predictions.

For each it prints and plots (SVG) the certified test accuracy against n,
then checks deletion requests on the removal model, releases differentially
private labels from the substitution model (with the AGT-calibrated noise and
with global-sensitivity noise, to compare), and exports the fine-tuned model
back to ONNX and runs it in PyTorch.

    examples/fashion_mnist/run.sh           # everything, with a server it starts
    fine_tune.py --target HOST:PORT --onnx cnn.onnx --onnx-binary footwear.onnx
                 [--smoke] [--svg OUT.svg] [--export OUT.onnx] [--epsilon E]

--smoke runs the same flow on a few thousand images in well under a minute
(the test suite runs it); the default sizes are the ones examples/README.md
reports.
"""

import argparse
import os
import sys
import time

import numpy as np

import agt_client
import fmnist

# The settings of examples/README.md. FROZEN_LAYERS = 7 freezes conv, ReLU,
# conv, ReLU, flatten, dense 1568->100 and its ReLU: the trained head is the
# last dense layer (1010 parameters), as in the paper's image experiments.
FULL = dict(train_rows=60000, test_rows=10000, batch_size=6000, epochs=1,
            learning_rate=0.02, clip_gamma=0.5, epsilon=0.01,
            budgets=[1, 5, 10, 30, 100, 300], private_budgets=[10, 30, 100, 300],
            private_queries=200, unlearning_queries=1000)
SMOKE = dict(train_rows=3000, test_rows=500, batch_size=1000, epochs=1,
             learning_rate=0.02, clip_gamma=0.5, epsilon=0.01,
             budgets=[1, 5, 20], private_budgets=[5, 20],
             private_queries=20, unlearning_queries=100)
FROZEN_LAYERS = 7
FOOTWEAR = [5, 7, 9]  # Sandal, Sneaker, Ankle boot


def progress(label):
    start = time.time()

    def show(event):
        p = event.progress
        if p.total_iterations:
            print(f"\r  {label}: step {p.iteration}/{p.total_iterations} "
                  f"loss {p.nominal_loss:.3f} ({time.time() - start:.0f} s)   ",
                  end="", file=sys.stderr, flush=True)
    return show


def train(agt, label, settings, artifact, dataset, perturbation, budgets):
    job = agt.train(dataset=dataset, model_artifact=artifact, frozen_layers=FROZEN_LAYERS,
                    loss="cross_entropy", batch_size=settings["batch_size"],
                    epochs=settings["epochs"], learning_rate=settings["learning_rate"],
                    clip_gamma=settings["clip_gamma"], perturbation=perturbation,
                    budgets=budgets, seed=0, on_progress=progress(label))
    print(file=sys.stderr)
    seconds = job.finished.seconds - job.started.seconds
    for warning in job.warnings:
        print(f"  warning ({label}): {warning.message}")
    return job.model_id, seconds


def svg_plot(path, curves, nominal, batch_size, title):
    """Certified accuracy vs n, one line per threat model, as a standalone SVG.

    The budgets are placed evenly (they grow roughly geometrically) and
    labelled with their n; the nominal accuracy is the dashed line.
    """
    width, height, left, right, top, bottom = 640, 420, 70, 170, 40, 60
    plot_w, plot_h = width - left - right, height - top - bottom
    ns = curves[0][1]
    xs = [left + plot_w * i / max(len(ns) - 1, 1) for i in range(len(ns))]

    def y(v):
        return top + plot_h * (1.0 - v)

    colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{left + plot_w / 2}" y="22" text-anchor="middle" font-size="14">'
           f'{title}</text>']
    for tick in np.linspace(0.0, 1.0, 6):
        out.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y(tick):.1f}" '
                   f'y2="{y(tick):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 8}" y="{y(tick) + 4:.1f}" text-anchor="end">'
                   f'{tick:.1f}</text>')
    for x, n in zip(xs, ns):
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top + plot_h}" '
                   f'y2="{top + plot_h + 5}" stroke="black"/>')
        out.append(f'<text x="{x:.1f}" y="{top + plot_h + 20}" text-anchor="middle">{n}</text>')
    out.append(f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" '
               f'stroke="black"/>')
    out.append(f'<text x="{left + plot_w / 2}" y="{height - 18}" text-anchor="middle">'
               f'n: rows perturbed per batch of {batch_size}</text>')
    out.append(f'<text transform="translate(20,{top + plot_h / 2}) rotate(-90)" '
               f'text-anchor="middle">certified test accuracy</text>')
    out.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y(nominal):.1f}" '
               f'y2="{y(nominal):.1f}" stroke="black" stroke-dasharray="5,4"/>')
    for i, (label, _, values) in enumerate(curves):
        colour = colours[i % len(colours)]
        points = " ".join(f"{x:.1f},{y(v):.1f}" for x, v in zip(xs, values))
        # Lines may coincide (label flips and feature poisoning whose bounds
        # both reach the clipping range): the first is drawn widest, the
        # second dashed on top, so both stay visible.
        style = f'stroke-width="{5 if i == 0 else 2}"' + \
            (' stroke-dasharray="7,4"' if i == 1 else "")
        out.append(f'<polyline points="{points}" fill="none" stroke="{colour}" {style}/>')
        out.extend(f'<circle cx="{x:.1f}" cy="{y(v):.1f}" r="3" fill="{colour}"/>'
                   for x, v in zip(xs, values))
        ly = top + 14 + 20 * i
        out.append(f'<line x1="{left + plot_w + 12}" x2="{left + plot_w + 36}" y1="{ly}" '
                   f'y2="{ly}" stroke="{colour}" {style}/>')
        out.append(f'<text x="{left + plot_w + 42}" y="{ly + 4}">{label}</text>')
    ly = top + 14 + 20 * len(curves)
    out.append(f'<line x1="{left + plot_w + 12}" x2="{left + plot_w + 36}" y1="{ly}" y2="{ly}" '
               f'stroke="black" stroke-dasharray="5,4"/>')
    out.append(f'<text x="{left + plot_w + 42}" y="{ly + 4}">nominal</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def torch_from_onnx(path):
    """The exported network rebuilt as a torch.nn.Sequential from its ONNX nodes.

    Only what the service exports (Conv, Gemm, Relu, Flatten): enough to run
    the export where PyTorch runs, without an ONNX runtime.
    """
    import onnx  # noqa: PLC0415 - optional, only for the export check
    import torch  # noqa: PLC0415
    from onnx import numpy_helper  # noqa: PLC0415

    graph = onnx.load(path).graph
    weights = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    layers = []
    for node in graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Conv":
            w = weights[node.input[1]]
            conv = torch.nn.Conv2d(w.shape[1], w.shape[0], tuple(w.shape[2:]),
                                   stride=tuple(attrs.get("strides", [1, 1])),
                                   padding=tuple(attrs.get("pads", [0, 0, 0, 0])[:2]),
                                   bias=len(node.input) > 2).double()
            conv.weight.data = torch.from_numpy(np.array(w, dtype=np.float64))
            if len(node.input) > 2:
                bias = np.array(weights[node.input[2]], dtype=np.float64)
                conv.bias.data = torch.from_numpy(bias)
            layers.append(conv)
        elif node.op_type == "Gemm":
            w = weights[node.input[1]]
            w = w if attrs.get("transB", 0) else w.T
            dense = torch.nn.Linear(w.shape[1], w.shape[0]).double()
            dense.weight.data = torch.from_numpy(np.array(w, dtype=np.float64))
            dense.bias.data = torch.from_numpy(np.array(weights[node.input[2]], dtype=np.float64))
            layers.append(dense)
        elif node.op_type == "Relu":
            layers.append(torch.nn.ReLU())
        elif node.op_type == "Flatten":
            layers.append(torch.nn.Flatten())
        else:
            raise ValueError(f"{path}: node {node.name!r}: op {node.op_type} not expected")
    return torch.nn.Sequential(*layers).eval()


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", required=True, help="agt-server host:port")
    parser.add_argument("--token", default=None, help="bearer token (none in local mode)")
    parser.add_argument("--onnx", required=True, help="the pre-trained network (pretrain.py)")
    parser.add_argument("--onnx-binary", required=True,
                        help="the extractor with the footwear-vs-rest head (pretrain.py "
                             "--binary-out), for the private predictions")
    parser.add_argument("--data-dir", default=fmnist.DEFAULT_DIR)
    parser.add_argument("--smoke", action="store_true", help="small sizes, for the test suite")
    parser.add_argument("--svg", default="fashion_mnist_certified.svg",
                        help="where to write the plot (default %(default)s)")
    parser.add_argument("--export", default="fine_tuned.onnx",
                        help="where to write the fine-tuned model as ONNX (default %(default)s)")
    parser.add_argument("--epsilon", type=float, default=None,
                        help="the feature-poisoning radius in pixel space (default 0.01)")
    args = parser.parse_args()
    settings = dict(SMOKE if args.smoke else FULL)
    if args.epsilon is not None:
        settings["epsilon"] = args.epsilon
    agt = agt_client.Client(args.target, token=args.token, timeout=600)

    # -- The pre-trained network and the data. -------------------------------
    artifact = agt.upload_model_artifact(args.onnx, name=os.path.basename(args.onnx))
    print(f"artifact {artifact.id}: {os.path.getsize(args.onnx)} bytes, "
          f"{len(artifact.layers)} layers, input {list(artifact.input_shape)}")
    x_train, y_train = fmnist.load("train", args.data_dir, settings["train_rows"])
    x_test, y_test = fmnist.load("test", args.data_dir, settings["test_rows"])
    started = time.time()
    train_ds = agt.upload_dataset(x_train, y_train, name="fashion-mnist-train", num_classes=10)
    test_ds = agt.upload_dataset(x_test, y_test, name="fashion-mnist-test", num_classes=10)
    print(f"datasets: {train_ds.num_rows} training and {test_ds.num_rows} test images "
          f"{list(train_ds.sample_shape)} ({time.time() - started:.1f} s to upload)")

    # -- Fine-tune the head under each threat model. --------------------------
    budgets = settings["budgets"]
    # Budgets count rows per batch: label-poisoned rows are label_n, feature-
    # poisoned and removed rows n.
    runs = [("label flipping", {"kind": "poisoning", "labels": {"flip": True}},
             [{"label_n": n} for n in budgets]),
            (f"features eps={settings['epsilon']}",
             {"kind": "poisoning", "epsilon": settings["epsilon"]}, budgets),
            ("removal", "removal", budgets)]
    curves, models = [], {}
    print(f"\nfine-tuning the last dense layer ({FROZEN_LAYERS} layers frozen), batch "
          f"{settings['batch_size']}, {settings['epochs']} epoch(s), lr "
          f"{settings['learning_rate']}, clip {settings['clip_gamma']}:")
    for label, perturbation, job_budgets in runs:
        model_id, seconds = train(agt, label, settings, artifact, train_ds, perturbation,
                                  job_budgets)
        models[label] = model_id
        per_n = agt.certify_dataset(model_id, test_ds.id)
        curves.append((label, (per_n.n + per_n.label_n).tolist(),
                       per_n.accuracy_worst.tolist()))
        nominal = float(per_n.accuracy_nominal[0])
        print(f"  {label:<22} model {model_id} ({seconds} s): nominal accuracy {nominal:.4f}")
    print("\ncertified test accuracy (worst case over every perturbation within the budget):")
    print("  " + f"{'n':<22}" + "".join(f"{n:>8}" for n in budgets))
    for label, _, values in curves:
        print("  " + f"{label:<22}" + "".join(f"{v:>8.4f}" for v in values))
    svg_plot(args.svg, curves, nominal, settings["batch_size"],
             f"Fashion-MNIST, CNN head fine-tuned under AGT ({train_ds.num_rows} images)")
    print(f"plot: {args.svg}")

    # -- Unlearning: delete training rows, check which predictions hold. ------
    removal = models["removal"]
    deleted = list(range(0, settings["train_rows"], settings["train_rows"] // 10))[:10]
    answer = agt.request_deletion(removal, deleted)
    queries = x_test[:settings["unlearning_queries"]]
    check = agt.check_unlearning(removal, queries)
    print(f"\nunlearning: delete {len(deleted)} rows (at most "
          f"{check.max_deletions_per_batch} in one batch) -> accepted={answer.accepted}; "
          f"{int(check.certified_unchanged.sum())}/{len(queries)} test predictions certified "
          f"unchanged by the deletions (no retraining needed for them)")

    # -- Private predictions from a model trained under substitution. ---------
    # The smooth-sensitivity mechanism (Theorem 11) is for binary classifiers:
    # the same extractor with a footwear-vs-rest head, fine-tuned the same way.
    binary_artifact = agt.upload_model_artifact(args.onnx_binary)
    footwear = np.isin(y_train, FOOTWEAR).astype(np.float64)
    binary_ds = agt.upload_dataset(x_train, footwear, name="fashion-mnist-footwear",
                                   num_classes=2)
    job = agt.train(dataset=binary_ds, model_artifact=binary_artifact,
                    frozen_layers=FROZEN_LAYERS, loss="binary_cross_entropy",
                    batch_size=settings["batch_size"], epochs=settings["epochs"],
                    learning_rate=settings["learning_rate"], clip_gamma=settings["clip_gamma"],
                    perturbation="substitution", budgets=settings["private_budgets"], seed=0,
                    on_progress=progress("substitution"))
    print(file=sys.stderr)
    private_model = job.model_id
    # Each released label costs epsilon 1 of the training data's budget (the
    # server's --privacy-budget), twice here: ask for what is left.
    remaining = agt.privacy_budget(private_model).remaining_epsilon
    count = min(settings["private_queries"], int(remaining // 2))
    queries, truth = x_test[:count], np.isin(y_test[:count], FOOTWEAR)
    nominal_labels = agt.certify(private_model, queries).predicted
    smooth = agt.private_predict(private_model, queries, epsilon=1.0)
    laplace = agt.private_predict(private_model, queries, epsilon=1.0,
                                  mechanism="global_laplace")
    print(f"\nprivate prediction (footwear or not), epsilon=1 per label, {count} test images, "
          f"model {private_model} trained under substitution n={settings['private_budgets']}:")
    for name, r in (("AGT smooth sensitivity", smooth), ("global sensitivity", laplace)):
        agree = np.mean(r.labels == nominal_labels)
        correct = np.mean(r.labels == truth)
        print(f"  {name:<24} agrees with the model {agree:.3f}, accuracy {correct:.3f}, "
              f"median noise scale {np.median(r.noise_scale):.3g}")
    print(f"  epsilon spent {laplace.epsilon_total - laplace.epsilon_remaining:g} of "
          f"{laplace.epsilon_total:g}")

    # -- Back to ONNX, and run it in PyTorch. --------------------------------
    agt.export_onnx(models["removal"], args.export)
    service = agt.certify(models["removal"], x_test[:100])
    try:
        import torch  # noqa: PLC0415
        net = torch_from_onnx(args.export)
        with torch.no_grad():
            logits = net(torch.from_numpy(x_test[:100])).numpy()
        difference = np.max(np.abs(logits - service.nominal_logits))
        print(f"\nexported {args.export}; PyTorch on it vs the service's nominal logits: "
              f"max |difference| {difference:.2e} over 100 images")
        if difference > 1e-9:
            sys.exit(f"the export disagrees with the service ({difference:.3g})")
    except ImportError:
        print(f"\nexported {args.export} (PyTorch or onnx not installed: not run)")
    agt.close()


if __name__ == "__main__":
    main()
