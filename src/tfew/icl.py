"""In-context learning baselines, built from the same seed's few-shot split as the (IA)^3 runs.

Two ways to put demonstrations in front of an evaluation example, both scored by rank classification:

- `concat`: as many demonstrations as fit into the model's context, concatenated in a seeded order before the
  example (Brown et al. 2020, the GPT-3 setting of Liu et al. 2022, Table 1). Each row records how many fit.
- `ensemble`: one demonstration per forward pass, choice scores averaged over the demonstrations (the T5+LM
  baseline of Liu et al. 2022, Appendix F).

A demonstration is the few-shot example rendered with the evaluation example's template, followed by its
correct answer choice. The seeded base order is order 0; `--orders K` re-runs with K further permutations to
measure order sensitivity. A killed job resumes from its last finished chunk of examples when rerun
(`tfew.partial_results`). Every row also records the tokens processed for its prediction: prompt tokens plus
the target tokens of all answer choices (decoder-only models reuse the prompt's key/value cache across the
choices), summed over forward passes for the ensemble.

    tfew icl --model results/demo/models/tiny-t0 --data results/demo/data/rte/eval.jsonl \
        --train results/demo/data/rte/few_shot_seed0.jsonl --task rte --seed 0 --mode concat --orders 2 \
        --out results/demo/predictions/icl-concat/rte/seed0.csv
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from tfew.causal import choice_logprobs, context_length, encode_prompt, is_encoder_decoder, load_causal
from tfew.data import read_jsonl
from tfew.errors import TfewError
from tfew.evaluate import prediction_rows, read_eval_examples, score_examples, write_predictions
from tfew.models import load_seq2seq, load_tokenizer, read_model_identity
from tfew.partial_results import PartialResults, model_files_signature
from tfew.provenance import provenance
from tfew.train import DEVICES, pick_device

log = logging.getLogger(__name__)

ICL_MODES = ("concat", "ensemble")

# (example, template) pairs scored between two saves of the partial results; a killed job loses at most one chunk.
RESUME_CHUNK = 256

# A tokenizer's model_max_length above this is a placeholder for "no limit" (transformers uses 1e30).
UNSET_MODEL_MAX_LENGTH = 1_000_000
# Context for encoder-decoder models whose tokenizer states no limit: T5's pre-training input length.
DEFAULT_SEQ2SEQ_CONTEXT = 512


@dataclass
class IclConfig:
    """Settings of one in-context learning run."""

    mode: str  # concat or ensemble
    seed: int  # few-shot seed; also seeds the base demonstration order
    orders: int = 0  # extra runs with permuted demonstration orders (order 1..K)
    max_context: int | None = None  # prompt token limit; default: the model's context length
    max_demonstrations: int | None = None  # use at most this many demonstrations (first ones of each order)
    length_normalize: bool = True  # score = mean token log-likelihood of a choice (False: the sum)
    batch_size: int = 8  # prompts per forward pass (encoder-decoder models)
    demonstration_separator: str = "\n\n"  # between demonstrations, and between them and the example
    answer_separator: str = " "  # between a demonstration's input and its answer
    device: str = "auto"

    def validate(self) -> None:
        """Raise TfewError naming the first invalid field."""
        if self.mode not in ICL_MODES:
            raise TfewError(f"unknown ICL mode {self.mode!r}; choose one of {ICL_MODES}")
        if self.orders < 0:
            raise TfewError(f"orders must be 0 or more, got {self.orders}")
        for name in ("max_context", "max_demonstrations"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise TfewError(f"{name} must be at least 1, got {value}")
        if self.batch_size < 1:
            raise TfewError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.device not in DEVICES:
            raise TfewError(f"unknown device {self.device!r}; choose one of {DEVICES}")

    @property
    def method(self) -> str:
        return f"icl-{self.mode}"


def demonstration_order(example_indices: list[int], seed: int, order: int) -> list[int]:
    """Return the few-shot example indices in the order of run `order` (0: the seeded base order)."""
    ordered = sorted(example_indices)
    rng = np.random.default_rng(seed if order == 0 else [seed, order])
    return [ordered[position] for position in rng.permutation(len(ordered))]


def demonstrations_by_template(few_shot_rows: list[dict], answer_separator: str) -> dict[str, dict[int, str]]:
    """Return, per template, each few-shot example's demonstration text: input, separator, correct answer."""
    texts: dict[str, dict[int, str]] = defaultdict(dict)
    for row in few_shot_rows:
        answer = row["choices"][row["label"]]
        texts[row["template"]][row["example_index"]] = row["input"] + answer_separator + answer
    return texts


