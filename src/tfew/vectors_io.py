"""The package's own (IA)^3 format: one safetensors file of vectors plus a JSON file of metadata."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from tfew.errors import TfewError

FORMAT_VERSION = 1


def metadata_path(vectors_path: Path) -> Path:
    """Return the JSON file that sits beside a vectors file."""
    return Path(vectors_path).with_suffix(".json")


def save_vectors(path: Path, vectors: dict[str, torch.Tensor], metadata: dict) -> None:
    """Save one task's vectors and their metadata atomically (base model, revision, names and shapes)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {name: vector.detach().to(torch.float32).contiguous().cpu() for name, vector in vectors.items()}
    info = {
        "format": "tfew-ia3",
        "format_version": FORMAT_VERSION,
        **metadata,
        "vectors": {name: list(tensor.shape) for name, tensor in tensors.items()},
    }
    partial_tensors = path.with_name(path.name + ".partial")
    partial_info = metadata_path(path).with_name(metadata_path(path).name + ".partial")
    save_file(tensors, str(partial_tensors))
    partial_info.write_text(json.dumps(info, indent=2))
    partial_info.replace(metadata_path(path))
    partial_tensors.replace(path)


def load_vectors(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Load vectors and metadata saved by `save_vectors`."""
    path = Path(path)
    if not path.is_file():
        raise TfewError(f"(IA)^3 vectors not found at {path}")
    info_file = metadata_path(path)
    info = json.loads(info_file.read_text()) if info_file.is_file() else {}
    return load_file(str(path)), info
