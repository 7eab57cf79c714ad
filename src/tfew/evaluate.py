"""Evaluate by rank classification on every template: one result row per (example, template).

Each row keeps the scores of all answer choices, the prediction and the label, so every later number can be
recomputed from these files. Zero-shot evaluation is the same command without (IA)^3 vectors.

    tfew evaluate --model results/demo/model --data results/demo/data/rte/eval.jsonl \
        --vectors results/demo/train/rte/lm+ul+ln/0/vectors.safetensors --out predictions.csv
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
from tfew.provenance import provenance
from tfew.scoring import choice_scores, choice_token_logprobs, encode_batch, predict
from tfew.train import pick_device
from tfew.vectors_io import load_vectors

log = logging.getLogger(__name__)


def score_examples(model, tokenizer, examples: list[dict], ia3=None, batch_size: int = 16,
                   max_input_length: int = 256, length_normalize: bool = True) -> list[dict]:
    """Score every answer choice of every example; return per-example scores and predictions."""
    device = next(model.parameters()).device
    results = []
    for start in tqdm(range(0, len(examples), batch_size), desc="rank classification", disable=None):
        chunk = examples[start : start + batch_size]
        batch = encode_batch(tokenizer, chunk, max_input_length).to(device)
        with torch.no_grad():
            token_logprobs = choice_token_logprobs(model, batch, ia3)
        scores = choice_scores(token_logprobs, batch, length_normalize)
        predictions = predict(scores)
        for index, example in enumerate(chunk):
            count = len(example["choices"])
            results.append(
                {"scores": scores[index, :count].tolist(), "prediction": int(predictions[index])}
            )
    return results


def evaluate(model_dir: Path, data_file: Path, out_file: Path, run_columns: dict,
             vectors_file: Path | None = None, batch_size: int = 16, max_examples: int | None = None,
             length_normalize: bool = True) -> pd.DataFrame:
    """Evaluate one model (with or without vectors) on a rendered evaluation file and write the rows."""
    examples = read_jsonl(data_file, required_fields=("input", "choices", "label", "template", "example_index"))
    if max_examples is not None:
        examples = [example for example in examples if example["example_index"] < max_examples]
    if not examples:
        raise TfewError(f"no evaluation examples in {data_file}")

    device, _ = pick_device()
    tokenizer = load_tokenizer(model_dir)
    model = load_seq2seq(model_dir).to(device).eval()
    ia3 = None
    if vectors_file is not None:
        vectors, _ = load_vectors(vectors_file)
        ia3 = add_ia3(model, [run_columns.get("task", "task")])
        ia3.load_vectors(vectors)

    log.info("evaluating %d (example, template) pairs from %s", len(examples), data_file)
    scored = score_examples(model, tokenizer, examples, ia3, batch_size, length_normalize=length_normalize)

    inputs = [data_file] + ([vectors_file] if vectors_file else [])
    shared = {**run_columns, **provenance(read_model_identity(model_dir), inputs)}
    rows = []
    for example, result in zip(examples, scored):
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
            }
        )
    frame = pd.DataFrame(rows)
    write_csv(frame, out_file)
    accuracy = frame.groupby("template")["correct"].mean()
    log.info("accuracy per template:\n%s", accuracy.round(4).to_string())
    return frame


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    """Write a CSV atomically: a killed job never leaves a partial file under the final name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    frame.to_csv(partial, index=False)
    partial.replace(path)
