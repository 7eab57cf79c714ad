"""Significance tests between methods, per task, over matched (seed, template) cells and over examples.

Liu et al. 2022 report only medians and interquartile ranges. This module adds, for each pair of conditions
and each task:
- Wilcoxon signed-rank test over matched cells (`scipy.stats.wilcoxon`);
- paired permutation test of the mean cell difference (`scipy.stats.permutation_test`, sign flips);
- paired bootstrap confidence interval for the accuracy difference, resampling examples
  (`scipy.stats.bootstrap`);
- McNemar's exact test inside each matched cell (`statsmodels`), Holm-corrected across the task's cells;
- Holm's correction of the Wilcoxon and permutation p-values across the tasks of one comparison
  (`statsmodels.stats.multitest.multipletests`).

Matching. Two conditions match on (seed, template): a cell of one is paired with the cell of the other that
has the same few-shot seed and the same template. Zero-shot rows have no seed (seed -1): a zero-shot cell is
paired with the other condition's cell of the same template for each of its seeds, so the zero-shot accuracy
of a template appears once per seed. Those pairs share their zero-shot half, so the cell-level tests count
more independent pairs than there are. The bootstrap resamples examples and is not affected. Within a matched
cell, examples pair by `example_index`. When one side scored only some examples of a task (ICL's
`--max-examples`), every test of that task uses the examples both sides scored, cell accuracies included.

Differences are always treatment minus baseline, as fractions of 1.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

# scipy.stats and statsmodels are imported inside the functions that use them: every `tfew` command imports
# this module while it builds its parser, and the two imports cost about 0.7 s of CPU per command.

from tfew.aggregate import NO_SEED, base_order, cell_accuracy, read_csv_tables, read_predictions, write_tables

log = logging.getLogger(__name__)

# The loss variants of Liu et al. 2022, Section 3.2, and the one every other variant is compared against.
LOSS_BASELINE = "lm"
LOSS_VARIANTS = ("lm", "lm+ul", "lm+ln", "lm+ul+ln")

# The T-Few recipe (Liu et al. 2022, Section 3.5): all three losses, from pre-trained (IA)^3 vectors.
# When a run lacks it, the first condition present in this preference order stands for T-Few.
TFEW_PREFERENCE = [(loss, init) for loss in ("lm+ul+ln", "lm+ul", "lm+ln", "lm") for init in ("pretrained", "scratch")]

# Baselines that a full run is expected to contain; an absent one is listed as a skipped comparison.
EXPECTED_BASELINES = ("t0-zero-shot", "icl-concat", "icl-ensemble")

SIGNIFICANCE_TABLES = ("tasks", "overall", "mcnemar_cells", "skipped")


@dataclass(frozen=True)
class SignificanceSettings:
    """Resampling sizes, confidence and the random seed of the significance tests."""

    permutations: int = 9999  # resamples of the permutation test; exact enumeration when 2^cells is not larger
    bootstrap_resamples: int = 2000  # resamples of the paired bootstrap over examples (percentile CI)
    confidence: float = 0.95  # level of the bootstrap confidence interval
    alpha: float = 0.05  # level at which McNemar cells count as significant after Holm's correction
    seed: int = 0  # seed of every random generator, so a rerun gives the same p-values


@dataclass(frozen=True)
class Condition:
    """One method configuration: the rows of a prediction table that belong together across tasks."""

    method: str
    model_name: str
    loss_variant: str
    init: str

    @property
    def label(self) -> str:
        parts = [self.method]
        parts += [value for value in (self.loss_variant, self.init) if value != "none"]
        return f"{' '.join(parts)} [{self.model_name}]"

    def select(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Return the rows of `frame` that belong to this condition."""
        mask = (
            (frame["method"] == self.method)
            & (frame["model_name"] == self.model_name)
            & (frame["loss_variant"] == self.loss_variant)
            & (frame["init"] == self.init)
        )
        return frame[mask]


