"""The package's own (IA)^3 format: one safetensors file of vectors plus a JSON file of metadata.

    vectors.safetensors   one float32 tensor per wrapped layer, named like the layer in the Hugging Face
                          model (`decoder.block.3.layer.1.EncDecAttention.k`), shape [width]
    vectors.json          {"format": "tfew-ia3", "format_version": 1, "base_model": ..., "base_revision": ...,
                           "vectors": {name: shape}, ...}; the same JSON is also stored in the safetensors
                          header under the key "tfew", so a file copied without its JSON keeps its metadata

A vector named after a `wo` layer scales that layer's input (the feed-forward activation); every other vector
scales its layer's output. Conversions to and from other formats live in `tfew.ia3_formats`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from tfew.errors import TfewError

log = logging.getLogger(__name__)

FORMAT_NAME = "tfew-ia3"
FORMAT_VERSION = 1
HEADER_KEY = "tfew"


def metadata_path(vectors_path: Path) -> Path:
    """Return the JSON file that sits beside a vectors file."""
    return Path(vectors_path).with_suffix(".json")


def save_vectors(path: Path, vectors: dict[str, torch.Tensor], metadata: dict) -> None:
    """Save one task's vectors and their metadata atomically (base model, revision, names and shapes)."""
    path = Path(path)
    if not vectors:
        raise TfewError(f"no (IA)^3 vectors to save to {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {name: vector.detach().to(torch.float32).reshape(-1).contiguous().cpu() for name, vector in vectors.items()}
    info = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        **metadata,
        "vectors": {name: list(tensor.shape) for name, tensor in tensors.items()},
    }
    text = json.dumps(info, indent=2, default=str)

    partial_tensors = path.with_name(path.name + ".partial")
    partial_info = metadata_path(path).with_name(metadata_path(path).name + ".partial")
    save_file(tensors, str(partial_tensors), metadata={HEADER_KEY: text})
    partial_info.write_text(text + "\n")
    partial_info.replace(metadata_path(path))
    partial_tensors.replace(path)


def load_vectors(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Load vectors and metadata saved by `save_vectors`, checking the names and shapes the metadata lists."""
    path = Path(path)
    if not path.is_file():
        raise TfewError(f"(IA)^3 vectors not found at {path}")
    try:
        with safe_open(str(path), framework="pt") as handle:
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}
            header = handle.metadata() or {}
    except Exception as error:  # safetensors raises its own error types for corrupt or foreign files
        raise TfewError(
            f"{path} is not a readable safetensors file ({error}); expected tfew (IA)^3 vectors. Convert an official "
            "T-Few checkpoint (.pt) or a PEFT adapter folder first: `tfew ia3 convert SRC DST --from t-few|peft --to tfew`"
        ) from error

    info = _read_metadata(path, header)
    _check_listed_shapes(path, tensors, info)
    return tensors, info


def load_into(ia3, vectors: dict[str, torch.Tensor], info: dict, path: Path, model_name: str) -> None:
    """Copy vectors into an (IA)^3 wrapper; a mismatch error names the backbone that the vectors were trained on."""
    try:
        ia3.load_vectors(vectors)
    except TfewError as error:
        trained_on = info.get("base_model") or "a backbone their metadata does not record"
        raise TfewError(f"{path}: {error}. The vectors were trained on {trained_on}, and this model is "
                        f"{model_name}; pass vectors trained on this backbone") from None


def _read_metadata(path: Path, header: dict) -> dict:
    info_file = metadata_path(path)
    if info_file.is_file():
        try:
            info = json.loads(info_file.read_text())
        except json.JSONDecodeError as error:
            raise TfewError(f"invalid JSON in {info_file}: {error}; restore it or delete it to use the copy in the header") from None
    elif HEADER_KEY in header:
        info = json.loads(header[HEADER_KEY])
    else:
        log.warning("%s has no metadata (no %s and no header copy); base model and revision are unknown", path, info_file.name)
        return {}

    if info.get("format") not in (None, FORMAT_NAME):
        raise TfewError(f"{info_file} describes format {info.get('format')!r}, not {FORMAT_NAME!r}")
    if int(info.get("format_version", FORMAT_VERSION)) > FORMAT_VERSION:
        raise TfewError(
            f"{path} uses {FORMAT_NAME} version {info['format_version']}; this tfew reads up to version "
            f"{FORMAT_VERSION}, so upgrade tfew"
        )
    return info


def _check_listed_shapes(path: Path, tensors: dict[str, torch.Tensor], info: dict) -> None:
    listed = info.get("vectors")
    if listed is None:
        return
    missing = sorted(set(listed) - set(tensors))
    if missing:
        raise TfewError(f"{path} lacks vectors that its metadata lists, e.g. {missing[:3]}; the file is incomplete")
    for name, tensor in tensors.items():
        if name in listed and list(tensor.shape) != list(listed[name]):
            raise TfewError(
                f"{path}: vector {name} has shape {list(tensor.shape)} but its metadata says {listed[name]}"
            )