def join_prompt(demonstrations: list[str], query: str, separator: str) -> str:
    """Concatenate demonstrations and the evaluation input into one prompt."""
    return separator.join([*demonstrations, query])


class Backbone:
    """A model and tokenizer that score answer choices after a prompt; subclasses per architecture."""

    kind = ""

    def __init__(self, model, tokenizer, max_context: int, autocast_dtype):
        self.model = model
        self.tokenizer = tokenizer
        self.max_context = max_context
        self.autocast_dtype = autocast_dtype

    def prompt_tokens(self, prompt: str) -> int:
        """Return the number of tokens the prompt occupies in the model's input."""
        return len(self.tokenizer(prompt, add_special_tokens=True).input_ids)

    def prompt_budget(self, choices: list[str], answer_separator: str) -> int:
        """Return how many prompt tokens fit beside the answer choices."""
        return self.max_context

    def score(self, prompts: list[tuple[str, dict]], config: IclConfig, desc: str) -> list[dict]:
        """Score the answer choices of each (prompt, example) pair; see `evaluate.score_examples` for keys."""
        raise NotImplementedError


class Seq2SeqBackbone(Backbone):
    """T5-family model: the prompt enters the encoder, each answer choice is a decoder target."""

    kind = "encoder-decoder"

    def score(self, prompts, config, desc):
        examples = [{**example, "input": prompt} for prompt, example in prompts]
        results = score_examples(self.model, self.tokenizer, examples, None, config.batch_size, self.max_context,
                                 config.length_normalize, self.autocast_dtype, desc=desc)
        for result in results:
            result["tokens"] = result["input_tokens"] + sum(result["choice_lengths"])
        return results


class CausalBackbone(Backbone):
    """Decoder-only model: each answer choice continues the prompt, which runs once per prediction."""

    kind = "decoder-only"

    def prompt_budget(self, choices, answer_separator):
        longest = max(len(self.tokenizer(answer_separator + choice, add_special_tokens=False).input_ids)
                      for choice in choices)
        return self.max_context - longest

    def score(self, prompts, config, desc):
        encoded = []
        for prompt, example in prompts:
            prompt_ids, choice_ids = encode_prompt(self.tokenizer, prompt, example["choices"], config.answer_separator)
            budget = self.max_context - max(len(ids) for ids in choice_ids)
            truncated = len(prompt_ids) > budget
            if truncated:
                prompt_ids = prompt_ids[len(prompt_ids) - budget :]  # keep the end, where the example is
            encoded.append((prompt_ids, choice_ids, truncated))

        order = sorted(range(len(encoded)), key=lambda index: len(encoded[index][0]))
        results: list[dict | None] = [None] * len(encoded)
        device_type = next(self.model.parameters()).device.type
        for start in tqdm(range(0, len(order), config.batch_size), desc=desc, disable=None):
            indices = order[start : start + config.batch_size]
            with torch.autocast(device_type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None):
                batch_logprobs = choice_logprobs(self.model, [encoded[index][0] for index in indices],
                                                 [encoded[index][1] for index in indices])
            for index, token_logprobs in zip(indices, batch_logprobs):
                results[index] = self._result(encoded[index], token_logprobs, config.length_normalize)
        return results

    @staticmethod
    def _result(encoded, token_logprobs: list[torch.Tensor], length_normalize: bool) -> dict:
        prompt_ids, choice_ids, truncated = encoded
        scores = [
            float(values.sum() / len(values)) if length_normalize else float(values.sum())
            for values in token_logprobs
        ]
        lengths = [len(ids) for ids in choice_ids]
        return {
            "scores": scores,
            "prediction": int(np.argmax(scores)),  # a tie goes to the lowest choice index
            "choice_lengths": lengths,
            "input_tokens": len(prompt_ids),
            "truncated": int(truncated),
            "tokens": len(prompt_ids) + sum(lengths),
        }