@dataclass(frozen=True)
class Comparison:
    """A treatment condition tested against a baseline condition; `family` groups the paper's questions."""

    family: str  # "baseline" (T-Few vs zero-shot and ICL), "loss" (variant vs L_LM) or "init" (pre-trained vs scratch)
    treatment: Condition
    baseline: Condition

    @property
    def name(self) -> str:
        return f"{self.treatment.label} vs {self.baseline.label}"


def conditions_in(frame: pd.DataFrame) -> list[Condition]:
    """Return the distinct conditions of a prediction or cell table, sorted."""
    keys = frame[["method", "model_name", "loss_variant", "init"]].drop_duplicates()
    conditions = [Condition(*(str(value) for value in row)) for row in keys.itertuples(index=False)]
    return sorted(conditions, key=lambda condition: condition.label)


def tfew_reference(conditions: list[Condition], model_name: str) -> Condition | None:
    """Return the condition that stands for T-Few on one model: the full recipe when present."""
    present = {(c.loss_variant, c.init): c for c in conditions if c.method == "t-few" and c.model_name == model_name}
    for key in TFEW_PREFERENCE:
        if key in present:
            return present[key]
    return None


def plan_comparisons(conditions: list[Condition]) -> tuple[list[Comparison], list[dict]]:
    """List the comparisons the conditions allow, and the expected ones they do not (with the reason)."""
    comparisons: list[Comparison] = []
    skipped: list[dict] = []
    tfew_models = sorted({c.model_name for c in conditions if c.method == "t-few"})
    baselines = [c for c in conditions if c.method != "t-few"]

    if not tfew_models:
        skipped.append(_skip("baseline", "t-few", "any baseline", "no t-few predictions in this run"))
    for model_name in tfew_models:
        reference = tfew_reference(conditions, model_name)
        comparisons += [Comparison("baseline", reference, baseline) for baseline in baselines]
        for method in EXPECTED_BASELINES:
            if not any(baseline.method == method for baseline in baselines):
                skipped.append(_skip("baseline", reference.label, method, f"no {method} predictions in this run"))
        comparisons += _loss_comparisons(conditions, model_name, skipped)
        comparisons += _init_comparisons(conditions, model_name, skipped)
    return comparisons, skipped


def _loss_comparisons(conditions: list[Condition], model_name: str, skipped: list[dict]) -> list[Comparison]:
    tfew = [c for c in conditions if c.method == "t-few" and c.model_name == model_name]
    comparisons = []
    for init in sorted({c.init for c in tfew}):
        by_loss = {c.loss_variant: c for c in tfew if c.init == init}
        baseline_label = f"t-few {LOSS_BASELINE} {init} [{model_name}]"
        if LOSS_BASELINE not in by_loss:
            trained = ", ".join(variant for variant in LOSS_VARIANTS if variant in by_loss)
            reason = f"no t-few {LOSS_BASELINE} {init} predictions to compare {trained} against"
            skipped.append(_skip("loss", f"t-few {trained} {init} [{model_name}]", baseline_label, reason))
            continue
        missing = [variant for variant in LOSS_VARIANTS[1:] if variant not in by_loss]
        if missing:
            label = f"t-few {', '.join(missing)} {init} [{model_name}]"
            skipped.append(_skip("loss", label, baseline_label, "these loss variants have no predictions"))
        comparisons += [Comparison("loss", by_loss[variant], by_loss[LOSS_BASELINE])
                        for variant in LOSS_VARIANTS[1:] if variant in by_loss]
    return comparisons


