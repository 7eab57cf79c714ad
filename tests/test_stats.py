"""Significance tests checked against values computed by hand or by enumerating every sign flip."""

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import rankdata

from result_tables import cell_rows, random_run, write_predictions
from tfew.aggregate import read_predictions
from tfew.cli import main
from tfew.stats import (
    SIGNIFICANCE_TABLES,
    Condition,
    SignificanceSettings,
    holm,
    match_cells,
    match_examples,
    mcnemar_cells,
    paired_bootstrap_ci,
    paired_permutation_test,
    plan_comparisons,
    read_significance,
    significance,
    tfew_reference,
    wilcoxon_signed_rank,
)

FAST = SignificanceSettings(permutations=999, bootstrap_resamples=500)


def signed_rank_p_by_enumeration(differences):
    """Two-sided p of W+ over every sign assignment, zeros dropped, tied ranks averaged."""
    nonzero = [d for d in differences if d != 0]
    ranks = rankdata(np.abs(nonzero))
    observed = sum(rank for rank, d in zip(ranks, nonzero) if d > 0)
    totals = [sum(rank for rank, sign in zip(ranks, signs) if sign)
              for signs in itertools.product([True, False], repeat=len(nonzero))]
    upper = sum(total >= observed - 1e-9 for total in totals) / len(totals)
    lower = sum(total <= observed + 1e-9 for total in totals) / len(totals)
    return min(1.0, 2 * min(upper, lower))


def mean_sign_flip_p_by_enumeration(differences):
    observed = np.mean(differences)
    means = [np.mean(np.array(signs) * differences)
             for signs in itertools.product([1, -1], repeat=len(differences))]
    upper = np.mean([value >= observed - 1e-12 for value in means])
    lower = np.mean([value <= observed + 1e-12 for value in means])
    return min(1.0, 2 * min(upper, lower))


def test_wilcoxon_exact_hand_value():
    # Ranks 1..5; W+ = 1 + 3 + 4 + 5 = 13, W- = 2. Of the 32 sign assignments, 3 give W+ >= 13
    # (W- in {0, 1, 2}), so the two-sided p is 2 * 3 / 32.
    result = wilcoxon_signed_rank(np.array([0.1, -0.2, 0.3, 0.4, 0.5]))
    assert result["statistic"] == 2.0
    assert result["p"] == pytest.approx(2 * 3 / 32)
    assert result["method"] == "exact"


def test_wilcoxon_ties_enumerated():
    # |d| = 0.1, 0.1, 0.1, 0.2: ranks 2, 2, 2, 4; W+ = 8. Four of the 16 assignments reach 8 or more.
    differences = np.array([0.1, 0.1, -0.1, 0.2])
    result = wilcoxon_signed_rank(differences)
    assert result["p"] == pytest.approx(2 * 4 / 16)
    assert result["p"] == pytest.approx(signed_rank_p_by_enumeration(differences))
    assert result["method"] == "exact (all sign flips)"


def test_wilcoxon_zero_differences_dropped():
    differences = np.array([0.25, 0.0, 0.5, -0.25, 0.75, 0.0, 0.5])
    result = wilcoxon_signed_rank(differences)
    assert result["p"] == pytest.approx(signed_rank_p_by_enumeration(differences))


def test_wilcoxon_float_residue_is_a_tie():
    # 0.15 - 0.1 and 0.1 - 0.05 differ in the last bits; both are a difference of 0.05.
    differences = np.array([0.15 - 0.1, 0.1 - 0.05, 0.2, -0.3])
    result = wilcoxon_signed_rank(differences)
    assert result["method"] == "exact (all sign flips)"
    assert result["p"] == pytest.approx(signed_rank_p_by_enumeration([0.05, 0.05, 0.2, -0.3]))


