"""Rank-classification evaluation on real RTE rows: zero-shot and with (IA)^3 vectors, through the command line."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from tfew.cli import main
from tfew.errors import TfewError
from tfew.evaluate import evaluate, per_template_path
from tfew.provenance import PROVENANCE_COLUMNS
from tfew.vectors_io import save_vectors

CONTRACT_COLUMNS = [
    "method", "task", "seed", "loss_variant", "init", *PROVENANCE_COLUMNS, "template", "template_index",
    "template_hash", "promptsource_version", "example_index", "label", "prediction", "correct", "num_choices",
    "scores", "length_normalized",
]
MAX_EXAMPLES = 6  # rows per template; RTE has 10 original-task templates


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def zero_shot_arguments(model_dir, data_file, out, *extra: str) -> list[str]:
    return [
        "evaluate", "--model", str(model_dir), "--data", str(data_file), "--method", "t0-zero-shot", "--task", "rte",
        "--seed", "-1", "--max-examples", str(MAX_EXAMPLES), "--threads", "1", "--out", str(out), *extra,
    ]


@pytest.fixture(scope="module")
def zero_shot(tiny_model_dir, rte_data, tmp_path_factory) -> pd.DataFrame:
    out = tmp_path_factory.mktemp("zero_shot") / "predictions.csv"
    assert main(zero_shot_arguments(tiny_model_dir, rte_data / "eval.jsonl", out)) == 0
    return pd.read_csv(out), out


@pytest.fixture(scope="module")
def trained_vectors(tiny_model_dir, rte_data, tmp_path_factory):
    """Non-identity vectors: the ones of a fresh (IA)^3 model, each scaled by a different seeded factor."""
    from tfew.ia3 import add_ia3
    from tfew.models import load_seq2seq

    ia3 = add_ia3(load_seq2seq(tiny_model_dir), ["rte"])
    generator = torch.Generator().manual_seed(0)
    vectors = {name: 1 + 0.5 * torch.randn(vector.shape, generator=generator) for name, vector in ia3.vectors(0).items()}
    path = tmp_path_factory.mktemp("vectors") / "vectors.safetensors"
    save_vectors(path, vectors, {"task": "rte", "seed": 0, "loss_variant": "lm+ul+ln", "init": "scratch"})
    return path, vectors


def scores_of(frame: pd.DataFrame) -> np.ndarray:
    return np.array(frame["scores"].map(json.loads).tolist())


def test_zero_shot_rows_follow_contract(zero_shot):
    frame, _ = zero_shot
    assert list(frame.columns[: len(CONTRACT_COLUMNS)]) == CONTRACT_COLUMNS
    assert len(frame) == MAX_EXAMPLES * 10
    assert frame["template"].nunique() == 10
    assert sorted(frame["example_index"].unique()) == list(range(MAX_EXAMPLES))
    assert set(frame["method"]) == {"t0-zero-shot"}
    assert set(frame["seed"]) == {-1}
    assert set(frame["loss_variant"]) == {"none"}
    assert set(frame["init"]) == {"none"}
    assert frame["length_normalized"].all()


def test_prediction_is_best_score(zero_shot):
    frame, _ = zero_shot
    scores = scores_of(frame)
    assert scores.shape == (len(frame), 2)
    assert (scores.argmax(axis=1) == frame["prediction"]).all()
    assert (frame["correct"] == (frame["prediction"] == frame["label"]).astype(int)).all()


def test_summed_scores_recover_normalized(tiny_model_dir, rte_data, zero_shot, tmp_path):
    normalized, _ = zero_shot
    out = tmp_path / "summed.csv"
    arguments = zero_shot_arguments(tiny_model_dir, rte_data / "eval.jsonl", out, "--no-length-normalization")
    assert main(arguments) == 0
    summed = pd.read_csv(out)
    assert not summed["length_normalized"].any()
    lengths = np.array(summed["choice_lengths"].map(json.loads).tolist())
    assert (lengths >= 2).all()  # at least one answer token plus EOS
    np.testing.assert_allclose(scores_of(summed) / lengths, scores_of(normalized), rtol=1e-4, atol=1e-5)


def test_per_template_accuracy_file(zero_shot):
    frame, out = zero_shot
    table = pd.read_csv(per_template_path(out))
    assert per_template_path(out).name == "predictions.per_template.csv"
    assert len(table) == 10
    expected = frame.groupby("template")["correct"].mean()
    for row in table.itertuples():
        assert row.accuracy == pytest.approx(expected[row.template])
        assert row.examples == MAX_EXAMPLES
    assert table["template_index"].tolist() == list(range(10))
    assert set(table["method"]) == {"t0-zero-shot"}
    assert table["git_commit"].notna().all()


def test_vectors_change_scores(tiny_model_dir, rte_data, zero_shot, trained_vectors, tmp_path):
    path, _ = trained_vectors
    frame = evaluate(tiny_model_dir, rte_data / "eval.jsonl", tmp_path / "t-few.csv",
                     {"method": "t-few", "task": "rte", "seed": 0, "loss_variant": "lm+ul+ln", "init": "scratch"},
                     path, max_examples=MAX_EXAMPLES)
    baseline, _ = zero_shot
    assert set(frame["method"]) == {"t-few"}
    assert not np.allclose(scores_of(frame), scores_of(baseline))
    assert "vectors.safetensors:" in frame["data_hashes"].iloc[0]


def test_identity_vectors_equal_zero_shot(tiny_model_dir, rte_data, zero_shot, trained_vectors, tmp_path):
    _, vectors = trained_vectors
    ones = tmp_path / "ones.safetensors"
    save_vectors(ones, {name: torch.ones_like(vector) for name, vector in vectors.items()}, {"task": "rte"})
    frame = evaluate(tiny_model_dir, rte_data / "eval.jsonl", tmp_path / "ones.csv",
                     {"method": "t-few", "task": "rte", "seed": 0, "loss_variant": "lm", "init": "scratch"},
                     ones, max_examples=MAX_EXAMPLES)
    baseline, _ = zero_shot
    np.testing.assert_allclose(scores_of(frame), scores_of(baseline), atol=1e-5)


def test_batch_size_does_not_change_scores(tiny_model_dir, rte_data, zero_shot, tmp_path):
    frame = evaluate(tiny_model_dir, rte_data / "eval.jsonl", tmp_path / "batch1.csv",
                     {"method": "t0-zero-shot", "task": "rte", "seed": -1}, batch_size=1, max_examples=MAX_EXAMPLES)
    baseline, _ = zero_shot
    np.testing.assert_allclose(scores_of(frame), scores_of(baseline), atol=1e-4)
    assert (frame["prediction"] == baseline["prediction"]).all()


def test_long_inputs_truncated_and_counted(tiny_model_dir, rte_data, tmp_path):
    frame = evaluate(tiny_model_dir, rte_data / "eval.jsonl", tmp_path / "short.csv",
                     {"method": "t0-zero-shot", "task": "rte", "seed": -1}, max_examples=2, max_input_length=32)
    assert (frame["input_tokens"] <= 32).all()
    assert frame["truncated"].sum() > 0


def test_method_and_vectors_must_agree(tiny_model_dir, rte_data, trained_vectors, tmp_path):
    path, _ = trained_vectors
    data = rte_data / "eval.jsonl"
    with pytest.raises(TfewError, match="needs trained"):
        evaluate(tiny_model_dir, data, tmp_path / "a.csv", {"method": "t-few", "task": "rte"})
    with pytest.raises(TfewError, match="drop --vectors"):
        evaluate(tiny_model_dir, data, tmp_path / "b.csv", {"method": "t0-zero-shot", "task": "rte"}, path)


def test_vectors_of_other_run_rejected(tiny_model_dir, rte_data, trained_vectors, tmp_path):
    path, _ = trained_vectors
    columns = {"method": "t-few", "task": "rte", "seed": 0, "loss_variant": "lm", "init": "scratch"}
    with pytest.raises(TfewError, match="loss_variant: vectors 'lm\\+ul\\+ln', command 'lm'"):
        evaluate(tiny_model_dir, rte_data / "eval.jsonl", tmp_path / "c.csv", columns, path)


def test_other_task_rejected(tiny_model_dir, rte_data, tmp_path, capsys):
    arguments = zero_shot_arguments(tiny_model_dir, rte_data / "eval.jsonl", tmp_path / "d.csv")
    arguments[arguments.index("--task") + 1] = "cb"
    assert main(arguments) == 2
    assert "contains rows of task(s) ['rte'], but --task is 'cb'" in capsys.readouterr().err
    assert not (tmp_path / "d.csv").exists()
