"""Provenance columns attached to every result row, so that any number can be traced to its inputs."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from functools import lru_cache
from pathlib import Path

from tfew import __version__
from tfew.data import sha256_of


@lru_cache(maxsize=1)
def git_commit() -> str:
    """Return the commit of the working tree the package runs from, or "unknown" outside a git checkout."""
    try:
        output = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return output.stdout.strip()


def config_hash(config: dict) -> str:
    """Return the first 16 hex digits of the sha256 of a config, serialised with sorted keys."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def file_hashes(paths: list[Path]) -> str:
    """Return `name:sha256[:16]` pairs for the given data files, joined by `;`."""
    return ";".join(f"{Path(p).name}:{sha256_of(Path(p))[:16]}" for p in paths)


def provenance(model_identity: dict, data_files: list[Path]) -> dict:
    """Return the run-level provenance columns; the config hash comes from TFEW_CONFIG_HASH when set."""
    return {
        "tfew_version": __version__,
        "git_commit": git_commit(),
        "config_hash": os.environ.get("TFEW_CONFIG_HASH", ""),
        "model_name": model_identity.get("model_name", ""),
        "model_revision": model_identity.get("model_revision", ""),
        "data_hashes": file_hashes(data_files),
    }
