#!/usr/bin/python3
"""Offline validation of deploy/k8s against the Kubernetes API schema.

No cluster is reachable here (kubectl --dry-run=client still downloads the
server's OpenAPI document), so the schema comes from Debian's
python3-kubernetes: its model classes are generated from the Kubernetes
OpenAPI specification (client 22.6 = API 1.22). Every manifest document is
checked strictly against them:

  - every field name exists in its object's schema (a typo such as
    `readinesProbe` is an error, not silently ignored as the API server's
    non-strict decoding would);
  - every value has the schema's type (string, integer, boolean, list, map,
    nested object; an int-or-string accepts both);
  - required fields are present (the models' own client-side validation,
    e.g. a container without `name`, a Deployment spec without `selector`).

Two API additions newer than 1.22 are described here by hand, from the
Kubernetes API reference: the gRPC probe (`Probe.grpc`, 1.24: `port`
required, `service` optional) and the stable `autoscaling/v2` group (1.23),
whose HorizontalPodAutoscaler has exactly the schema of `v2beta2`.

Then the manifests are checked against each other and against the server:
every `--flag` in a container's args is one that `agt-server --help` lists;
every Service and PodDisruptionBudget selector matches a Deployment's pod
labels; the HPA targets a Deployment of this directory; every named port a
probe or Service uses is a container port; every volume mount names a
volume; every secret key referenced is defined in secrets.example.yaml; and
kustomization.yaml lists exactly the manifests other than the secrets
example.

  check_k8s.py [--dir deploy/k8s] [--server-binary build/server/agt-server]
"""

import argparse
import os
import re
import subprocess
import sys

import yaml
from kubernetes import client

NATIVE = {"str": str, "int": int, "bool": bool, "float": (int, float), "object": object}

# (apiVersion, kind) -> model class name.
KINDS = {
    ("apps/v1", "Deployment"): "V1Deployment",
    ("v1", "Service"): "V1Service",
    ("v1", "Secret"): "V1Secret",
    ("policy/v1", "PodDisruptionBudget"): "V1PodDisruptionBudget",
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "V2beta2HorizontalPodAutoscaler",
}

# Newer API fields, by model: JSON name -> (type, required fields of the
# nested object or None for a plain type).
EXTENSIONS = {
    "V1Probe": {"grpc": ("GrpcAction", None)},
}
GRPC_ACTION = {"port": ("int", True), "service": ("str", False)}


class Errors:
    def __init__(self):
        self.items = []

    def add(self, where, message):
        self.items.append(f"{where}: {message}")


def python_names(model):
    return {json: py for py, json in model.attribute_map.items()}


def check_value(value, type_name, where, errors):
    """Checks `value` against an openapi type name; returns what to pass to a model."""
    if type_name.startswith("list["):
        if not isinstance(value, list):
            errors.add(where, f"expected a list, got {type(value).__name__}")
            return []
        inner = type_name[5:-1]
        return [check_value(v, inner, f"{where}[{i}]", errors) for i, v in enumerate(value)]
    if type_name.startswith("dict("):
        inner = type_name[type_name.index(",") + 1:-1].strip()
        if not isinstance(value, dict):
            errors.add(where, f"expected a map, got {type(value).__name__}")
            return {}
        return {k: check_value(v, inner, f"{where}.{k}", errors) for k, v in value.items()}
    if type_name == "GrpcAction":
        return check_grpc_action(value, where, errors)
    if type_name in NATIVE:
        expected = NATIVE[type_name]
        if type_name == "object":  # int-or-string and free-form fields
            return value
        if isinstance(value, bool) and type_name in ("int", "float"):
            errors.add(where, f"expected {type_name}, got a boolean")
        elif not isinstance(value, expected):
            errors.add(where, f"expected {type_name}, got {type(value).__name__} {value!r}")
        return value
    model = getattr(client, type_name)
    return check_object(value, model, where, errors)


def check_grpc_action(value, where, errors):
    if not isinstance(value, dict):
        errors.add(where, "expected an object")
        return None
    for key in value:
        if key not in GRPC_ACTION:
            errors.add(f"{where}.{key}", "unknown field (GRPCAction has port, service)")
    for key, (type_name, required) in GRPC_ACTION.items():
        if key in value:
            check_value(value[key], type_name, f"{where}.{key}", errors)
        elif required:
            errors.add(where, f"missing required field {key}")
    return None


def check_object(value, model, where, errors):
    if not isinstance(value, dict):
        errors.add(where, f"expected an object ({model.__name__}), got {type(value).__name__}")
        return None
    names = python_names(model)
    extensions = EXTENSIONS.get(model.__name__, {})
    kwargs = {}
    for key, field_value in value.items():
        path = f"{where}.{key}"
        if key in extensions:
            check_value(field_value, extensions[key][0], path, errors)
            continue
        if key not in names:
            errors.add(path, f"unknown field of {model.__name__}")
            continue
        python = names[key]
        kwargs[python] = check_value(field_value, model.openapi_types[python], path, errors)
    try:
        return model(**kwargs)
    except (ValueError, TypeError) as error:
        errors.add(where, f"{model.__name__}: {error}")
        return None


