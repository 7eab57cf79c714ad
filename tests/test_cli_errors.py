"""Mistakes on the `tfew` command line end in one `tfew: error:` line that names the value and the fix."""

from __future__ import annotations

import pytest

from tfew.cli import main


def run_failing(argv: list[str], capsys) -> str:
    """Run a command that must fail with exit status 2 and return its stderr."""
    assert main(argv) == 2
    stderr = capsys.readouterr().err
    assert stderr.count("tfew: error:") == 1
    assert "Traceback" not in stderr
    return stderr


def evaluate_args(model, data, *extra: str) -> list[str]:
    return ["evaluate", "--model", str(model), "--data", str(data), "--method", "t0-zero-shot", "--task", "rte",
            "--max-examples", "1", *extra]


def test_evaluate_missing_model_folder(rte_data, tmp_path, capsys):
    missing = tmp_path / "no-model"
    stderr = run_failing(evaluate_args(missing, rte_data / "eval.jsonl", "--out", str(tmp_path / "p.csv")), capsys)
    assert str(missing) in stderr
    assert "tfew model tiny" in stderr


def test_evaluate_empty_model_folder(rte_data, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    stderr = run_failing(evaluate_args(empty, rte_data / "eval.jsonl", "--out", str(tmp_path / "p.csv")), capsys)
    assert "config.json is missing" in stderr


def test_evaluate_model_without_tokenizer(tiny_model_dir, rte_data, tmp_path, capsys):
    model_only = tmp_path / "model-only"
    model_only.mkdir()
    for name in ("config.json", "model.safetensors"):
        (model_only / name).write_bytes((tiny_model_dir / name).read_bytes())
    stderr = run_failing(evaluate_args(model_only, rte_data / "eval.jsonl", "--out", str(tmp_path / "p.csv")),
                         capsys)
    assert f"no tokenizer in {model_only}" in stderr


@pytest.mark.parametrize("name", ["missing.jsonl", ""])
def test_evaluate_unreadable_data(tiny_model_dir, tmp_path, capsys, name):
    data = tmp_path / name  # "" names the folder itself
    stderr = run_failing(evaluate_args(tiny_model_dir, data, "--out", str(tmp_path / "p.csv")), capsys)
    assert str(data) in stderr
    assert "tfew data prepare" in stderr


@pytest.mark.parametrize("option, value", [("--batch-size", "0"), ("--max-input-length", "0"),
                                           ("--max-examples", "0"), ("--threads", "-2")])
def test_evaluate_bad_number(tiny_model_dir, rte_data, tmp_path, capsys, option, value):
    out = tmp_path / "p.csv"
    stderr = run_failing(evaluate_args(tiny_model_dir, rte_data / "eval.jsonl", option, value, "--out", str(out)),
                         capsys)
    assert f"{option} must be" in stderr
    assert value in stderr
    assert not out.exists()


def test_evaluate_unknown_method(tiny_model_dir, rte_data, tmp_path, capsys):
    argv = evaluate_args(tiny_model_dir, rte_data / "eval.jsonl", "--out", str(tmp_path / "p.csv"))
    argv[argv.index("t0-zero-shot")] = "foo"
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert "invalid choice: 'foo'" in capsys.readouterr().err


def test_zero_shot_rejects_training_labels(tiny_model_dir, rte_data, tmp_path, capsys):
    argv = evaluate_args(tiny_model_dir, rte_data / "eval.jsonl", "--seed", "5", "--init", "pretrained",
                         "--out", str(tmp_path / "p.csv"))
    stderr = run_failing(argv, capsys)
    assert "--seed 5" in stderr
    assert "--init pretrained" in stderr
    assert "--loss-variant" not in stderr.split(";")[0]


def test_prepare_rejects_repeated_seed(mirror, tmp_path, capsys):
    argv = ["data", "prepare", "--task", "rte", "--seeds", "0", "42", "0", "--mirror", str(mirror),
            "--out", str(tmp_path / "rte")]
    stderr = run_failing(argv, capsys)
    assert "--seeds lists [0] more than once" in stderr


def test_prepare_rejects_zero_eval_examples(mirror, tmp_path, capsys):
    argv = ["data", "prepare", "--task", "rte", "--seeds", "0", "--mirror", str(mirror), "--max-eval-examples", "0",
            "--out", str(tmp_path / "rte")]
    stderr = run_failing(argv, capsys)
    assert "--max-eval-examples must be a positive integer, got 0" in stderr
    assert not (tmp_path / "rte" / "eval.jsonl").exists()


def test_aggregate_missing_predictions(tmp_path, capsys):
    missing = tmp_path / "missing.csv"
    stderr = run_failing(["aggregate", "--predictions", str(missing), "--out", str(tmp_path / "agg")], capsys)
    assert str(missing) in stderr


def test_tiny_model_vocabulary_too_small(rte_data, tmp_path, capsys):
    argv = ["model", "tiny", "--texts", str(rte_data / "eval.jsonl"), "--vocab-size", "10",
            "--out", str(tmp_path / "model")]
    stderr = run_failing(argv, capsys)
    assert "vocabulary of 10 pieces" in stderr
    assert "raise --vocab-size" in stderr


def test_convert_official_checkpoint_as_tfew(tmp_path, capsys):
    checkpoint = tmp_path / "t03b_ia3_finish.pt"
    checkpoint.write_bytes(b"PK\x03\x04 not a safetensors header")
    argv = ["ia3", "convert", str(checkpoint), str(tmp_path / "out"), "--from", "tfew", "--to", "peft",
            "--base-config", "t0-3b"]
    stderr = run_failing(argv, capsys)
    assert f"{checkpoint} is not a readable safetensors file" in stderr
    assert "--from t-few|peft" in stderr


@pytest.mark.parametrize("seed", ["-1", "4294967296", "zero"])
def test_seed_outside_numpy_range(rte_data, tiny_model_dir, tmp_path, capsys, seed):
    argv = ["train", "--model", str(tiny_model_dir), "--train", str(rte_data / "few_shot_seed0.jsonl"), "--task", "rte",
            "--seed", seed, "--out", str(tmp_path / "train")]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    stderr = capsys.readouterr().err
    assert f"argument --seed: invalid seed {seed}" in stderr or f"invalid seed '{seed}'" in stderr
    assert not (tmp_path / "train").exists()


def test_prepare_unpublished_seed_writes_nothing(mirror, tmp_path, capsys):
    out = tmp_path / "rte"
    argv = ["data", "prepare", "--task", "rte", "--seeds", "0", "7", "--mirror", str(mirror), "--max-eval-examples",
            "2", "--out", str(out)]
    stderr = run_failing(argv, capsys)
    assert "7" in stderr
    assert not (out / "eval.jsonl").exists()
    assert not (out / "few_shot_seed0.jsonl").exists()
