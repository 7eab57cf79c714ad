"""Downloads for paper-size runs: hub model snapshots at a pinned commit, and released files by URL.

    tfew model download --repo bigscience/T0_3B --revision 032a20e775dd500df0a5a7f404466183d67f172b \
        --out resources/models/t0-3b
    tfew fetch --url https://github.com/r-three/t-few/raw/<commit>/pretrained_checkpoints/t03b_ia3_finish.pt \
        --sha256 431451f1... --out resources/checkpoints/t0-3b/ia3_finish.pt

A model folder is complete when `tfew_model.json` exists: it is written last, atomically, and records the
repository and commit that `tfew.models.read_model_identity` copies into every result row.

Offline mode: `HF_HUB_OFFLINE=1` switches off every download of this module, not only hub ones. A model
download then succeeds only from the local Hugging Face cache, and any other download fails at once with a
message that explains how to proceed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import urllib.error
import urllib.request
from pathlib import Path

from tfew.errors import TfewError

log = logging.getLogger(__name__)

MODEL_INFO_FILE = "tfew_model.json"

# A pinned revision is a full git commit hash, because branch and tag names move.
COMMIT_PATTERN = re.compile(r"^[0-9a-f]{40}$")

# Everything a T5-family folder needs besides its weights: configs, tokenizer files, spiece.model.
NON_WEIGHT_PATTERNS = ["*.json", "*.model", "*.txt"]
SAFETENSORS_PATTERNS = ["*.safetensors", "*.safetensors.index.json"]
PYTORCH_BIN_PATTERNS = ["pytorch_model*.bin", "pytorch_model.bin.index.json"]

# Seconds to wait for a server to respond before a download counts as failed.
CONNECT_TIMEOUT_S = 30


def offline_mode() -> bool:
    """Return True when HF_HUB_OFFLINE is set to a true value (1, true, yes, on)."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def check_revision(revision: str) -> None:
    """Raise unless `revision` is a full 40-character commit hash."""
    if not COMMIT_PATTERN.match(revision):
        raise TfewError(
            f"revision {revision!r} is not a 40-character commit hash: a branch or tag can move, so the run "
            f"would not be reproducible; copy the full hash from the model's 'Files and versions' history"
        )


def weight_patterns(repo_files: list[str]) -> list[str]:
    """Pick one weight format from a repository's file list: safetensors when present, else PyTorch .bin."""
    if any(name.endswith(".safetensors") for name in repo_files):
        return SAFETENSORS_PATTERNS
    if any(name.startswith("pytorch_model") and name.endswith(".bin") for name in repo_files):
        return PYTORCH_BIN_PATTERNS
    raise TfewError(
        f"no PyTorch weights (*.safetensors or pytorch_model*.bin) among the repository's files: {repo_files}"
    )


def download_model(repo: str, revision: str, out_dir: Path) -> Path:
    """Download `repo` at commit `revision` into `out_dir`, write its `tfew_model.json` and return that file."""
    check_revision(revision)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    if offline_mode():
        files = _copy_from_cache(repo, revision, out_dir)
    else:
        files = _download_snapshot(repo, revision, out_dir)

    if not (out_dir / "config.json").is_file():
        raise TfewError(f"{repo} at {revision} has no config.json; is it a transformers model repository?")
    info = {"kind": "hub", "name": repo, "revision": revision, "files": sorted(files)}
    return _write_info(out_dir, info)


def _download_snapshot(repo: str, revision: str, out_dir: Path) -> list[str]:
    from huggingface_hub import HfApi, snapshot_download

    log.info("downloading %s at %s into %s", repo, revision, out_dir)
    try:
        repo_files = HfApi().list_repo_files(repo, revision=revision)
        patterns = NON_WEIGHT_PATTERNS + weight_patterns(repo_files)
        snapshot_download(repo, revision=revision, local_dir=out_dir, allow_patterns=patterns)
    except TfewError:
        raise
    except Exception as error:  # noqa: BLE001 - hub, HTTP and connection errors all become one clear message
        raise TfewError(
            f"download of {repo} at revision {revision} failed: {type(error).__name__}: {error}. Check the "
            f"repository name and commit, your network access and, for gated models, `hf auth login`"
        ) from error
    return [path.name for path in out_dir.iterdir() if path.is_file() and path.name != MODEL_INFO_FILE]


def _copy_from_cache(repo: str, revision: str, out_dir: Path) -> list[str]:
    """Fill `out_dir` from the local Hugging Face cache, without touching the network."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        snapshot = Path(snapshot_download(repo, revision=revision, local_files_only=True))
    except LocalEntryNotFoundError:
        raise TfewError(
            f"cannot download {repo} at revision {revision}: offline mode is on (HF_HUB_OFFLINE=1) and the "
            f"snapshot is not in the Hugging Face cache ({constants.HF_HUB_CACHE}). Run "
            f"`tfew model download` without HF_HUB_OFFLINE on a machine with network access, then copy "
            f"{out_dir} here"
        ) from None

    log.info("offline mode: copying %s at %s from the cache %s", repo, revision, snapshot)
    names = []
    for source in sorted(snapshot.iterdir()):
        if source.is_file():
            _link_or_copy(source.resolve(), out_dir / source.name)
            names.append(source.name)
    return names


def _link_or_copy(source: Path, target: Path) -> None:
    """Hard-link `source` to `target` (no second copy of multi-GB weights), or copy across file systems."""
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _write_info(out_dir: Path, info: dict) -> Path:
    target = out_dir / MODEL_INFO_FILE
    partial = out_dir / (MODEL_INFO_FILE + ".partial")
    partial.write_text(json.dumps(info, indent=2) + "\n")
    partial.replace(target)
    log.info("model %s at %s ready in %s", info["name"], info["revision"], out_dir)
    return target


def fetch_file(url: str, out_file: Path, sha256: str | None = None) -> Path:
    """Download `url` to `out_file` atomically and check its SHA-256 when one is given.

    `file://` URLs are read even in offline mode, since they never leave this machine.
    """
    out_file = Path(out_file)
    if offline_mode() and not url.startswith("file://"):
        raise TfewError(
            f"cannot download {url}: offline mode is on (HF_HUB_OFFLINE=1). Unset it on a machine with "
            f"network access, or place the file somewhere local and point the config at that path"
        )

    out_file.parent.mkdir(parents=True, exist_ok=True)
    partial = out_file.with_name(out_file.name + ".partial")
    digest = hashlib.sha256()
    log.info("downloading %s to %s", url, out_file)
    try:
        with urllib.request.urlopen(url, timeout=CONNECT_TIMEOUT_S) as response, open(partial, "wb") as handle:
            for chunk in iter(lambda: response.read(1 << 20), b""):
                handle.write(chunk)
                digest.update(chunk)
    except (urllib.error.URLError, OSError) as error:
        partial.unlink(missing_ok=True)
        raise TfewError(f"download of {url} failed: {error}; check the URL and your network access") from error

    actual = digest.hexdigest()
    if sha256 is not None and actual != sha256.lower():
        partial.unlink(missing_ok=True)
        raise TfewError(
            f"{url} has SHA-256 {actual}, expected {sha256}: the file changed or the download is corrupt"
        )
    if sha256 is None:
        log.warning("no SHA-256 given for %s; the downloaded file has %s (pin it in the config)", url, actual)
    partial.replace(out_file)
    return out_file