def load_documents(directory, errors):
    documents = []
    for name in sorted(os.listdir(directory)):
        if not name.endswith(".yaml") or name == "kustomization.yaml":
            continue
        with open(os.path.join(directory, name)) as f:
            for index, doc in enumerate(yaml.safe_load_all(f)):
                if doc is None:
                    continue
                where = f"{name}[{index}] {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
                key = (doc.get("apiVersion"), doc.get("kind"))
                if key not in KINDS:
                    errors.add(where, f"apiVersion/kind {key} is not one this check knows")
                    continue
                check_object(doc, getattr(client, KINDS[key]), where, errors)
                documents.append((name, where, doc))
    return documents


def server_flags(binary):
    run = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=30)
    return set(re.findall(r"^\s+(--[a-z0-9-]+)", run.stdout + run.stderr, re.M))


def check_consistency(directory, documents, flags, errors):
    by_kind = {}
    for name, where, doc in documents:
        by_kind.setdefault(doc["kind"], []).append((name, where, doc))
    secrets = {}
    for _, _, doc in by_kind.get("Secret", []):
        keys = set(doc.get("stringData", {})) | set(doc.get("data", {}))
        secrets[doc["metadata"]["name"]] = keys
    deployments = {}
    for name, where, doc in by_kind.get("Deployment", []):
        pod = doc["spec"]["template"]
        labels = pod["metadata"].get("labels", {})
        deployments[doc["metadata"]["name"]] = (labels, pod)
        match = doc["spec"]["selector"].get("matchLabels", {})
        if any(labels.get(k) != v for k, v in match.items()):
            errors.add(where, f"selector {match} does not match the pod labels {labels}")
        volumes = {v["name"]: v for v in pod["spec"].get("volumes", [])}
        for container in pod["spec"]["containers"]:
            cwhere = f"{where} container {container['name']}"
            for arg in container.get("args", []):
                if isinstance(arg, str) and arg.startswith("--") and flags is not None \
                        and arg not in flags:
                    errors.add(cwhere, f"agt-server has no flag {arg} (agt-server --help)")
            ports = {p.get("name") for p in container.get("ports", [])}
            numbers = {p["containerPort"] for p in container.get("ports", [])}
            for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                spec = container.get(probe)
                if not spec:
                    continue
                for action in ("tcpSocket", "httpGet", "grpc"):
                    port = spec.get(action, {}).get("port")
                    if port is not None and port not in ports and port not in numbers:
                        errors.add(cwhere, f"{probe}.{action}.port {port!r} is not a "
                                           "container port")
            for mount in container.get("volumeMounts", []):
                if mount["name"] not in volumes:
                    errors.add(cwhere, f"volumeMount {mount['name']} names no volume")
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref and ref["key"] not in secrets.get(ref["name"], set()):
                    errors.add(cwhere, f"env {env['name']}: secret {ref['name']} key "
                                       f"{ref['key']} is not in secrets.example.yaml")
        for volume in volumes.values():
            secret = volume.get("secret", {}).get("secretName")
            if secret is not None and secret not in secrets:
                errors.add(where, f"volume {volume['name']}: secret {secret} is not in "
                                  "secrets.example.yaml")
    for kind in ("Service", "PodDisruptionBudget"):
        for _, where, doc in by_kind.get(kind, []):
            selector = doc["spec"]["selector"]
            selector = selector.get("matchLabels", selector) if kind != "Service" else selector
            matched = [n for n, (labels, _) in deployments.items()
                       if all(labels.get(k) == v for k, v in selector.items())]
            if not matched:
                errors.add(where, f"selector {selector} matches no Deployment's pods")
            if kind == "Service":
                for port in doc["spec"]["ports"]:
                    target = port.get("targetPort")
                    for n in matched:
                        pod = deployments[n][1]
                        names = {p.get("name") for c in pod["spec"]["containers"]
                                 for p in c.get("ports", [])}
                        if isinstance(target, str) and target not in names:
                            errors.add(where, f"targetPort {target} is not a port of {n}")
    for _, where, doc in by_kind.get("HorizontalPodAutoscaler", []):
        target = doc["spec"]["scaleTargetRef"]
        if target.get("kind") != "Deployment" or target.get("name") not in deployments:
            errors.add(where, f"scaleTargetRef {target} is not a Deployment here")
    with open(os.path.join(directory, "kustomization.yaml")) as f:
        kustomization = yaml.safe_load(f)
    listed = set(kustomization.get("resources", []))
    manifests = {name for name, _, _ in documents if name != "secrets.example.yaml"}
    if listed != manifests:
        errors.add("kustomization.yaml", f"resources {sorted(listed)} != the manifests "
                                         f"{sorted(manifests)}")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=os.path.join(here, "..", "..", "deploy", "k8s"))
    parser.add_argument("--server-binary", default=None,
                        help="agt-server, to check the manifests' flags against its --help")
    args = parser.parse_args()
    errors = Errors()
    documents = load_documents(args.dir, errors)
    flags = server_flags(args.server_binary) if args.server_binary else None
    # The cross-checks read fields the schema requires: only on valid documents.
    if not errors.items:
        check_consistency(args.dir, documents, flags, errors)
    if errors.items:
        print("\n".join(errors.items))
        sys.exit(f"{len(errors.items)} problem(s) in {args.dir}")
    print(f"{len(documents)} documents in {args.dir} valid"
          + (f"; {len(flags)} agt-server flags known" if flags else ""))


if __name__ == "__main__":
    main()
