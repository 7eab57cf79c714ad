"""The T-Few training runner on the tiny T5 and real RTE few-shot rows: recipe, resume, determinism, failures."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from tfew.cli import main
from tfew.data import read_jsonl, write_jsonl
from tfew.errors import TfewError
from tfew.train import TrainConfig, batch_for_step, group_by_example, make_optimizer, pick_device, train
from tfew.vectors_io import load_vectors, save_vectors

# Small enough for seconds per run on one CPU core; checkpoints land inside the run.
CONFIG = TrainConfig(steps=8, batch_size=4, checkpoint_every=3, log_every=2, lr=3e-2, warmup_ratio=0.25)
METRICS = ["step", "loss", "lm", "ul", "ln", "lr", "grad_norm"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # CPU results are bit-identical only for a fixed thread count, and one thread also keeps torch from
    # oversubscribing cores that other jobs share.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def few_shot_file(rte_data) -> Path:
    return rte_data / "few_shot_seed0.jsonl"


@pytest.fixture(scope="module")
def reference_run(tiny_model_dir, few_shot_file, tmp_path_factory):
    """An uninterrupted run of CONFIG: its vectors and per-step log."""
    out = tmp_path_factory.mktemp("reference")
    train(tiny_model_dir, few_shot_file, out, "rte", replace(CONFIG))
    vectors, info = load_vectors(out / "vectors.safetensors")
    return {"dir": out, "vectors": vectors, "info": info, "log": pd.read_csv(out / "train_log.csv")}


def assert_same_vectors(first: dict, second: dict) -> None:
    assert sorted(first) == sorted(second)
    for name in first:
        assert torch.equal(first[name], second[name]), name


def test_reference_run_outputs(reference_run):
    out = reference_run["dir"]
    assert (out / "vectors.safetensors").is_file()
    assert (out / "vectors.json").is_file()
    assert not (out / "checkpoint.pt").exists()
    log = reference_run["log"]
    assert log["step"].tolist() == list(range(1, CONFIG.steps + 1))
    assert np.isfinite(log[["loss", "lm", "ul", "ln", "grad_norm"]].to_numpy()).all()
    assert (log["lm"] > 0).all()
    assert (log["ln"] > 0).all()
    assert (log[["task", "loss_variant", "init"]].drop_duplicates().to_numpy() == [["rte", "lm+ul+ln", "scratch"]]).all()
    assert any(not torch.allclose(vector, torch.ones_like(vector)) for vector in reference_run["vectors"].values())


def test_metadata_records_run(reference_run):
    info = reference_run["info"]
    assert info["task"] == "rte"
    assert info["seed"] == 0
    assert info["loss_variant"] == "lm+ul+ln"
    assert info["init"] == "scratch"
    assert info["train_config"]["steps"] == CONFIG.steps
    assert info["provenance"]["data_hashes"].startswith("few_shot_seed0.jsonl:")


def test_same_seed_same_vectors(tiny_model_dir, few_shot_file, reference_run, tmp_path):
    train(tiny_model_dir, few_shot_file, tmp_path, "rte", replace(CONFIG))
    vectors, _ = load_vectors(tmp_path / "vectors.safetensors")
    assert_same_vectors(vectors, reference_run["vectors"])
    log = pd.read_csv(tmp_path / "train_log.csv")
    pd.testing.assert_frame_equal(log[METRICS], reference_run["log"][METRICS])


def test_other_seed_other_vectors(tiny_model_dir, few_shot_file, reference_run, tmp_path):
    train(tiny_model_dir, few_shot_file, tmp_path, "rte", replace(CONFIG, seed=1))
    vectors, _ = load_vectors(tmp_path / "vectors.safetensors")
    assert any(not torch.equal(vectors[name], reference_run["vectors"][name]) for name in vectors)


def test_stopped_run_resumes_exactly(tiny_model_dir, few_shot_file, reference_run, tmp_path):
    stopped = train(tiny_model_dir, few_shot_file, tmp_path, "rte", replace(CONFIG), max_steps_this_run=5)
    assert stopped == tmp_path / "checkpoint.pt"
    assert stopped.is_file()
    assert not (tmp_path / "vectors.safetensors").exists()

    train(tiny_model_dir, few_shot_file, tmp_path, "rte", replace(CONFIG))
    vectors, _ = load_vectors(tmp_path / "vectors.safetensors")
    assert_same_vectors(vectors, reference_run["vectors"])
    log = pd.read_csv(tmp_path / "train_log.csv")
    pd.testing.assert_frame_equal(log[METRICS], reference_run["log"][METRICS])
    assert not (tmp_path / "checkpoint.pt").exists()


LONG_STEPS = 40  # long enough that a signal sent at the first checkpoint arrives before the run ends


def long_run_arguments(model_dir: Path, few_shot_file: Path, out: Path) -> list[str]:
    return [
        "train", "--model", str(model_dir), "--train", str(few_shot_file), "--task", "rte", "--seed", "0",
        "--steps", str(LONG_STEPS), "--batch-size", "2", "--checkpoint-every", "2", "--lr", "0.03",
        "--threads", "1", "--out", str(out),
    ]


@pytest.fixture(scope="module")
def long_reference(tiny_model_dir, few_shot_file, tmp_path_factory) -> dict:
    """An uninterrupted run of LONG_STEPS steps through the command line."""
    out = tmp_path_factory.mktemp("long_reference")
    assert main(long_run_arguments(tiny_model_dir, few_shot_file, out)) == 0
    vectors, _ = load_vectors(out / "vectors.safetensors")
    return vectors


@pytest.fixture()
def sigterm_ignored_outside_training():
    """Make a SIGTERM that arrives after training has ended harmless to the test process."""
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: None)
    yield
    signal.signal(signal.SIGTERM, previous)


def test_killed_run_resumes_exactly(tiny_model_dir, few_shot_file, long_reference, tmp_path):
    """SIGKILL a `tfew train` process after its first checkpoint; the rerun ends with the uninterrupted vectors."""
    arguments = long_run_arguments(tiny_model_dir, few_shot_file, tmp_path)
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    process = subprocess.Popen([sys.executable, "-m", "tfew.cli", *arguments], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env=environment)
    checkpoint = tmp_path / "checkpoint.pt"
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert not (tmp_path / "vectors.safetensors").exists()
    saved_step = torch.load(checkpoint, weights_only=True)["step"]
    assert 0 < saved_step < LONG_STEPS

    assert main(arguments) == 0
    resumed, _ = load_vectors(tmp_path / "vectors.safetensors")
    assert_same_vectors(resumed, long_reference)
    assert len(pd.read_csv(tmp_path / "train_log.csv")) == LONG_STEPS


def test_sigterm_checkpoints_then_resumes(tiny_model_dir, few_shot_file, long_reference, tmp_path,
                                          sigterm_ignored_outside_training):
    """SIGTERM, which schedulers send before a kill, stops the run after the current step with a checkpoint."""
    checkpoint = tmp_path / "checkpoint.pt"

    def send_sigterm_after_first_checkpoint():
        deadline = time.monotonic() + 120
        while not checkpoint.exists() and time.monotonic() < deadline:
            time.sleep(0.005)
        os.kill(os.getpid(), signal.SIGTERM)

    sender = threading.Thread(target=send_sigterm_after_first_checkpoint)
    sender.start()
    status = main(long_run_arguments(tiny_model_dir, few_shot_file, tmp_path))
    sender.join()
    assert status == 2
    assert not (tmp_path / "vectors.safetensors").exists()
    stopped_step = torch.load(checkpoint, weights_only=True)["step"]
    assert 0 < stopped_step < LONG_STEPS

    assert main(long_run_arguments(tiny_model_dir, few_shot_file, tmp_path)) == 0
    resumed, _ = load_vectors(tmp_path / "vectors.safetensors")
    assert_same_vectors(resumed, long_reference)


def test_nan_loss_names_step_task_seed(tiny_model_dir, few_shot_file, tmp_path):
    """A checkpoint whose vectors turned NaN makes the next step's loss NaN; the error names step, task, seed."""
    train(tiny_model_dir, few_shot_file, tmp_path, "rte", replace(CONFIG), max_steps_this_run=3)
    checkpoint = tmp_path / "checkpoint.pt"
    state = torch.load(checkpoint, weights_only=True)
    first = sorted(state["vectors"])[0]
    state["vectors"][first][0] = float("nan")
    torch.save(state, checkpoint)

    with pytest.raises(TfewError) as error:
        train(tiny_model_dir, few_shot_file, tmp_path, "rte", replace(CONFIG))
    message = str(error.value)
    assert "non-finite loss" in message
    assert "at step 4 of 8" in message
    assert "task rte" in message
    assert "seed 0" in message
    assert not (tmp_path / "vectors.safetensors").exists()


