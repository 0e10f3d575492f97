"""The generated agt.v1 modules, under short names (pb.datasets, pb.training_grpc, ...).

They are generated at build time (CMake's agt_python target into
<build>/python, or setup.py into the installed package), never committed.
"""

import types

try:
    from agt.v1 import artifacts_pb2, artifacts_pb2_grpc, common_pb2, datasets_pb2, datasets_pb2_grpc, models_pb2, \
        models_pb2_grpc, privacy_pb2, privacy_pb2_grpc, training_pb2, training_pb2_grpc, \
        unlearning_pb2, unlearning_pb2_grpc
except ImportError as error:  # pragma: no cover - a setup problem, said plainly
    raise ImportError(
        "agt_client needs the generated agt.v1 stubs: build the agt_python target and put "
        "<build>/python on PYTHONPATH, or pip install ./client/python "
        f"(see client/python/README.md): {error}") from error

pb = types.SimpleNamespace(
    common=common_pb2,
    artifacts=artifacts_pb2, artifacts_grpc=artifacts_pb2_grpc,
    datasets=datasets_pb2, datasets_grpc=datasets_pb2_grpc,
    training=training_pb2, training_grpc=training_pb2_grpc,
    models=models_pb2, models_grpc=models_pb2_grpc,
    privacy=privacy_pb2, privacy_grpc=privacy_pb2_grpc,
    unlearning=unlearning_pb2, unlearning_grpc=unlearning_pb2_grpc,
)
