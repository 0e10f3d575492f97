"""Builds the agt_client package and the gRPC stubs it talks through.

The stubs (agt.v1.*_pb2, *_pb2_grpc and, when the repository has them,
google.rpc.*_pb2) are generated at build time from the repository's .proto
files with protoc and the grpc_python_plugin of Debian's
protobuf-compiler-grpc, and never committed. Offline install (PEP 668: into a
virtual environment; see README.md):

    /usr/bin/python3 -m venv --system-site-packages .venv
    .venv/bin/pip install --no-build-isolation --no-index ./client/python

Environment overrides: AGT_PROTO_DIR (the proto/ folder, default ../../proto
from this file), AGT_PROTOC (default: protoc on PATH, then /usr/bin/protoc),
AGT_GRPC_PYTHON_PLUGIN (default: grpc_python_plugin on PATH, then /usr/bin).
"""

import glob
import os
import shutil
import subprocess

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))


def _tool(env, name):
    path = os.environ.get(env) or shutil.which(name) or os.path.join("/usr/bin", name)
    if not os.path.exists(path):
        raise RuntimeError(f"{name} not found (set {env}); on Debian: apt-get install "
                           "protobuf-compiler protobuf-compiler-grpc")
    return path


def generate_stubs(out_dir):
    """Runs protoc over proto/agt/v1 (messages and services) and proto/google/rpc."""
    proto_dir = os.environ.get("AGT_PROTO_DIR") or os.path.join(HERE, "..", "..", "proto")
    proto_dir = os.path.abspath(proto_dir)
    agt_protos = sorted(glob.glob(os.path.join(proto_dir, "agt", "v1", "*.proto")))
    if not agt_protos:
        raise RuntimeError(f"no agt/v1/*.proto under {proto_dir} (set AGT_PROTO_DIR)")
    rpc_protos = sorted(glob.glob(os.path.join(proto_dir, "google", "rpc", "*.proto")))
    protoc = _tool("AGT_PROTOC", "protoc")
    plugin = _tool("AGT_GRPC_PYTHON_PLUGIN", "grpc_python_plugin")
    os.makedirs(out_dir, exist_ok=True)
    # /usr/include holds google/protobuf/*.proto (timestamp, any) on Debian.
    includes = [f"--proto_path={proto_dir}"]
    if os.path.isdir("/usr/include/google/protobuf"):
        includes.append("--proto_path=/usr/include")
    subprocess.check_call([protoc, *includes, f"--python_out={out_dir}",
                           f"--plugin=protoc-gen-grpc_python={plugin}",
                           f"--grpc_python_out={out_dir}", *agt_protos])
    if rpc_protos:
        subprocess.check_call([protoc, *includes, f"--python_out={out_dir}", *rpc_protos])
    # agt and agt.v1 are regular packages; google stays a namespace package
    # (python3-protobuf owns google.protobuf).
    for package in ("agt", os.path.join("agt", "v1")):
        open(os.path.join(out_dir, package, "__init__.py"), "a").close()


class BuildPyWithStubs(build_py):
    """build_py that also writes the generated stubs into the build tree."""

    def run(self):
        super().run()
        generate_stubs(self.build_lib)


setup(
    name="agt-client",
    version="0.1.0",
    description="Python client of the AGT certification service (agt-server)",
    packages=["agt_client"],
    python_requires=">=3.9",
    # Debian 12: python3-grpcio, python3-protobuf, python3-numpy.
    install_requires=["grpcio", "protobuf", "numpy"],
    cmdclass={"build_py": BuildPyWithStubs},
)
