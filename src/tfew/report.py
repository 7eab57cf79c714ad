"""Build the paper's tables from a run's aggregates, beside the published numbers, and write them.

Every table is written three ways into `paper_figures/<run>/`: CSV (numbers for further work), Markdown (for
reading) and LaTeX (for a paper). Accuracies are in percent, as in Liu et al. 2022. Published numbers come
from `analysis/reference/`, whose README names the source table of every row.

A replicated condition sits beside the published row that measures the same thing. T-Few, zero-shot T0 and
ensemble ICL go beside Tables 1 and 9, because T5+LM is the paper's ensemble-ICL model. The loss variants go
beside the (IA)^3 rows of Tables 4 to 7, initialisation beside Table 8, and both beside the T-Few ablation of
Table 10. Concatenation ICL has no published counterpart, because the paper's concatenation numbers are
GPT-3's.

    tfew report --aggregate results/demo/aggregate --significance results/demo/significance \
        --out paper_figures/demo [--costs results/demo/costs/table1.csv]
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from tfew.aggregate import overall_summary, read_tables
from tfew.errors import TfewError
from tfew.stats import LOSS_VARIANTS, Condition, read_significance, tfew_reference

log = logging.getLogger(__name__)

# Tables and figures each notebook writes; the workflow's report rules declare exactly these outputs.
REPORT_TABLES = ("table1", "per_task", "loss_ablation", "pretraining", "tfew_ablation", "per_template",
                 "per_seed", "icl_order_sensitivity")
REPORT_FIGURES = ("fig_accuracy_vs_flops", "fig_loss_ablation", "fig_per_task_spread", "fig_icl_order_sensitivity")
SIGNIFICANCE_REPORT_TABLES = ("significance", "significance_overall", "significance_skipped")
TABLE_FORMATS = ("csv", "md", "tex")
FIGURE_FORMATS = ("pdf", "png")

# Published reference files and the columns each must carry.
REFERENCE_FILES = {
    "table1": ["table", "model", "method", "inference_flops_per_example", "training_flops", "disk_bytes", "accuracy_pct"],
    "per_task": ["table", "model", "method", "task", "median_pct", "iqr_pct"],
    "loss_ablation": ["table", "model", "method", "loss_variant", "init", "task", "median_pct", "iqr_pct"],
    "pretraining": ["table", "model", "method", "loss_variant", "init", "task", "median_pct", "iqr_pct"],
    "tfew_ablation": ["table", "model", "method", "loss_variant", "init", "task", "median_pct", "iqr_pct"],
    "averages": ["table", "model", "method", "loss_variant", "init", "average_pct"],
}
COSTS_COLUMNS = ["method", "inference_flops_per_example", "training_flops", "disk_bytes"]

# The Table 1 and Table 9 row that each replicated method is compared with.
PAPER_METHOD = {"t-few": "t-few", "t0-zero-shot": "t0-zero-shot", "icl-ensemble": "t5+lm-icl"}

# Task order of the paper's per-task tables (Liu et al. 2022, Table 9).
PAPER_TASK_ORDER = ("copa", "hellaswag", "story_cloze", "winogrande", "wsc", "wic", "rte", "cb", "anli_r1",
                    "anli_r2", "anli_r3")
AVERAGE_ROW = "average"


def default_reference_dir() -> Path:
    """Return `analysis/reference` of the source checkout this package runs from, else of the working directory."""
    checkout = Path(__file__).resolve().parents[2] / "analysis" / "reference"
    return checkout if checkout.is_dir() else Path("analysis") / "reference"


def load_reference(reference_dir: Path | None = None) -> dict[str, pd.DataFrame]:
    """Read the published numbers; a missing file or column raises TfewError naming it."""
    reference_dir = Path(reference_dir) if reference_dir else default_reference_dir()
    tables = {}
    for name, columns in REFERENCE_FILES.items():
        path = reference_dir / f"{name}.csv"
        if not path.is_file():
            raise TfewError(f"published reference table not found: {path}; pass the repository's analysis/reference")
        frame = pd.read_csv(path)
        missing = [column for column in columns if column not in frame.columns]
        if missing:
            raise TfewError(f"{path}: missing columns {missing}")
        tables[name] = frame
    return tables


def read_costs(path: Path | str | None) -> pd.DataFrame | None:
    """Read the cost table of `tfew costs`; return None when no path is given or the file does not exist."""
    if not path or not Path(path).is_file():
        log.info("no cost table at %r: FLOPs and disk columns stay empty", str(path or ""))
        return None
    costs = pd.read_csv(path)
    missing = [column for column in COSTS_COLUMNS if column not in costs.columns]
    if missing:
        raise TfewError(f"{path}: missing cost columns {missing}; write it with `tfew costs --preset paper-table1`")
    return costs[COSTS_COLUMNS]


def condition_of(row) -> Condition:
    """Return the Condition of an aggregate-table row."""
    return Condition(str(row["method"]), str(row["model_name"]), str(row["loss_variant"]), str(row["init"]))


def with_labels(frame: pd.DataFrame) -> pd.DataFrame:
    """Add a `condition` column with each row's readable label."""
    labels = [condition_of(row).label for _, row in frame.iterrows()]
    return frame.assign(condition=pd.Series(labels, index=frame.index, dtype=object))


