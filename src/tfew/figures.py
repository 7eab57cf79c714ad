"""Draw the paper's figures from a run's tables with seaborn, published numbers beside replicated ones.

Each function returns a `matplotlib.figure.Figure` built without pyplot, so nothing depends on the backend
or on global figure state; `save_figure` writes it as PDF and PNG. A figure whose data the run lacks is
still written, with a sentence saying what is missing, so the workflow's outputs always exist.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from tfew.aggregate import CELL_COLUMNS
from tfew.report import FIGURE_FORMATS, ia3_loss_rows, run_tasks, with_labels
from tfew.stats import LOSS_VARIANTS

log = logging.getLogger(__name__)

PUBLISHED_COLOR = "0.35"


def save_figure(figure: Figure, out_dir: Path, name: str) -> list[Path]:
    """Write `figure` as `<name>.pdf` and `<name>.png` (200 dpi) into `out_dir`; return the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.{suffix}" for suffix in FIGURE_FORMATS]
    for path in paths:
        figure.savefig(path, dpi=200, bbox_inches="tight")
    return paths


def message_figure(title: str, message: str) -> Figure:
    """Return a small figure that states why a plot could not be drawn."""
    figure = Figure(figsize=(6, 2.5))
    axes = figure.subplots()
    axes.set_axis_off()
    axes.set_title(title)
    axes.text(0.5, 0.5, message, ha="center", va="center", wrap=True, transform=axes.transAxes)
    return figure


def accuracy_vs_flops(table1: pd.DataFrame) -> Figure:
    """Plot accuracy against inference FLOPs per example on a log axis (Liu et al. 2022, Figure 3 layout).

    Published points are hollow grey circles labelled with their model. Replicated points use the FLOPs of
    the run's cost table. Without one they sit at the published FLOPs of their paper row, and the legend
    states this. A replicated method with neither is listed under the plot instead of drawn.
    """
    sns.set_theme(style="whitegrid")
    figure = Figure(figsize=(7.5, 5))
    axes = figure.subplots()

    published = table1.dropna(subset=["published_accuracy_pct"]).drop_duplicates("method")
    axes.scatter(published["published_inference_flops_per_example"], published["published_accuracy_pct"],
                 s=70, facecolors="none", edgecolors=PUBLISHED_COLOR, linewidths=1.5,
                 label="published (Liu et al. 2022, Table 1)")
    for _, row in published.iterrows():
        axes.annotate(row["published_model"], (row["published_inference_flops_per_example"], row["published_accuracy_pct"]),
                      textcoords="offset points", xytext=(6, -4), fontsize=8, color=PUBLISHED_COLOR)

    replicated = table1.dropna(subset=["accuracy_pct"]).copy()
    measured = replicated["inference_flops_per_example"].notna()
    replicated["flops"] = replicated["inference_flops_per_example"].where(
        measured, replicated["published_inference_flops_per_example"])
    replicated["FLOPs from"] = np.where(measured, "cost table of this run", "the paper (no cost table)")
    drawn = replicated.dropna(subset=["flops"])
    if len(drawn):
        sns.scatterplot(data=drawn, x="flops", y="accuracy_pct", hue="condition", style="FLOPs from", s=90, ax=axes)

    axes.set_xscale("log")
    # Room on the right for the label of the costliest point (GPT-3 175B).
    flops = pd.concat([published["published_inference_flops_per_example"], drawn["flops"]]).dropna()
    if len(flops):
        axes.set_xlim(flops.min() / 3, flops.max() * 10)
    axes.set_xlabel("inference FLOPs per example (log scale)")
    axes.set_ylabel("accuracy (%), mean of per-task medians")
    axes.set_title("Accuracy against inference cost")
    axes.legend(fontsize=7, bbox_to_anchor=(1.01, 1), loc="upper left")
    missing = replicated.loc[replicated["flops"].isna(), "condition"].tolist()
    if missing:
        figure.text(0.01, -0.02, "Not drawn (no FLOPs for this method): " + ", ".join(missing), fontsize=7)
    return figure


