"""Provenance columns attached to every result row, so that any number can be traced to its inputs.

Run-level columns (this module): package version, git commit, config hash, model name and revision, and the
hashes of the data files read. Row-level columns (promptsource version, template and its hash) come from the
rendered examples, and method, task, seed, loss variant and initialisation from the command that ran.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
from functools import lru_cache
from pathlib import Path

from tfew import __version__
from tfew.data import sha256_of

log = logging.getLogger(__name__)

# Set by the workflow to the hash of its whole config, so rows of one run share one value.
CONFIG_HASH_ENV = "TFEW_CONFIG_HASH"
# Set where the package runs outside a git checkout (for example in a container built from a known commit).
GIT_COMMIT_ENV = "TFEW_GIT_COMMIT"

PROVENANCE_COLUMNS = ["tfew_version", "git_commit", "config_hash", "model_name", "model_revision", "data_hashes"]


def _git(*args: str) -> str | None:
    try:
        output = subprocess.run(
            ["git", *args],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return output.stdout.strip()


@lru_cache(maxsize=1)
def git_commit() -> str:
    """Return the commit the package's source comes from, with "-dirty" when tracked files differ from it.

    Returns the TFEW_GIT_COMMIT environment variable when set, and "unknown" when the package's own files are
    not tracked by git (an installed wheel, even inside another repository's virtual environment).
    """
    if os.environ.get(GIT_COMMIT_ENV):
        return os.environ[GIT_COMMIT_ENV]
    if _git("ls-files", "--error-unmatch", Path(__file__).name) is None:
        return "unknown"
    commit = _git("rev-parse", "HEAD")
    if not commit:
        return "unknown"
    changes = _git("status", "--porcelain", "--untracked-files=no")
    return f"{commit}-dirty" if changes else commit


def config_hash(config: dict) -> str:
    """Return the first 16 hex digits of the sha256 of a config, serialised as JSON with sorted keys."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def run_config_hash(run_settings: dict | None) -> str:
    """Return the workflow's config hash (TFEW_CONFIG_HASH) when set, else the hash of the command's settings.

    A command run by hand thus still gets a hash that differs between different settings; an empty string
    means neither was available.
    """
    if os.environ.get(CONFIG_HASH_ENV):
        return os.environ[CONFIG_HASH_ENV]
    if run_settings is None:
        return ""
    return config_hash(run_settings)


def file_hashes(paths: list[Path]) -> str:
    """Return `name:sha256[:16]` pairs for the given data files, joined by `;`."""
    return ";".join(f"{Path(p).name}:{sha256_of(Path(p))[:16]}" for p in paths)


def provenance(model_identity: dict, data_files: list[Path], run_settings: dict | None = None) -> dict:
    """Return the run-level provenance columns (PROVENANCE_COLUMNS) for one command's output rows."""
    return {
        "tfew_version": __version__,
        "git_commit": git_commit(),
        "config_hash": run_config_hash(run_settings),
        "model_name": model_identity.get("model_name", ""),
        "model_revision": model_identity.get("model_revision", ""),
        "data_hashes": file_hashes(data_files),
    }
