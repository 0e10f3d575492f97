"""Training job specs from keyword arguments or dicts.

make_job_spec(dataset="ds-...", hidden_widths=[8], loss="binary_cross_entropy",
batch_size=20, epochs=3, learning_rate=0.1, perturbation="removal",
budgets=[1, 2, 5]) builds an agt.v1.TrainingJobSpec. Keys are the message's
field names (nested messages as dicts); enum values may be written without
their prefix and in any case ("removal" for PERTURBATION_KIND_REMOVAL).
Shortcuts: dataset (an id or a Dataset message) for dataset_id; the
Optimizer's fields (learning_rate, lr_decay, ...) at the top level;
perturbation as a kind name; budgets as ints (n) or dicts {n, label_n};
model_artifact as an id or a ModelArtifact message, with frozen_layers=K or
frozen_until="node" beside it (ModelArtifactRef's fields).
An unknown key raises ValueError naming it and the closest known keys.
"""

import difflib

from google.protobuf import descriptor as _descriptor


def _enum_value(field, value, path):
    enum = field.enum_type
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"{path}: {value!r} is not a {enum.name} name or number")
    if isinstance(value, int):
        if enum.values_by_number.get(value) is None:
            raise ValueError(f"{path}: {value} is not a {enum.name} value")
        return value
    # The common prefix of the enum's value names, e.g. "LOSS_".
    prefix = enum.values[0].name.rsplit("UNSPECIFIED", 1)[0]
    for name in (value, value.upper(), prefix + value.upper()):
        if name in enum.values_by_name:
            return enum.values_by_name[name].number
    known = [v.name[len(prefix):].lower() for v in enum.values if "UNSPECIFIED" not in v.name]
    raise ValueError(f"{path}: {value!r} is not a {enum.name}; one of {', '.join(known)}")


def _fill(message, values, path, shortcuts=()):
    fields = message.DESCRIPTOR.fields_by_name
    for key, value in values.items():
        field = fields.get(key)
        where = f"{path}.{key}" if path else key
        if field is None:
            close = difflib.get_close_matches(key, list(fields) + list(shortcuts), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ValueError(f"unknown key {where!r} in {message.DESCRIPTOR.name}{hint}; "
                             f"known: {', '.join(fields)}")
        repeated = field.label == _descriptor.FieldDescriptor.LABEL_REPEATED
        if repeated and not isinstance(value, (list, tuple)) and not hasattr(value, "tolist"):
            raise ValueError(f"{where}: expected a list, got {value!r}")
        items = list(value.tolist() if hasattr(value, "tolist") else value) if repeated else None
        if field.type == _descriptor.FieldDescriptor.TYPE_MESSAGE:
            if repeated:
                target = getattr(message, key)
                for i, item in enumerate(items):
                    _fill_message(target.add(), item, f"{where}[{i}]")
            else:
                _fill_message(getattr(message, key), value, where)
        elif field.type == _descriptor.FieldDescriptor.TYPE_ENUM:
            if repeated:
                getattr(message, key).extend(_enum_value(field, v, where) for v in items)
            else:
                setattr(message, key, _enum_value(field, value, where))
        else:
            try:
                if repeated:
                    getattr(message, key).extend(items)
                else:
                    setattr(message, key, value)
            except (TypeError, ValueError) as error:
                raise ValueError(f"{where}: {error}") from None


def _fill_message(target, value, path):
    if hasattr(value, "DESCRIPTOR"):
        target.CopyFrom(value)
    elif isinstance(value, dict):
        _fill(target, value, path)
    elif target.DESCRIPTOR.name == "Budget" and isinstance(value, int):
        target.n = value
    elif target.DESCRIPTOR.name == "Perturbation" and isinstance(value, str):
        _fill(target, {"kind": value}, path)
    else:
        raise ValueError(f"{path}: expected a dict or {target.DESCRIPTOR.name}, got {value!r}")


def make_job_spec(spec=None, **kwargs):
    """An agt.v1.TrainingJobSpec from a dict and/or keyword arguments (see module doc)."""
    from agt.v1 import training_pb2  # noqa: PLC0415 - stubs load lazily

    values = dict(spec or {})
    values.update(kwargs)
    if "dataset" in values:
        dataset = values.pop("dataset")
        values["dataset_id"] = getattr(dataset, "id", dataset)
    frozen = {k: values.pop(k) for k in ("frozen_layers", "frozen_until") if k in values}
    if "model_artifact" in values:
        artifact = values["model_artifact"]
        if isinstance(artifact, str) or hasattr(artifact, "sha256"):
            values["model_artifact"] = {"artifact_id": getattr(artifact, "id", artifact)}
        if frozen:
            values["model_artifact"] = dict(values["model_artifact"], **frozen)
    elif frozen:
        raise ValueError(f"{', '.join(frozen)} given without model_artifact")
    optimizer_fields = training_pb2.Optimizer.DESCRIPTOR.fields_by_name
    shortcuts = {k: values.pop(k) for k in list(values) if k in optimizer_fields}
    if shortcuts:
        optimizer = values.pop("optimizer", None) or {}
        if hasattr(optimizer, "DESCRIPTOR"):  # an Optimizer message: its set fields
            optimizer = {f.name: v for f, v in optimizer.ListFields()}
        optimizer = dict(optimizer)
        for key, value in shortcuts.items():
            if key in optimizer:
                raise ValueError(f"{key} given both at the top level and in optimizer")
            optimizer[key] = value
        values["optimizer"] = optimizer
    message = training_pb2.TrainingJobSpec()
    _fill(message, values, "",
          shortcuts=["dataset", "frozen_layers", "frozen_until", *optimizer_fields])
    return message
