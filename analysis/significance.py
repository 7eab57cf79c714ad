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
# # Significance tests between methods, per task
#
# Liu et al. (2022) report medians and interquartile ranges but no tests. This notebook presents the tests
# that `tfew significance` (module `tfew.stats`) ran on one workflow run and writes the tables into the
# run's `paper_figures/` folder.
#
# **Comparisons.** T-Few (the full recipe when the run has it) against zero-shot T0 and each ICL variant.
# Each loss variant against L_LM alone. Pre-trained against scratch initialisation of the (IA)^3 vectors.
# Differences are treatment minus baseline, in percentage points.
#
# **Tests per task.**
# - Wilcoxon signed-rank test and a paired permutation test (sign flips of the mean difference) over the
#   matched (seed, template) cells. Both p-values are Holm-corrected across the tasks of one comparison.
# - A paired bootstrap 95% confidence interval for the accuracy difference, resampling examples, so that an
#   example's rows across seeds and templates are drawn together.
# - McNemar's exact test inside each matched cell, Holm-corrected across the task's cells; the table counts
#   the cells where the treatment or the baseline is significantly better.
#
# **Matching zero-shot.** Zero-shot T0 has no few-shot seed. Its cell for a template is paired with the other
# method's cell of the same template for every seed, so each zero-shot accuracy appears once per seed.
# Those pairs share their zero-shot half, which makes the cell-level tests somewhat optimistic; the
# bootstrap over examples does not have this problem.

# %% tags=["parameters"]
results_dir = "results/demo"
figures_dir = "paper_figures/demo"
run_name = "demo"
model_kind = "tiny"
model_description = "tiny random T5 with T0's architecture (demo: accuracies at chance)"
config_hash = ""

# %%
from pathlib import Path

from IPython.display import Markdown, display

from tfew import aggregate, report, stats

significance_dir = Path(results_dir) / "significance"
out_dir = Path(figures_dir)
provenance = aggregate.read_tables(Path(results_dir) / "aggregate")["provenance"]
results = stats.read_significance(significance_dir)
tables = report.write_significance_tables(significance_dir, out_dir)


def show_table(name):
    display(Markdown((out_dir / f"{name}.md").read_text()))


# %% [markdown]
# ## Which model and config produced these numbers

# %%
display(Markdown(report.run_summary(provenance, run_name, model_kind, model_description, config_hash)))

# %% [markdown]
# ## Comparisons this run could not make
#
# An expected comparison is missing when one of its conditions has no predictions, or when the two
# conditions share no (seed, template) cell on a task.

# %%
show_table("significance_skipped")

# %% [markdown]
# ## Per task
#
# `wilcoxon_method` names how the Wilcoxon p-value was obtained: exact, exact by enumerating every sign flip
# (with ties or zero differences and at most 13 cells), or the normal approximation. With few cells the
# smallest reachable p-value is large (two cells cannot go below 0.5), so a non-significant result on a
# small run says little.

# %%
show_table("significance")

# %% [markdown]
# ## Across tasks
#
# A Wilcoxon signed-rank test on the per-task differences of medians, each task counted once as in the
# paper's average.

# %%
show_table("significance_overall")

# %% [markdown]
# ## McNemar cells
#
# Counts per comparison and task of the matched cells, and of those significant after Holm's correction
# across the task's cells. The per-cell table is `significance/mcnemar_cells.csv` in the results folder.

# %%
cells = results["mcnemar_cells"]
if cells.empty:
    display(Markdown("No matched cells: no comparison was made in this run."))
else:
    summary = cells.groupby(["comparison", "task"]).agg(
        cells=("p", "size"), significant=("significant", "sum"),
        treatment_only=("treatment_only", "sum"), baseline_only=("baseline_only", "sum"),
    )
    display(summary)