def test_wilcoxon_normal_approximation_hand_formula():
    differences = np.array([0.1] * 6 + [0.2] * 5 + [-0.1] * 3 + [0.3] * 4 + [-0.2, 0.4])
    n = differences.size
    ranks = rankdata(np.abs(differences))
    w_plus = ranks[differences > 0].sum()
    ties = np.unique(np.abs(differences), return_counts=True)[1]
    variance = (n * (n + 1) * (2 * n + 1) - np.sum(ties**3 - ties) / 2) / 24
    z = (w_plus - n * (n + 1) / 4 - 0.5) / math.sqrt(variance)
    expected = math.erfc(abs(z) / math.sqrt(2))

    result = wilcoxon_signed_rank(differences)
    assert result["method"] == "normal approximation"
    assert result["statistic"] == pytest.approx(ranks[differences < 0].sum())
    assert result["p"] == pytest.approx(expected, rel=1e-9)


def test_wilcoxon_all_zero_not_run():
    result = wilcoxon_signed_rank(np.zeros(4))
    assert np.isnan(result["p"])
    assert result["method"].startswith("not run")


def test_permutation_test_hand_value():
    # Sign flips of (0.2, 0.1, -0.05) give sums +-0.35, +-0.25, +-0.15, +-0.05; the observed 0.25 is
    # reached or passed by 2 of 8, so the two-sided p is 2 * 2 / 8.
    p = paired_permutation_test(np.array([0.2, 0.1, -0.05]), np.zeros(3))
    assert p == pytest.approx(0.5)


def test_permutation_test_enumerates_small_samples():
    treatment = np.array([0.75, 0.5, 0.75, 1.0, 0.5, 0.25])
    baseline = np.array([0.5, 0.5, 0.25, 0.5, 0.25, 0.5])
    expected = mean_sign_flip_p_by_enumeration(treatment - baseline)
    assert paired_permutation_test(treatment, baseline) == pytest.approx(expected)


def test_permutation_test_identical_is_one():
    assert paired_permutation_test(np.array([0.5, 0.5]), np.array([0.5, 0.5])) == 1.0


def example_pairs(treatment, baseline, seed=0, template="A"):
    return pd.DataFrame({"seed": seed, "template": template, "example_index": range(len(treatment)),
                         "correct_treatment": treatment, "correct_baseline": baseline})


def test_bootstrap_estimate_and_interval():
    rng = np.random.default_rng(1)
    treatment = (rng.random(400) < 0.7).astype(int)
    baseline = (rng.random(400) < 0.5).astype(int)
    pairs = example_pairs(treatment, baseline)
    result = paired_bootstrap_ci(pairs, FAST)

    differences = treatment - baseline
    assert result["estimate"] == pytest.approx(differences.mean())
    assert result["examples"] == 400
    # The percentile interval of a mean over 400 examples is close to the normal-theory interval.
    half_width = 1.96 * differences.std(ddof=1) / math.sqrt(400)
    assert result["low"] == pytest.approx(differences.mean() - half_width, abs=0.02)
    assert result["high"] == pytest.approx(differences.mean() + half_width, abs=0.02)
    assert paired_bootstrap_ci(pairs, FAST) == result  # seeded


def test_bootstrap_resamples_whole_examples():
    # Two cells per example; the per-example differences are 1, 0, 0, -1 summed over the two cells
    # divided by the 8 rows: estimate 0.
    pairs = pd.concat([
        example_pairs([1, 1, 0, 0], [0, 1, 0, 1], template="A"),
        example_pairs([1, 0, 1, 0], [0, 0, 1, 1], template="B"),
    ])
    result = paired_bootstrap_ci(pairs, FAST)
    assert result["estimate"] == pytest.approx(0.0)
    assert result["examples"] == 4
    assert result["low"] <= 0.0 <= result["high"]


def test_bootstrap_degenerate_and_single_example():
    same = paired_bootstrap_ci(example_pairs([1, 1, 1], [0, 0, 0]), FAST)
    assert (same["estimate"], same["low"], same["high"]) == (1.0, 1.0, 1.0)
    single = paired_bootstrap_ci(example_pairs([1], [0]), FAST)
    assert single["estimate"] == 1.0
    assert np.isnan(single["low"])


