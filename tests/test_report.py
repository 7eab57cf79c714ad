"""The paper's tables and figures built from small result tables, beside the published numbers."""

import numpy as np
import pandas as pd
import pytest

from result_tables import cell_rows, random_run, write_predictions
from tfew.aggregate import read_predictions, summarise, write_tables
from tfew.cli import main
from tfew.figures import write_report_figures
from tfew.report import (
    CHANCE_WARNING,
    FIGURE_FORMATS,
    REPORT_FIGURES,
    REPORT_TABLES,
    SIGNIFICANCE_REPORT_TABLES,
    TABLE_FORMATS,
    coverage_notes,
    load_reference,
    loss_ablation_table,
    per_task_table,
    pretraining_table,
    read_costs,
    run_summary,
    table1,
    tfew_ablation_table,
    write_report_tables,
    write_table,
)


@pytest.fixture(scope="module")
def reference():
    return load_reference()


def hand_tables(tmp_path):
    """T-Few (lm and lm+ul+ln from scratch, lm+ul+ln pre-trained), zero-shot and concatenation ICL on rte and cb."""
    rows = []
    for task, accuracy in (("rte", [1, 1, 1, 0]), ("cb", [1, 1, 0, 0])):
        for seed in (0, 1):
            rows += cell_rows("t-few", task, seed, "A", accuracy, "lm+ul+ln", "pretrained")
            rows += cell_rows("t-few", task, seed, "A", accuracy[::-1][:2] + [1, 1], "lm+ul+ln", "scratch")
            rows += cell_rows("t-few", task, seed, "A", [1, 0, 0, 0], "lm", "scratch")
            rows += cell_rows("icl-concat", task, seed, "A", [0, 1, 0, 0])
        rows += cell_rows("t0-zero-shot", task, -1, "A", [1, 0, 1, 0])
    return summarise(read_predictions([write_predictions(tmp_path, rows, "hand")]))


def test_write_table_three_formats(tmp_path):
    frame = pd.DataFrame({"task": ["anli_r1", "rte"], "median_pct": [72.41, np.nan], "p": [0.00123, 1.0]})
    paths = write_table(frame, tmp_path, "demo", "Accuracy (%) per task_name")
    assert [path.name for path in paths] == ["demo.csv", "demo.md", "demo.tex"]

    assert pd.read_csv(paths[0])["median_pct"].iloc[0] == pytest.approx(72.41)
    markdown = paths[1].read_text()
    assert "nan" not in markdown
    assert "72.4 " in markdown
    assert "0.00123" in markdown
    latex = paths[2].read_text()
    assert r"anli\_r1" in latex
    assert r"\caption{Accuracy (\%) per task\_name}" in latex
    assert r"\label{tab:demo}" in latex


def test_write_empty_table_notes_reason(tmp_path):
    paths = write_table(pd.DataFrame(columns=["task", "p"]), tmp_path, "none", "Nothing", "no ICL orders in this run")
    assert "_No rows: no ICL orders in this run_" in paths[1].read_text()
    assert paths[2].read_text().startswith("% No rows: no ICL orders in this run")
    assert pd.read_csv(paths[0]).columns.tolist() == ["task", "p"]


def test_table1_beside_published(tmp_path, reference):
    tables = hand_tables(tmp_path)
    costs = pd.DataFrame({"method": ["t-few", "t0-zero-shot"], "inference_flops_per_example": [1.13e12, 1.13e12],
                          "training_flops": [2.72e16, 0.0], "disk_bytes": [4.33e6, 0.0]})
    table = table1(tables["per_task"], reference, costs).set_index("method")

    # T-Few is the full recipe (pre-trained, all losses): medians 0.75 (rte) and 0.5 (cb).
    assert table.loc["t-few", "condition"] == "t-few lm+ul+ln pretrained [tiny-t5]"
    assert table.loc["t-few", "accuracy_pct"] == pytest.approx(62.5)
    assert table.loc["t-few", "published_accuracy_pct"] == 72.4
    assert table.loc["t-few", "published_same_tasks_pct"] == pytest.approx((85.6 + 87.5) / 2)
    assert table.loc["t-few", "inference_flops_per_example"] == 1.13e12
    assert table.loc["t-few", "published_inference_flops_per_example"] == 1.1e12
    assert table.loc["t0-zero-shot", "accuracy_pct"] == pytest.approx(50.0)
    assert table.loc["t0-zero-shot", "published_same_tasks_pct"] == pytest.approx((81.2 + 78.6) / 2)

    # GPT-3 is published only; concatenation ICL is replicated only; ensemble ICL was not run.
    assert np.isnan(table.loc["gpt3-175b-icl", "accuracy_pct"])
    assert table.loc["gpt3-175b-icl", "published_accuracy_pct"] == 66.6
    assert table.loc["icl-concat", "accuracy_pct"] == pytest.approx(25.0)
    assert np.isnan(table.loc["icl-concat", "published_accuracy_pct"])
    assert np.isnan(table.loc["t5+lm-icl", "accuracy_pct"])
    assert np.isnan(table.loc["icl-concat", "inference_flops_per_example"])
    assert list(table.index[:6]) == list(reference["table1"]["method"])


