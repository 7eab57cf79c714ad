"""Provenance: every output row names the code, config, model, data, template and run that produced it."""

from __future__ import annotations

import subprocess

import pandas as pd
import pytest
import torch

from tfew import __version__, provenance
from tfew.data import read_jsonl, sha256_of
from tfew.evaluate import evaluate
from tfew.icl import IclConfig, run_icl
from tfew.prompts import promptsource_version
from tfew.train import TrainConfig, train

from conftest import PROJECT_ROOT

RUN_COLUMNS = ["method", "task", "seed", "loss_variant", "init"]
ROW_COLUMNS = ["template", "template_index", "template_hash", "promptsource_version"]


@pytest.fixture(autouse=True)
def fresh_commit_cache():
    provenance.git_commit.cache_clear()
    yield
    provenance.git_commit.cache_clear()


@pytest.fixture(scope="module")
def outputs(tiny_model_dir, rte_data, tmp_path_factory, monkeypatch_module):
    """A training log, T-Few predictions, zero-shot predictions and ICL predictions of one run."""
    monkeypatch_module.setenv(provenance.CONFIG_HASH_ENV, "feedc0ffee123456")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("provenance")
    config = TrainConfig(steps=2, batch_size=2, loss="lm+ul")
    train(tiny_model_dir, rte_data / "few_shot_seed0.jsonl", out / "train", "rte", config)
    columns = {"method": "t-few", "task": "rte", "seed": 0, "loss_variant": "lm+ul", "init": "scratch"}
    t_few = evaluate(tiny_model_dir, rte_data / "eval.jsonl", out / "t-few.csv", columns,
                     out / "train" / "vectors.safetensors", max_examples=2)
    zero_shot = evaluate(tiny_model_dir, rte_data / "eval.jsonl", out / "zero.csv",
                         {"method": "t0-zero-shot", "task": "rte", "seed": -1}, max_examples=2)
    icl = run_icl(tiny_model_dir, rte_data / "eval.jsonl", rte_data / "few_shot_seed0.jsonl", out / "icl.csv", "rte",
                  IclConfig(mode="concat", seed=0), max_examples=1)
    torch.set_num_threads(threads)
    return {"train_log": pd.read_csv(out / "train" / "train_log.csv"), "t-few": t_few, "t0-zero-shot": zero_shot,
            "icl-concat": icl, "dir": out}


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True).stdout.strip()


def test_git_commit_of_checkout(monkeypatch):
    monkeypatch.delenv(provenance.GIT_COMMIT_ENV, raising=False)
    commit = provenance.git_commit()
    head = git("rev-parse", "HEAD")
    dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    assert commit == (f"{head}-dirty" if dirty else head)


def test_git_commit_from_environment(monkeypatch):
    monkeypatch.setenv(provenance.GIT_COMMIT_ENV, "0123abcd")
    assert provenance.git_commit() == "0123abcd"


def test_config_hash_prefers_workflow(monkeypatch):
    settings = {"method": "t-few", "seed": 0}
    monkeypatch.delenv(provenance.CONFIG_HASH_ENV, raising=False)
    own = provenance.run_config_hash(settings)
    assert len(own) == 16
    assert own == provenance.run_config_hash(dict(reversed(list(settings.items()))))
    assert own != provenance.run_config_hash({**settings, "seed": 1})
    assert provenance.run_config_hash(None) == ""
    monkeypatch.setenv(provenance.CONFIG_HASH_ENV, "abc")
    assert provenance.run_config_hash(settings) == "abc"


def test_file_hashes(rte_data):
    files = [rte_data / "eval.jsonl", rte_data / "few_shot_seed0.jsonl"]
    expected = ";".join(f"{path.name}:{sha256_of(path)[:16]}" for path in files)
    assert provenance.file_hashes(files) == expected


@pytest.mark.parametrize("method", ["t-few", "t0-zero-shot", "icl-concat"])
def test_prediction_rows_carry_provenance(outputs, rte_data, method):
    frame = outputs[method]
    for column in RUN_COLUMNS + provenance.PROVENANCE_COLUMNS + ROW_COLUMNS:
        assert column in frame.columns, column
        assert frame[column].notna().all(), column
        assert (frame[column].astype(str) != "").all(), column
    assert set(frame["method"]) == {method}
    assert set(frame["tfew_version"]) == {__version__}
    assert set(frame["config_hash"]) == {"feedc0ffee123456"}
    assert set(frame["model_name"]) == {"tiny-t5"}
    assert set(frame["promptsource_version"]) == {promptsource_version()}
    assert frame["data_hashes"].iloc[0].startswith(f"eval.jsonl:{sha256_of(rte_data / 'eval.jsonl')[:16]}")


def test_rows_name_their_template(outputs, rte_data):
    rendered = {(row["template"], row["example_index"]): row for row in read_jsonl(rte_data / "eval.jsonl")}
    for row in outputs["t-few"].itertuples():
        source = rendered[(row.template, row.example_index)]
        assert row.template_hash == source["template_hash"]
        assert row.template_index == source["template_index"]
        assert row.label == source["label"]


def test_vectors_hash_in_t_few_rows(outputs):
    vectors = outputs["dir"] / "train" / "vectors.safetensors"
    assert f"vectors.safetensors:{sha256_of(vectors)[:16]}" in outputs["t-few"]["data_hashes"].iloc[0]
    assert "few_shot_seed0.jsonl:" in outputs["icl-concat"]["data_hashes"].iloc[0]


def test_train_log_carries_provenance(outputs):
    log = outputs["train_log"]
    for column in ["task", "seed", "loss_variant", "init", *provenance.PROVENANCE_COLUMNS, "promptsource_version"]:
        assert log[column].notna().all(), column
    assert set(log["loss_variant"]) == {"lm+ul"}
    assert set(log["config_hash"]) == {"feedc0ffee123456"}
