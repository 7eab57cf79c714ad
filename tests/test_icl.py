"""In-context learning baselines on real RTE rows, with the tiny T5 and a tiny GPT-2-shaped model."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
import torch

from tfew.causal import TinyCausalShape, build_tiny_causal, choice_logprobs, encode_prompt, load_causal
from tfew.cli import main, tokenizer_texts
from tfew.data import read_jsonl
from tfew.errors import TfewError
from tfew.evaluate import score_examples
from tfew.icl import IclConfig, demonstration_order, demonstrations_by_template, join_prompt, run_icl, run_order
from tfew.models import load_seq2seq, load_tokenizer

EXAMPLES = 2  # evaluation rows per template (RTE has 10 templates)
EXTRA_COLUMNS = ["demonstrations", "tokens_per_prediction", "order"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def causal_model_dir(rte_data, tmp_path_factory):
    """A tiny GPT-2-shaped model with a byte-level BPE tokenizer trained on the rendered RTE text."""
    out = tmp_path_factory.mktemp("tiny_causal")
    texts = tokenizer_texts([rte_data / "eval.jsonl", rte_data / "few_shot_seed0.jsonl"])
    build_tiny_causal(texts, out, TinyCausalShape(vocab_size=1000, n_positions=512), seed=0)
    return out


def icl_arguments(model_dir, rte_data, out, mode: str, *extra: str) -> list[str]:
    return [
        "icl", "--model", str(model_dir), "--data", str(rte_data / "eval.jsonl"),
        "--train", str(rte_data / "few_shot_seed0.jsonl"), "--task", "rte", "--seed", "0", "--mode", mode,
        "--max-examples", str(EXAMPLES), "--threads", "1", "--out", str(out), *extra,
    ]


@pytest.fixture(scope="module")
def seq2seq_concat(tiny_model_dir, rte_data, tmp_path_factory) -> pd.DataFrame:
    out = tmp_path_factory.mktemp("concat") / "predictions.csv"
    assert main(icl_arguments(tiny_model_dir, rte_data, out, "concat", "--orders", "1")) == 0
    return pd.read_csv(out)


def scores_of(frame: pd.DataFrame) -> np.ndarray:
    return np.array(frame["scores"].map(json.loads).tolist())


def test_concat_rows_and_columns(seq2seq_concat):
    frame = seq2seq_concat
    assert len(frame) == EXAMPLES * 10 * 2
    assert frame.columns[-3:].tolist() == EXTRA_COLUMNS
    assert set(frame["method"]) == {"icl-concat"}
    assert set(frame["loss_variant"]) == {"none"}
    assert set(frame["init"]) == {"none"}
    assert set(frame["seed"]) == {0}
    assert sorted(frame["order"].unique()) == [0, 1]
    assert frame["demonstrations"].between(1, 32).all()
    assert (frame["input_tokens"] <= 512).all()
    lengths = frame["choice_lengths"].map(json.loads).map(sum)
    assert (frame["tokens_per_prediction"] == frame["input_tokens"] + lengths).all()
    assert (scores_of(frame).argmax(axis=1) == frame["prediction"]).all()


def test_concat_fits_as_many_as_possible(tiny_model_dir, rte_data, seq2seq_concat):
    tokenizer = load_tokenizer(tiny_model_dir)
    few_shot = read_jsonl(rte_data / "few_shot_seed0.jsonl")
    texts = demonstrations_by_template(few_shot, " ")
    examples = {(row["template"], row["example_index"]): row for row in read_jsonl(rte_data / "eval.jsonl")}
    for row in seq2seq_concat[seq2seq_concat["order"] == 1].itertuples():
        example = examples[(row.template, row.example_index)]
        ordered = [texts[row.template][index] for index in demonstration_order(list(texts[row.template]), 0, 1)]
        fitted = join_prompt(ordered[: row.demonstrations], example["input"], "\n\n")
        one_more = join_prompt(ordered[: row.demonstrations + 1], example["input"], "\n\n")
        assert len(tokenizer(fitted).input_ids) == row.input_tokens
        assert len(tokenizer(fitted).input_ids) <= 512
        if row.demonstrations < len(ordered):
            assert len(tokenizer(one_more).input_ids) > 512


def test_orders_permute_demonstrations(seq2seq_concat):
    assert demonstration_order(list(range(32)), 0, 0) != demonstration_order(list(range(32)), 0, 1)
    assert demonstration_order(list(range(32)), 0, 1) == demonstration_order(list(range(32)), 0, 1)
    assert sorted(demonstration_order(list(range(32)), 0, 1)) == list(range(32))
    first = seq2seq_concat[seq2seq_concat["order"] == 0]
    second = seq2seq_concat[seq2seq_concat["order"] == 1]
    assert not np.allclose(scores_of(first), scores_of(second))


def test_smaller_context_fewer_demonstrations(tiny_model_dir, rte_data, seq2seq_concat, tmp_path):
    out = tmp_path / "short.csv"
    assert main(icl_arguments(tiny_model_dir, rte_data, out, "concat", "--max-context", "256")) == 0
    short = pd.read_csv(out)
    full = seq2seq_concat[seq2seq_concat["order"] == 0].reset_index(drop=True)
    assert (short["input_tokens"] <= 256).all()
    assert (short["demonstrations"] <= full["demonstrations"]).all()
    assert short["demonstrations"].sum() < full["demonstrations"].sum()


def test_tiny_context_warns_zero_shot(tiny_model_dir, rte_data, tmp_path, caplog):
    out = tmp_path / "tiny-context.csv"
    assert main(icl_arguments(tiny_model_dir, rte_data, out, "concat", "--max-context", "5")) == 0
    frame = pd.read_csv(out)
    assert (frame["demonstrations"] == 0).all()
    assert f"{len(frame)} of {len(frame)} predictions had no demonstration" in caplog.text


def test_demonstrations_from_scored_rows_rejected(tiny_model_dir, rte_data, tmp_path):
    config = IclConfig(mode="concat", seed=0)
    with pytest.raises(TfewError, match="--train and --data are the same file"):
        run_icl(tiny_model_dir, rte_data / "eval.jsonl", rte_data / "eval.jsonl", tmp_path / "same.csv", "rte", config)


def test_concat_same_seed_same_scores(tiny_model_dir, rte_data, seq2seq_concat, tmp_path):
    config = IclConfig(mode="concat", seed=0)
    frame = run_icl(tiny_model_dir, rte_data / "eval.jsonl", rte_data / "few_shot_seed0.jsonl", tmp_path / "again.csv",
                    "rte", config, max_examples=EXAMPLES)
    base = seq2seq_concat[seq2seq_concat["order"] == 0].reset_index(drop=True)
    np.testing.assert_array_equal(scores_of(frame), scores_of(base))


def test_ensemble_averages_one_demonstration_passes(tiny_model_dir, rte_data, tmp_path):
    config = IclConfig(mode="ensemble", seed=0, max_demonstrations=3)
    frame = run_icl(tiny_model_dir, rte_data / "eval.jsonl", rte_data / "few_shot_seed0.jsonl", tmp_path / "e.csv",
                    "rte", config, max_examples=1)
    assert set(frame["method"]) == {"icl-ensemble"}
    assert set(frame["demonstrations"]) == {3}

    # Recompute one template's row by hand: score each single-demonstration prompt, then average.
    row = frame.iloc[0]
    few_shot = read_jsonl(rte_data / "few_shot_seed0.jsonl")
    texts = demonstrations_by_template(few_shot, " ")[row["template"]]
    chosen = demonstration_order(list(texts), 0, 0)[:3]
    example = next(e for e in read_jsonl(rte_data / "eval.jsonl")
                   if e["template"] == row["template"] and e["example_index"] == 0)
    prompts = [{**example, "input": join_prompt([texts[index]], example["input"], "\n\n")} for index in chosen]
    model = load_seq2seq(tiny_model_dir).eval()
    tokenizer = load_tokenizer(tiny_model_dir)
    tokenizer.truncation_side = "left"
    passes = score_examples(model, tokenizer, prompts, max_input_length=512)
    expected = np.mean([result["scores"] for result in passes], axis=0)
    np.testing.assert_allclose(json.loads(row["scores"]), expected, atol=1e-5)
    tokens = sum(result["input_tokens"] + sum(result["choice_lengths"]) for result in passes)
    assert row["tokens_per_prediction"] == tokens


def test_ensemble_orders_need_a_cap(tiny_model_dir, rte_data, tmp_path, caplog):
    config = IclConfig(mode="ensemble", seed=0, orders=2)
    frame = run_icl(tiny_model_dir, rte_data / "eval.jsonl", rte_data / "few_shot_seed0.jsonl", tmp_path / "e.csv",
                    "rte", config, max_examples=1)
    assert set(frame["order"]) == {0}
    assert set(frame["demonstrations"]) == {32}
    assert "ignoring --orders 2" in caplog.text


@pytest.fixture(scope="module")
def causal_concat(causal_model_dir, rte_data, tmp_path_factory) -> pd.DataFrame:
    out = tmp_path_factory.mktemp("causal") / "predictions.csv"
    assert main(icl_arguments(causal_model_dir, rte_data, out, "concat")) == 0
    return pd.read_csv(out)


def test_causal_concat_rows(causal_concat):
    frame = causal_concat
    assert len(frame) == EXAMPLES * 10
    assert set(frame["method"]) == {"icl-concat"}
    assert frame["demonstrations"].between(1, 32).all()
    lengths = frame["choice_lengths"].map(json.loads)
    assert (frame["input_tokens"] + lengths.map(max) <= 512).all()
    assert (frame["tokens_per_prediction"] == frame["input_tokens"] + lengths.map(sum)).all()


def test_causal_scores_match_full_forward(causal_model_dir, rte_data, causal_concat):
    model, tokenizer = load_causal(causal_model_dir)
    model.eval()
    few_shot = read_jsonl(rte_data / "few_shot_seed0.jsonl")
    row = causal_concat.iloc[3]
    texts = demonstrations_by_template(few_shot, " ")[row["template"]]
    ordered = [texts[index] for index in demonstration_order(list(texts), 0, 0)]
    example = next(e for e in read_jsonl(rte_data / "eval.jsonl")
                   if e["template"] == row["template"] and e["example_index"] == row["example_index"])
    prompt = join_prompt(ordered[: row["demonstrations"]], example["input"], "\n\n")
    prompt_ids, choice_ids = encode_prompt(tokenizer, prompt, example["choices"], " ")
    expected = []
    for ids in choice_ids:
        with torch.no_grad():
            logprobs = torch.log_softmax(model(input_ids=torch.tensor([prompt_ids + ids])).logits[0], dim=-1)
        token_logprobs = [logprobs[len(prompt_ids) - 1 + position, token] for position, token in enumerate(ids)]
        expected.append(float(sum(token_logprobs) / len(ids)))
    np.testing.assert_allclose(json.loads(row["scores"]), expected, atol=1e-5)


def test_causal_batch_size_does_not_change_scores(causal_model_dir, rte_data, causal_concat, tmp_path):
    out = tmp_path / "batch1.csv"
    assert main(icl_arguments(causal_model_dir, rte_data, out, "concat", "--batch-size", "1")) == 0
    np.testing.assert_allclose(scores_of(pd.read_csv(out)), scores_of(causal_concat), atol=1e-5)


def test_causal_batch_near_context_end(causal_model_dir):
    """A prompt that nearly fills the context shares a batch with longer choices of another prompt."""
    model, _ = load_causal(causal_model_dir)
    model.eval()
    generator = torch.Generator().manual_seed(0)
    long_prompt = torch.randint(5, 900, (509,), generator=generator).tolist()
    short_prompt = torch.randint(5, 900, (12,), generator=generator).tolist()
    choices = [[[7, 8], [9]], [[11, 12, 13, 14, 15, 16, 17, 18]]]
    batched = choice_logprobs(model, [long_prompt, short_prompt], choices)
    for prompt, options, results in zip([long_prompt, short_prompt], choices, batched):
        for ids, got in zip(options, results):
            with torch.no_grad():
                logprobs = torch.log_softmax(model(input_ids=torch.tensor([prompt + ids])).logits[0], dim=-1)
            expected = torch.stack([logprobs[len(prompt) - 1 + position, token] for position, token in enumerate(ids)])
            torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_causal_ensemble_runs(causal_model_dir, rte_data, tmp_path):
    config = IclConfig(mode="ensemble", seed=0, max_demonstrations=4, orders=1)
    frame = run_icl(causal_model_dir, rte_data / "eval.jsonl", rte_data / "few_shot_seed0.jsonl", tmp_path / "e.csv",
                    "rte", config, max_examples=1)
    assert len(frame) == 10 * 2
    assert set(frame["demonstrations"]) == {4}
    assert sorted(frame["order"].unique()) == [0, 1]
    assert (frame["tokens_per_prediction"] > 4 * frame["choice_lengths"].map(json.loads).map(sum)).all()


def test_context_beyond_model_rejected(causal_model_dir, rte_data, tmp_path):
    config = IclConfig(mode="concat", seed=0, max_context=4096)
    with pytest.raises(TfewError, match="exceeds the model's context length of 512"):
        run_icl(causal_model_dir, rte_data / "eval.jsonl", rte_data / "few_shot_seed0.jsonl", tmp_path / "x.csv",
                "rte", config, max_examples=1)


def test_few_shot_of_other_task_rejected(tiny_model_dir, rte_data, tmp_path):
    config = IclConfig(mode="concat", seed=0)
    with pytest.raises(TfewError, match="but --task is 'cb'"):
        run_icl(tiny_model_dir, rte_data / "eval.jsonl", rte_data / "few_shot_seed0.jsonl", tmp_path / "x.csv",
                "cb", config, max_examples=1)


ORIGINAL_RUN_ORDER = run_order


class KilledAfter(Exception):
    """Raised by the patched scorer to stand in for a job killed by the scheduler."""


def counting_scorer(monkeypatch, fail_after: int | None = None) -> list[int]:
    """Patch tfew.icl.run_order to count its calls and, optionally, raise after `fail_after` of them."""
    import tfew.icl

    calls = []
    real = ORIGINAL_RUN_ORDER

    def scorer(*args, **kwargs):
        if fail_after is not None and len(calls) == fail_after:
            raise KilledAfter()
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(tfew.icl, "run_order", scorer)
    return calls


@pytest.fixture()
def small_chunks(monkeypatch):
    import tfew.icl

    monkeypatch.setattr(tfew.icl, "RESUME_CHUNK", 4)


def run_concat(tiny_model_dir, rte_data, out, orders=1):
    config = IclConfig(mode="concat", seed=0, orders=orders)
    return run_icl(tiny_model_dir, rte_data / "eval.jsonl", rte_data / "few_shot_seed0.jsonl", out, "rte", config,
                   max_examples=EXAMPLES)


def kill_after_chunks(tiny_model_dir, rte_data, out, monkeypatch, chunks: int, orders: int = 1) -> list[int]:
    """Run concatenated ICL until it is killed after `chunks` chunks; return the call counter of the rerun's scorer."""
    counting_scorer(monkeypatch, fail_after=chunks)
    with pytest.raises(KilledAfter):
        run_concat(tiny_model_dir, rte_data, out, orders=orders)
    return counting_scorer(monkeypatch)