def load_backbone(model_dir: Path, max_context: int | None, device: str) -> Backbone:
    """Load a seq2seq (T5, T0, T5+LM) or decoder-only model with its tokenizer, in eval mode."""
    torch_device, autocast_dtype = pick_device(device)
    if is_encoder_decoder(model_dir):
        tokenizer = load_tokenizer(model_dir)
        tokenizer.truncation_side = "left"  # an over-long prompt loses its first demonstration, not the example
        model = load_seq2seq(model_dir).to(torch_device).eval()
        limit = tokenizer.model_max_length
        default = limit if limit < UNSET_MODEL_MAX_LENGTH else DEFAULT_SEQ2SEQ_CONTEXT
        return Seq2SeqBackbone(model, tokenizer, max_context or default, autocast_dtype)
    model, tokenizer = load_causal(model_dir)
    model = model.to(torch_device).eval()
    limit = context_length(model)
    if max_context is not None and max_context > limit:
        raise TfewError(f"--max-context {max_context} exceeds the model's context length of {limit} tokens")
    return CausalBackbone(model, tokenizer, max_context or limit, autocast_dtype)


def fit_demonstrations(backbone: Backbone, demonstrations: list[str], example: dict, config: IclConfig) -> int:
    """Return how many leading demonstrations fit in the context together with the example (binary search)."""
    budget = backbone.prompt_budget(example["choices"], config.answer_separator)
    low, high = 0, len(demonstrations)
    while low < high:
        middle = (low + high + 1) // 2
        prompt = join_prompt(demonstrations[:middle], example["input"], config.demonstration_separator)
        if backbone.prompt_tokens(prompt) <= budget:
            low = middle
        else:
            high = middle - 1
    return low


def run_order(backbone: Backbone, examples: list[dict], demonstrations: dict[str, dict[int, str]],
              order: int, config: IclConfig) -> list[dict]:
    """Score every evaluation example with the demonstrations of one order; return per-example results."""
    orders_by_template = {
        template: demonstration_order(list(texts), config.seed, order)[: config.max_demonstrations]
        for template, texts in demonstrations.items()
    }
    prompts, owners, counts = [], [], []
    for position, example in enumerate(examples):
        chosen = [demonstrations[example["template"]][index] for index in orders_by_template.get(example["template"], [])]
        if config.mode == "concat":
            count = fit_demonstrations(backbone, chosen, example, config)
            prompts.append((join_prompt(chosen[:count], example["input"], config.demonstration_separator), example))
            owners.append(position)
        else:
            count = len(chosen)
            for text in chosen or [None]:
                demonstration = [text] if text is not None else []
                prompts.append((join_prompt(demonstration, example["input"], config.demonstration_separator), example))
                owners.append(position)
        counts.append(count)

    scored = backbone.score(prompts, config, desc=f"{config.method} order {order}")
    return combine_passes(examples, scored, owners, counts)


def combine_passes(examples: list[dict], scored: list[dict], owners: list[int], counts: list[int]) -> list[dict]:
    """Average the choice scores of each example's forward passes and add up their tokens."""
    passes: dict[int, list[dict]] = defaultdict(list)
    for owner, result in zip(owners, scored):
        passes[owner].append(result)
    combined = []
    for position, example in enumerate(examples):
        results = passes[position]
        scores = np.mean([result["scores"] for result in results], axis=0).tolist()
        combined.append({
            "scores": scores,
            "prediction": int(np.argmax(scores)),  # a tie goes to the lowest choice index
            "choice_lengths": results[0]["choice_lengths"],
            "input_tokens": sum(result["input_tokens"] for result in results),
            "truncated": int(any(result["truncated"] for result in results)),
            "demonstrations": counts[position],
            "tokens_per_prediction": sum(result["tokens"] for result in results),
        })
    return combined


def read_demonstrations(train_file: Path, task: str, config: IclConfig) -> dict[str, dict[int, str]]:
    """Read the rendered few-shot split and build the demonstrations of every template."""
    rows = read_jsonl(train_file, required_fields=("input", "choices", "label", "template", "example_index"))
    other_tasks = sorted({row["task"] for row in rows if row.get("task", task) != task})
    if other_tasks:
        raise TfewError(f"{train_file} contains rows of task(s) {other_tasks}, but --task is {task!r}")
    if not rows:
        raise TfewError(f"no few-shot examples in {train_file}; render the split with `tfew data prepare`")
    return demonstrations_by_template(rows, config.answer_separator)


