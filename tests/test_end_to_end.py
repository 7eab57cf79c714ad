"""Train and evaluate the tiny model on real RTE rows from the mirror, through the command line."""

import json

import pandas as pd
import torch

from tfew.cli import main
from tfew.vectors_io import load_vectors


def test_train_then_evaluate_rte(rte_data, tiny_model_dir, tmp_path):
    train_dir = tmp_path / "train"
    status = main([
        "train", "--model", str(tiny_model_dir), "--train", str(rte_data / "few_shot_seed0.jsonl"),
        "--task", "rte", "--seed", "0", "--steps", "6", "--log-every", "2", "--out", str(train_dir),
    ])
    assert status == 0
    vectors, info = load_vectors(train_dir / "vectors.safetensors")
    assert info["task"] == "rte"
    assert any(not torch.allclose(vector, torch.ones_like(vector)) for vector in vectors.values())

    predictions_file = tmp_path / "predictions.csv"
    status = main([
        "evaluate", "--model", str(tiny_model_dir), "--data", str(rte_data / "eval.jsonl"),
        "--vectors", str(train_dir / "vectors.safetensors"), "--method", "t-few", "--task", "rte",
        "--seed", "0", "--loss-variant", "lm+ul+ln", "--init", "scratch", "--out", str(predictions_file),
    ])
    assert status == 0
    predictions = pd.read_csv(predictions_file)
    assert len(predictions) == 24 * 10  # 24 rows x 10 original-task RTE templates
    assert predictions["template"].nunique() == 10
    scores = predictions["scores"].map(json.loads)
    assert (scores.map(len) == 2).all()
    best = scores.map(lambda values: max(range(len(values)), key=values.__getitem__))
    assert (best == predictions["prediction"]).all()
    assert set(predictions["label"]) <= {0, 1}
    for column in ("git_commit", "model_name", "data_hashes", "promptsource_version", "template_hash"):
        assert predictions[column].notna().all(), column


def test_training_lowers_loss(rte_data, tiny_model_dir, tmp_path):
    from tfew.train import TrainConfig, train

    config = TrainConfig(steps=40, loss="lm", lr=3e-2, log_every=10, warmup_ratio=0.0)
    train(tiny_model_dir, rte_data / "few_shot_seed0.jsonl", tmp_path, "rte", config)
    history = pd.read_csv(tmp_path / "train_log.csv")
    assert history["lm"].iloc[-10:].mean() < history["lm"].iloc[:10].mean()
