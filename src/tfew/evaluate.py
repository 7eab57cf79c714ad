"""Evaluate by rank classification on every template: one result row per (example, template).

Each row keeps the scores and token lengths of all answer choices, the prediction and the label, so every
later number (accuracy under either scoring rule included) can be recomputed from these files. Zero-shot
evaluation is the same command without (IA)^3 vectors. A second, small CSV next to the predictions holds the
accuracy per template.

    tfew evaluate --model results/demo/models/tiny-t0 --data results/demo/data/rte/eval.jsonl \
        --vectors results/demo/train/rte/lm+ul+ln/0/vectors.safetensors --method t-few --task rte \
        --seed 0 --loss-variant lm+ul+ln --init scratch --out predictions.csv
    tfew evaluate --model results/demo/models/tiny-t0 --data results/demo/data/rte/eval.jsonl \
        --method t0-zero-shot --task rte --out zero_shot.csv
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import torch
from tqdm import tqdm

from tfew.data import read_jsonl
from tfew.errors import TfewError
from tfew.ia3 import add_ia3
from tfew.models import load_seq2seq, load_tokenizer, read_model_identity
from tfew.provenance import PROVENANCE_COLUMNS, provenance
from tfew.scoring import choice_scores, choice_token_logprobs, encode_batch, predict
from tfew.train import pick_device
from tfew.vectors_io import load_into, load_vectors

log = logging.getLogger(__name__)

ZERO_SHOT_METHOD = "t0-zero-shot"
VECTOR_METHODS = ("t-few",)  # methods whose rows must come from trained (IA)^3 vectors
RUN_COLUMNS = ["method", "task", "seed", "loss_variant", "init"]
EXAMPLE_FIELDS = ("input", "choices", "label", "template", "example_index")


def read_eval_examples(data_file: Path, task: str | None = None, max_examples: int | None = None) -> list[dict]:
    """Read a rendered evaluation file, keep examples with index below `max_examples`, check the task."""
    examples = read_jsonl(data_file, required_fields=EXAMPLE_FIELDS)
    if task is not None:
        other_tasks = sorted({example["task"] for example in examples if example.get("task", task) != task})
        if other_tasks:
            raise TfewError(f"{data_file} contains rows of task(s) {other_tasks}, but --task is {task!r}")
    if max_examples is not None:
        examples = [example for example in examples if example["example_index"] < max_examples]
    if not examples:
        raise TfewError(f"no evaluation examples in {data_file} (max examples: {max_examples})")
    return examples


def score_examples(model, tokenizer, examples: list[dict], ia3=None, batch_size: int = 16,
                   max_input_length: int = 256, length_normalize: bool = True,
                   autocast_dtype: torch.dtype | None = None, desc: str = "rank classification") -> list[dict]:
    """Score every answer choice of every example by rank classification.

    Returns one dict per example, in input order: `scores` (one per choice), `prediction`, `choice_lengths`
    (target tokens per choice, EOS included), `input_tokens` (after truncation) and `truncated`. Examples are
    batched in order of input length, which cuts padding.
    """
    device = next(model.parameters()).device
    lengths = [len(ids) for ids in tokenizer([example["input"] for example in examples]).input_ids]
    order = sorted(range(len(examples)), key=lambda index: lengths[index])
    results: list[dict | None] = [None] * len(examples)
    for start in tqdm(range(0, len(order), batch_size), desc=desc, disable=None):
        indices = order[start : start + batch_size]
        chunk = [examples[index] for index in indices]
        batch = encode_batch(tokenizer, chunk, max_input_length).to(device)
        with torch.no_grad(), torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            token_logprobs = choice_token_logprobs(model, batch, ia3)
        scores = choice_scores(token_logprobs.float(), batch, length_normalize)
        predictions = predict(scores)
        choice_lengths = batch.choice_mask.sum(dim=1)
        for position, index in enumerate(indices):
            count = len(examples[index]["choices"])
            rows = batch.example_of_row == position
            results[index] = {
                "scores": scores[position, :count].tolist(),
                "prediction": int(predictions[position]),
                "choice_lengths": choice_lengths[rows].tolist(),
                "input_tokens": min(lengths[index], max_input_length),
                "truncated": int(lengths[index] > max_input_length),
            }
    return results


def prediction_rows(examples: list[dict], results: list[dict], shared: dict, length_normalize: bool) -> list[dict]:
    """Build the result rows (the predictions contract) from rendered examples and their scores."""
    rows = []
    for example, result in zip(examples, results):
        rows.append(
            {
                **shared,
                "template": example["template"],
                "template_index": example["template_index"],
                "template_hash": example["template_hash"],
                "promptsource_version": example["promptsource_version"],
                "example_index": example["example_index"],
                "label": example["label"],
                "prediction": result["prediction"],
                "correct": int(result["prediction"] == example["label"]),
                "num_choices": len(example["choices"]),
                "scores": json.dumps([round(score, 6) for score in result["scores"]]),
                "length_normalized": length_normalize,
                "choice_lengths": json.dumps(result["choice_lengths"]),
                "input_tokens": result["input_tokens"],
                "truncated": result["truncated"],
            }
        )
    return rows


def check_method(method: str, vectors_file: Path | None) -> None:
    """Reject a zero-shot run with vectors and a T-Few run without them."""
    if method == ZERO_SHOT_METHOD and vectors_file is not None:
        raise TfewError(f"method {ZERO_SHOT_METHOD} evaluates the backbone alone; drop --vectors {vectors_file}")
    if method in VECTOR_METHODS and vectors_file is None:
        raise TfewError(f"method {method} needs trained (IA)^3 vectors; pass --vectors FILE")


def check_vectors_metadata(vectors_file: Path, info: dict, run_columns: dict, model_identity: dict) -> None:
    """Raise when the vectors' metadata contradicts the run's columns; warn when they name another backbone."""
    expected = {"task": run_columns.get("task"), "seed": run_columns.get("seed"),
                "loss_variant": run_columns.get("loss_variant"), "init": run_columns.get("init")}
    conflicts = [
        f"{name}: vectors {info[name]!r}, command {value!r}"
        for name, value in expected.items()
        if name in info and value is not None and str(info[name]) != str(value)
    ]
    if conflicts:
        raise TfewError(
            f"{vectors_file} was trained for another run ({'; '.join(conflicts)}); pass the matching values or "
            f"the matching vectors file"
        )
    base = info.get("base_model")
    if base and base != model_identity.get("model_name"):
        log.warning("%s was trained on %r but the backbone is %r", vectors_file, base, model_identity.get("model_name"))


def per_template_path(predictions_file: Path) -> Path:
    """Return where the per-template accuracy of a predictions file goes: `<stem>.per_template.csv` beside it."""
    predictions_file = Path(predictions_file)
    return predictions_file.with_name(predictions_file.stem + ".per_template.csv")


def per_template_accuracy(frame: pd.DataFrame, extra_keys: tuple[str, ...] = ()) -> pd.DataFrame:
    """Return accuracy per template (and per `extra_keys`, such as the ICL demonstration order)."""
    keys = [column for column in RUN_COLUMNS if column in frame.columns]
    keys += ["template", "template_index", "template_hash", "promptsource_version", *extra_keys]
    keys += [column for column in PROVENANCE_COLUMNS if column in frame.columns]
    grouped = frame.groupby(keys, dropna=False, sort=False)["correct"]
    # `num_correct`, not `correct`: a per-template file passed where predictions are expected must fail the
    # column check instead of being read as one row per example.
    table = grouped.agg(examples="size", num_correct="sum", accuracy="mean").reset_index()
    return table.sort_values([*extra_keys, "template_index"], kind="stable").reset_index(drop=True)


def write_predictions(frame: pd.DataFrame, out_file: Path, extra_keys: tuple[str, ...] = ()) -> pd.DataFrame:
    """Write the predictions and their per-template accuracy; log the accuracy table."""
    write_csv(frame, out_file)
    accuracy = per_template_accuracy(frame, extra_keys)
    write_csv(accuracy, per_template_path(out_file))
    shown = accuracy[[*extra_keys, "template", "examples", "accuracy"]]
    log.info("accuracy per template (%s):\n%s", out_file, shown.round(4).to_string(index=False))
    return accuracy


def evaluate(model_dir: Path, data_file: Path, out_file: Path, run_columns: dict,
             vectors_file: Path | None = None, batch_size: int = 16, max_examples: int | None = None,
             length_normalize: bool = True, max_input_length: int = 256, device: str = "auto") -> pd.DataFrame:
    """Evaluate one backbone, with (IA)^3 vectors or zero-shot, on a rendered evaluation file; write the rows.

    `run_columns` holds method, task, seed, loss_variant and init, written to every row.
    """
    run_columns = {column: run_columns.get(column, "none") for column in RUN_COLUMNS}
    check_method(run_columns["method"], vectors_file)
    examples = read_eval_examples(data_file, run_columns["task"], max_examples)
    identity = read_model_identity(model_dir)

    torch_device, autocast_dtype = pick_device(device)
    tokenizer = load_tokenizer(model_dir)
    model = load_seq2seq(model_dir).to(torch_device).eval()
    ia3 = None
    if vectors_file is not None:
        vectors, info = load_vectors(vectors_file)
        check_vectors_metadata(vectors_file, info, run_columns, identity)
        ia3 = add_ia3(model, [run_columns["task"]])
        load_into(ia3, vectors, info, vectors_file, identity["model_name"])

    log.info(
        "evaluating %s on %d (example, template) pairs from %s (%s, seed %s)",
        run_columns["method"], len(examples), data_file, run_columns["task"], run_columns["seed"],
    )
    results = score_examples(model, tokenizer, examples, ia3, batch_size, max_input_length, length_normalize,
                             autocast_dtype)
    truncated = sum(result["truncated"] for result in results)
    if truncated:
        log.warning("%d of %d inputs were longer than %d tokens and were truncated", truncated, len(results),
                    max_input_length)

    settings = {**run_columns, "max_examples": max_examples, "length_normalize": length_normalize,
                "max_input_length": max_input_length}
    inputs = [data_file] + ([vectors_file] if vectors_file else [])
    shared = {**run_columns, **provenance(identity, inputs, run_settings=settings)}
    frame = pd.DataFrame(prediction_rows(examples, results, shared, length_normalize))
    write_predictions(frame, out_file)
    return frame


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    """Write a CSV atomically: a killed job never leaves a partial file under the final name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    frame.to_csv(partial, index=False)
    partial.replace(path)
