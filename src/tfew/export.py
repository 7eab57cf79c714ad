"""Write an offline mirror from the hub, for clusters whose compute nodes have no network.

    tfew data export --tasks rte cb copa --to /shared/tfew-mirror          # on a login node
    tfew data import-story-cloze --csv-dir resources/story_cloze --to /shared/tfew-mirror
    tfew data prepare --task rte --seeds 0 1 32 42 1024 --mirror /shared/tfew-mirror --out ...

The mirror has the layout `tfew.data` reads (datasets/, few_shot/, checkpoints/), so rows exported here load
back exactly as the hub served them. `tfew_export.json` at the mirror root records what was written, from
which hub revision, with row counts and sha256 sums.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

from tqdm import tqdm

from tfew.data import Rows, load_split_from_hub, mirror_split_path, sha256_of, write_jsonl
from tfew.errors import TfewError
from tfew.official import (
    fetch_official_checkpoint,
    fetch_official_few_shot,
    official_few_shot_seeds,
    official_files,
)
from tfew.story_cloze import read_story_cloze_csv, split_csv_path
from tfew.tasks import TaskSpec, get_task

log = logging.getLogger(__name__)

EXPORT_PARTS = ("rows", "few_shot", "checkpoints")
DEFAULT_PARTS = ("rows", "few_shot")
EXPORT_RECORD = "tfew_export.json"


def parse_revisions(items: list[str] | None) -> dict[str, str]:
    """Parse `TASK=REVISION` items into a dict, rejecting unknown tasks and malformed items."""
    revisions = {}
    for item in items or []:
        name, separator, revision = item.partition("=")
        if not separator or not revision:
            raise TfewError(f"invalid revision {item!r}: write TASK=REVISION, e.g. winogrande=<commit sha>")
        revisions[get_task(name).name] = revision
    return revisions


def export_splits(task: TaskSpec) -> list[str]:
    """Return the splits a mirror needs for a task: its training split, then its evaluation split."""
    return list(dict.fromkeys([task.train_split, task.eval_split]))


def export_mirror(task_names: list[str], out: Path, parts: tuple[str, ...] = DEFAULT_PARTS,
                  revisions: dict[str, str] | None = None, story_cloze_dir: Path | None = None,
                  base_url: str | None = None) -> dict:
    """Write the rows, official few-shot splits and (optionally) checkpoints of the tasks into a mirror.

    Returns the export record, which is also merged into `<out>/tfew_export.json`.
    """
    unknown = sorted(set(parts) - set(EXPORT_PARTS))
    if unknown:
        raise TfewError(f"unknown export part(s) {unknown}; choose from {EXPORT_PARTS}")
    out = Path(out)
    revisions = revisions or {}
    tasks = [get_task(name) for name in task_names]
    files: dict[str, dict] = {}

    for task in tqdm(tasks, desc="export", unit="task"):
        log.info("exporting %s (%s) into %s", task.name, task.hub_path, out)
        if "rows" in parts:
            for split in export_splits(task):
                rows = _source_rows(task, split, revisions.get(task.name), story_cloze_dir)
                files.update(_write_split(out, task, split, rows, revisions.get(task.name)))
        if "few_shot" in parts:
            for seed in official_few_shot_seeds(task):
                path = fetch_official_few_shot(task, seed, out, base_url=base_url)
                files[str(path.relative_to(out))] = {"sha256": sha256_of(path), "origin": "r-three/t-few"}

    if "checkpoints" in parts:
        for file_name in official_files()["checkpoints"]:
            path = fetch_official_checkpoint(file_name, out, base_url=base_url)
            files[str(path.relative_to(out))] = {"sha256": sha256_of(path), "origin": "r-three/t-few"}

    return _update_export_record(out, files)


def _source_rows(task: TaskSpec, split: str, revision: str | None, story_cloze_dir: Path | None) -> Rows:
    if task.manual_download:
        path = split_csv_path(split, story_cloze_dir)
        return Rows(read_story_cloze_csv(path), str(path))
    return load_split_from_hub(task, split, revision)


def _write_split(out: Path, task: TaskSpec, split: str, rows: Rows, revision: str | None) -> dict[str, dict]:
    path = mirror_split_path(out, task, split)
    write_jsonl(path, rows)
    origin = rows.source if task.manual_download else f"{task.hub_path}@{revision or task.hub_revision}"
    log.info("%s: wrote %d rows of split %s to %s", task.name, len(rows), split, path)
    return {str(path.relative_to(out)): {"rows": len(rows), "sha256": sha256_of(path), "origin": origin}}


def import_story_cloze(validation_csv: Path, test_csv: Path, out: Path) -> dict:
    """Convert the two ROCStories Story Cloze CSV files into the mirror's StoryCloze splits."""
    task = get_task("story_cloze")
    files = {}
    for split, path in (("validation", Path(validation_csv)), ("test", Path(test_csv))):
        files.update(_write_split(Path(out), task, split, Rows(read_story_cloze_csv(path), str(path)), None))
    return _update_export_record(Path(out), files)


def import_story_cloze_dir(csv_dir: Path, out: Path) -> dict:
    """Import StoryCloze from a folder that contains both CSV files under the names the ROCStories authors use."""
    return import_story_cloze(split_csv_path("validation", csv_dir), split_csv_path("test", csv_dir), out)


def _update_export_record(out: Path, files: dict[str, dict]) -> dict:
    path = out / EXPORT_RECORD
    record = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {"files": {}}
    record["files"].update(files)
    record["updated"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    record["tfew_version"] = version("tfew")
    record["datasets_version"] = version("datasets")
    out.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(record, indent=2, sort_keys=True), encoding="utf-8")
    partial.replace(path)
    return record
