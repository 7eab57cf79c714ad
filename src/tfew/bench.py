"""Benchmarks for rank-classification scoring: FLOPs of the three scoring methods, mixed-task throughput.

    tfew bench scoring --base-config t0-3b       # FLOPs on T0-3B shapes, counted on the meta device
    tfew bench mixed-batch                       # examples per second on a tiny T5 on CPU

`scoring` counts FLOPs with `torch.utils.flop_counter.FlopCounterMode` while the model runs on the `meta`
device, so T0-3B needs no weights and no memory. The counter counts matrix multiplications and attention only
(2 FLOPs per multiply-add); elementwise work such as the (IA)^3 rescaling is not counted.

`mixed-batch` times one batch whose examples belong to many tasks against the same batch served by one task's
vectors and against the same examples split into one batch per task. Inputs are random token ids, so the
numbers measure compute, not accuracy.
"""

from __future__ import annotations

import logging
import statistics
import time
from dataclasses import dataclass

import torch

from tfew.errors import TfewError
from tfew.ia3 import IA3Model, add_ia3
from tfew.scoring import SCORING_METHODS, ChoiceBatch, choice_token_logprobs

log = logging.getLogger(__name__)

SCORING_DESCRIPTIONS = {
    "reencode": "encoder once per answer choice",
    "repeat": "encoder once per example, states repeated per choice, as in the official T-Few code",
    "shared": "encoder and cross-attention keys and values once per example, the tfew default",
}


@dataclass
class BatchShape:
    """Sizes of a synthetic rank-classification batch."""

    examples: int
    input_tokens: int  # tokens per input, no padding
    choices: tuple[int, ...]  # answer choices per example, cycled over the examples
    choice_tokens: int  # target tokens per answer choice, EOS included


def synthetic_batch(shape: BatchShape, vocab_size: int, device: str = "cpu", seed: int = 0,
                    task_ids: list[int] | None = None) -> ChoiceBatch:
    """Build a ChoiceBatch of random token ids with the given sizes (ids >= 3 avoid pad, EOS and unk)."""
    generator = torch.Generator().manual_seed(seed) if device != "meta" else None
    counts = [shape.choices[index % len(shape.choices)] for index in range(shape.examples)]
    rows = sum(counts)

    def random_ids(*size: int) -> torch.Tensor:
        if generator is None:
            return torch.full(size, 3, dtype=torch.long, device=device)
        return torch.randint(3, vocab_size, size, generator=generator).to(device)

    # Plain lists, because a fake meta tensor cannot compute data-dependent shapes such as repeat_interleave's.
    example_of_row = [example for example, count in enumerate(counts) for _ in range(count)]
    choice_of_row = [choice for count in counts for choice in range(count)]
    return ChoiceBatch(
        input_ids=random_ids(shape.examples, shape.input_tokens),
        attention_mask=torch.ones(shape.examples, shape.input_tokens, dtype=torch.long, device=device),
        choice_ids=random_ids(rows, shape.choice_tokens),
        choice_mask=torch.ones(rows, shape.choice_tokens, dtype=torch.long, device=device),
        example_of_row=torch.tensor(example_of_row, device=device),
        choice_of_row=torch.tensor(choice_of_row, device=device),
        num_choices=torch.tensor(counts, device=device),
        labels=torch.zeros(shape.examples, dtype=torch.long, device=device),
        task_ids=None if task_ids is None else torch.tensor(task_ids, device=device),
    )