def _percent(frame: pd.DataFrame, columns: dict[str, str]) -> pd.DataFrame:
    """Return `frame` with the fraction columns in `columns` scaled to percent under their new names."""
    frame = frame.copy()
    for source, target in columns.items():
        frame[target] = 100 * frame[source].astype(float)
    return frame


def _task_sort_key(tasks: pd.Series) -> pd.Series:
    order = {task: index for index, task in enumerate(PAPER_TASK_ORDER + (AVERAGE_ROW,))}
    return tasks.map(lambda task: order.get(task, len(order)))


def run_tasks(per_task: pd.DataFrame) -> list[str]:
    """Return the tasks that any condition of the run covers, in the paper's order."""
    tasks = pd.Series(sorted(set(per_task["task"])), dtype=object)
    return list(tasks.iloc[np.argsort(_task_sort_key(tasks).to_numpy(), kind="stable")])


def _tfew_reference_conditions(overall: pd.DataFrame) -> set[Condition]:
    conditions = [condition_of(row) for _, row in overall.iterrows()]
    models = {condition.model_name for condition in conditions if condition.method == "t-few"}
    return {tfew_reference(conditions, model) for model in models}


def _paper_method_of(condition: Condition, tfew_references: set[Condition]) -> str | None:
    if condition.method == "t-few" and condition not in tfew_references:
        return None
    return PAPER_METHOD.get(condition.method)


