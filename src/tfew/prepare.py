"""Prepare one task for the workflow: load rows, render every template, write tidy JSONL files.

Rendering happens once here, so the training and evaluation jobs only need the tokenizer and the model.
Outputs in the task's folder:

    eval.jsonl               one line per (evaluation example, template)
    few_shot_seed<S>.jsonl   one line per (few-shot example, template), for each seed
    render_stats.json        data sources with sha256, rows rendered and skipped per split and template,
                             promptsource version
    render_counts.csv        the same counts as a tidy table: one row per (split, template)

A template that does not apply to some rows (four COPA templates ask only about causes or only about
effects) leaves those rows out of its examples. render_counts.csv records how many, so that per-template
accuracies can be read against the number of rows each template scored.
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

from tfew.data import (
    Rows,
    few_shot_path,
    load_few_shot,
    load_split,
    mirror_split_path,
    rows_sha256,
    sha256_of,
    write_jsonl,
)
from tfew.official import few_shot_name
from tfew.prompts import promptsource_version, render_rows
from tfew.tasks import TaskSpec, get_task

log = logging.getLogger(__name__)

RENDER_COUNT_COLUMNS = (
    "task", "split", "template", "template_index", "template_hash", "rows", "rendered", "skipped",
)


def prepare_task(task_name: str, seeds: list[int], out_dir: Path, mirror: Path | None,
                 max_eval_examples: int | None = None, few_shot_source: str = "official",
                 num_shots: int | None = None, templates: str = "paper",
                 hub_revision: str | None = None) -> None:
    """Render the evaluation split and every seed's few-shot split of one task into `out_dir`.

    `few_shot_source` is "official" (T-Few's published files) or "sample" (seeded sampling from the
    training split); `templates` is "paper" or "original" (see tfew.prompts.TEMPLATE_SELECTIONS).
    """
    task = get_task(task_name)
    out_dir = Path(out_dir)
    shots = num_shots or task.num_shots
    sources: dict[str, dict] = {}
    stats: dict[str, dict] = {}
    counts: list[dict] = []

    # Every split is loaded before any file is written, so that a missing split or seed leaves no eval.jsonl
    # behind that a later step could take for a prepared task.
    eval_rows = load_split(task, task.eval_split, mirror, hub_revision)
    sources["eval"] = _source_record(task, task.eval_split, eval_rows, mirror)
    if max_eval_examples is not None:
        eval_rows = eval_rows[:max_eval_examples]
    few_shot_rows = {seed: load_few_shot(task, seed, mirror, shots, few_shot_source, hub_revision) for seed in seeds}

    _render_split(task, "eval", eval_rows, out_dir / "eval.jsonl", templates, stats, counts)
    for seed, rows in few_shot_rows.items():
        split = f"few_shot_seed{seed}"
        sources[split] = _few_shot_record(task, seed, shots, rows, mirror, few_shot_source)
        _render_split(task, split, rows, out_dir / f"{split}.jsonl", templates, stats, counts)

    info = {
        "task": task.name,
        "hub_id": task.hub_id,
        "hub_config": task.hub_config,
        "hub_revision": hub_revision or task.hub_revision,
        "source": "mirror" if mirror is not None else "hub",
        "few_shot_source": few_shot_source,
        "num_shots": shots,
        "template_selection": templates,
        "max_eval_examples": max_eval_examples,
        "promptsource_version": promptsource_version(),
        "sources": sources,
        "sources_sha256": {record["path"]: record["sha256"] for record in sources.values() if record.get("path")},
        "render_stats": stats,
    }
    _write_text_atomically(out_dir / "render_stats.json", json.dumps(info, indent=2))
    _write_render_counts(out_dir / "render_counts.csv", counts)


def _render_split(task: TaskSpec, split: str, rows: list[dict], out_file: Path, templates: str,
                  stats: dict, counts: list[dict]) -> None:
    source = getattr(rows, "source", f"{task.name} {split}")
    examples, render_stats = render_rows(task, rows, source, templates)
    write_jsonl(out_file, examples)
    stats[split] = {s.template_name: s.as_dict() for s in render_stats}
    counts.extend(_count_row(task.name, split, name, entry) for name, entry in stats[split].items())
    skipped = sum(s.skipped for s in render_stats)
    log.info(
        "%s %s: %d rows, %d (example, template) pairs, %d skipped", task.name, split, len(rows), len(examples),
        skipped,
    )


def _source_record(task: TaskSpec, split: str, rows: Rows, mirror: Path | None) -> dict:
    record = {"split": split, "rows": len(rows), "rows_sha256": rows_sha256(rows)}
    if mirror is not None:
        path = mirror_split_path(mirror, task, split)
        record.update(path=str(path), sha256=sha256_of(path))
    else:
        record.update(origin=getattr(rows, "source", "hub"))
    return record


def _few_shot_record(task: TaskSpec, seed: int, shots: int, rows: Rows, mirror: Path | None,
                     few_shot_source: str) -> dict:
    record = {"seed": seed, "num_shots": shots, "kind": few_shot_source, "rows_sha256": rows_sha256(rows)}
    if few_shot_source == "official":
        path = few_shot_path(mirror, task, seed, shots) if mirror is not None else Path(rows.source)
        record.update(name=few_shot_name(task, seed, shots), path=str(path), sha256=sha256_of(path))
    else:
        record.update(train_split=task.train_split, train_origin=getattr(rows, "source", ""))
    return record


def _write_text_atomically(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)


def _write_render_counts(path: Path, counts: list[dict]) -> None:
    partial = path.with_name(path.name + ".partial")
    with open(partial, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=RENDER_COUNT_COLUMNS)
        writer.writeheader()
        writer.writerows(counts)
    partial.replace(path)


def _count_row(task_name: str, split: str, template_name: str, entry: dict) -> dict:
    return {"task": task_name, "split": split, "template": template_name,
            **{column: entry[column] for column in RENDER_COUNT_COLUMNS[3:]}}


def read_render_counts(path: Path) -> list[dict]:
    """Return render_counts.csv (or the counts inside a render_stats.json) as one dict per (split, template).

    The aggregation joins these on (task, template) to report how many rows each template scored.
    """
    path = Path(path)
    if path.suffix == ".json":
        info = json.loads(path.read_text(encoding="utf-8"))
        return [
            _count_row(info["task"], split, name, entry)
            for split, templates in info["render_stats"].items()
            for name, entry in templates.items()
        ]
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        for column in ("template_index", "rows", "rendered", "skipped"):
            row[column] = int(row[column])
    return rows