def test_killed_icl_resumes_from_chunks(tiny_model_dir, rte_data, tmp_path, monkeypatch, small_chunks):
    from tfew.partial_results import partial_path

    reference = run_concat(tiny_model_dir, rte_data, tmp_path / "reference.csv")
    chunks_per_order = -(-len(reference[reference["order"] == 0]) // 4)

    out = tmp_path / "resumed.csv"
    calls = kill_after_chunks(tiny_model_dir, rte_data, out, monkeypatch, chunks=3)
    assert not out.exists()
    assert len(partial_path(out).read_text().splitlines()) == 1 + 3

    resumed = run_concat(tiny_model_dir, rte_data, out)
    assert len(calls) == 2 * chunks_per_order - 3
    assert not partial_path(out).exists()
    columns = ["template", "example_index", "order", "scores", "demonstrations", "tokens_per_prediction"]
    pd.testing.assert_frame_equal(resumed[columns], reference[columns])


def test_cut_chunk_scored_again(tiny_model_dir, rte_data, tmp_path, monkeypatch, small_chunks, caplog):
    from tfew.partial_results import partial_path

    out = tmp_path / "cut.csv"
    calls = kill_after_chunks(tiny_model_dir, rte_data, out, monkeypatch, chunks=2, orders=0)
    path = partial_path(out)
    path.write_text(path.read_text()[:-40])  # the second chunk's line, cut as by a kill during its write

    resumed = run_concat(tiny_model_dir, rte_data, out, orders=0)
    assert "incomplete chunk from a killed run" in caplog.text
    assert len(calls) == -(-len(resumed) // 4) - 1


def test_partial_results_of_other_settings_rejected(tiny_model_dir, rte_data, tmp_path, monkeypatch, small_chunks):
    from tfew.partial_results import partial_path

    out = tmp_path / "other.csv"
    kill_after_chunks(tiny_model_dir, rte_data, out, monkeypatch, chunks=1)
    config = IclConfig(mode="concat", seed=0, orders=1, max_context=256)
    with pytest.raises(TfewError, match=r"other settings \(max_context: 512 -> 256\); delete it"):
        run_icl(tiny_model_dir, rte_data / "eval.jsonl", rte_data / "few_shot_seed0.jsonl", out, "rte", config,
                max_examples=EXAMPLES)
    assert partial_path(out).exists()


def test_early_failure_leaves_no_file(tiny_model_dir, rte_data, tmp_path, monkeypatch, small_chunks):
    from tfew.partial_results import partial_path

    out = tmp_path / "early.csv"
    kill_after_chunks(tiny_model_dir, rte_data, out, monkeypatch, chunks=0)
    assert not partial_path(out).exists()


@pytest.mark.parametrize("content", ["", '{"sett', "not json\n"])
def test_partial_file_without_header_ignored(tiny_model_dir, rte_data, tmp_path, small_chunks, caplog, content):
    from tfew.partial_results import partial_path

    out = tmp_path / "headless.csv"
    partial_path(out).write_text(content)
    frame = run_concat(tiny_model_dir, rte_data, out, orders=0)
    assert len(frame) == EXAMPLES * 10
    assert "has no complete header" in caplog.text
    assert not partial_path(out).exists()


def test_partial_results_of_other_model_rejected(tiny_model_dir, rte_data, tmp_path, monkeypatch, small_chunks):
    import shutil

    out = tmp_path / "model.csv"
    kill_after_chunks(tiny_model_dir, rte_data, out, monkeypatch, chunks=1)
    other_model = tmp_path / "other-model"
    shutil.copytree(tiny_model_dir, other_model)
    # Same name and bytes, another file: a re-downloaded or rebuilt model is not trusted with old results.
    os.utime(other_model / "model.safetensors", ns=(1, 1))
    with pytest.raises(TfewError) as error:
        run_concat(other_model, rte_data, out)
    assert "(model_files: " in str(error.value)
    assert "chunk:" not in str(error.value)