def orders_to_run(config: IclConfig, demonstrations: dict[str, dict[int, str]]) -> list[int]:
    """Return the demonstration orders to score; the ensemble over all demonstrations needs only order 0."""
    largest = max(len(texts) for texts in demonstrations.values())
    uses_all = config.max_demonstrations is None or config.max_demonstrations >= largest
    if config.mode == "ensemble" and config.orders and uses_all:
        log.warning(
            "ignoring --orders %d: the ensemble averages over all %d demonstrations, so their order cannot change "
            "its scores (cap them with --max-demonstrations to compare subsets)", config.orders, largest,
        )
        return [0]
    return list(range(config.orders + 1))


def run_icl(model_dir: Path, data_file: Path, train_file: Path, out_file: Path, task: str, config: IclConfig,
            max_examples: int | None = None) -> pd.DataFrame:
    """Run one in-context learning baseline on a rendered evaluation file and write its prediction rows."""
    config.validate()
    if Path(train_file).resolve() == Path(data_file).resolve():
        raise TfewError(f"--train and --data are the same file ({data_file}); demonstrations must come from the "
                        "few-shot split (few_shot_seed<S>.jsonl), not from the rows being scored")
    examples = read_eval_examples(data_file, task, max_examples)
    demonstrations = read_demonstrations(train_file, task, config)
    missing = sorted({example["template"] for example in examples} - set(demonstrations))
    if missing:
        log.warning("%s: no few-shot rows rendered with template(s) %s; those examples get no demonstrations",
                    task, missing)
    backbone = load_backbone(model_dir, config.max_context, config.device)
    log.info(
        "%s on %s (seed %d): %d evaluation rows, %s model, context %d tokens, up to %d demonstrations",
        config.method, task, config.seed, len(examples), backbone.kind, backbone.max_context,
        max(len(texts) for texts in demonstrations.values()),
    )

    run_columns = {"method": config.method, "task": task, "seed": config.seed, "loss_variant": "none", "init": "none"}
    settings = {**asdict(config), "task": task, "max_examples": max_examples, "max_context": backbone.max_context}
    shared = {**run_columns, **provenance(read_model_identity(model_dir), [data_file, train_file], run_settings=settings)}
    partial_settings = {**settings, "data_hashes": shared["data_hashes"], "model": shared["model_name"],
                        "model_files": model_files_signature(model_dir), "chunk": RESUME_CHUNK}
    partial = PartialResults(out_file, partial_settings)
    partial.load()
    rows = []
    for order in orders_to_run(config, demonstrations):
        results = run_order_in_chunks(backbone, examples, demonstrations, order, config, partial)
        order_rows = prediction_rows(examples, results, shared, config.length_normalize)
        for row, result in zip(order_rows, results):
            row.update(demonstrations=result["demonstrations"], tokens_per_prediction=result["tokens_per_prediction"],
                       order=order)
        rows.extend(order_rows)
        summary = pd.DataFrame(order_rows)
        log.info("order %d: accuracy %.4f, median %d demonstrations, median %d tokens per prediction", order,
                 summary["correct"].mean(), summary["demonstrations"].median(), summary["tokens_per_prediction"].median())
        without = int((summary["demonstrations"] == 0).sum())
        if without:
            log.warning("order %d: %d of %d predictions had no demonstration, because none fits beside the example "
                        "in %d tokens of context; these rows are zero-shot (raise --max-context if the model allows)",
                        order, without, len(summary), backbone.max_context)

    frame = pd.DataFrame(rows)
    write_predictions(frame, out_file, extra_keys=("order",))
    partial.remove()
    return frame


def run_order_in_chunks(backbone: Backbone, examples: list[dict], demonstrations: dict[str, dict[int, str]],
                        order: int, config: IclConfig, partial: PartialResults) -> list[dict]:
    """Score one order chunk by chunk, reusing the chunks a killed attempt finished and saving each new one."""
    results = []
    for start in range(0, len(examples), RESUME_CHUNK):
        chunk = partial.get(order, start)
        if chunk is None:
            chunk = run_order(backbone, examples[start : start + RESUME_CHUNK], demonstrations, order, config)
            partial.add(order, start, chunk)
        results.extend(chunk)
    return results