def test_table1_without_costs(tmp_path, reference):
    table = table1(hand_tables(tmp_path)["per_task"], reference, None)
    assert table["inference_flops_per_example"].isna().all()
    assert table["published_inference_flops_per_example"].notna().sum() == 6


def test_read_costs(tmp_path):
    assert read_costs("") is None
    assert read_costs(tmp_path / "absent.csv") is None
    path = tmp_path / "costs.csv"
    pd.DataFrame({"method": ["t-few"], "inference_flops_per_example": [1.0]}).to_csv(path, index=False)
    with pytest.raises(Exception, match="missing cost columns"):
        read_costs(path)


def test_per_task_table_rows(tmp_path, reference):
    table = per_task_table(hand_tables(tmp_path)["per_task"], reference)
    rte = table[table["task"] == "rte"].set_index("condition")

    assert rte.loc["t-few lm+ul+ln pretrained [tiny-t5]", "median_pct"] == pytest.approx(75.0)
    assert rte.loc["t-few lm+ul+ln pretrained [tiny-t5]", "published_median_pct"] == 85.6
    assert rte.loc["t-few lm+ul+ln pretrained [tiny-t5]", "published_iqr_pct"] == 2.9
    assert rte.loc["t0-zero-shot [tiny-t5]", "published_median_pct"] == 81.2
    assert np.isnan(rte.loc["t-few lm scratch [tiny-t5]", "published_median_pct"])  # ablation, not Table 9
    not_run = rte.loc["(not run)"]
    assert set(not_run["paper_method"]) == {"t5+lm-icl", "gpt3-6.7b-icl", "gpt3-13b-icl", "gpt3-175b-icl"}
    assert set(table["task"]) == {"rte", "cb"}
    assert list(table["task"].drop_duplicates()) == ["rte", "cb"]  # the paper's task order


def test_loss_ablation_beside_tables_4_to_7(tmp_path, reference):
    table = loss_ablation_table(hand_tables(tmp_path)["per_task"], reference)
    key = table.set_index(["loss_variant", "init", "task"])

    assert key.loc[("lm", "scratch", "rte"), "median_pct"] == pytest.approx(25.0)
    assert key.loc[("lm", "scratch", "rte"), "published_median_pct"] == 77.98
    assert key.loc[("lm", "scratch", "rte"), "published_table"] == "Table 7"
    assert key.loc[("lm+ul+ln", "scratch", "cb"), "published_median_pct"] == 87.5
    assert np.isnan(key.loc[("lm+ul+ln", "pretrained", "rte"), "published_median_pct"])

    # Averages over the run's tasks: replicated (25 + 25) / 2; published Table 7 (77.98 + 82.14) / 2.
    assert key.loc[("lm", "scratch", "average"), "median_pct"] == pytest.approx(25.0)
    assert key.loc[("lm", "scratch", "average"), "published_median_pct"] == pytest.approx((77.98 + 82.14) / 2)

    # Variants the run lacks are listed with the published numbers only.
    missing = table[table["condition"] == "(not run)"]
    assert set(missing["loss_variant"]) == {"lm+ul", "lm+ln"}
    assert missing["median_pct"].isna().all()
    assert list(table["loss_variant"].drop_duplicates()) == ["lm", "lm+ul", "lm+ln", "lm+ul+ln"]


