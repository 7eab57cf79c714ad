"""Aggregation into the paper's statistics, checked against values computed by hand."""

import pandas as pd
import pytest

from result_tables import cell_rows, random_run, write_predictions
from tfew.aggregate import (
    TABLE_NAMES,
    aggregate,
    cell_accuracy,
    read_predictions,
    read_tables,
    summarise,
    task_summary,
)
from tfew.cli import main
from tfew.errors import TfewError


def hand_run(tmp_path):
    """rte: 2 seeds x 3 templates with tied accuracies; cb: one template, 3 seeds; 4 or 5 examples per cell."""
    rows = []
    rte = {(0, "A"): [1, 1, 0, 0], (0, "B"): [1, 1, 1, 0], (0, "C"): [1, 0, 0, 0],
           (1, "A"): [1, 1, 1, 1], (1, "B"): [1, 1, 0, 0], (1, "C"): [1, 1, 1, 0]}
    for (seed, template), correct in rte.items():
        rows += cell_rows("t-few", "rte", seed, template, correct, "lm", "scratch")
    cb = {0: [1, 0, 0, 0, 0], 1: [1, 1, 1, 0, 0], 2: [1, 1, 1, 1, 1]}
    for seed, correct in cb.items():
        rows += cell_rows("t-few", "cb", seed, "only", correct, "lm", "scratch")
    return write_predictions(tmp_path, rows, "hand")


def test_cell_accuracy_hand_values(tmp_path):
    cells = cell_accuracy(read_predictions([hand_run(tmp_path)]))
    rte = cells[cells["task"] == "rte"].set_index(["seed", "template"])["accuracy"]
    assert rte[(0, "A")] == 0.5
    assert rte[(0, "B")] == 0.75
    assert rte[(0, "C")] == 0.25
    assert rte[(1, "A")] == 1.0
    assert list(cells.loc[cells["task"] == "cb", "examples"]) == [5, 5, 5]


def test_median_iqr_with_ties_and_single_template(tmp_path):
    summary = task_summary(cell_accuracy(read_predictions([hand_run(tmp_path)]))).set_index("task")

    # rte cells sorted: 0.25, 0.5, 0.5, 0.75, 0.75, 1.0. Median (0.5 + 0.75) / 2; the 25th percentile sits at
    # position 1.25 (0.5), the 75th at 3.75 (0.75), both between tied values.
    assert summary.loc["rte", "median"] == pytest.approx(0.625)
    assert summary.loc["rte", "q25"] == pytest.approx(0.5)
    assert summary.loc["rte", "q75"] == pytest.approx(0.75)
    assert summary.loc["rte", "iqr"] == pytest.approx(0.25)
    assert summary.loc["rte", "cells"] == 6
    assert summary.loc["rte", "seeds"] == 2
    assert summary.loc["rte", "templates"] == 3

    # cb has one template, so its cells are its seeds: 0.2, 0.6, 1.0. Quartiles interpolate halfway:
    # 0.2 + 0.5 * 0.4 = 0.4 and 0.6 + 0.5 * 0.4 = 0.8.
    assert summary.loc["cb", "median"] == pytest.approx(0.6)
    assert summary.loc["cb", "iqr"] == pytest.approx(0.4)
    assert summary.loc["cb", "templates"] == 1


def test_overall_is_mean_of_medians(tmp_path):
    tables = summarise(read_predictions([hand_run(tmp_path)]))
    overall = tables["overall"].iloc[0]
    assert overall["mean_of_medians"] == pytest.approx((0.625 + 0.6) / 2)
    assert overall["tasks"] == 2
    assert overall["task_list"] == "cb;rte"


def test_per_template_and_per_seed(tmp_path):
    tables = summarise(read_predictions([hand_run(tmp_path)]))
    per_template = tables["per_template"].set_index(["task", "template"])
    assert per_template.loc[("rte", "A"), "median"] == pytest.approx(0.75)  # seeds: 0.5 and 1.0
    assert per_template.loc[("rte", "C"), "min"] == pytest.approx(0.25)
    assert per_template.loc[("rte", "C"), "max"] == pytest.approx(0.75)
    assert per_template.loc[("cb", "only"), "seeds"] == 3
    assert per_template.loc[("cb", "only"), "examples"] == 5
    assert per_template.loc[("rte", "A"), "examples"] == 4

    per_seed = tables["per_seed"].set_index(["task", "seed"])
    assert per_seed.loc[("rte", 0), "median"] == pytest.approx(0.5)  # templates: 0.5, 0.75, 0.25
    assert per_seed.loc[("rte", 0), "iqr"] == pytest.approx(0.25)  # 0.625 - 0.375
    assert per_seed.loc[("rte", 1), "median"] == pytest.approx(0.75)
    assert per_seed.loc[("cb", 2), "templates"] == 1