def _init_comparisons(conditions: list[Condition], model_name: str, skipped: list[dict]) -> list[Comparison]:
    tfew = [c for c in conditions if c.method == "t-few" and c.model_name == model_name]
    by_key = {(c.loss_variant, c.init): c for c in tfew}
    variants = [variant for variant in LOSS_VARIANTS if any(c.loss_variant == variant for c in tfew)]
    comparisons = []
    for variant in variants:
        if (variant, "pretrained") in by_key and (variant, "scratch") in by_key:
            comparisons.append(Comparison("init", by_key[(variant, "pretrained")], by_key[(variant, "scratch")]))
    for present, absent in (("scratch", "pretrained"), ("pretrained", "scratch")):
        lacking = [variant for variant in variants if (variant, present) in by_key and (variant, absent) not in by_key]
        if lacking:
            label = f"t-few {', '.join(lacking)} pretrained [{model_name}]"
            reason = f"no {absent} predictions for these loss variants"
            skipped.append(_skip("init", label, f"t-few {', '.join(lacking)} scratch", reason))
    return comparisons


def _skip(family: str, treatment: str, baseline: str, reason: str, task: str = "all") -> dict:
    return {"family": family, "treatment": treatment, "baseline": baseline, "task": task, "reason": reason}


def match_cells(treatment_cells: pd.DataFrame, baseline_cells: pd.DataFrame) -> pd.DataFrame:
    """Pair the cells of two conditions on one task by (seed, template).

    A side whose only seed is -1 (zero-shot) is repeated for each seed of the other side. Returns columns
    seed, template, accuracy_treatment, accuracy_baseline; unmatched cells are left out and counted by
    the caller.
    """
    treatment = treatment_cells[["seed", "template", "accuracy"]]
    baseline = baseline_cells[["seed", "template", "accuracy"]]
    treatment, baseline = _expand_unseeded(treatment, baseline)
    return treatment.merge(baseline, on=["seed", "template"], suffixes=("_treatment", "_baseline"))