def test_pretraining_and_tfew_ablation(tmp_path, reference):
    per_task = hand_tables(tmp_path)["per_task"]
    pretraining = pretraining_table(per_task, reference).set_index(["loss_variant", "init", "task"])
    assert set(pretraining.index.get_level_values("loss_variant")) == {"lm+ul+ln"}
    assert pretraining.loc[("lm+ul+ln", "pretrained", "rte"), "published_median_pct"] == 80.9
    assert pretraining.loc[("lm+ul+ln", "scratch", "rte"), "published_median_pct"] == 78.0

    ablation = tfew_ablation_table(per_task, reference).set_index(["loss_variant", "init", "task"])
    assert ablation.loc[("lm", "scratch", "rte"), "published_median_pct"] == 84.5
    assert ablation.loc[("lm", "pretrained", "rte"), "condition"] == "(not run)"
    assert ablation.loc[("lm+ul+ln", "pretrained", "cb"), "published_table"] == "Table 10"


def test_coverage_notes_and_summary(tmp_path):
    tables = hand_tables(tmp_path)
    notes = coverage_notes(tables["per_task"], tables["order_sensitivity"], None)
    text = "\n".join(notes)
    assert "No `icl-ensemble` predictions" in text
    assert "No T-Few `lm+ul` from `scratch` predictions." in text
    assert "9 of the paper's 11 tasks are not in this run" in text
    assert "No cost table" in text
    assert "permuted demonstration orders" in text

    summary = run_summary(tables["provenance"], "demo", "tiny", "tiny random T5", "abc123")
    assert "`demo`" in summary
    assert "abc123" in summary
    assert "feedbeef00000000" in summary  # the config hash recorded in the rows
    assert CHANCE_WARNING in summary
    assert CHANCE_WARNING not in run_summary(tables["provenance"], "paper", "hub", "bigscience/T0_3B")


def test_report_cli_writes_everything(tmp_path):
    paths = random_run(tmp_path / "predictions")
    aggregate_dir = tmp_path / "aggregate"
    significance_dir = tmp_path / "significance"
    out = tmp_path / "figures"
    assert main(["aggregate", "--predictions", *map(str, paths), "--out", str(aggregate_dir)]) == 0
    assert main(["significance", "--predictions", *map(str, paths), "--out", str(significance_dir),
                 "--permutations", "99", "--bootstrap-resamples", "100"]) == 0
    assert main(["report", "--aggregate", str(aggregate_dir), "--significance", str(significance_dir),
                 "--out", str(out)]) == 0

    for name in REPORT_TABLES + SIGNIFICANCE_REPORT_TABLES:
        for suffix in TABLE_FORMATS:
            assert (out / f"{name}.{suffix}").stat().st_size > 0, f"{name}.{suffix}"
    for name in REPORT_FIGURES:
        for suffix in FIGURE_FORMATS:
            assert (out / f"{name}.{suffix}").stat().st_size > 1000, f"{name}.{suffix}"
        assert (out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (out / f"{name}.pdf").read_bytes()[:5] == b"%PDF-"

    significance = pd.read_csv(out / "significance.csv")
    assert len(significance) == 21
    order = pd.read_csv(out / "icl_order_sensitivity.csv")
    assert set(order["condition"]) == {"icl-concat [tiny-t5]", "icl-ensemble [tiny-t5]"}


def test_report_without_tfew_or_orders(tmp_path, reference):
    rows = cell_rows("t0-zero-shot", "rte", -1, "A", [1, 0, 1]) + cell_rows("t0-zero-shot", "rte", -1, "B", [0, 0, 1])
    aggregates = summarise(read_predictions([write_predictions(tmp_path, rows, "zero_shot")]))
    write_tables(aggregates, tmp_path / "aggregate")
    tables = write_report_tables(tmp_path / "aggregate", tmp_path / "figures")
    for name in ("loss_ablation", "pretraining", "tfew_ablation"):
        assert (tables[name]["condition"] == "(not run)").all(), name
        assert tables[name]["published_median_pct"].notna().all(), name
    assert tables["icl_order_sensitivity"].empty

    figures = write_report_figures(tables, aggregates, reference, tmp_path / "figures")
    assert set(figures) == set(REPORT_FIGURES)
    for name in REPORT_FIGURES:
        assert (tmp_path / "figures" / f"{name}.png").is_file()
    assert "No T-Few predictions" in figures["fig_loss_ablation"].axes[0].texts[0].get_text()
    assert "No ICL condition" in figures["fig_icl_order_sensitivity"].axes[0].texts[0].get_text()
