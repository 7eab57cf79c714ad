"""Prepare one task for the workflow: load rows, render every template, write tidy JSONL files.

Rendering happens once here, so the training and evaluation jobs only need the tokenizer and the model.
Outputs in the task's folder:

    eval.jsonl               one line per (evaluation example, template)
    few_shot_seed<S>.jsonl   one line per (few-shot example, template), for each seed
    render_stats.json        rows rendered and skipped per template and split, promptsource version, sources
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from tfew.data import few_shot_path, load_few_shot, load_split, mirror_split_path, sha256_of, write_jsonl
from tfew.prompts import promptsource_version, render_rows
from tfew.tasks import get_task

log = logging.getLogger(__name__)


def prepare_task(task_name: str, seeds: list[int], out_dir: Path, mirror: Path | None,
                 max_eval_examples: int | None = None) -> None:
    """Render the evaluation split and every seed's few-shot split of one task into `out_dir`."""
    task = get_task(task_name)
    out_dir.mkdir(parents=True, exist_ok=True)
    stats: dict[str, dict] = {}
    sources: dict[str, str] = {}

    eval_rows = load_split(task, task.eval_split, mirror)
    if mirror is not None:
        path = mirror_split_path(mirror, task, task.eval_split)
        sources[str(path)] = sha256_of(path)
    if max_eval_examples is not None:
        eval_rows = eval_rows[:max_eval_examples]
    examples, render_stats = render_rows(task, eval_rows, f"{task.name} {task.eval_split}")
    write_jsonl(out_dir / "eval.jsonl", examples)
    stats["eval"] = {s.template_name: {"rendered": s.rendered, "skipped": s.skipped} for s in render_stats}
    log.info("%s: %d evaluation rows, %d (example, template) pairs", task.name, len(eval_rows), len(examples))

    for seed in seeds:
        rows = load_few_shot(task, seed, mirror)
        if mirror is not None:
            path = few_shot_path(mirror, task, seed)
            sources[str(path)] = sha256_of(path)
        examples, render_stats = render_rows(task, rows, f"{task.name} few-shot seed {seed}")
        write_jsonl(out_dir / f"few_shot_seed{seed}.jsonl", examples)
        stats[f"few_shot_seed{seed}"] = {
            s.template_name: {"rendered": s.rendered, "skipped": s.skipped} for s in render_stats
        }

    info = {
        "task": task.name,
        "hub_id": task.hub_id,
        "hub_config": task.hub_config,
        "hub_revision": task.hub_revision,
        "source": "mirror" if mirror is not None else "hub",
        "promptsource_version": promptsource_version(),
        "sources_sha256": sources,
        "render_stats": stats,
    }
    partial = out_dir / "render_stats.json.partial"
    partial.write_text(json.dumps(info, indent=2))
    partial.replace(out_dir / "render_stats.json")