def table1(per_task: pd.DataFrame, reference: dict[str, pd.DataFrame], costs: pd.DataFrame | None = None) -> pd.DataFrame:
    """Build Table 1: accuracy, inference FLOPs, training FLOPs and disk per method, beside the paper's.

    `accuracy_pct` is the mean of per-task medians over the run's tasks. `published_same_tasks_pct` is the
    mean of the paper's Table 9 medians over those same tasks, which is the fair comparison when a run
    covers fewer than 11 tasks. Cost columns come from the `tfew costs` table and stay empty without one.
    """
    overall = overall_summary(per_task)
    references = _tfew_reference_conditions(overall)
    published_tasks = reference["per_task"]
    rows = []
    for _, row in overall.iterrows():
        condition = condition_of(row)
        if condition.method == "t-few" and condition not in references:
            continue
        paper_method = _paper_method_of(condition, references)
        tasks = row["task_list"].split(";")
        same = published_tasks[(published_tasks["method"] == paper_method) & published_tasks["task"].isin(tasks)]
        rows.append({
            "method": paper_method or condition.method, "condition": condition.label, "tasks": int(row["tasks"]),
            "accuracy_pct": 100 * row["mean_of_medians"],
            "published_same_tasks_pct": same["median_pct"].mean() if len(same) == len(tasks) else np.nan,
        })
    replicated = pd.DataFrame(rows, columns=["method", "condition", "tasks", "accuracy_pct", "published_same_tasks_pct"])

    published = reference["table1"].rename(columns={
        "accuracy_pct": "published_accuracy_pct", "model": "published_model",
        "inference_flops_per_example": "published_inference_flops_per_example",
        "training_flops": "published_training_flops", "disk_bytes": "published_disk_bytes",
    }).drop(columns="table")
    table = published.merge(replicated, on="method", how="outer", sort=False)
    if costs is not None:
        table = table.merge(costs, on="method", how="left")
    else:
        table = table.assign(inference_flops_per_example=np.nan, training_flops=np.nan, disk_bytes=np.nan)

    order = {method: index for index, method in enumerate(reference["table1"]["method"])}
    table = table.iloc[np.argsort(table["method"].map(lambda m: order.get(m, len(order))).to_numpy(), kind="stable")]
    columns = ["method", "condition", "tasks", "accuracy_pct", "published_accuracy_pct", "published_same_tasks_pct",
               "inference_flops_per_example", "published_inference_flops_per_example", "training_flops",
               "published_training_flops", "disk_bytes", "published_disk_bytes", "published_model"]
    return table[columns].reset_index(drop=True)