def test_nan_initial_vectors_rejected(tiny_model_dir, few_shot_file, reference_run, tmp_path):
    vectors = {name: vector.clone() for name, vector in reference_run["vectors"].items()}
    first = sorted(vectors)[0]
    vectors[first][1] = float("inf")
    save_vectors(tmp_path / "bad.safetensors", vectors, {"task": "rte"})
    with pytest.raises(TfewError, match="NaN or infinite"):
        train(tiny_model_dir, few_shot_file, tmp_path / "out", "rte", replace(CONFIG), tmp_path / "bad.safetensors")


def test_pretrained_init_starts_from_vectors(tiny_model_dir, few_shot_file, reference_run, tmp_path):
    init = reference_run["dir"] / "vectors.safetensors"
    one_step = replace(CONFIG, steps=1, lr=1e-6, warmup_ratio=0.0)
    train(tiny_model_dir, few_shot_file, tmp_path, "rte", one_step, init_vectors=init)
    vectors, info = load_vectors(tmp_path / "vectors.safetensors")
    assert info["init"] == "pretrained"
    assert info["init_vectors"] == str(init)
    for name, vector in vectors.items():
        assert torch.allclose(vector, reference_run["vectors"][name], atol=1e-3), name
    log = pd.read_csv(tmp_path / "train_log.csv")
    assert log["init"].tolist() == ["pretrained"]