def scoring_flops(base_spec: str, shape: BatchShape) -> dict[str, int]:
    """Count the FLOPs of each scoring method on one batch, with the base model on the meta device."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.utils.flop_counter import FlopCounterMode

    from tfew.ia3_formats import build_meta_model, resolve_base_config

    base = resolve_base_config(base_spec)
    model = build_meta_model(base)
    ia3 = add_ia3(model, ["bench"])

    flops = {}
    for method in SCORING_METHODS:
        # FakeTensorMode wraps the meta tensors so that transformers' mask helpers treat them as traced and
        # skip their data-dependent shortcuts (`mask.all()`), which need values that a meta tensor does not have.
        with FakeTensorMode(allow_non_fake_inputs=True):
            batch = synthetic_batch(shape, base.config.vocab_size, device="meta")
            counter = FlopCounterMode(display=False)
            with torch.no_grad(), counter:
                choice_token_logprobs(model, batch, ia3, method)
        flops[method] = int(counter.get_total_flops())
        log.info("%s: %.4e FLOPs", method, flops[method])
    return flops


def format_scoring_report(base_spec: str, shape: BatchShape, flops: dict[str, int]) -> list[str]:
    """Format the FLOPs of each method, ending with the ratio of tfew's method to the official code's."""
    choices = "/".join(str(count) for count in shape.choices)
    lines = [
        f"scoring FLOPs on {base_spec} (meta device): {shape.examples} examples, {shape.input_tokens} input tokens, "
        f"{choices} answer choices of {shape.choice_tokens} tokens"
    ]
    for method in SCORING_METHODS:
        ratio = flops[method] / flops["repeat"]
        lines.append(f"{method:<9} {flops[method]:.4e} FLOPs  {ratio:5.3f}x repeat  ({SCORING_DESCRIPTIONS[method]})")
    lines.append(f"flops_ratio_vs_repeated_encoder={flops['shared'] / flops['repeat']:.3f}")
    return lines


@dataclass
class ThroughputResult:
    """Best seconds per pass over the same examples and examples per second, for each batching, plus the
    median over repeats of the mixed over single-task throughput ratio within one repeat."""

    seconds: dict[str, float]
    examples_per_second: dict[str, float]
    mixed_over_single: float


def mixed_batch_throughput(shape: BatchShape, tasks: int, repeats: int, warmup: int = 3, seed: int = 0,
                           method: str = "shared") -> ThroughputResult:
    """Time rank classification of the same examples as one mixed-task batch, one single-task batch, and
    one batch per task, on a tiny T5 with T0's architecture on CPU."""
    from tfew.models import TinyT5Shape, build_tiny_t5

    if shape.examples % tasks:
        raise TfewError(f"{shape.examples} examples do not split evenly over {tasks} tasks")
    model = build_tiny_t5(TinyT5Shape(dropout_rate=0.0), vocab_size=2000, seed=seed).eval()
    ia3 = add_ia3(model, [f"task{index}" for index in range(tasks)])
    _randomize_vectors(ia3, seed)

    task_of_example = [index % tasks for index in range(shape.examples)]
    mixed = synthetic_batch(shape, 2000, seed=seed, task_ids=task_of_example)
    single = synthetic_batch(shape, 2000, seed=seed)
    per_task = _split_by_task(mixed, task_of_example, tasks)

    def run_mixed() -> None:
        choice_token_logprobs(model, mixed, ia3, method)

    def run_single() -> None:
        ia3.use_task("task0")
        choice_token_logprobs(model, single, ia3, method)

    def run_grouped() -> None:
        for task, batch in enumerate(per_task):
            ia3.use_task(f"task{task}")
            choice_token_logprobs(model, batch, ia3, method)

    runners = {"mixed": run_mixed, "single-task": run_single, "grouped per task": run_grouped}
    timings = {name: [] for name in runners}
    with torch.no_grad():
        for _ in range(warmup):
            for runner in runners.values():
                runner()
        for repeat in range(repeats):
            # Rotating the order spreads drifts of a shared machine evenly over the three batchings.
            names = list(runners)
            names = names[repeat % 3 :] + names[: repeat % 3]
            for name in names:
                started = time.perf_counter()
                runners[name]()
                timings[name].append(time.perf_counter() - started)

    # The best of several runs, as `timeit` recommends: load from other processes only ever adds time. The
    # ratio pairs the two batchings within each repeat, so slow drifts of the machine's load cancel out.
    seconds = {name: min(values) for name, values in timings.items()}
    rates = {name: shape.examples / value for name, value in seconds.items()}
    paired = [single / mixed for single, mixed in zip(timings["single-task"], timings["mixed"])]
    return ThroughputResult(seconds, rates, statistics.median(paired))


def _randomize_vectors(ia3: IA3Model, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in ia3.layers.values():
            layer.ia3_vectors.copy_(0.5 + torch.rand(layer.ia3_vectors.shape, generator=generator))


def _split_by_task(batch: ChoiceBatch, task_of_example: list[int], tasks: int) -> list[ChoiceBatch]:
    """Cut a mixed-task batch into one single-task batch per task, keeping the examples' order."""
    parts = []
    for task in range(tasks):
        examples = torch.tensor([index for index, owner in enumerate(task_of_example) if owner == task])
        rows = torch.isin(batch.example_of_row, examples).nonzero().squeeze(1)
        new_index = torch.full((batch.num_examples,), -1, dtype=torch.long)
        new_index[examples] = torch.arange(len(examples))
        parts.append(ChoiceBatch(
            input_ids=batch.input_ids[examples],
            attention_mask=batch.attention_mask[examples],
            choice_ids=batch.choice_ids[rows],
            choice_mask=batch.choice_mask[rows],
            example_of_row=new_index[batch.example_of_row[rows]],
            choice_of_row=batch.choice_of_row[rows],
            num_choices=batch.num_choices[examples],
            labels=batch.labels[examples],
        ))
    return parts


def format_throughput_report(shape: BatchShape, tasks: int, repeats: int, threads: int,
                             result: ThroughputResult) -> list[str]:
    """Format examples per second per batching, ending with the mixed over single-task ratio."""
    choices = "/".join(str(count) for count in shape.choices)
    lines = [
        f"mixed-task throughput on a tiny T5 (CPU, {threads} thread(s), best of {repeats}): {shape.examples} "
        f"examples over {tasks} tasks, {shape.input_tokens} input tokens, {choices} answer choices of "
        f"{shape.choice_tokens} tokens"
    ]
    for name, rate in result.examples_per_second.items():
        lines.append(f"{name:<17} {rate:10.1f} examples/s  ({result.seconds[name] * 1000:.1f} ms per pass)")
    lines.append("ratio: median over the repeats of single-task seconds / mixed seconds within each repeat")
    lines.append(f"mixed_over_single_task_throughput={result.mixed_over_single:.3f}")
    return lines