def loss_ablation(cells: pd.DataFrame, published: pd.DataFrame) -> Figure:
    """Plot median accuracy per task and loss variant as bars with interquartile ranges.

    One panel per (model, initialisation) of the run's T-Few conditions has error bars from the 25th to the
    75th percentile of the cell accuracies (linear interpolation, the same quartiles as `scipy.stats.iqr`).
    A last panel shows the published (IA)^3 medians of Tables 4 to 7 (T0-3B) on the run's tasks, without
    error bars because the paper gives no quartiles.
    """
    tfew = cells[cells["method"] == "t-few"].assign(accuracy_pct=lambda frame: 100 * frame["accuracy"])
    if tfew.empty:
        return message_figure("Loss ablation", "No T-Few predictions in this run, so there is no loss ablation to plot.")

    tasks = run_tasks(cells)
    variants = [variant for variant in LOSS_VARIANTS if variant in set(tfew["loss_variant"]) | set(published["loss_variant"])]
    palette = dict(zip(variants, sns.color_palette("deep", len(variants))))
    panels = [(f"replicated: {model}, {init}", group) for (model, init), group in tfew.groupby(["model_name", "init"])]
    reference = published[published["task"].isin(tasks)]

    sns.set_theme(style="whitegrid")
    figure = Figure(figsize=(max(6.0, 1.2 * len(tasks) + 2), 2.8 * (len(panels) + 1)))
    axes = figure.subplots(len(panels) + 1, 1, squeeze=False, sharey=True)[:, 0]
    for ax, (title, group) in zip(axes, panels):
        sns.barplot(data=group, x="task", y="accuracy_pct", hue="loss_variant", order=tasks, hue_order=variants,
                    palette=palette, estimator="median", errorbar=("pi", 50), capsize=0.15, err_kws={"linewidth": 1},
                    ax=ax)
        ax.set_title(title + " (bars: median; whiskers: 25th-75th percentile)", fontsize=9)
    ax = axes[-1]
    if len(reference):
        sns.barplot(data=reference, x="task", y="median_pct", hue="loss_variant", order=tasks, hue_order=variants,
                    palette=palette, errorbar=None, ax=ax)
    ax.set_title("published: (IA)^3 on T0-3B, Liu et al. 2022, Tables 4-7 (medians)", fontsize=9)
    for ax in axes:
        ax.set_xlabel("")
        ax.set_ylabel("accuracy (%)")
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    handles, labels = axes[0].get_legend_handles_labels()
    figure.tight_layout(rect=(0, 0, 0.86, 1))
    figure.legend(handles, labels, title="loss", loc="center right", fontsize=8)
    return figure


def per_task_spread(cells: pd.DataFrame) -> Figure:
    """Plot the accuracy of every (seed, template) cell per task and condition: boxes plus the cells."""
    data = with_labels(cells).assign(accuracy_pct=lambda frame: 100 * frame["accuracy"])
    tasks = run_tasks(cells)
    conditions = sorted(set(data["condition"]))

    sns.set_theme(style="whitegrid")
    width = max(7.0, 0.35 * len(tasks) * len(conditions) + 3)
    figure = Figure(figsize=(width, 4.5))
    axes = figure.subplots()
    sns.boxplot(data=data, x="task", y="accuracy_pct", hue="condition", order=tasks, hue_order=conditions,
                showfliers=False, ax=axes)
    sns.stripplot(data=data, x="task", y="accuracy_pct", hue="condition", order=tasks, hue_order=conditions,
                  dodge=True, palette="dark:black", size=2.5, alpha=0.6, legend=False, ax=axes)
    axes.set_xlabel("")
    axes.set_ylabel("accuracy (%) per (seed, template) cell")
    axes.set_title("Accuracy over few-shot seeds x templates")
    axes.legend(fontsize=7, bbox_to_anchor=(1.01, 1), loc="upper left", title="condition")
    figure.tight_layout()
    return figure


def icl_order_sensitivity(order_cells: pd.DataFrame) -> Figure:
    """Plot, per task and ICL condition, the accuracy range over demonstration orders of each cell."""
    title = "ICL sensitivity to demonstration order"
    if order_cells.empty:
        return message_figure(title, "No ICL condition in this run was evaluated with permuted demonstration orders.")

    ranges = order_cells.groupby(CELL_COLUMNS, dropna=False)["accuracy"].agg(lambda values: values.max() - values.min())
    data = with_labels(ranges.rename("range").reset_index()).assign(range_pct=lambda frame: 100 * frame["range"])
    orders = int(order_cells["order"].nunique())
    tasks = run_tasks(data)

    sns.set_theme(style="whitegrid")
    figure = Figure(figsize=(max(6.0, 1.2 * len(tasks) + 3), 4))
    axes = figure.subplots()
    sns.boxplot(data=data, x="task", y="range_pct", hue="condition", order=tasks, showfliers=False, ax=axes)
    sns.stripplot(data=data, x="task", y="range_pct", hue="condition", order=tasks, dodge=True, palette="dark:black",
                  size=3, alpha=0.6, legend=False, ax=axes)
    axes.set_xlabel("")
    axes.set_ylabel(f"accuracy range over {orders} orders (points)")
    axes.set_title(title + " (per seed x template cell)")
    axes.legend(fontsize=7, bbox_to_anchor=(1.01, 1), loc="upper left", title="condition")
    figure.tight_layout()
    return figure


def write_report_figures(tables: dict[str, pd.DataFrame], aggregates: dict[str, pd.DataFrame],
                         reference: dict[str, pd.DataFrame], out_dir: Path) -> dict[str, Figure]:
    """Draw and save every figure of `REPORT_FIGURES`; return them by name.

    `tables` contains the report tables (`table1` is needed), `aggregates` the aggregate tables (`cells`,
    `order_cells`) and `reference` the published numbers.
    """
    figures = {
        "fig_accuracy_vs_flops": accuracy_vs_flops(tables["table1"]),
        "fig_loss_ablation": loss_ablation(aggregates["cells"], ia3_loss_rows(reference)),
        "fig_per_task_spread": per_task_spread(aggregates["cells"]),
        "fig_icl_order_sensitivity": icl_order_sensitivity(aggregates["order_cells"]),
    }
    for name, figure in figures.items():
        save_figure(figure, out_dir, name)
    log.info("wrote %d figures to %s", len(figures), out_dir)
    return figures