def test_mcnemar_exact_hand_value():
    # Cell A: treatment alone right on 5 examples, baseline alone on 1: p = 2 * P(X <= 1), X ~ Bin(6, 1/2)
    # = 2 * 7 / 64. Cell B: no discordant pairs, p = 1.
    pairs = pd.concat([
        example_pairs([1, 1, 1, 1, 1, 0, 1, 0], [0, 0, 0, 0, 0, 1, 1, 0], template="A"),
        example_pairs([1, 0, 1], [1, 0, 1], template="B"),
    ])
    cells = mcnemar_cells(pairs).set_index("template")
    assert cells.loc["A", "treatment_only"] == 5
    assert cells.loc["A", "baseline_only"] == 1
    assert cells.loc["A", "p"] == pytest.approx(14 / 64)
    assert cells.loc["B", "p"] == pytest.approx(1.0)
    assert cells.loc["A", "p_holm"] == pytest.approx(min(1.0, 2 * 14 / 64))
    assert not cells["significant"].any()


def test_holm_hand_values():
    # Sorted p: 0.01 x 3 = 0.03; 0.03 x 2 = 0.06; 0.04 x 1 = 0.04, raised to 0.06 to stay monotone.
    adjusted = holm(np.array([0.01, 0.04, 0.03, np.nan]))
    assert adjusted[:3] == pytest.approx([0.03, 0.06, 0.06])
    assert np.isnan(adjusted[3])


def cells_frame(rows):
    return pd.DataFrame(rows, columns=["seed", "template", "accuracy"])


def test_zero_shot_matched_per_seed():
    tfew = cells_frame([(0, "A", 0.8), (0, "B", 0.6), (42, "A", 0.7), (42, "B", 0.9), (42, "C", 0.5)])
    zero_shot = cells_frame([(-1, "A", 0.5), (-1, "B", 0.4)])
    matched = match_cells(tfew, zero_shot).sort_values(["seed", "template"])
    assert list(zip(matched["seed"], matched["template"])) == [(0, "A"), (0, "B"), (42, "A"), (42, "B")]
    assert list(matched["accuracy_baseline"]) == [0.5, 0.4, 0.5, 0.4]
    differences = matched["accuracy_treatment"] - matched["accuracy_baseline"]
    assert list(differences.round(6)) == [0.3, 0.2, 0.2, 0.5]

    reversed_sides = match_cells(zero_shot, tfew)
    assert len(reversed_sides) == 4
    assert set(reversed_sides["accuracy_treatment"]) == {0.5, 0.4}


def test_seeded_cells_match_on_seed_and_template():
    a = cells_frame([(0, "A", 0.8), (1, "A", 0.6), (1, "B", 0.5)])
    b = cells_frame([(0, "A", 0.7), (1, "B", 0.4), (2, "B", 0.1)])
    matched = match_cells(a, b)
    assert sorted(zip(matched["seed"], matched["template"])) == [(0, "A"), (1, "B")]


def test_zero_shot_examples_matched_per_seed():
    tfew = pd.DataFrame(cell_rows("t-few", "rte", 0, "A", [1, 0]) + cell_rows("t-few", "rte", 1, "A", [1, 1]))
    zero_shot = pd.DataFrame(cell_rows("t0-zero-shot", "rte", -1, "A", [0, 1]))
    pairs = match_examples(tfew, zero_shot)
    assert len(pairs) == 4
    assert list(pairs.sort_values(["seed", "example_index"])["correct_baseline"]) == [0, 1, 0, 1]


def condition(method, loss="none", init="none"):
    return Condition(method, "tiny-t5", loss, init)


