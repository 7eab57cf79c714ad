"""A missing mirror file or an unreachable hub dataset gives one clear error naming it and the fix."""

import time

import pytest

from tfew.cli import main
from tfew.data import load_few_shot, load_split, load_split_from_hub, read_jsonl
from tfew.errors import DataNotFoundError, RowValidationError
from tfew.tasks import get_task


def test_missing_mirror_split_names_file(tmp_path):
    with pytest.raises(DataNotFoundError) as error:
        load_split(get_task("rte"), "validation", tmp_path)
    message = str(error.value)
    assert str(tmp_path / "datasets" / "aps/super_glue" / "rte" / "validation.jsonl") in message
    assert "tfew data export" in message


def test_missing_few_shot_names_file(tmp_path):
    with pytest.raises(DataNotFoundError) as error:
        load_few_shot(get_task("cb"), 0, tmp_path)
    assert "few_shot/cb/32_shot/0_seed.jsonl" in str(error.value)


def test_offline_hub_fails_fast_with_dataset_name():
    started = time.monotonic()
    with pytest.raises(DataNotFoundError) as error:
        load_split_from_hub(get_task("rte"), "validation")
    assert time.monotonic() - started < 20
    assert "aps/super_glue" in str(error.value)
    assert "network" in str(error.value)


def test_cli_reports_missing_mirror(tmp_path, capsys):
    status = main(["data", "prepare", "--task", "rte", "--seeds", "0", "--mirror", str(tmp_path), "--out", str(tmp_path / "out")])
    assert status == 2
    assert "not found in the offline mirror" in capsys.readouterr().err


def test_malformed_jsonl_names_line(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"label": 0}\n{"label": \n')
    with pytest.raises(RowValidationError) as error:
        read_jsonl(path)
    assert f"{path}:2" in str(error.value)


def test_missing_field_names_field(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"premise": "a"}\n')
    with pytest.raises(RowValidationError) as error:
        read_jsonl(path, required_fields=("label",))
    assert "'label'" in str(error.value) and ":1:" in str(error.value)
