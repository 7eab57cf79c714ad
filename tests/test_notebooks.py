"""The analysis notebooks: paired with their jupytext scripts, committed without outputs, and runnable."""

from pathlib import Path

import jupytext
import nbformat
import pytest
from jupytext.compare import compare_notebooks

from result_tables import random_run
from tfew.cli import main
from tfew.report import CHANCE_WARNING, REPORT_FIGURES, REPORT_TABLES, SIGNIFICANCE_REPORT_TABLES, TABLE_FORMATS

ANALYSIS = Path(__file__).resolve().parents[1] / "analysis"
NOTEBOOKS = sorted(ANALYSIS.glob("*.ipynb"))


def test_every_notebook_has_a_script():
    assert {path.stem for path in NOTEBOOKS} == {"paper_report", "significance"}
    for notebook in NOTEBOOKS:
        assert notebook.with_suffix(".py").is_file(), notebook.name


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda path: path.name)
def test_pair_in_sync(notebook):
    from_ipynb = jupytext.read(notebook)
    from_script = jupytext.read(notebook.with_suffix(".py"))
    compare_notebooks(from_script, from_ipynb, fmt="py:percent")
    assert from_ipynb.metadata["jupytext"]["formats"] == "ipynb,py:percent"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda path: path.name)
def test_committed_without_outputs(notebook):
    content = nbformat.read(notebook, as_version=4)
    for cell in content.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], cell.source[:60]
            assert cell.execution_count is None, cell.source[:60]


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda path: path.name)
def test_parameters_cell(notebook):
    content = nbformat.read(notebook, as_version=4)
    tagged = [cell for cell in content.cells if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1
    for name in ("results_dir", "figures_dir", "run_name", "model_kind", "model_description"):
        assert f"{name} = " in tagged[0].source, name


@pytest.mark.slow
def test_notebooks_run_with_papermill(tmp_path):
    paths = random_run(tmp_path / "predictions")
    results = tmp_path / "results"
    assert main(["aggregate", "--predictions", *map(str, paths), "--out", str(results / "aggregate")]) == 0
    assert main(["significance", "--predictions", *map(str, paths), "--out", str(results / "significance"),
                 "--permutations", "99", "--bootstrap-resamples", "100"]) == 0

    figures = tmp_path / "figures"
    parameters = ["-p", "results_dir", str(results), "-p", "figures_dir", str(figures), "-p", "run_name", "synthetic",
                  "-p", "model_kind", "tiny", "-p", "model_description", "tiny random T5", "-p", "config_hash", "c0ffee"]
    executed = {}
    for name, extra in (("paper_report", ["-p", "costs_file", str(tmp_path / "no_costs.csv")]), ("significance", [])):
        out = tmp_path / f"{name}.ipynb"
        assert main(["notebook", "--notebook", str(ANALYSIS / f"{name}.ipynb"), "--out", str(out), *parameters, *extra]) == 0
        executed[name] = out.read_text()

    for name in REPORT_TABLES + SIGNIFICANCE_REPORT_TABLES:
        for suffix in TABLE_FORMATS:
            assert (figures / f"{name}.{suffix}").is_file(), f"{name}.{suffix}"
    for name in REPORT_FIGURES:
        assert (figures / f"{name}.pdf").is_file(), name
    for text in executed.values():
        assert "c0ffee" in text
        assert CHANCE_WARNING.split(".")[0] in text
    assert "No cost table" in executed["paper_report"]