def test_plan_full_grid():
    conditions = [condition("t-few", loss, "scratch") for loss in ("lm", "lm+ul", "lm+ln", "lm+ul+ln")]
    conditions += [condition("t-few", "lm+ul+ln", "pretrained"), condition("t0-zero-shot"),
                   condition("icl-concat"), condition("icl-ensemble")]
    comparisons, skipped = plan_comparisons(conditions)
    names = {(c.family, c.treatment.loss_variant, c.treatment.init, c.baseline.method, c.baseline.loss_variant,
              c.baseline.init) for c in comparisons}

    recipe = ("lm+ul+ln", "pretrained")
    for method in ("t0-zero-shot", "icl-concat", "icl-ensemble"):
        assert ("baseline", *recipe, method, "none", "none") in names
    for variant in ("lm+ul", "lm+ln", "lm+ul+ln"):
        assert ("loss", variant, "scratch", "t-few", "lm", "scratch") in names
    assert ("init", "lm+ul+ln", "pretrained", "t-few", "lm+ul+ln", "scratch") in names
    assert len(comparisons) == 3 + 3 + 1

    # The pre-trained runs have no L_LM-only baseline, and only lm+ul+ln was pre-trained: one entry each.
    entries = {(row["family"], row["treatment"], row["reason"]) for row in skipped}
    assert entries == {
        ("loss", "t-few lm+ul+ln pretrained [tiny-t5]", "no t-few lm pretrained predictions to compare lm+ul+ln against"),
        ("init", "t-few lm, lm+ul, lm+ln pretrained [tiny-t5]", "no pretrained predictions for these loss variants"),
    }


def test_plan_without_baselines_says_why():
    comparisons, skipped = plan_comparisons([condition("t-few", "lm+ul+ln", "scratch")])
    assert comparisons == []
    reasons = {row["reason"] for row in skipped}
    assert "no t0-zero-shot predictions in this run" in reasons
    assert "no icl-concat predictions in this run" in reasons
    assert "no t-few lm scratch predictions to compare lm+ul+ln against" in reasons
    assert "no pretrained predictions for these loss variants" in reasons


def test_plan_lists_missing_loss_variants():
    conditions = [condition("t-few", "lm", "scratch"), condition("t-few", "lm+ln", "scratch")]
    comparisons, skipped = plan_comparisons(conditions)
    assert [(c.family, c.treatment.loss_variant) for c in comparisons] == [("loss", "lm+ln")]
    loss_entries = [row for row in skipped if row["family"] == "loss"]
    assert len(loss_entries) == 1
    assert loss_entries[0]["treatment"] == "t-few lm+ul, lm+ul+ln scratch [tiny-t5]"


def test_tfew_reference_prefers_recipe():
    conditions = [condition("t-few", "lm", "pretrained"), condition("t-few", "lm+ul+ln", "scratch")]
    assert tfew_reference(conditions, "tiny-t5") == condition("t-few", "lm+ul+ln", "scratch")
    conditions.append(condition("t-few", "lm+ul+ln", "pretrained"))
    assert tfew_reference(conditions, "tiny-t5") == condition("t-few", "lm+ul+ln", "pretrained")


def test_significance_on_synthetic_run(tmp_path):
    predictions = read_predictions(random_run(tmp_path))
    tables = significance(predictions, FAST)
    tasks = tables["tasks"]

    assert len(tasks) == 7 * 3  # seven comparisons on three tasks
    zero_shot = tasks[tasks["baseline"] == "t0-zero-shot [tiny-t5]"].set_index("task")
    assert zero_shot.loc["rte", "cells"] == 2 * 3  # each zero-shot template once per seed
    assert zero_shot.loc["copa", "cells"] == 2  # single template: one cell per seed
    assert zero_shot.loc["copa", "wilcoxon_method"] in {"exact", "exact (all sign flips)", "not run: all differences are zero"}
    assert (tasks["unmatched_treatment_cells"] == 0).all()

    for _, group in tasks.groupby("comparison"):
        p = group["wilcoxon_p"].to_numpy()
        finite = np.isfinite(p)
        assert group["wilcoxon_p_holm"].to_numpy()[finite] == pytest.approx(holm(p[finite]))
        assert group["permutation_p_holm"].to_numpy() == pytest.approx(holm(group["permutation_p"].to_numpy()))

    inside = (tasks["bootstrap_low"] <= tasks["bootstrap_difference"]) & (tasks["bootstrap_difference"] <= tasks["bootstrap_high"])
    assert inside.all()
    assert len(tables["overall"]) == 7
    assert (tables["overall"]["tasks"] == 3).all()
    mcnemar = tables["mcnemar_cells"]
    assert len(mcnemar) == tasks["cells"].sum()


