"""Aggregate per-example predictions into the paper's statistics.

Liu et al. 2022, Section 3.1: per task, the median and interquartile range of accuracy over every
(few-shot seed, template) cell. Across tasks, the arithmetic mean of the per-task medians: the paper calls it
a median, but its published averages are means of the medians. The IQR follows `scipy.stats.iqr` with its
defaults (25th to 75th percentile, linear interpolation), as the official result script did.

A condition is one (method, model, task, loss variant, initialisation). Zero-shot rows carry no few-shot seed
and use seed -1. In-context learning rows may carry an `order` column: order 0 is the seeded demonstration
order that every statistic uses, and orders 1..K are permuted re-runs that only the order-sensitivity tables
read.

With `--render-counts`, the per-template table also gives, per template, how many evaluation rows it
rendered and how many it skipped (rows a template does not apply to), from each task's render_stats.json.

    tfew aggregate --predictions results/demo/predictions/*/*/*/*/*.csv \
        --render-counts results/demo/data/*/render_stats.json --out results/demo/aggregate
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from tfew.errors import TfewError

log = logging.getLogger(__name__)

# Columns that identify one experimental condition; a result file must carry all of them.
CONDITION_COLUMNS = ["method", "model_name", "task", "loss_variant", "init"]
CELL_COLUMNS = CONDITION_COLUMNS + ["seed", "template"]
EXAMPLE_COLUMNS = CELL_COLUMNS + ["order", "example_index"]
REQUIRED_COLUMNS = CELL_COLUMNS + ["example_index", "correct"]

# Provenance columns summarised per condition so a report can state which run produced its numbers.
PROVENANCE_COLUMNS = ["model_revision", "config_hash", "git_commit", "tfew_version", "promptsource_version"]

# The seed of rows without a few-shot split (zero-shot evaluation).
NO_SEED = -1

# The demonstration order that every statistic uses; other orders are permuted re-runs.
BASE_ORDER = 0

TABLE_NAMES = ("cells", "per_task", "overall", "per_template", "per_seed", "order_cells", "order_sensitivity",
               "provenance")


def read_predictions(paths: list[Path]) -> pd.DataFrame:
    """Concatenate prediction files with the columns the analysis needs, validating each file.

    Raises TfewError for a missing column, a `correct` value other than 0 or 1, or a repeated
    (condition, seed, template, order, example) row, which would count an example twice.
    """
    if not paths:
        raise TfewError("no prediction files to aggregate: pass at least one CSV to --predictions")

    needed = set(REQUIRED_COLUMNS + PROVENANCE_COLUMNS + ["order", "template_index"])
    frames = []
    for path in paths:
        frame = pd.read_csv(path, usecols=lambda column: column in needed)
        missing = [column for column in REQUIRED_COLUMNS if column not in frame.columns]
        if missing:
            raise TfewError(f"{path}: missing result columns {missing}; regenerate it with `tfew evaluate` or `tfew icl`")
        _check_correct_column(frame, path)
        frames.append(frame)

    predictions = pd.concat(frames, ignore_index=True)
    predictions["seed"] = predictions["seed"].fillna(NO_SEED).astype(int)
    if "order" not in predictions.columns:
        predictions["order"] = BASE_ORDER
    predictions["order"] = predictions["order"].fillna(BASE_ORDER).astype(int)
    predictions["correct"] = predictions["correct"].astype(int)
    for column in ("loss_variant", "init"):
        predictions[column] = predictions[column].fillna("none").astype(str)
    _check_duplicates(predictions)
    return predictions


def _check_correct_column(frame: pd.DataFrame, path: Path) -> None:
    """Normalise `correct` to the integers 0 and 1; any other value raises TfewError naming the file and row."""
    column = frame["correct"]
    if pd.api.types.is_bool_dtype(column) or pd.api.types.is_integer_dtype(column):
        valid = column.isin([0, 1])
        normalised = column.astype(int)
    else:
        text = column.map(lambda value: str(value).strip().lower())
        valid = text.isin({"0", "1", "true", "false", "0.0", "1.0"})
        normalised = text.isin({"1", "true", "1.0"}).astype(int)

    if not valid.all():
        row = int((~valid).to_numpy().nonzero()[0][0])
        raise TfewError(f"{path}: row {row + 2} has correct={column.iloc[row]!r}; expected 0 or 1")
    frame["correct"] = normalised


def _check_duplicates(predictions: pd.DataFrame) -> None:
    repeated = predictions.duplicated(EXAMPLE_COLUMNS, keep=False)
    if repeated.any():
        first = predictions.loc[repeated, EXAMPLE_COLUMNS].iloc[0].to_dict()
        raise TfewError(
            f"{int(repeated.sum())} prediction rows repeat the same (condition, seed, template, order, example), "
            f"first {first}; pass each prediction file once"
        )


def base_order(predictions: pd.DataFrame) -> pd.DataFrame:
    """Return the rows of the seeded demonstration order (all rows of methods without orders)."""
    return predictions[predictions["order"] == BASE_ORDER]


def cell_accuracy(predictions: pd.DataFrame) -> pd.DataFrame:
    """Return accuracy per (condition, seed, template) cell of the base order, with its example count."""
    grouped = base_order(predictions).groupby(CELL_COLUMNS, dropna=False)["correct"]
    return grouped.agg(accuracy="mean", examples="size").reset_index()


def _iqr(values: pd.Series) -> float:
    # Imported here: every `tfew` command imports this module, and scipy.stats costs about 0.5 s of CPU.
    from scipy import stats

    return float(stats.iqr(values.to_numpy()))


def _quantile(q: float):
    def quantile(values: pd.Series) -> float:
        return float(np.percentile(values.to_numpy(), q))

    quantile.__name__ = f"q{q:g}"
    return quantile


def task_summary(cells: pd.DataFrame) -> pd.DataFrame:
    """Return the median and IQR of cell accuracy per condition (the paper's per-task statistic)."""
    grouped = cells.groupby(CONDITION_COLUMNS, dropna=False)
    summary = grouped.agg(
        median=("accuracy", "median"),
        iqr=("accuracy", _iqr),
        q25=("accuracy", _quantile(25)),
        q75=("accuracy", _quantile(75)),
        mean=("accuracy", "mean"),
        min=("accuracy", "min"),
        max=("accuracy", "max"),
        cells=("accuracy", "size"),
        seeds=("seed", "nunique"),
        templates=("template", "nunique"),
    )
    return summary.reset_index()


def overall_summary(summary: pd.DataFrame) -> pd.DataFrame:
    """Return the mean of per-task medians for each (method, model, loss variant, initialisation).

    The `tasks` column counts the tasks averaged and `task_list` names them: averages over different task
    sets are not comparable with each other or with the paper's 11-task numbers.
    """
    keys = [column for column in CONDITION_COLUMNS if column != "task"]
    overall = summary.groupby(keys, dropna=False).agg(
        mean_of_medians=("median", "mean"),
        tasks=("task", "nunique"),
        task_list=("task", lambda tasks: ";".join(sorted(tasks))),
    )
    return overall.reset_index()


def per_template(cells: pd.DataFrame) -> pd.DataFrame:
    """Return each template's accuracy per condition: median, minimum and maximum over few-shot seeds.

    `examples` is the largest number of examples scored in one of the template's cells. A run that scores a
    subset (ICL's `--max-examples`) has fewer examples than evaluation rows.
    """
    grouped = cells.groupby(CONDITION_COLUMNS + ["template"], dropna=False)
    table = grouped.agg(median=("accuracy", "median"), min=("accuracy", "min"), max=("accuracy", "max"),
                        seeds=("accuracy", "size"), examples=("examples", "max"))
    return table.reset_index()


def read_eval_render_counts(paths: list[Path]) -> pd.DataFrame:
    """Return the evaluation split's rows rendered and skipped per (task, template) from render count files."""
    from tfew.prepare import read_render_counts

    records = [row for path in paths for row in read_render_counts(path) if row["split"] == "eval"]
    columns = ["task", "template", "eval_rows", "eval_skipped"]
    if not records:
        return pd.DataFrame(columns=columns)
    counts = pd.DataFrame.from_records(records).rename(columns={"rendered": "eval_rows", "skipped": "eval_skipped"})
    counts = counts[columns].drop_duplicates()

    # render_stats.json and render_counts.csv of one task hold the same counts; two different preparations do not.
    conflicting = counts[counts.duplicated(["task", "template"], keep=False)]
    if not conflicting.empty:
        pairs = ", ".join(sorted({f"{row.task}/{row.template}" for row in conflicting.itertuples()}))
        raise TfewError(
            f"different render counts for {pairs} in {', '.join(str(path) for path in paths)}; pass one "
            "render_stats.json per task, from the preparation the predictions were made on"
        )
    return counts


def attach_render_counts(table: pd.DataFrame, counts: pd.DataFrame, sources: list[Path]) -> pd.DataFrame:
    """Add `eval_rows` and `eval_skipped` to a per-template table, joined on (task, template).

    Raises TfewError when a template of the table has no counts, so that no template's count is lost.
    """
    joined = table.merge(counts, on=["task", "template"], how="left", validate="many_to_one")
    missing = joined[joined["eval_rows"].isna()][["task", "template"]].drop_duplicates()
    if not missing.empty:
        pairs = ", ".join(f"{row.task}/{row.template}" for row in missing.itertuples())
        raise TfewError(
            f"no evaluation render counts for {pairs} in {', '.join(str(path) for path in sources)}; pass the "
            "render_stats.json of every task in the predictions, written by `tfew data prepare`"
        )
    return joined.astype({"eval_rows": int, "eval_skipped": int})


def per_seed(cells: pd.DataFrame) -> pd.DataFrame:
    """Return each few-shot seed's accuracy per condition: median and IQR over templates."""
    grouped = cells.groupby(CONDITION_COLUMNS + ["seed"], dropna=False)["accuracy"]
    table = grouped.agg(median="median", iqr=_iqr, min="min", max="max", templates="size")
    return table.reset_index()


def order_cells(predictions: pd.DataFrame) -> pd.DataFrame:
    """Return accuracy per (condition, seed, template, order) for conditions run with several orders."""
    orders_per_condition = predictions.groupby(CONDITION_COLUMNS, dropna=False)["order"].transform("nunique")
    permuted = predictions[orders_per_condition > 1]
    grouped = permuted.groupby(CELL_COLUMNS + ["order"], dropna=False)["correct"]
    return grouped.agg(accuracy="mean", examples="size").reset_index()


def order_sensitivity(orders: pd.DataFrame) -> pd.DataFrame:
    """Summarise how much accuracy moves when only the demonstration order changes.

    Per (seed, template) cell, the range (max minus min) and the standard deviation of accuracy over orders.
    Per condition, the median and maximum of those ranges and the mean standard deviation over cells.
    """
    columns = CONDITION_COLUMNS + ["orders", "cells", "median_range", "max_range", "mean_std"]
    if orders.empty:
        return pd.DataFrame(columns=columns)

    per_cell = orders.groupby(CELL_COLUMNS, dropna=False)["accuracy"].agg(
        range=lambda values: float(values.max() - values.min()),
        std=lambda values: float(values.std(ddof=0)),
        orders="size",
    )
    per_cell = per_cell.reset_index()
    summary = per_cell.groupby(CONDITION_COLUMNS, dropna=False).agg(
        orders=("orders", "max"),
        cells=("range", "size"),
        median_range=("range", "median"),
        max_range=("range", "max"),
        mean_std=("std", "mean"),
    )
    return summary.reset_index()[columns]


def provenance_summary(predictions: pd.DataFrame) -> pd.DataFrame:
    """Return each distinct provenance record per (method, model) with its row count."""
    keys = ["method", "model_name"] + [column for column in PROVENANCE_COLUMNS if column in predictions.columns]
    table = predictions.groupby(keys, dropna=False).size().rename("rows").reset_index()
    repeated = table.duplicated(["method", "model_name"], keep=False)
    if repeated.any():
        log.warning(
            "predictions of one (method, model) come from several runs (different config hash or commit):\n%s",
            table[repeated].to_string(index=False),
        )
    return table


def summarise(predictions: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Compute every aggregate table from validated predictions (see `TABLE_NAMES`)."""
    tables = {"cells": cell_accuracy(predictions)}
    tables["per_task"] = task_summary(tables["cells"])
    tables["overall"] = overall_summary(tables["per_task"])
    tables["per_template"] = per_template(tables["cells"])
    tables["per_seed"] = per_seed(tables["cells"])
    tables["order_cells"] = order_cells(predictions)
    tables["order_sensitivity"] = order_sensitivity(tables["order_cells"])
    tables["provenance"] = provenance_summary(predictions)
    return tables


def write_tables(tables: dict[str, pd.DataFrame], out_dir: Path) -> None:
    """Write each table as `<name>.csv` atomically, so a killed job leaves no partial table."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        partial = out_dir / f"{name}.csv.partial"
        table.to_csv(partial, index=False)
        partial.replace(out_dir / f"{name}.csv")


def read_csv_tables(directory: Path, names: tuple[str, ...], command: str) -> dict[str, pd.DataFrame]:
    """Read `<name>.csv` for each name; a missing file raises TfewError naming it and the `command` that writes it.

    Only empty fields become NaN, so labels such as "none" stay strings.
    """
    tables = {}
    for name in names:
        path = Path(directory) / f"{name}.csv"
        if not path.is_file():
            raise TfewError(f"table not found: {path}; run `{command}` first")
        tables[name] = pd.read_csv(path, keep_default_na=False, na_values=[""])
    return tables


def read_tables(aggregate_dir: Path) -> dict[str, pd.DataFrame]:
    """Read the tables that `aggregate` wrote (see `TABLE_NAMES`)."""
    return read_csv_tables(aggregate_dir, TABLE_NAMES, "tfew aggregate")


def aggregate(paths: list[Path], out_dir: Path, render_counts: list[Path] | None = None) -> dict[str, pd.DataFrame]:
    """Write every aggregate table (see `TABLE_NAMES`) to `out_dir` as CSV and return them.

    `render_counts` (render_stats.json or render_counts.csv files) adds each template's evaluation rows and
    skipped rows to the per-template table.
    """
    predictions = read_predictions(paths)
    tables = summarise(predictions)
    if render_counts:
        counts = read_eval_render_counts(render_counts)
        tables["per_template"] = attach_render_counts(tables["per_template"], counts, render_counts)
        skipped = counts[counts["eval_skipped"] > 0]
        for row in skipped.itertuples():
            log.info("%s: template %r skipped %d of %d evaluation rows", row.task, row.template, row.eval_skipped,
                     row.eval_rows + row.eval_skipped)
    write_tables(tables, Path(out_dir))
    conditions = tables["per_task"][CONDITION_COLUMNS].drop_duplicates()
    log.info(
        "aggregated %d prediction rows from %d files: %d conditions, %d cells, into %s",
        len(predictions), len(paths), len(conditions), len(tables["cells"]), out_dir,
    )
    return tables