def test_init_vectors_of_other_backbone_rejected(tiny_model_dir, few_shot_file, reference_run, tmp_path):
    vectors = {name.replace("block.0.", "block.7."): vector for name, vector in reference_run["vectors"].items()}
    other = tmp_path / "other.safetensors"
    save_vectors(other, vectors, {"task": "rte", "base_model": "bigscience/T0_3B"})
    with pytest.raises(TfewError) as error:
        train(tiny_model_dir, few_shot_file, tmp_path / "out", "rte", replace(CONFIG), other)
    assert "do not fit this model" in str(error.value)
    assert "trained on bigscience/T0_3B" in str(error.value)
    assert str(other) in str(error.value)


def test_init_vectors_other_format_rejected(tiny_model_dir, few_shot_file, tmp_path):
    official = tmp_path / "t03b_ia3_finish.pt"
    official.write_bytes(b"")
    with pytest.raises(TfewError, match="tfew ia3 convert"):
        train(tiny_model_dir, few_shot_file, tmp_path / "out", "rte", replace(CONFIG), official)


@pytest.fixture(scope="module")
def dropout_free_model(tiny_model_dir, tmp_path_factory) -> Path:
    """The tiny T5 with dropout off, so micro-batched and whole batches see the same network."""
    copy = tmp_path_factory.mktemp("no_dropout") / "model"
    shutil.copytree(tiny_model_dir, copy)
    config_file = copy / "config.json"
    config = json.loads(config_file.read_text())
    config["dropout_rate"] = 0.0
    config_file.write_text(json.dumps(config))
    return copy


@pytest.mark.parametrize("accumulation", [2, 4])
def test_accumulation_matches_whole_batch(dropout_free_model, few_shot_file, tmp_path, accumulation):
    settings = replace(CONFIG, steps=3, batch_size=4)
    train(dropout_free_model, few_shot_file, tmp_path / "whole", "rte", settings)
    train(dropout_free_model, few_shot_file, tmp_path / "split", "rte", replace(settings, grad_accumulation=accumulation))
    whole, _ = load_vectors(tmp_path / "whole" / "vectors.safetensors")
    split, _ = load_vectors(tmp_path / "split" / "vectors.safetensors")
    for name in whole:
        assert torch.allclose(whole[name], split[name], atol=1e-5), name
    whole_log = pd.read_csv(tmp_path / "whole" / "train_log.csv")
    split_log = pd.read_csv(tmp_path / "split" / "train_log.csv")
    np.testing.assert_allclose(whole_log[["lm", "ul", "ln"]], split_log[["lm", "ul", "ln"]], rtol=1e-5)


def test_few_shot_set_smaller_than_batch(tiny_model_dir, few_shot_file, tmp_path):
    rows = [row for row in read_jsonl(few_shot_file) if row["example_index"] < 3]
    small = tmp_path / "three_examples.jsonl"
    write_jsonl(small, rows)
    train(tiny_model_dir, small, tmp_path / "out", "rte", replace(CONFIG, steps=3, batch_size=8))
    log = pd.read_csv(tmp_path / "out" / "train_log.csv")
    assert len(log) == 3
    assert np.isfinite(log["loss"]).all()

    examples = group_by_example(rows)
    batch = batch_for_step(examples, replace(CONFIG, batch_size=8), step=0)
    assert len(batch) == 8
    counts = pd.Series([row["example_index"] for row in batch]).value_counts()
    assert sorted(counts.index) == [0, 1, 2]
    assert counts.max() - counts.min() <= 1  # whole passes over the set, then a partial one