def test_zero_shot_without_seed(tmp_path):
    rows = cell_rows("t0-zero-shot", "rte", -1, "A", [1, 0, 1, 1])
    frame = pd.DataFrame(rows).assign(seed=None)
    path = tmp_path / "zero_shot.csv"
    frame.to_csv(path, index=False)
    cells = cell_accuracy(read_predictions([path]))
    assert list(cells["seed"]) == [-1]
    assert cells["accuracy"].iloc[0] == pytest.approx(0.75)


def test_icl_orders_kept_apart(tmp_path):
    rows = []
    rows += cell_rows("icl-concat", "rte", 0, "A", [1, 1, 0, 0], order=0)
    rows += cell_rows("icl-concat", "rte", 0, "A", [1, 1, 1, 1], order=1)
    rows += cell_rows("icl-concat", "rte", 0, "A", [0, 0, 0, 1], order=2)
    rows += cell_rows("icl-concat", "rte", 0, "B", [1, 0, 0, 0], order=0)
    rows += cell_rows("icl-concat", "rte", 0, "B", [1, 0, 0, 0], order=1)
    rows += cell_rows("icl-concat", "rte", 0, "B", [1, 1, 0, 0], order=2)
    rows += cell_rows("t-few", "rte", 0, "A", [1, 1, 1, 0], "lm", "scratch")
    tables = summarise(read_predictions([write_predictions(tmp_path, rows, "icl")]))

    icl_cells = tables["cells"][tables["cells"]["method"] == "icl-concat"].set_index("template")
    assert icl_cells.loc["A", "accuracy"] == pytest.approx(0.5)  # order 0 only
    assert icl_cells.loc["A", "examples"] == 4

    assert set(tables["order_cells"]["method"]) == {"icl-concat"}
    sensitivity = tables["order_sensitivity"].iloc[0]
    # Ranges over orders: A 1.0 - 0.25 = 0.75, B 0.5 - 0.25 = 0.25.
    assert sensitivity["orders"] == 3
    assert sensitivity["cells"] == 2
    assert sensitivity["median_range"] == pytest.approx(0.5)
    assert sensitivity["max_range"] == pytest.approx(0.75)


def test_missing_column_names_file(tmp_path):
    rows = cell_rows("t-few", "rte", 0, "A", [1, 0], "lm", "scratch")
    path = tmp_path / "broken.csv"
    pd.DataFrame(rows).drop(columns=["template"]).to_csv(path, index=False)
    with pytest.raises(TfewError, match=r"broken\.csv: missing result columns \['template'\]"):
        read_predictions([path])


def test_invalid_correct_names_row(tmp_path):
    rows = cell_rows("t-few", "rte", 0, "A", [1, 0, 1], "lm", "scratch")
    frame = pd.DataFrame(rows)
    frame["correct"] = frame["correct"].astype(object)
    frame.loc[1, "correct"] = "maybe"
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(TfewError, match=r"bad\.csv: row 3 has correct='maybe'"):
        read_predictions([path])


def test_integer_correct_outside_zero_one(tmp_path):
    frame = pd.DataFrame(cell_rows("t-few", "rte", 0, "A", [1, 0, 1], "lm", "scratch"))
    frame.loc[0, "correct"] = 2
    path = tmp_path / "two.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(TfewError, match=r"two\.csv: row 2 has correct=.*2"):
        read_predictions([path])

    frame["correct"] = [True, False, True]
    frame.to_csv(path, index=False)
    assert read_predictions([path])["correct"].tolist() == [1, 0, 1]


def test_repeated_file_rejected(tmp_path):
    path = write_predictions(tmp_path, cell_rows("t-few", "rte", 0, "A", [1, 0], "lm", "scratch"), "once")
    with pytest.raises(TfewError, match="pass each prediction file once"):
        read_predictions([path, path])


def test_no_files_rejected():
    with pytest.raises(TfewError, match="no prediction files"):
        read_predictions([])


