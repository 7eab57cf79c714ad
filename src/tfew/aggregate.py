"""Aggregate per-example predictions into the paper's statistics.

Liu et al. 2022, Section 3.1: per task, the median and interquartile range of accuracy over every
(few-shot seed, template) cell; across tasks, the arithmetic mean of the per-task medians (the paper calls it
a median, but its published averages are means of the medians).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
from scipy import stats

from tfew.errors import TfewError

log = logging.getLogger(__name__)

# Columns that identify one experimental condition; a result file must carry all of them.
CONDITION_COLUMNS = ["method", "task", "loss_variant", "init"]
CELL_COLUMNS = CONDITION_COLUMNS + ["seed", "template"]


def read_predictions(paths: list[Path]) -> pd.DataFrame:
    """Concatenate prediction files, checking that each carries the identifying columns."""
    frames = []
    for path in paths:
        frame = pd.read_csv(path)
        missing = [column for column in CELL_COLUMNS + ["correct"] if column not in frame.columns]
        if missing:
            raise TfewError(f"{path}: missing result columns {missing}")
        frames.append(frame)
    if not frames:
        raise TfewError("no prediction files to aggregate")
    return pd.concat(frames, ignore_index=True)


def cell_accuracy(predictions: pd.DataFrame) -> pd.DataFrame:
    """Return accuracy per (condition, seed, template) cell, with the number of examples scored."""
    grouped = predictions.groupby(CELL_COLUMNS, dropna=False)["correct"]
    cells = grouped.agg(accuracy="mean", examples="size").reset_index()
    return cells


def task_summary(cells: pd.DataFrame) -> pd.DataFrame:
    """Return the median and interquartile range of cell accuracy per condition (the paper's statistic)."""
    grouped = cells.groupby(CONDITION_COLUMNS, dropna=False)["accuracy"]
    summary = grouped.agg(
        median="median",
        iqr=lambda values: float(stats.iqr(values)),
        cells="size",
    ).reset_index()
    return summary


def overall_summary(summary: pd.DataFrame) -> pd.DataFrame:
    """Return the mean of per-task medians for each method, loss variant and initialisation."""
    keys = [column for column in CONDITION_COLUMNS if column != "task"]
    return (
        summary.groupby(keys, dropna=False)
        .agg(mean_of_medians=("median", "mean"), tasks=("task", "nunique"))
        .reset_index()
    )


def aggregate(paths: list[Path], out_dir: Path) -> dict[str, pd.DataFrame]:
    """Write `cells.csv`, `per_task.csv` and `overall.csv` to `out_dir` and return the three tables."""
    predictions = read_predictions(paths)
    tables = {"cells": cell_accuracy(predictions)}
    tables["per_task"] = task_summary(tables["cells"])
    tables["overall"] = overall_summary(tables["per_task"])
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        partial = out_dir / f"{name}.csv.partial"
        table.to_csv(partial, index=False)
        partial.replace(out_dir / f"{name}.csv")
    log.info("aggregated %d prediction rows from %d files into %s", len(predictions), len(paths), out_dir)
    return tables
