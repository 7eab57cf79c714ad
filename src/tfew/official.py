"""Official T-Few files, fetched from r-three/t-few at a pinned commit and checked against sha256 sums.

Two kinds of file exist there: the few-shot training splits (`data/few_shot/<dir>/<n>_shot/<seed>_seed.jsonl`)
and the pre-trained (IA)^3 vectors (`pretrained_checkpoints/t03b_ia3_finish.pt`). The sums, row counts and
sizes in `official_files.json` were computed from the git blobs at that commit. This module reads nothing
from the task rows and must not import `tfew.data`, which imports it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import urllib.error
import urllib.request
from functools import lru_cache
from importlib import resources
from pathlib import Path

from tfew.errors import DataNotFoundError, TfewError
from tfew.tasks import TFEW_REPO_COMMIT, TaskSpec

log = logging.getLogger(__name__)

# raw.githubusercontent.com serves each file of a commit at <repo>/<commit>/<path>.
OFFICIAL_BASE_URL = f"https://raw.githubusercontent.com/r-three/t-few/{TFEW_REPO_COMMIT}/"
FEW_SHOT_PREFIX = "data/few_shot/"
CHECKPOINT_PREFIX = "pretrained_checkpoints/"
DOWNLOAD_TIMEOUT_S = 60


class ChecksumError(TfewError):
    """A downloaded or mirrored official file does not match its published sha256."""


@lru_cache(maxsize=1)
def official_files() -> dict:
    """Return the packaged table of official files: {"few_shot": {name: info}, "checkpoints": {...}}."""
    text = resources.files("tfew").joinpath("official_files.json").read_text(encoding="utf-8")
    table = json.loads(text)
    if table["commit"] != TFEW_REPO_COMMIT:
        raise TfewError(f"official_files.json describes commit {table['commit']}, expected {TFEW_REPO_COMMIT}")
    return table


def few_shot_name(task: TaskSpec, seed: int, num_shots: int | None = None) -> str:
    """Return a few-shot file's path below `few_shot/`, as r-three/t-few names it."""
    shots = num_shots or task.num_shots
    return f"{task.few_shot_dir}/{shots}_shot/{seed}_seed.jsonl"


def official_few_shot_seeds(task: TaskSpec, num_shots: int | None = None) -> list[int]:
    """Return the seeds for which r-three/t-few publishes a few-shot split of this task and shot count."""
    prefix = f"{task.few_shot_dir}/{num_shots or task.num_shots}_shot/"
    seeds = [
        int(name[len(prefix):].removesuffix("_seed.jsonl"))
        for name in official_files()["few_shot"]
        if name.startswith(prefix)
    ]
    return sorted(seeds)


def official_few_shot_info(task: TaskSpec, seed: int, num_shots: int | None = None) -> dict | None:
    """Return {sha256, rows, bytes} of an official few-shot file, or None when T-Few publishes none."""
    return official_files()["few_shot"].get(few_shot_name(task, seed, num_shots))


def sha256_bytes(data: bytes) -> str:
    """Return the hex sha256 of a byte string."""
    return hashlib.sha256(data).hexdigest()


def check_sha256(data: bytes, expected: str, what: str) -> None:
    """Raise ChecksumError naming `what` when `data` does not hash to `expected`."""
    actual = sha256_bytes(data)
    if actual != expected:
        raise ChecksumError(
            f"{what}: sha256 is {actual}, expected {expected} (the official file at r-three/t-few "
            f"{TFEW_REPO_COMMIT[:12]}). Delete the file and fetch it again with `tfew data export`."
        )


def download(url: str, timeout: float = DOWNLOAD_TIMEOUT_S) -> bytes:
    """Return the bytes at `url` (https or file); a failure names the URL and what to do instead."""
    log.info("downloading %s", url)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.read()
    except (urllib.error.URLError, OSError) as error:
        raise DataNotFoundError(
            f"could not download {url}: {error}. Connect to the network, or fetch the file on a machine that "
            f"has it with `tfew data export` and point `--mirror` at the result."
        ) from None


def write_bytes_atomically(path: Path, data: bytes) -> None:
    """Write a file through a temporary name, so that a killed job never leaves half a file behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    partial.replace(path)


def fetch_official_few_shot(task: TaskSpec, seed: int, dest_root: Path, num_shots: int | None = None,
                            base_url: str | None = None) -> Path:
    """Download one official few-shot split into `<dest_root>/few_shot/...`, checked against its sha256.

    A file already there with the right sha256 is kept. `base_url` is the repository root at the pinned
    commit (default OFFICIAL_BASE_URL); a `file://` URL reads a local checkout instead.
    """
    base_url = base_url or OFFICIAL_BASE_URL
    name = few_shot_name(task, seed, num_shots)
    info = official_few_shot_info(task, seed, num_shots)
    if info is None:
        raise DataNotFoundError(
            f"{task.name}: r-three/t-few publishes no few-shot split {name}; its seeds for this shot count "
            f"are {official_few_shot_seeds(task, num_shots)}. Use `--few-shot sample` for other seeds or "
            f"shot counts."
        )
    path = Path(dest_root) / "few_shot" / name
    if path.is_file() and sha256_bytes(path.read_bytes()) == info["sha256"]:
        return path

    data = download(base_url + FEW_SHOT_PREFIX + name)
    check_sha256(data, info["sha256"], f"{base_url}{FEW_SHOT_PREFIX}{name}")
    write_bytes_atomically(path, data)
    return path


def fetch_official_checkpoint(file_name: str, dest_root: Path, base_url: str | None = None) -> Path:
    """Download a pre-trained (IA)^3 checkpoint into `<dest_root>/checkpoints/`, checked against its sha256."""
    base_url = base_url or OFFICIAL_BASE_URL
    known = official_files()["checkpoints"]
    if file_name not in known:
        raise DataNotFoundError(
            f"no sha256 is packaged for checkpoint {file_name!r}; known checkpoints: {sorted(known)}"
        )
    path = Path(dest_root) / "checkpoints" / file_name
    expected = known[file_name]["sha256"]
    if path.is_file() and sha256_bytes(path.read_bytes()) == expected:
        return path

    data = download(base_url + CHECKPOINT_PREFIX + file_name)
    check_sha256(data, expected, f"{base_url}{CHECKPOINT_PREFIX}{file_name}")
    write_bytes_atomically(path, data)
    return path