def _expand_unseeded(treatment: pd.DataFrame, baseline: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Repeat the cells of an unseeded side (zero-shot) once per seed of the seeded side."""
    treatment_unseeded = set(treatment["seed"]) == {NO_SEED}
    baseline_unseeded = set(baseline["seed"]) == {NO_SEED}
    if treatment_unseeded == baseline_unseeded:
        return treatment, baseline
    seeded, unseeded = (baseline, treatment) if treatment_unseeded else (treatment, baseline)
    seeds = pd.DataFrame({"seed": sorted(set(seeded["seed"]))})
    expanded = unseeded.drop(columns="seed").merge(seeds, how="cross")
    return (expanded, baseline) if treatment_unseeded else (treatment, expanded)


def match_examples(treatment_rows: pd.DataFrame, baseline_rows: pd.DataFrame) -> pd.DataFrame:
    """Pair the example rows of two conditions on one task by (seed, template, example_index).

    Returns columns seed, template, example_index, correct_treatment, correct_baseline.
    """
    columns = ["seed", "template", "example_index", "correct"]
    treatment, baseline = _expand_unseeded(treatment_rows[columns], baseline_rows[columns])
    return treatment.merge(
        baseline, on=["seed", "template", "example_index"], suffixes=("_treatment", "_baseline")
    )


def wilcoxon_signed_rank(differences: np.ndarray, settings: SignificanceSettings = SignificanceSettings()) -> dict:
    """Run the two-sided Wilcoxon signed-rank test on paired differences.

    Zero differences are dropped (Wilcoxon's original method). Without ties or zeros and with at most 50
    differences, the p-value comes from the exact null distribution. With ties or zeros and at most 13
    differences, every sign assignment is enumerated, which is exact too. Otherwise the normal approximation
    with tie and continuity corrections is used. The statistic is min(W+, W-).
    """
    from scipy import stats

    # Accuracy differences are ratios of small integers; rounding removes floating-point residue such as
    # 0.15 - 0.1 != 0.1 - 0.05, which would otherwise hide ties and zeros.
    differences = np.round(np.asarray(differences, dtype=float), 12)
    nonzero = differences[differences != 0]
    if nonzero.size == 0:
        return {"statistic": np.nan, "p": np.nan, "method": "not run: all differences are zero"}

    has_ties = np.unique(np.abs(nonzero)).size < nonzero.size
    has_zeros = nonzero.size < differences.size
    if not has_ties and not has_zeros and differences.size <= 50:
        method, name = "exact", "exact"
    elif differences.size <= 13:
        method = stats.PermutationMethod(n_resamples=settings.permutations, rng=settings.seed)
        name = "exact (all sign flips)"
    else:
        method, name = "asymptotic", "normal approximation"
    result = stats.wilcoxon(differences, zero_method="wilcox", correction=True, method=method)
    return {"statistic": float(result.statistic), "p": float(result.pvalue), "method": name}


def paired_permutation_test(treatment: np.ndarray, baseline: np.ndarray,
                            settings: SignificanceSettings = SignificanceSettings()) -> float:
    """Return the two-sided p-value for a zero mean difference, flipping the sign of each pair.

    All 2^n sign assignments are enumerated when 2^n does not exceed `settings.permutations`.
    """
    from scipy import stats

    treatment = np.asarray(treatment, dtype=float)
    baseline = np.asarray(baseline, dtype=float)
    if np.all(treatment == baseline):
        return 1.0
    if treatment.size < 2:
        # One pair has two sign assignments, d and -d, and the observed one is always as extreme as itself.
        return 1.0

    def mean_difference(x, y, axis):
        return np.mean(x - y, axis=axis)

    result = stats.permutation_test(
        (treatment, baseline), mean_difference, permutation_type="samples", alternative="two-sided",
        n_resamples=settings.permutations, vectorized=True, rng=settings.seed,
    )
    return float(result.pvalue)


def paired_bootstrap_ci(examples: pd.DataFrame, settings: SignificanceSettings = SignificanceSettings()) -> dict:
    """Estimate the accuracy difference over matched example rows with a percentile bootstrap CI.

    The resampling unit is the example (`example_index`): all of an example's rows, across seeds and
    templates, are drawn together, because they share the example's difficulty. The estimate is the mean of
    correct_treatment - correct_baseline over all rows. The percentile method is used because BCa needs a
    jackknife whose cost grows with the square of the number of examples.
    """
    from scipy import stats

    difference = examples["correct_treatment"] - examples["correct_baseline"]
    grouped = difference.groupby(examples["example_index"])
    sums = grouped.sum().to_numpy(dtype=float)
    counts = grouped.size().to_numpy(dtype=float)
    estimate = float(sums.sum() / counts.sum()) if counts.size else np.nan
    if counts.size < 2:
        return {"estimate": estimate, "low": np.nan, "high": np.nan, "examples": int(counts.size)}
    if np.allclose(sums / counts, estimate):
        return {"estimate": estimate, "low": estimate, "high": estimate, "examples": int(counts.size)}

    def ratio(example_sums, example_counts, axis):
        return example_sums.sum(axis=axis) / example_counts.sum(axis=axis)

    result = stats.bootstrap(
        (sums, counts), ratio, paired=True, vectorized=True, n_resamples=settings.bootstrap_resamples,
        confidence_level=settings.confidence, method="percentile", rng=settings.seed, batch=250,
    )
    interval = result.confidence_interval
    return {"estimate": estimate, "low": float(interval.low), "high": float(interval.high),
            "examples": int(counts.size)}


def mcnemar_cells(examples: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """Run McNemar's exact test in each matched (seed, template) cell, Holm-corrected across the cells.

    `treatment_only` counts examples the treatment gets right and the baseline wrong; `baseline_only` the
    reverse. The exact test is a binomial test on those two counts.
    """
    from statsmodels.stats.contingency_tables import mcnemar

    rows = []
    for (seed, template), cell in examples.groupby(["seed", "template"], sort=True):
        treatment = cell["correct_treatment"].to_numpy(dtype=bool)
        baseline = cell["correct_baseline"].to_numpy(dtype=bool)
        table = [[int(np.sum(treatment & baseline)), int(np.sum(treatment & ~baseline))],
                 [int(np.sum(~treatment & baseline)), int(np.sum(~treatment & ~baseline))]]
        result = mcnemar(table, exact=True)
        rows.append({"seed": seed, "template": template, "examples": len(cell),
                     "treatment_only": table[0][1], "baseline_only": table[1][0],
                     "statistic": float(result.statistic), "p": float(result.pvalue)})
    cells = pd.DataFrame(rows, columns=["seed", "template", "examples", "treatment_only", "baseline_only",
                                        "statistic", "p"])
    cells["p_holm"] = holm(cells["p"].to_numpy())
    cells["significant"] = cells["p_holm"] < alpha
    return cells


def holm(p_values: np.ndarray) -> np.ndarray:
    """Return Holm-adjusted p-values; NaN entries stay NaN and are left out of the family."""
    from statsmodels.stats.multitest import multipletests

    p_values = np.asarray(p_values, dtype=float)
    adjusted = np.full(p_values.shape, np.nan)
    finite = np.isfinite(p_values)
    if finite.any():
        adjusted[finite] = multipletests(p_values[finite], method="holm")[1]
    return adjusted


def compare_task(treatment_cells: pd.DataFrame, baseline_cells: pd.DataFrame, treatment_rows: pd.DataFrame,
                 baseline_rows: pd.DataFrame, settings: SignificanceSettings = SignificanceSettings()) -> tuple[dict, pd.DataFrame]:
    """Run every test for one comparison on one task; return the summary row and the McNemar cells."""
    cells = match_cells(treatment_cells, baseline_cells)
    differences = (cells["accuracy_treatment"] - cells["accuracy_baseline"]).to_numpy()
    wilcoxon = wilcoxon_signed_rank(differences, settings)
    permutation_p = paired_permutation_test(
        cells["accuracy_treatment"].to_numpy(), cells["accuracy_baseline"].to_numpy(), settings
    )
    examples = match_examples(treatment_rows, baseline_rows)
    bootstrap = paired_bootstrap_ci(examples, settings)
    per_cell = mcnemar_cells(examples, settings.alpha)

    significant = per_cell[per_cell["significant"]]
    row = {
        "cells": len(cells),
        "seeds": cells["seed"].nunique(),
        "templates": cells["template"].nunique(),
        "unmatched_treatment_cells": len(treatment_cells) - _matched_count(treatment_cells, cells),
        "unmatched_baseline_cells": len(baseline_cells) - _matched_count(baseline_cells, cells),
        "median_treatment": float(np.median(cells["accuracy_treatment"])),
        "median_baseline": float(np.median(cells["accuracy_baseline"])),
        "mean_difference": round(float(np.mean(differences)), 12),
        "wilcoxon_statistic": wilcoxon["statistic"],
        "wilcoxon_p": wilcoxon["p"],
        "wilcoxon_method": wilcoxon["method"],
        "permutation_p": permutation_p,
        "bootstrap_difference": bootstrap["estimate"],
        "bootstrap_low": bootstrap["low"],
        "bootstrap_high": bootstrap["high"],
        "examples": bootstrap["examples"],
        "mcnemar_cells_treatment_better": int((significant["treatment_only"] > significant["baseline_only"]).sum()),
        "mcnemar_cells_baseline_better": int((significant["baseline_only"] > significant["treatment_only"]).sum()),
    }
    return row, per_cell


def _matched_count(side_cells: pd.DataFrame, matched: pd.DataFrame) -> int:
    """Count the cells of one side that found a partner (an unseeded side matches by template only)."""
    keys = ["template"] if set(side_cells["seed"]) == {NO_SEED} else ["seed", "template"]
    return len(side_cells[keys].drop_duplicates().merge(matched[keys].drop_duplicates(), on=keys))


def run_comparison(comparison: Comparison, cells: pd.DataFrame, predictions: pd.DataFrame,
                   settings: SignificanceSettings) -> tuple[list[dict], list[pd.DataFrame], list[dict]]:
    """Test one comparison on every task both conditions cover; Holm-correct across those tasks."""
    rows, mcnemar_frames, skipped = [], [], []
    treatment_cells = comparison.treatment.select(cells)
    baseline_cells = comparison.baseline.select(cells)
    treatment_rows = comparison.treatment.select(predictions)
    baseline_rows = comparison.baseline.select(predictions)
    tasks = sorted(set(treatment_cells["task"]) | set(baseline_cells["task"]))
    for task in tasks:
        task_treatment = treatment_cells[treatment_cells["task"] == task]
        task_baseline = baseline_cells[baseline_cells["task"] == task]
        if match_cells(task_treatment, task_baseline).empty:
            reason = _unmatched_reason(task_treatment, task_baseline, comparison)
            skipped.append(_skip(comparison.family, comparison.treatment.label, comparison.baseline.label, reason, task))
            continue
        task_treatment_rows, task_baseline_rows = shared_examples(
            treatment_rows[treatment_rows["task"] == task], baseline_rows[baseline_rows["task"] == task],
            f"{comparison.name} on {task}",
        )
        if task_treatment_rows.empty:
            skipped.append(_skip(comparison.family, comparison.treatment.label, comparison.baseline.label,
                                 "the two conditions scored no example in common", task))
            continue
        row, per_cell = compare_task(
            cell_accuracy(task_treatment_rows), cell_accuracy(task_baseline_rows), task_treatment_rows,
            task_baseline_rows, settings,
        )
        identity = {"comparison": comparison.name, "family": comparison.family,
                    "treatment": comparison.treatment.label, "baseline": comparison.baseline.label, "task": task}
        rows.append({**identity, **row})
        mcnemar_frames.append(per_cell.assign(**identity))

    for column in ("wilcoxon_p", "permutation_p"):
        adjusted = holm(np.array([row[column] for row in rows], dtype=float))
        for row, value in zip(rows, adjusted):
            row[f"{column}_holm"] = value
    return rows, mcnemar_frames, skipped


def shared_examples(treatment_rows: pd.DataFrame, baseline_rows: pd.DataFrame,
                    name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Keep the rows of the examples that both sides scored, so that every cell accuracy covers the same examples.

    A side that scored a subset (ICL's `--max-examples`) would otherwise be compared, cell by cell, with
    accuracies over other examples.
    """
    shared = set(treatment_rows["example_index"]) & set(baseline_rows["example_index"])
    scored = set(treatment_rows["example_index"]) | set(baseline_rows["example_index"])
    if len(shared) < len(scored):
        log.warning("%s: testing the %d examples both sides scored (of %d scored by either)", name, len(shared),
                    len(scored))
    return (treatment_rows[treatment_rows["example_index"].isin(shared)],
            baseline_rows[baseline_rows["example_index"].isin(shared)])


def _unmatched_reason(treatment: pd.DataFrame, baseline: pd.DataFrame, comparison: Comparison) -> str:
    if treatment.empty:
        return f"no {comparison.treatment.label} predictions for this task"
    if baseline.empty:
        return f"no {comparison.baseline.label} predictions for this task"
    return "no (seed, template) cell in common"


def overall_test(task_rows: pd.DataFrame, settings: SignificanceSettings = SignificanceSettings()) -> pd.DataFrame:
    """Test each comparison across tasks: Wilcoxon signed-rank on the per-task differences of medians.

    Each task counts once, the way the paper's average counts each task once. The treatment and baseline
    averages are means of the per-task medians over the tasks both conditions cover.
    """
    columns = ["comparison", "family", "treatment", "baseline", "tasks", "mean_median_treatment",
               "mean_median_baseline", "mean_difference", "wilcoxon_statistic", "wilcoxon_p", "wilcoxon_method"]
    rows = []
    for name, group in task_rows.groupby("comparison", sort=False):
        differences = (group["median_treatment"] - group["median_baseline"]).to_numpy()
        wilcoxon = wilcoxon_signed_rank(differences, settings)
        rows.append({
            "comparison": name, "family": group["family"].iloc[0], "treatment": group["treatment"].iloc[0],
            "baseline": group["baseline"].iloc[0], "tasks": len(group),
            "mean_median_treatment": float(group["median_treatment"].mean()),
            "mean_median_baseline": float(group["median_baseline"].mean()),
            "mean_difference": round(float(np.mean(differences)), 12),
            "wilcoxon_statistic": wilcoxon["statistic"], "wilcoxon_p": wilcoxon["p"],
            "wilcoxon_method": wilcoxon["method"],
        })
    return pd.DataFrame(rows, columns=columns)


TASK_COLUMNS = [
    "comparison", "family", "treatment", "baseline", "task", "cells", "seeds", "templates",
    "unmatched_treatment_cells", "unmatched_baseline_cells", "median_treatment", "median_baseline",
    "mean_difference", "wilcoxon_statistic", "wilcoxon_p", "wilcoxon_p_holm", "wilcoxon_method",
    "permutation_p", "permutation_p_holm", "bootstrap_difference", "bootstrap_low", "bootstrap_high",
    "examples", "mcnemar_cells_treatment_better", "mcnemar_cells_baseline_better",
]
MCNEMAR_COLUMNS = ["comparison", "family", "treatment", "baseline", "task", "seed", "template", "examples",
                   "treatment_only", "baseline_only", "statistic", "p", "p_holm", "significant"]
SKIPPED_COLUMNS = ["family", "treatment", "baseline", "task", "reason"]


def significance(predictions: pd.DataFrame, settings: SignificanceSettings = SignificanceSettings()) -> dict[str, pd.DataFrame]:
    """Run every planned comparison on validated predictions (base demonstration order only).

    Returns the tables `tasks` (one row per comparison and task), `overall` (one row per comparison),
    `mcnemar_cells` (one row per matched cell) and `skipped` (comparisons or tasks that could not be made,
    with the reason).
    """
    predictions = base_order(predictions)
    cells = cell_accuracy(predictions)
    comparisons, skipped = plan_comparisons(conditions_in(cells))
    task_rows, mcnemar_frames = [], []
    for comparison in tqdm(comparisons, desc="significance", disable=None):
        log.info("testing %s", comparison.name)
        rows, frames, not_run = run_comparison(comparison, cells, predictions, settings)
        task_rows += rows
        mcnemar_frames += frames
        skipped += not_run

    tasks = pd.DataFrame(task_rows, columns=TASK_COLUMNS)
    per_cell = pd.concat(mcnemar_frames, ignore_index=True) if mcnemar_frames else pd.DataFrame()
    tables = {
        "tasks": tasks,
        "overall": overall_test(tasks, settings),
        "mcnemar_cells": per_cell.reindex(columns=MCNEMAR_COLUMNS),
        "skipped": pd.DataFrame(skipped, columns=SKIPPED_COLUMNS),
    }
    for row in skipped:
        log.warning("comparison not made: %s vs %s on %s: %s", row["treatment"], row["baseline"], row["task"],
                    row["reason"])
    return tables


def run_significance(paths: list[Path], out_dir: Path, settings: SignificanceSettings = SignificanceSettings()) -> dict[str, pd.DataFrame]:
    """Read prediction files, run `significance` and write its tables as CSV files into `out_dir`."""
    tables = significance(read_predictions(paths), settings)
    write_tables(tables, Path(out_dir))
    log.info("wrote %d comparison x task rows and %d skipped entries to %s", len(tables["tasks"]),
             len(tables["skipped"]), out_dir)
    return tables


def read_significance(directory: Path) -> dict[str, pd.DataFrame]:
    """Read the tables that `run_significance` wrote (see `SIGNIFICANCE_TABLES`)."""
    return read_csv_tables(directory, SIGNIFICANCE_TABLES, "tfew significance")
