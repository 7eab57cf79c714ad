"""Small synthetic prediction tables in the results contract, for checking the analysis by hand."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

PROVENANCE = {
    "tfew_version": "0.1.0", "git_commit": "0123abc", "config_hash": "feedbeef00000000", "model_revision": "0",
    "data_hashes": "eval.jsonl:0000", "promptsource_version": "0.2.3",
}


def cell_rows(method: str, task: str, seed: int, template: str, correct: list[int], loss_variant: str = "none",
              init: str = "none", model_name: str = "tiny-t5", order: int | None = None) -> list[dict]:
    """Return one prediction row per example of one (condition, seed, template) cell.

    Example i has label 0; a correct example predicts 0, a wrong one predicts 1.
    """
    rows = []
    for index, flag in enumerate(correct):
        row = {
            "method": method, "task": task, "seed": seed, "loss_variant": loss_variant, "init": init,
            "model_name": model_name, **PROVENANCE, "template": template, "template_index": 0,
            "template_hash": f"hash-{template}", "example_index": index, "label": 0, "prediction": 0 if flag else 1,
            "correct": int(flag), "num_choices": 2, "scores": json.dumps([0.0, -1.0] if flag else [-1.0, 0.0]),
            "length_normalized": True,
        }
        if order is not None:
            row["order"] = order
        rows.append(row)
    return rows


def write_predictions(directory: Path, rows: list[dict], name: str) -> Path:
    """Write rows as one prediction CSV and return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def random_run(directory: Path, seed: int = 0, examples: int = 12) -> list[Path]:
    """Write a run with every method: T-Few (four losses, scratch and the full recipe pre-trained), zero-shot,
    and both ICL variants with two extra demonstration orders, on rte (3 templates), cb (2) and copa (1 template),
    seeds 0 and 42. Accuracies rise with the loss terms so that comparisons have a direction."""
    rng = np.random.default_rng(seed)
    templates = {"rte": ["r0", "r1", "r2"], "cb": ["c0", "c1"], "copa": ["p0"]}
    conditions = [("t-few", loss, "scratch", 0.55 + 0.08 * rank) for rank, loss in enumerate(["lm", "lm+ul", "lm+ln", "lm+ul+ln"])]
    conditions += [("t-few", "lm+ul+ln", "pretrained", 0.85), ("t0-zero-shot", "none", "none", 0.5),
                   ("icl-concat", "none", "none", 0.45), ("icl-ensemble", "none", "none", 0.5)]
    paths = []
    for method, loss, init, accuracy in conditions:
        seeds = [-1] if method == "t0-zero-shot" else [0, 42]
        orders = [0, 1, 2] if method.startswith("icl") else [None]
        for task, names in templates.items():
            rows = []
            for seed_value in seeds:
                for order in orders:
                    for template in names:
                        correct = (rng.random(examples) < accuracy).astype(int).tolist()
                        rows += cell_rows(method, task, seed_value, template, correct, loss, init, order=order)
            paths.append(write_predictions(directory, rows, f"{method}-{loss}-{init}-{task}"))
    return paths