def test_batches_sample_templates_per_example(few_shot_file):
    examples = group_by_example(read_jsonl(few_shot_file))
    config = replace(CONFIG, batch_size=8)
    templates_of_example = {}
    for step in range(40):
        for row in batch_for_step(examples, config, step):
            templates_of_example.setdefault(row["example_index"], set()).add(row["template"])
    assert len(templates_of_example) == 32
    assert all(len(templates) >= 3 for templates in templates_of_example.values())
    assert batch_for_step(examples, config, 7) == batch_for_step(examples, config, 7)
    assert batch_for_step(examples, config, 7) != batch_for_step(examples, replace(config, seed=1), 7)


def test_epoch_visits_every_example_once(few_shot_file):
    examples = group_by_example(read_jsonl(few_shot_file))
    config = replace(CONFIG, batch_size=8)
    first_epoch = [row["example_index"] for step in range(4) for row in batch_for_step(examples, config, step)]
    assert sorted(first_epoch) == list(range(32))


def test_recipe_defaults():
    config = TrainConfig()
    assert (config.steps, config.batch_size, config.lr) == (1000, 8, 3e-3)
    assert config.warmup_steps == 60
    assert config.max_grad_norm == 1.0
    assert config.max_input_length == 256
    assert config.loss == "lm+ul+ln"


def test_adafactor_and_schedule():
    parameter = torch.nn.Parameter(torch.ones(4))
    optimizer, scheduler = make_optimizer([parameter], TrainConfig(steps=100))
    assert type(optimizer).__name__ == "Adafactor"
    assert optimizer.defaults["relative_step"] is False
    assert optimizer.defaults["warmup_init"] is False
    assert optimizer.defaults["lr"] == 3e-3
    rates = []
    for _ in range(100):
        rates.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    assert rates[0] == 0.0
    assert rates[6] == pytest.approx(3e-3)
    assert max(rates) == pytest.approx(3e-3)
    assert all(later <= earlier for earlier, later in zip(rates[6:], rates[7:]))
    assert rates[53] == pytest.approx(3e-3 * (100 - 53) / 94)


def test_gradients_clipped(reference_run):
    # grad_norm is the norm before clipping; with the paper's max norm 1.0 the tiny model's norms exceed it.
    assert (reference_run["log"]["grad_norm"] > CONFIG.max_grad_norm).any()


def test_log_lines_report_terms(tiny_model_dir, few_shot_file, tmp_path, caplog):
    caplog.set_level("INFO", logger="tfew.train")
    train(tiny_model_dir, few_shot_file, tmp_path, "rte", replace(CONFIG, steps=4, log_every=2))
    lines = [record.getMessage() for record in caplog.records if "steps/s" in record.getMessage()]
    assert len(lines) == 2
    for name in ("step 2/4", "lm ", "ul ", "ln ", "lr ", "grad norm"):
        assert name in lines[0]


def test_checkpoint_of_other_settings_rejected(tiny_model_dir, few_shot_file, tmp_path):
    train(tiny_model_dir, few_shot_file, tmp_path, "rte", replace(CONFIG), max_steps_this_run=3)
    with pytest.raises(TfewError, match=r"other settings \(loss: 'lm\+ul\+ln' -> 'lm'\)"):
        train(tiny_model_dir, few_shot_file, tmp_path, "rte", replace(CONFIG, loss="lm"))


def test_truncated_checkpoint_rejected(tiny_model_dir, few_shot_file, tmp_path):
    train(tiny_model_dir, few_shot_file, tmp_path, "rte", replace(CONFIG), max_steps_this_run=3)
    checkpoint = tmp_path / "checkpoint.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:100])
    with pytest.raises(TfewError) as error:
        train(tiny_model_dir, few_shot_file, tmp_path, "rte", replace(CONFIG))
    assert f"checkpoint {checkpoint} cannot be read" in str(error.value)
    assert "delete it to restart" in str(error.value)


def test_rows_of_other_task_rejected(tiny_model_dir, few_shot_file, tmp_path):
    with pytest.raises(TfewError, match="contains rows of task\\(s\\) \\['rte'\\], but --task is 'cb'"):
        train(tiny_model_dir, few_shot_file, tmp_path, "cb", replace(CONFIG))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"loss": "lm+xx"}, "unknown loss variant"),
        ({"batch_size": 8, "grad_accumulation": 3}, "not divisible"),
        ({"steps": 0}, "steps must be at least 1"),
        ({"warmup_ratio": 1.0}, "warmup_ratio"),
        ({"device": "tpu"}, "unknown device"),
    ],
)
def test_invalid_config_rejected(change, message):
    with pytest.raises(TfewError, match=message):
        replace(CONFIG, **change).validate()


def test_cpu_runs_in_fp32(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert pick_device("auto") == (torch.device("cpu"), None)
    with pytest.raises(TfewError, match="no CUDA GPU"):
        pick_device("cuda")
