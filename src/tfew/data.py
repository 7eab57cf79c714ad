"""Load task rows from the offline mirror or the Hugging Face hub, and the few-shot training splits.

The mirror layout is a contract shared with `tfew data export`:

    <mirror>/datasets/<hub_id>/<config>/<split>.jsonl     rows in the Hugging Face schema
    <mirror>/few_shot/<task>/<n>_shot/<seed>_seed.jsonl   official T-Few few-shot splits
    <mirror>/checkpoints/<file>                          pre-trained (IA)^3 vectors
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np

from tfew.errors import DataNotFoundError, RowValidationError
from tfew.tasks import TaskSpec

log = logging.getLogger(__name__)


def read_jsonl(path: Path, required_fields: tuple[str, ...] = ()) -> list[dict]:
    """Read a JSONL file, rejecting malformed lines and rows that lack a required field."""
    rows = []
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
    return rows


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


def mirror_split_path(mirror: Path, task: TaskSpec, split: str) -> Path:
    """Return where the mirror keeps one split of a task's hub dataset."""
    return Path(mirror) / "datasets" / task.hub_id / task.mirror_config / f"{split}.jsonl"


def few_shot_path(mirror: Path, task: TaskSpec, seed: int, num_shots: int | None = None) -> Path:
    """Return where the mirror keeps an official few-shot split."""
    shots = num_shots or task.num_shots
    return Path(mirror) / "few_shot" / task.few_shot_dir / f"{shots}_shot" / f"{seed}_seed.jsonl"


def load_split(task: TaskSpec, split: str, mirror: Path | None) -> list[dict]:
    """Load every row of one split, from the mirror when given, else from the hub."""
    if mirror is not None:
        path = mirror_split_path(mirror, task, split)
        if not path.is_file():
            raise DataNotFoundError(
                f"{task.name}: split {split!r} not found in the offline mirror at {path}. "
                f"Write it with `tfew data export --tasks {task.name} --to {mirror}` on a machine with "
                f"network access, or set `data.source: hub` in the config."
            )
        return read_jsonl(path, required_fields=(task.label_field,))
    return load_split_from_hub(task, split)


def load_split_from_hub(task: TaskSpec, split: str) -> list[dict]:
    """Load one split through `datasets`; a failure names the dataset and how to provide it."""
    if task.manual_download:
        raise DataNotFoundError(
            f"{task.name}: {task.hub_id} cannot be downloaded from the hub (its repository holds only a "
            f"manual-download script). Request the Story Cloze 2016 CSV files from the ROCStories authors "
            f"(cloze_test_val__spring2016.csv and cloze_test_test__spring2016.csv), convert them with "
            f"`tfew data import-story-cloze --val VAL.csv --test TEST.csv --to MIRROR`, and set "
            f"`data.mirror: MIRROR` in the config."
        )

    import datasets

    try:
        dataset = datasets.load_dataset(
            task.hub_id, task.hub_config, split=split, revision=task.hub_revision
        )
    except Exception as error:  # datasets raises many unrelated types for "cannot serve this"
        raise DataNotFoundError(
            f"{task.name}: could not load {task.hub_id} (config {task.hub_config!r}, split {split!r}, "
            f"revision {task.hub_revision!r}) from the hub: {type(error).__name__}: {error}. Connect to the "
            f"network (and unset HF_DATASETS_OFFLINE), or point `data.mirror` at an offline mirror written "
            f"by `tfew data export`."
        ) from None
    return [dict(row) for row in dataset]


def load_few_shot(task: TaskSpec, seed: int, mirror: Path | None, num_shots: int | None = None) -> list[dict]:
    """Load the official few-shot split for a seed from the mirror, or sample one from the hub."""
    shots = num_shots or task.num_shots
    if mirror is not None:
        path = few_shot_path(mirror, task, seed, shots)
        if not path.is_file():
            raise DataNotFoundError(
                f"{task.name}: few-shot split for seed {seed} ({shots} shots) not found at {path}. "
                f"Copy it from r-three/t-few data/few_shot/, or set `few_shot.source: sample` in the config."
            )
        rows = read_jsonl(path, required_fields=(task.label_field,))
        if len(rows) != shots and not (task.few_shot_dir == "sst2"):
            raise RowValidationError(f"{path}: expected {shots} rows, found {len(rows)}")
        return rows
    return sample_few_shot(load_split_from_hub(task, task.train_split), seed, shots)


def sample_few_shot(train_rows: list[dict], seed: int, num_shots: int) -> list[dict]:
    """Sample a few-shot split as T-Few does: seed NumPy's global RNG, shuffle all rows, take the first K."""
    if num_shots > len(train_rows):
        raise RowValidationError(f"cannot sample {num_shots} shots from a training split of {len(train_rows)} rows")
    order = np.arange(len(train_rows))
    rng = np.random.RandomState(seed)
    rng.shuffle(order)
    return [train_rows[i] for i in order[:num_shots]]