def test_task_covered_by_one_side_is_skipped(tmp_path):
    rows = cell_rows("t-few", "rte", 0, "A", [1, 1, 0], "lm+ul+ln", "scratch")
    rows += cell_rows("t-few", "cb", 0, "A", [1, 0, 0], "lm+ul+ln", "scratch")
    rows += cell_rows("t0-zero-shot", "rte", -1, "A", [0, 1, 0])
    tables = significance(read_predictions([write_predictions(tmp_path, rows, "partial")]), FAST)
    assert list(tables["tasks"]["task"]) == ["rte"]
    skipped = tables["skipped"]
    row = skipped[skipped["task"] == "cb"].iloc[0]
    assert row["reason"] == "no t0-zero-shot [tiny-t5] predictions for this task"


def test_significance_cli(tmp_path):
    rows = []
    for seed in (0, 42):
        rows += cell_rows("t-few", "rte", seed, "A", [1, 1, 1, 0], "lm+ul+ln", "scratch")
        rows += cell_rows("t-few", "rte", seed, "B", [1, 1, 0, 0], "lm+ul+ln", "scratch")
    rows += cell_rows("t0-zero-shot", "rte", -1, "A", [1, 0, 0, 0]) + cell_rows("t0-zero-shot", "rte", -1, "B", [0, 1, 0, 0])
    path = write_predictions(tmp_path, rows, "run")
    out = tmp_path / "significance"
    assert main(["significance", "--predictions", str(path), "--out", str(out), "--permutations", "199",
                 "--bootstrap-resamples", "200"]) == 0
    tables = read_significance(out)
    assert set(tables) == set(SIGNIFICANCE_TABLES)
    row = tables["tasks"].iloc[0]
    assert row["comparison"] == "t-few lm+ul+ln scratch [tiny-t5] vs t0-zero-shot [tiny-t5]"
    assert row["cells"] == 4
    assert row["mean_difference"] == pytest.approx(0.375)  # 0.75 - 0.25 (A) and 0.5 - 0.25 (B), each seed

    assert main(["significance", "--predictions", str(path), "--out", str(out), "--confidence", "95"]) == 2


def test_subset_side_compared_on_shared_examples(tmp_path, caplog):
    """ICL scored the first 2 examples of each cell, T-Few all 8: the test covers the 2 both scored."""
    rows = []
    for seed in (0, 1):
        rows += cell_rows("t-few", "rte", seed, "A", [1, 1, 0, 0, 0, 0, 0, 0], "lm+ul+ln", "scratch")
        rows += cell_rows("icl-concat", "rte", seed, "A", [1, 1])
    tables = significance(read_predictions([write_predictions(tmp_path, rows, "subset")]), FAST)
    row = tables["tasks"].set_index("baseline").loc["icl-concat [tiny-t5]"]
    assert row["median_treatment"] == 1.0  # T-Few's accuracy on the 2 shared examples, not 0.25 over 8
    assert row["median_baseline"] == 1.0
    assert row["examples"] == 2
    assert row["wilcoxon_method"] == "not run: all differences are zero"
    assert "testing the 2 examples both sides scored (of 8 scored by either)" in caplog.text
