"""A multitask training file for (IA)^3 pre-training: few-shot rows of several tasks, every template each.

The official pre-trained vectors were trained on T0's training mixture, which shares no task with the 11
held-out tasks (Liu et al. 2022, Section 3.4). A tiny demo model has no released vectors. Pre-training it on
the few-shot rows of held-out tasks that the run does not evaluate keeps the same property, because that
data is disjoint from every evaluated task.

    tfew data mixture --tasks anli_r1 winogrande hellaswag --seed 0 --mirror ../shared/data \
        --out results/demo/pretrain/mixture.jsonl

`tfew train` groups rows into examples by `example_index`, so the indices are renumbered to stay unique
across tasks; each row keeps its task's own index as `task_example_index`.
"""

from __future__ import annotations

import logging
from pathlib import Path

from tfew.data import load_few_shot, write_jsonl
from tfew.errors import TfewError
from tfew.prompts import render_rows
from tfew.tasks import get_task

log = logging.getLogger(__name__)


def build_mixture(task_names: list[str], seed: int, mirror: Path | None, out_file: Path) -> int:
    """Render the seed's few-shot split of every task in `task_names` into one JSONL; return the example count."""
    if len(set(task_names)) != len(task_names):
        raise TfewError(f"mixture tasks {task_names} name a task twice; list each task once")

    rows_out: list[dict] = []
    next_index = 0
    for name in task_names:
        task = get_task(name)
        rows = load_few_shot(task, seed, mirror)
        examples, _ = render_rows(task, rows, f"{task.name} few-shot seed {seed}")
        if not examples:
            raise TfewError(f"{task.name}: no template rendered any few-shot row of seed {seed}")

        offset = next_index
        for example in examples:
            example["task_example_index"] = example["example_index"]
            example["example_index"] = offset + example["example_index"]
        next_index = offset + len(rows)
        rows_out.extend(examples)
        log.info("mixture: %s seed %d adds %d rows as %d (example, template) pairs", task.name, seed,
                 len(rows), len(examples))

    write_jsonl(out_file, rows_out)
    log.info("mixture of %d tasks: %d examples, %d rows written to %s", len(task_names), next_index,
             len(rows_out), out_file)
    return next_index