def test_aggregate_cli_writes_every_table(tmp_path):
    paths = random_run(tmp_path / "predictions")
    out = tmp_path / "aggregate"
    status = main(["aggregate", "--predictions", *map(str, paths), "--out", str(out)])
    assert status == 0
    for name in TABLE_NAMES:
        assert (out / f"{name}.csv").is_file(), name

    tables = read_tables(out)
    per_task = tables["per_task"]
    assert set(per_task["method"]) == {"t-few", "t0-zero-shot", "icl-concat", "icl-ensemble"}
    assert len(per_task) == 8 * 3  # eight conditions on three tasks
    assert (per_task.loc[per_task["method"] == "t0-zero-shot", "seeds"] == 1).all()
    assert (per_task["loss_variant"] == "none").sum() == 3 * 3  # "none" survives the CSV round trip
    assert set(tables["order_sensitivity"]["method"]) == {"icl-concat", "icl-ensemble"}
    assert tables["provenance"]["rows"].sum() == 12 * (5 * 2 * 6 + 1 * 6 + 2 * 2 * 3 * 6)


def test_aggregate_real_predictions(rte_data, tiny_model_dir, tmp_path):
    from tfew.evaluate import evaluate

    predictions = tmp_path / "zero_shot.csv"
    columns = {"method": "t0-zero-shot", "task": "rte", "seed": -1, "loss_variant": "none", "init": "none"}
    evaluate(tiny_model_dir, rte_data / "eval.jsonl", predictions, columns, max_examples=8)
    tables = aggregate([predictions], tmp_path / "aggregate")

    per_task = tables["per_task"].iloc[0]
    assert per_task["templates"] == 10  # RTE's original-task templates
    assert per_task["cells"] == 10
    assert 0.0 <= per_task["median"] <= 1.0
    assert tables["cells"]["examples"].eq(8).all()
    assert tables["provenance"]["model_name"].iloc[0] == pd.read_csv(predictions)["model_name"].iloc[0]


@pytest.fixture(scope="module")
def copa_render_stats(mirror, tmp_path_factory):
    """Render counts of all 12 original COPA templates on the real validation rows, four of which skip rows."""
    from tfew.prepare import prepare_task

    out = tmp_path_factory.mktemp("copa-data")
    prepare_task("copa", [0], out, mirror, templates="original")
    return out / "render_stats.json"


def test_render_counts_join_per_template(copa_render_stats, tmp_path):
    import json

    eval_stats = json.loads(copa_render_stats.read_text())["render_stats"]["eval"]
    effect_only = "…As a result, C1 or C2?"
    rows = cell_rows("t-few", "copa", 0, effect_only, [1, 0], "lm", "scratch")
    rows += cell_rows("t-few", "copa", 0, "best_option", [1, 1], "lm", "scratch")
    paths = [write_predictions(tmp_path, rows, "copa")]

    status = main(["aggregate", "--predictions", *map(str, paths), "--render-counts", str(copa_render_stats),
                   "--out", str(tmp_path / "aggregate")])
    assert status == 0
    table = read_tables(tmp_path / "aggregate")["per_template"].set_index("template")
    assert table.loc[effect_only, "eval_skipped"] == eval_stats[effect_only]["skipped"]
    assert table.loc[effect_only, "eval_skipped"] > 0
    assert table.loc[effect_only, "eval_rows"] == eval_stats[effect_only]["rendered"]
    assert table.loc["best_option", "eval_skipped"] == 0
    assert table.loc["best_option", "eval_rows"] == 100


def test_render_counts_missing_template(copa_render_stats, tmp_path):
    rows = cell_rows("t-few", "copa", 0, "not a copa template", [1, 0], "lm", "scratch")
    paths = [write_predictions(tmp_path, rows, "copa")]
    with pytest.raises(TfewError) as error:
        aggregate(paths, tmp_path / "aggregate", render_counts=[copa_render_stats])
    assert "copa/not a copa template" in str(error.value)
    assert str(copa_render_stats) in str(error.value)
    assert not (tmp_path / "aggregate" / "per_template.csv").exists()


def test_render_counts_of_one_task_twice(copa_render_stats, tmp_path):
    rows = cell_rows("t-few", "copa", 0, "best_option", [1, 1], "lm", "scratch")
    paths = [write_predictions(tmp_path, rows, "copa")]
    both_formats = [copa_render_stats, copa_render_stats.with_name("render_counts.csv")]
    tables = aggregate(paths, tmp_path / "aggregate", render_counts=both_formats)
    assert tables["per_template"]["eval_rows"].tolist() == [100]

    other = tmp_path / "other" / "render_stats.json"
    other.parent.mkdir()
    other.write_text(copa_render_stats.read_text().replace('"rendered": 100', '"rendered": 99', 1))
    with pytest.raises(TfewError) as error:
        aggregate(paths, tmp_path / "aggregate2", render_counts=[copa_render_stats, other])
    assert "different render counts for copa/" in str(error.value)
    assert str(other) in str(error.value)