def per_task_table(per_task: pd.DataFrame, reference: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Build the per-task table: median (IQR) of each condition beside the paper's Table 9 row.

    Published methods the run lacks (the GPT-3 sizes, for example) appear as rows with empty replicated
    columns, for the run's tasks only.
    """
    references = _tfew_reference_conditions(overall_summary(per_task))
    replicated = with_labels(_percent(per_task, {"median": "median_pct", "iqr": "iqr_pct"}))
    replicated["paper_method"] = [
        _paper_method_of(condition_of(row), references) for _, row in replicated.iterrows()
    ]
    published = reference["per_task"][reference["per_task"]["task"].isin(run_tasks(per_task))]
    published = published.rename(columns={
        "method": "paper_method", "median_pct": "published_median_pct", "iqr_pct": "published_iqr_pct",
        "model": "published_model", "table": "published_table",
    })
    table = replicated.merge(published, on=["paper_method", "task"], how="outer")
    not_run = table["condition"].isna().to_numpy()
    table["condition"] = table["condition"].fillna("(not run)")
    table = table.iloc[np.lexsort((table["condition"].to_numpy(dtype=str), not_run,
                                   _task_sort_key(table["task"]).to_numpy()))]
    columns = ["task", "condition", "median_pct", "iqr_pct", "cells", "paper_method", "published_median_pct",
               "published_iqr_pct", "published_model", "published_table"]
    return table[columns].reset_index(drop=True)


def ablation_table(per_task: pd.DataFrame, published: pd.DataFrame, keep=None) -> pd.DataFrame:
    """Build an ablation table: T-Few conditions per task and on average, beside published rows.

    `published` contains rows keyed by (loss_variant, init, task) from one source table, and
    `keep(condition)` selects the replicated T-Few conditions to include. A published (loss variant, init)
    that the run lacks appears with empty replicated columns. The average row of each condition is the mean
    of its medians over the tasks it covers, and the published average beside it covers the same tasks.
    """
    tfew = with_labels(per_task[per_task["method"] == "t-few"])
    if keep is not None:
        kept = [keep(condition_of(row)) for _, row in tfew.iterrows()]
        tfew = tfew[pd.Series(kept, index=tfew.index, dtype=bool)]
    tfew = _percent(tfew, {"median": "median_pct", "iqr": "iqr_pct"})
    keys = ["loss_variant", "init", "task"]
    reference = published[published["task"].isin(run_tasks(per_task))].rename(columns={
        "median_pct": "published_median_pct", "iqr_pct": "published_iqr_pct", "table": "published_table",
        "model": "published_model",
    }).drop(columns="method")
    table = tfew.merge(reference, on=keys, how="outer")
    table["condition"] = table["condition"].fillna("(not run)")
    table = pd.concat([table, _ablation_averages(table)], ignore_index=True)
    order = np.lexsort((
        _task_sort_key(table["task"]).to_numpy(), table["condition"].to_numpy(dtype=str),
        table["init"].to_numpy(dtype=str), table["loss_variant"].map(_loss_rank).to_numpy(),
    ))
    columns = ["loss_variant", "init", "condition", "task", "median_pct", "iqr_pct", "cells", "published_median_pct",
               "published_iqr_pct", "published_model", "published_table"]
    return table.iloc[order][columns].reset_index(drop=True)


def _loss_rank(variant: str) -> int:
    return LOSS_VARIANTS.index(variant) if variant in LOSS_VARIANTS else len(LOSS_VARIANTS)


def _ablation_averages(table: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (variant, init, condition), group in table.groupby(["loss_variant", "init", "condition"], dropna=False):
        replicated = group.dropna(subset=["median_pct"])
        covered = replicated if len(replicated) else group
        published = covered["published_median_pct"]
        rows.append({
            "loss_variant": variant, "init": init, "condition": condition, "task": AVERAGE_ROW,
            "median_pct": replicated["median_pct"].mean() if len(replicated) else np.nan,
            "published_median_pct": published.mean() if published.notna().all() else np.nan,
            "published_model": group["published_model"].dropna().iloc[0] if group["published_model"].notna().any() else np.nan,
            "published_table": group["published_table"].dropna().iloc[0] if group["published_table"].notna().any() else np.nan,
        })
    return pd.DataFrame(rows)


def loss_ablation_table(per_task: pd.DataFrame, reference: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Build the loss ablation: every T-Few loss variant beside the (IA)^3 rows of Tables 4 to 7 (T0-3B)."""
    return ablation_table(per_task, ia3_loss_rows(reference))


def ia3_loss_rows(reference: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Return the published (IA)^3 rows of Tables 4 to 7: T0-3B from scratch, one per loss variant and task."""
    published = reference["loss_ablation"]
    return published[(published["method"] == "ia3") & published["table"].isin(["Table 4", "Table 5", "Table 6", "Table 7"])]


def pretraining_table(per_task: pd.DataFrame, reference: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Build the pre-training comparison: scratch and pre-trained (IA)^3 beside Table 8 (T0-3B, all losses).

    Shown are the loss variants of Table 8 and any variant the run trained from pre-trained vectors.
    """
    published = reference["pretraining"]
    pretrained_variants = set(per_task.loc[(per_task["method"] == "t-few") & (per_task["init"] == "pretrained"), "loss_variant"])
    variants = pretrained_variants | set(published["loss_variant"])
    return ablation_table(per_task, published, keep=lambda condition: condition.loss_variant in variants)


def tfew_ablation_table(per_task: pd.DataFrame, reference: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Build the T-Few ablation: with and without pre-training and L_UL + L_LN, beside Table 10 (T0-11B)."""
    published = reference["tfew_ablation"]
    keys = set(zip(published["loss_variant"], published["init"]))
    return ablation_table(per_task, published, keep=lambda condition: (condition.loss_variant, condition.init) in keys)


def per_template_table(per_template: pd.DataFrame) -> pd.DataFrame:
    """Format per-template accuracy (median, min and max over seeds) in percent.

    `examples` is the most examples scored in one cell. When the aggregation had render counts, `eval_rows` and
    `eval_skipped` give how many evaluation rows each template rendered and how many it could not render.
    """
    table = with_labels(_percent(per_template, {"median": "median_pct", "min": "min_pct", "max": "max_pct"}))
    table = table.iloc[np.lexsort((table["template"].to_numpy(dtype=str), table["condition"].to_numpy(dtype=str),
                                   _task_sort_key(table["task"]).to_numpy()))]
    columns = ["task", "condition", "template", "median_pct", "min_pct", "max_pct", "seeds"]
    columns += [column for column in ("examples", "eval_rows", "eval_skipped") if column in table.columns]
    return table[columns].reset_index(drop=True)


def per_seed_table(per_seed: pd.DataFrame) -> pd.DataFrame:
    """Format per-seed accuracy (median and IQR over templates) in percent; zero-shot rows have seed -1."""
    table = with_labels(_percent(per_seed, {"median": "median_pct", "iqr": "iqr_pct", "min": "min_pct", "max": "max_pct"}))
    table = table.iloc[np.lexsort((table["seed"].to_numpy(), table["condition"].to_numpy(dtype=str),
                                   _task_sort_key(table["task"]).to_numpy()))]
    return table[["task", "condition", "seed", "median_pct", "iqr_pct", "min_pct", "max_pct", "templates"]].reset_index(drop=True)


def order_sensitivity_table(order_sensitivity: pd.DataFrame) -> pd.DataFrame:
    """Format the ICL order sensitivity (accuracy range over demonstration orders per cell) in percent."""
    columns = ["task", "condition", "orders", "cells", "median_range_pct", "max_range_pct", "mean_std_pct"]
    if order_sensitivity.empty:
        return pd.DataFrame(columns=columns)
    table = with_labels(_percent(order_sensitivity, {
        "median_range": "median_range_pct", "max_range": "max_range_pct", "mean_std": "mean_std_pct",
    }))
    table = table.iloc[np.lexsort((table["condition"].to_numpy(dtype=str), _task_sort_key(table["task"]).to_numpy()))]
    return table[columns].reset_index(drop=True)


def significance_table(tasks: pd.DataFrame) -> pd.DataFrame:
    """Format the per-task significance tests: differences in percentage points, p-values as computed."""
    table = _percent(tasks, {
        "mean_difference": "mean_difference_pct", "bootstrap_difference": "bootstrap_difference_pct",
        "bootstrap_low": "ci_low_pct", "bootstrap_high": "ci_high_pct",
    })
    table = table.rename(columns={"mcnemar_cells_treatment_better": "mcnemar_treatment_better",
                                  "mcnemar_cells_baseline_better": "mcnemar_baseline_better"})
    columns = ["comparison", "task", "cells", "mean_difference_pct", "wilcoxon_p", "wilcoxon_p_holm",
               "permutation_p", "permutation_p_holm", "bootstrap_difference_pct", "ci_low_pct", "ci_high_pct",
               "mcnemar_treatment_better", "mcnemar_baseline_better", "wilcoxon_method"]
    return table[columns]


def significance_overall_table(overall: pd.DataFrame) -> pd.DataFrame:
    """Format the across-task tests: means of per-task medians in percent, Wilcoxon over tasks."""
    table = _percent(overall, {
        "mean_median_treatment": "treatment_pct", "mean_median_baseline": "baseline_pct",
        "mean_difference": "difference_pct",
    })
    columns = ["comparison", "tasks", "treatment_pct", "baseline_pct", "difference_pct", "wilcoxon_p", "wilcoxon_method"]
    return table[columns]


def write_table(frame: pd.DataFrame, out_dir: Path, name: str, caption: str, empty_note: str = "") -> list[Path]:
    """Write one table as `<name>.csv`, `<name>.md` and `<name>.tex`; return the three paths.

    CSV keeps four decimals; Markdown and LaTeX show three significant digits. An empty table is written
    with its header and, in Markdown and LaTeX, `empty_note` saying why it is empty.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.{suffix}" for suffix in TABLE_FORMATS]
    frame.round(4).to_csv(paths[0], index=False)

    # tabulate leaves only None blank, so NaN becomes None first.
    displayed = frame.astype(object).where(frame.notna(), None)
    markdown = f"**{caption}**\n\n" + displayed.to_markdown(index=False, floatfmt=".3g", missingval="")
    if frame.empty and empty_note:
        markdown += f"\n\n_No rows: {empty_note}_"
    paths[1].write_text(markdown + "\n")

    latex = frame.to_latex(
        index=False, float_format="{:.3g}".format, na_rep="", escape=True, longtable=len(frame) > 40,
        caption=_escape_latex(caption), label=f"tab:{name}",
    )
    if frame.empty and empty_note:
        latex = f"% No rows: {empty_note}\n" + latex
    paths[2].write_text(latex)
    return paths


def _escape_latex(text: str) -> str:
    for character, replacement in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"),
                                   ("#", r"\#"), ("^", r"\^{}"), ("$", r"\$")):
        text = text.replace(character, replacement)
    return text


def write_report_tables(aggregate_dir: Path, out_dir: Path, reference_dir: Path | None = None,
                        costs_file: Path | str | None = None) -> dict[str, pd.DataFrame]:
    """Build and write every table of `REPORT_TABLES`; return them by name."""
    aggregates = read_tables(aggregate_dir)
    reference = load_reference(reference_dir)
    per_task = aggregates["per_task"]
    tables = {
        "table1": (table1(per_task, reference, read_costs(costs_file)), TABLE_CAPTIONS["table1"]),
        "per_task": (per_task_table(per_task, reference), TABLE_CAPTIONS["per_task"]),
        "loss_ablation": (loss_ablation_table(per_task, reference), TABLE_CAPTIONS["loss_ablation"]),
        "pretraining": (pretraining_table(per_task, reference), TABLE_CAPTIONS["pretraining"]),
        "tfew_ablation": (tfew_ablation_table(per_task, reference), TABLE_CAPTIONS["tfew_ablation"]),
        "per_template": (per_template_table(aggregates["per_template"]), TABLE_CAPTIONS["per_template"]),
        "per_seed": (per_seed_table(aggregates["per_seed"]), TABLE_CAPTIONS["per_seed"]),
        "icl_order_sensitivity": (order_sensitivity_table(aggregates["order_sensitivity"]),
                                  TABLE_CAPTIONS["icl_order_sensitivity"]),
    }
    for name, (frame, caption) in tables.items():
        write_table(frame, out_dir, name, caption, EMPTY_NOTES.get(name, ""))
    return {name: frame for name, (frame, _) in tables.items()}


def write_significance_tables(significance_dir: Path, out_dir: Path) -> dict[str, pd.DataFrame]:
    """Format and write every table of `SIGNIFICANCE_REPORT_TABLES`; return them by name."""
    results = read_significance(significance_dir)
    tables = {
        "significance": significance_table(results["tasks"]),
        "significance_overall": significance_overall_table(results["overall"]),
        "significance_skipped": results["skipped"],
    }
    for name, frame in tables.items():
        write_table(frame, out_dir, name, TABLE_CAPTIONS[name], EMPTY_NOTES.get(name, ""))
    return tables


TABLE_CAPTIONS = {
    "table1": "Accuracy (mean of per-task medians, %), inference FLOPs per example, training FLOPs and disk bytes, "
              "replicated beside Liu et al. 2022, Table 1",
    "per_task": "Median and IQR of accuracy (%) over few-shot seeds x templates per task, beside Liu et al. 2022, Table 9",
    "loss_ablation": "T-Few loss variants: median and IQR of accuracy (%), beside the (IA)^3 rows of Liu et al. 2022, "
                     "Tables 4-7 (T0-3B)",
    "pretraining": "(IA)^3 from scratch and from pre-trained vectors: median and IQR of accuracy (%), beside Liu et "
                   "al. 2022, Table 8 (T0-3B)",
    "tfew_ablation": "T-Few with and without pre-training and L_UL + L_LN, beside Liu et al. 2022, Table 10 (T0-11B)",
    "per_template": "Accuracy (%) per template: median, minimum and maximum over few-shot seeds",
    "per_seed": "Accuracy (%) per few-shot seed: median and IQR over templates (seed -1: zero-shot)",
    "icl_order_sensitivity": "ICL order sensitivity: range of accuracy (percentage points) over demonstration orders "
                             "per (seed, template) cell",
    "significance": "Paired tests per task (treatment minus baseline; p-values Holm-corrected across tasks)",
    "significance_overall": "Wilcoxon signed-rank test across tasks on per-task median differences",
    "significance_skipped": "Comparisons that this run could not make, with the reason",
}
EMPTY_NOTES = {
    "icl_order_sensitivity": "no ICL condition in this run was evaluated with permuted demonstration orders",
    "significance": "no pair of conditions in this run could be compared; see significance_skipped",
    "significance_overall": "no pair of conditions in this run could be compared; see significance_skipped",
    "significance_skipped": "every planned comparison was made",
}


# Methods and T-Few settings of a full replication; `coverage_notes` names those a run lacks.
EXPECTED_METHODS = ("t-few", "t0-zero-shot", "icl-concat", "icl-ensemble")
EXPECTED_TFEW = [(loss, "scratch") for loss in LOSS_VARIANTS] + [("lm+ul+ln", "pretrained")]

CHANCE_WARNING = (
    "**These accuracies are at chance level.** This run uses a tiny T5 with random weights (T0's architecture, "
    "a tokenizer trained on the task text). Its numbers exercise every step of the replication, from task rows "
    "to tables and figures, but say nothing about the paper's claims; compare against the published columns "
    "only after a run with T0."
)


def run_summary(provenance: pd.DataFrame, run_name: str, model_kind: str, model_description: str,
                config_hash: str = "") -> str:
    """Return Markdown that states which run, model and config produced the numbers.

    The model and config come from the workflow's parameters and, per method, from the provenance columns
    of the prediction rows. For a tiny random model the text states that accuracies are at chance.
    """
    lines = [f"- run: `{run_name}`", f"- model: {model_description} (kind: `{model_kind}`)"]
    if config_hash:
        lines.append(f"- config hash: `{config_hash}`")
    lines += ["", "Provenance recorded in the prediction rows:", "", provenance.to_markdown(index=False)]
    if model_kind == "tiny":
        lines += ["", "> " + CHANCE_WARNING]
    return "\n".join(lines)


def coverage_notes(per_task: pd.DataFrame, order_sensitivity: pd.DataFrame, costs: pd.DataFrame | None) -> list[str]:
    """List what this run lacks for a full replication, so no table implies more than the run measured."""
    notes = []
    methods = set(per_task["method"])
    for method in EXPECTED_METHODS:
        if method not in methods:
            notes.append(f"No `{method}` predictions: its rows and comparisons are left out.")
    tfew = per_task[per_task["method"] == "t-few"]
    present = set(zip(tfew["loss_variant"], tfew["init"]))
    for loss, init in EXPECTED_TFEW:
        if "t-few" in methods and (loss, init) not in present:
            notes.append(f"No T-Few `{loss}` from `{init}` predictions.")
    missing_tasks = [task for task in PAPER_TASK_ORDER if task not in set(per_task["task"])]
    if missing_tasks:
        notes.append(f"{len(missing_tasks)} of the paper's 11 tasks are not in this run ({', '.join(missing_tasks)}); "
                     "averages cover the run's tasks only and sit beside published averages over the same tasks.")
    if costs is None:
        notes.append("No cost table (`tfew costs --preset paper-table1`): Table 1's replicated FLOPs and disk columns "
                     "are empty, and Figure 3 places replicated points at the published FLOPs.")
    if order_sensitivity.empty:
        notes.append("No ICL run with permuted demonstration orders: the order-sensitivity table and figure are empty.")
    return notes
