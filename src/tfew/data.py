"""Load task rows from the offline mirror or the Hugging Face hub, and the few-shot training splits.

The mirror layout is a contract shared with `tfew data export`:

    <mirror>/datasets/<hub_id>/<config>/<split>.jsonl     rows in the Hugging Face schema
    <mirror>/few_shot/<task>/<n>_shot/<seed>_seed.jsonl   official T-Few few-shot splits
    <mirror>/checkpoints/<file>                          pre-trained (IA)^3 vectors

Rows come back as `Rows`, a list that also remembers the file and line of each row, so that any later error
(a label outside the answer choices, an unlabeled row) names the line to fix.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np

from tfew.errors import DataNotFoundError, RowValidationError
from tfew.official import (
    ChecksumError,
    fetch_official_few_shot,
    few_shot_name,
    official_few_shot_info,
    official_few_shot_seeds,
)
from tfew.tasks import LabelError, TaskSpec

log = logging.getLogger(__name__)

FEW_SHOT_SOURCES = ("official", "sample")


class Rows(list):
    """A list of row dicts that remembers where each row came from, for error messages.

    Rows read from a file know their line numbers (`file:line`); rows from the hub know their position in
    the split (`hub ... row N`). Slices and samples keep the positions of the rows they hold.
    """

    def __init__(self, rows=(), source: str = "", positions: list[int] | None = None, unit: str = "line"):
        super().__init__(rows)
        self.source = source
        if positions is None:
            positions, unit = list(range(1, len(self) + 1)), "row"
        self.positions = positions
        self.unit = unit

    def location(self, index: int) -> str:
        """Return where the row at `index` came from: `file:line`, or `source row N`."""
        if self.unit == "line":
            return f"{self.source}:{self.positions[index]}"
        return f"{self.source} row {self.positions[index]}"

    def subset(self, indices: list[int]) -> Rows:
        """Return the rows at `indices`, in that order, with their origins."""
        return Rows(
            [list.__getitem__(self, i) for i in indices], self.source, [self.positions[i] for i in indices], self.unit
        )

    def __getitem__(self, key):
        if isinstance(key, slice):
            return self.subset(range(len(self))[key])
        return list.__getitem__(self, key)


# NumPy's RandomState, which draws the few-shot splits, takes seeds from 0 to 2**32 - 1.
MAX_SEED = 2**32 - 1


def seed_value(text: str) -> int:
    """Parse a seed given on the command line; argparse reports a value outside 0..2**32 - 1 as invalid."""
    import argparse

    try:
        seed = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid seed {text!r}: expected an integer") from None
    if not 0 <= seed <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"invalid seed {seed}: seeds run from 0 to {MAX_SEED} (2**32 - 1)")
    return seed


def read_jsonl(path: Path, required_fields: tuple[str, ...] = ()) -> Rows:
    """Read a JSONL file, rejecting malformed lines and rows that lack a required field."""
    path = Path(path)
    if not path.is_file():
        problem = "is a folder, not a JSONL file" if path.is_dir() else "not found"
        raise DataNotFoundError(
            f"{path}: {problem}; check the path (the rendered evaluation and few-shot files of a task are written "
            "by `tfew data prepare`)"
        )
    rows = []
    lines = []
    with open(path, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise RowValidationError(f"{path}:{line_number}: invalid JSON ({error.msg})") from None
            if not isinstance(row, dict):
                raise RowValidationError(f"{path}:{line_number}: expected a JSON object, got {type(row).__name__}")
            for field in required_fields:
                if field not in row:
                    raise RowValidationError(
                        f"{path}:{line_number}: missing field {field!r} (row has {sorted(row)})"
                    )
            rows.append(row)
            lines.append(line_number)
    return Rows(rows, str(path), lines, unit="line")


def write_jsonl(path: Path, rows: list[dict]) -> None:
    """Write rows as JSONL atomically, so a killed job never leaves a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with open(partial, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    partial.replace(path)


def sha256_of(path: Path) -> str:
    """Return the hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def rows_sha256(rows: list[dict]) -> str:
    """Return the sha256 of rows written as JSONL with sorted keys: the same for the same rows from any source."""
    digest = hashlib.sha256()
    for row in rows:
        digest.update((json.dumps(row, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8"))
    return digest.hexdigest()


def mirror_split_path(mirror: Path, task: TaskSpec, split: str) -> Path:
    """Return where the mirror keeps one split of a task's hub dataset."""
    return Path(mirror) / "datasets" / task.hub_id / task.mirror_config / f"{split}.jsonl"


def few_shot_path(mirror: Path, task: TaskSpec, seed: int, num_shots: int | None = None) -> Path:
    """Return where the mirror keeps an official few-shot split."""
    return Path(mirror) / "few_shot" / few_shot_name(task, seed, num_shots)


def default_cache_dir() -> Path:
    """Return where official files fetched without a mirror are kept: $TFEW_CACHE_DIR, else ~/.cache/tfew."""
    return Path(os.environ.get("TFEW_CACHE_DIR", Path.home() / ".cache" / "tfew"))


def load_split(task: TaskSpec, split: str, mirror: Path | None, revision: str | None = None) -> Rows:
    """Load every row of one split, from the mirror when given, else from the hub.

    `revision` overrides the task's pinned hub revision; it does not apply to mirror files.
    """
    if mirror is not None:
        path = mirror_split_path(mirror, task, split)
        if not path.is_file():
            raise DataNotFoundError(
                f"{task.name}: split {split!r} not found in the offline mirror at {path}. "
                f"Write it with `tfew data export --tasks {task.name} --to {mirror}` on a machine with "
                f"network access, or set `data.source: hub` in the config."
            )
        return read_jsonl(path, required_fields=task.fields)
    return load_split_from_hub(task, split, revision)


def load_split_from_hub(task: TaskSpec, split: str, revision: str | None = None) -> Rows:
    """Load one split through `datasets` (StoryCloze: from the local CSV files); failures name the fix."""
    if task.manual_download:
        from tfew.story_cloze import read_story_cloze_csv, split_csv_path

        path = split_csv_path(split)
        return Rows(read_story_cloze_csv(path), f"{path} (Story Cloze CSV)")

    import datasets

    revision = revision or task.hub_revision
    try:
        dataset = datasets.load_dataset(task.hub_id, task.hub_config, split=split, revision=revision)
    except Exception as error:  # datasets raises many unrelated types for "cannot serve this"
        raise DataNotFoundError(
            f"{task.name}: could not load {task.hub_id} (config {task.hub_config!r}, split {split!r}, "
            f"revision {revision!r}) from the hub: {type(error).__name__}: {error}. {_hub_fix(error)}"
        ) from None
    rows = [dict(row) for row in dataset]
    log.info("%s: loaded %d rows of %s %s at revision %s", task.name, len(rows), task.hub_path, split, revision)
    return Rows(rows, f"hub {task.hub_path} split {split} (revision {revision})")


def _hub_fix(error: Exception) -> str:
    if "scripts are no longer supported" in str(error):
        # datasets 4 and later refuse any revision that still contains the repository's loading script.
        return (
            "This revision still contains a loading script: pass a later commit with `--hub-revision SHA` "
            "(`tfew data prepare`) or `--revision TASK=SHA` (`tfew data export`)."
        )
    return (
        "Connect to the network (and unset HF_DATASETS_OFFLINE), or point `data.mirror` at an offline mirror "
        "written by `tfew data export`."
    )


def tfew_reader_rows(task: TaskSpec, rows: Rows) -> Rows:
    """Add the fields T-Few's dataset reader adds before sampling: `label` and `idx` where the task needs them.

    `idx` is the row's position in its split and `label` the converted class index, so that rows sampled here
    equal the rows of the official few-shot files (r-three/t-few, `src/data/dataset_readers.py`).
    """
    converted = []
    for index, row in enumerate(rows):
        row = dict(row)
        if task.adds_label:
            try:
                row["label"] = task.label_of(row)
            except LabelError as error:
                raise RowValidationError(f"{_location(rows, index)}: {error}") from None
        if task.adds_index:
            row["idx"] = index
        converted.append(row)
    if isinstance(rows, Rows):
        return Rows(converted, rows.source, rows.positions, rows.unit)
    return Rows(converted)


def _location(rows: list[dict], index: int) -> str:
    if isinstance(rows, Rows):
        return rows.location(index)
    return f"row {index + 1}"


def load_few_shot(task: TaskSpec, seed: int, mirror: Path | None, num_shots: int | None = None,
                  source: str = "official", revision: str | None = None) -> Rows:
    """Load a few-shot training split: T-Few's official file, or a seeded sample of the training split.

    `official` reads `<mirror>/few_shot/...` (checked against the published sha256), or without a mirror
    downloads the file from r-three/t-few into the cache folder. `sample` draws the split from the task's
    training rows (mirror or hub) by T-Few's procedure, for seeds or shot counts T-Few never published.
    """
    shots = num_shots or task.num_shots
    if source == "official":
        path = _official_few_shot_file(task, seed, mirror, shots)
        rows = read_jsonl(path, required_fields=(*task.fields, "idx"))
        if len(rows) != shots:
            raise RowValidationError(f"{path}: expected {shots} rows for {shots} shots, found {len(rows)}")
        return rows
    if source == "sample":
        train_rows = tfew_reader_rows(task, load_split(task, task.train_split, mirror, revision))
        sampled = sample_few_shot(train_rows, seed, shots)
        log.info("%s: sampled %d shots with seed %d from %d training rows", task.name, shots, seed, len(train_rows))
        return sampled
    raise DataNotFoundError(f"unknown few-shot source {source!r}; use one of {FEW_SHOT_SOURCES}")


def _official_few_shot_file(task: TaskSpec, seed: int, mirror: Path | None, shots: int) -> Path:
    if mirror is None:
        return fetch_official_few_shot(task, seed, default_cache_dir(), shots)

    path = few_shot_path(mirror, task, seed, shots)
    if not path.is_file():
        raise DataNotFoundError(
            f"{task.name}: few-shot split for seed {seed} ({shots} shots) not found at {path}. "
            f"Fetch it with `tfew data export --tasks {task.name} --to {mirror}`; T-Few publishes seeds "
            f"{official_few_shot_seeds(task, shots)} for {shots} shots. For other seeds use `--few-shot sample`."
        )
    info = official_few_shot_info(task, seed, shots)
    if info is None:
        log.warning("%s: %s is not an official T-Few few-shot split, so its sha256 is not checked", task.name, path)
        return path
    actual = sha256_of(path)
    if actual != info["sha256"]:
        raise ChecksumError(
            f"{path}: sha256 is {actual}, expected {info['sha256']} (the official T-Few split). The file was "
            f"changed; fetch it again with `tfew data export --tasks {task.name} --to {mirror}`."
        )
    return path


def sample_few_shot(train_rows: list[dict], seed: int, num_shots: int) -> list[dict]:
    """Sample a few-shot split as T-Few does: seed NumPy with the few-shot seed, shuffle all rows, take the first K.

    T-Few seeds NumPy's global generator and shuffles the list of rows (`_sample_few_shot_data` in
    r-three/t-few). A private RandomState with the same seed draws the same permutation without touching
    the global state.
    """
    if num_shots > len(train_rows):
        raise RowValidationError(f"cannot sample {num_shots} shots from a training split of {len(train_rows)} rows")
    order = np.arange(len(train_rows))
    np.random.RandomState(seed).shuffle(order)
    chosen = [int(i) for i in order[:num_shots]]
    if isinstance(train_rows, Rows):
        return train_rows.subset(chosen)
    return [train_rows[i] for i in chosen]
