"""Model files: one safetensors file holding the weights and a JSON metadata record.

Loading never executes code from the file: the architecture is rebuilt from the spec in
the metadata and the tensors are read with ``safetensors``. A missing, corrupt or
mismatched file raises a one-line ``RingcertError``. Models are referred to by a shipped
name (``none``, ``l0``, ``pgd`` for DOUBLE-MNIST; ``none3``, ``pgd3`` for three digits), by a
``.safetensors`` path or by an ``.onnx`` path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file
from torch import nn

from ringcert.errors import RingcertError
from ringcert.models.architecture import build, spec_of_model
from ringcert.vocabulary import Defense

SHIPPED = tuple(defense.value for defense in Defense)  # one shipped model per training regime
SHIPPED_THREE = ("none3", "pgd3")  # three-digit classifiers (issue 15): not in the default run
ALL_SHIPPED = SHIPPED + SHIPPED_THREE
_META_KEY = "ringcert"


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A network in evaluation mode plus its metadata and a short display name."""

    name: str
    network: nn.Sequential
    metadata: dict[str, Any] = field(default_factory=dict)


def model_objects(loaded: LoadedModel) -> int:
    """How many objects the model's images show (its training's ``objects``; 2 when the
    file does not say: DOUBLE-MNIST)."""
    return int(loaded.metadata.get("objects", 2))


def shipped_path(name: str) -> Path:
    return Path(str(resources.files("ringcert.models") / "shipped" / f"{name}.safetensors"))


def save_model(network: nn.Sequential, path: str | Path, metadata: dict[str, Any]) -> None:
    """Write weights and metadata (the spec is added from the network itself)."""
    record = dict(metadata, spec=spec_of_model(network))
    tensors = {key: value.detach().contiguous().clone()
               for key, value in network.state_dict().items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={_META_KEY: json.dumps(record)})
    tmp.chmod(0o644)  # safetensors creates 0600 files; model files are meant to be shared
    tmp.replace(path)


def read_metadata(path: str | Path) -> dict[str, Any]:
    try:
        with safe_open(str(path), framework="pt") as handle:
            raw = (handle.metadata() or {}).get(_META_KEY)
    except (SafetensorError, OSError, ValueError) as error:
        raise RingcertError(f"corrupt model file {path}: {str(error).splitlines()[0]}") from None
    if raw is None:
        raise RingcertError(f"{path} is not a ringcert model file (no metadata)")
    try:
        record = json.loads(raw)
    except json.JSONDecodeError:
        raise RingcertError(f"{path} has corrupt metadata") from None
    if not isinstance(record, dict) or "spec" not in record:
        raise RingcertError(f"{path} has no architecture spec in its metadata")
    return record


def load_safetensors(path: str | Path) -> LoadedModel:
    path = Path(path)
    if not path.is_file():
        raise RingcertError(f"model file not found: {path}")
    metadata = read_metadata(path)
    network = build(metadata["spec"])
    try:
        tensors = load_file(str(path))
        network.load_state_dict(tensors, strict=True)
    except (SafetensorError, RuntimeError, OSError) as error:
        first = str(error).strip().splitlines()[0]
        raise RingcertError(f"model file {path} does not match its architecture: {first}") from None
    network.eval()
    return LoadedModel(name=metadata.get("name", path.stem), network=network, metadata=metadata)


def load_model(reference: str | Path) -> LoadedModel:
    """A shipped model by name, or a model file (``.safetensors`` or ``.onnx``) by path."""
    text = str(reference)
    if text in ALL_SHIPPED:
        path = shipped_path(text)
        if not path.is_file():
            raise RingcertError(f"shipped model {text!r} is missing from the installation")
        return load_safetensors(path)
    path = Path(text)
    if path.suffix.lower() == ".onnx":
        from ringcert.models.onnx_io import read_onnx

        found = read_onnx(path)
        metadata: dict[str, Any] = {"name": path.stem, "source": "onnx"}
        if found.dropped_output is not None:
            metadata["verified_output"] = f"logits before the final {found.dropped_output}"
        return LoadedModel(name=path.stem, network=found.network, metadata=metadata)
    if not path.exists():
        raise RingcertError(
            f"unknown model {text!r}: not a shipped name ({', '.join(ALL_SHIPPED)}) nor a file")
    return load_safetensors(path)

