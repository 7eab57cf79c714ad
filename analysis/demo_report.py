# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Accuracy per task: median and interquartile range over few-shot seeds and templates
#
# This notebook turns the workflow's aggregated results into one table and one figure. The statistic is the
# one Liu et al. (2022) report: per task, the median accuracy over every (few-shot seed, template) cell, with
# the interquartile range as its spread.

# %% tags=["parameters"]
aggregate_dir = "results/demo/aggregate"
figures_dir = "paper_figures/demo"
run_name = "demo"
model_description = "tiny random T5 with T0's architecture (demo: accuracies at chance)"

# %%
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

figures = Path(figures_dir)
figures.mkdir(parents=True, exist_ok=True)
per_task = pd.read_csv(Path(aggregate_dir) / "per_task.csv")
cells = pd.read_csv(Path(aggregate_dir) / "cells.csv")

# %% [markdown]
# ## Which model and config produced these numbers

# %%
print(f"run: {run_name}")
print(f"model: {model_description}")
if "tiny" in model_description:
    print(
        "NOTE: this run uses a tiny model with random weights, so its accuracies sit at chance level. "
        "It tests the plumbing of the replication, not the paper's claims."
    )

# %% [markdown]
# ## Table: median (IQR) accuracy per task, in percent

# %%
table = per_task.assign(
    median=lambda frame: (100 * frame["median"]).round(1),
    iqr=lambda frame: (100 * frame["iqr"]).round(1),
)
table = table[["task", "method", "loss_variant", "init", "median", "iqr", "cells"]]
table.to_csv(figures / "accuracy_per_task.csv", index=False)
(figures / "accuracy_per_task.md").write_text(table.to_markdown(index=False) + "\n")
table

# %% [markdown]
# ## Figure: accuracy of every (seed, template) cell per task

# %%
sns.set_theme(style="whitegrid")
axes = sns.boxplot(data=cells, x="task", y="accuracy", hue="loss_variant")
sns.stripplot(data=cells, x="task", y="accuracy", hue="loss_variant", dodge=True, color="black", size=3,
              legend=False, ax=axes)
axes.set_ylabel("accuracy per (seed, template) cell")
axes.set_title(f"{run_name}: accuracy over few-shot seeds x templates")
figure = axes.get_figure()
figure.tight_layout()
figure.savefig(figures / "accuracy_per_task.png", dpi=150)
figure.savefig(figures / "accuracy_per_task.pdf")
plt.close(figure)
