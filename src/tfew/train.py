"""Train (IA)^3 vectors with the T-Few recipe on a few-shot split.

Defaults follow Liu et al. 2022, Section 3.5, and the official `configs/ia3.json`: Adafactor at lr 3e-3,
1000 steps, batch 8, linear decay after a 6% warmup, gradient clipping at 1.0, inputs truncated to 256 tokens
and a random original-task template per example per step.

Batches and dropout masks are pure functions of (seed, step), so a run resumed from a checkpoint ends with the
same vectors as an uninterrupted one.

    tfew train --model results/demo/model --train results/demo/data/rte/few_shot_seed0.jsonl \
        --task rte --seed 0 --loss lm+ul+ln --steps 1000 --out results/demo/train/rte/lm+ul+ln/0
"""

from __future__ import annotations

import csv
import logging
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from tfew.data import read_jsonl
from tfew.errors import TfewError
from tfew.ia3 import add_ia3
from tfew.models import load_seq2seq, load_tokenizer, read_model_identity
from tfew.scoring import LOSS_VARIANTS, choice_token_logprobs, encode_batch, tfew_losses
from tfew.vectors_io import load_vectors, save_vectors

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """The T-Few recipe; every default is the paper's setting."""

    steps: int = 1000  # optimizer steps
    batch_size: int = 8  # examples per optimizer step
    grad_accumulation: int = 1  # micro-batches per step; batch_size must be divisible by it
    lr: float = 3e-3  # Adafactor learning rate, relative_step off
    warmup_ratio: float = 0.06  # fraction of steps with linear warmup, then linear decay to zero
    max_grad_norm: float = 1.0  # gradient clipping
    max_input_length: int = 256  # tokens; longer inputs are truncated
    loss: str = "lm+ul+ln"  # one of LOSS_VARIANTS
    seed: int = 0
    log_every: int = 10  # steps between log lines
    checkpoint_every: int = 100  # steps between resumable checkpoints
    scoring_method: str = "shared"

    def validate(self) -> None:
        if self.loss not in LOSS_VARIANTS:
            raise TfewError(f"unknown loss variant {self.loss!r}; choose one of {sorted(LOSS_VARIANTS)}")
        if self.steps < 1 or self.batch_size < 1:
            raise TfewError(f"steps ({self.steps}) and batch size ({self.batch_size}) must be positive")
        if self.batch_size % self.grad_accumulation:
            raise TfewError(
                f"batch size {self.batch_size} is not divisible by gradient accumulation {self.grad_accumulation}"
            )


def pick_device() -> tuple[torch.device, torch.dtype | None]:
    """Return the device and the autocast dtype: bf16 on GPUs that support it, none (fp32) otherwise."""
    if torch.cuda.is_available():
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else None
        return torch.device("cuda"), dtype
    return torch.device("cpu"), None


def group_by_example(rendered: list[dict]) -> list[list[dict]]:
    """Group rendered rows (one per example and template) into one list of renderings per example."""
    groups: dict[int, list[dict]] = defaultdict(list)
    for row in rendered:
        groups[row["example_index"]].append(row)
    return [groups[index] for index in sorted(groups)]


def batch_for_step(examples: list[list[dict]], config: TrainConfig, step: int) -> list[dict]:
    """Draw the batch of one step: an endless stream of seeded epoch permutations, a random template each.

    A few-shot set smaller than the batch simply wraps into the next permutation.
    """
    start = step * config.batch_size
    batch = []
    template_rng = np.random.default_rng([config.seed, step, 1])
    for position in range(start, start + config.batch_size):
        epoch, offset = divmod(position, len(examples))
        order = np.random.default_rng([config.seed, epoch, 0]).permutation(len(examples))
        renderings = examples[order[offset]]
        batch.append(renderings[template_rng.integers(len(renderings))])
    return batch


def _lr_lambda(config: TrainConfig):
    warmup = int(config.warmup_ratio * config.steps)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (config.steps - step) / max(1, config.steps - warmup))

    return factor


def _make_optimizer(parameters, config: TrainConfig):
    from transformers.optimization import Adafactor

    optimizer = Adafactor(
        parameters,
        lr=config.lr,
        relative_step=False,
        warmup_init=False,
        scale_parameter=True,
        weight_decay=0.0,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(config))
    return optimizer, scheduler


def _save_checkpoint(path: Path, step: int, ia3, optimizer, scheduler, history: list[dict]) -> None:
    state = {
        "step": step,
        "vectors": ia3.vectors(0),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "history": history,
    }
    partial = path.with_name(path.name + ".partial")
    torch.save(state, partial)
    partial.replace(path)


def train(
    model_dir: Path,
    train_file: Path,
    out_dir: Path,
    task: str,
    config: TrainConfig,
    init_vectors: Path | None = None,
    max_steps_this_run: int | None = None,
) -> Path:
    """Train (IA)^3 vectors and write `vectors.safetensors` and `train_log.csv` to `out_dir`.

    `max_steps_this_run` stops early after that many steps (for tests of resumption); the checkpoint stays.
    """
    config.validate()
    out_dir.mkdir(parents=True, exist_ok=True)
    device, autocast_dtype = pick_device()
    examples = group_by_example(read_jsonl(train_file, required_fields=("input", "choices", "label", "example_index")))
    if not examples:
        raise TfewError(f"no training examples in {train_file}")

    tokenizer = load_tokenizer(model_dir)
    model = load_seq2seq(model_dir).to(device)
    model.train()
    ia3 = add_ia3(model, [task])
    if init_vectors is not None:
        vectors, _ = load_vectors(init_vectors)
        ia3.load_vectors(vectors)
        log.info("initialised (IA)^3 vectors from %s", init_vectors)

    optimizer, scheduler = _make_optimizer(ia3.trainable_parameters(), config)
    use_ul, use_ln = LOSS_VARIANTS[config.loss]
    checkpoint = out_dir / "checkpoint.pt"
    history: list[dict] = []
    first_step = 0
    if checkpoint.is_file():
        state = torch.load(checkpoint, weights_only=False, map_location=device)
        ia3.load_vectors(state["vectors"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        history = state["history"]
        first_step = state["step"]
        log.info("resumed %s seed %d from step %d (%s)", task, config.seed, first_step, checkpoint)

    log.info(
        "training (IA)^3 on %s: %d examples, seed %d, loss %s, %d steps, device %s",
        task, len(examples), config.seed, config.loss, config.steps, device,
    )
    micro_batch = config.batch_size // config.grad_accumulation
    last_step = config.steps if max_steps_this_run is None else min(config.steps, first_step + max_steps_this_run)
    started = time.perf_counter()
    progress = tqdm(range(first_step, last_step), desc=f"train {task} seed {config.seed}", disable=None)
    for step in progress:
        torch.manual_seed(config.seed * 1_000_003 + step)  # dropout masks depend on (seed, step) only
        batch_examples = batch_for_step(examples, config, step)
        totals = defaultdict(float)
        for start in range(0, config.batch_size, micro_batch):
            batch = encode_batch(tokenizer, batch_examples[start : start + micro_batch], config.max_input_length).to(device)
            with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                token_logprobs = choice_token_logprobs(model, batch, ia3, config.scoring_method)
            terms = tfew_losses(token_logprobs, batch, use_ul=use_ul, use_ln=use_ln)
            loss = terms.total / config.grad_accumulation
            if not torch.isfinite(loss):
                raise TfewError(
                    f"non-finite loss {loss.item()} at step {step} (task {task}, seed {config.seed}, "
                    f"loss variant {config.loss}); lower the learning rate or check the inputs"
                )
            loss.backward()
            for name in ("lm", "ul", "ln"):
                totals[name] += getattr(terms, name).item() / config.grad_accumulation

        torch.nn.utils.clip_grad_norm_(ia3.trainable_parameters(), config.max_grad_norm)
        lr = scheduler.get_last_lr()[0]
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)

        record = {"step": step + 1, "loss": sum(totals.values()), **totals, "lr": lr}
        history.append(record)
        if (step + 1) % config.log_every == 0 or step + 1 == config.steps:
            rate = (step + 1 - first_step) / (time.perf_counter() - started)
            log.info(
                "step %d/%d loss %.4f (lm %.4f ul %.4f ln %.4f) lr %.2e %.2f steps/s",
                step + 1, config.steps, record["loss"], totals["lm"], totals["ul"], totals["ln"], lr, rate,
            )
        if (step + 1) % config.checkpoint_every == 0 or step + 1 == last_step:
            _save_checkpoint(checkpoint, step + 1, ia3, optimizer, scheduler, history)

    if last_step < config.steps:
        log.info("stopped at step %d of %d; rerun to resume from %s", last_step, config.steps, checkpoint)
        return checkpoint

    _write_history(out_dir / "train_log.csv", history)
    identity = read_model_identity(model_dir)
    save_vectors(
        out_dir / "vectors.safetensors",
        ia3.vectors(0),
        {"task": task, "base_model": identity["model_name"], "base_revision": identity["model_revision"],
         "train_config": asdict(config), "init_vectors": str(init_vectors) if init_vectors else None},
    )
    log.info("saved (IA)^3 vectors to %s", out_dir / "vectors.safetensors")
    return out_dir / "vectors.safetensors"


def _write_history(path: Path, history: list[dict]) -> None:
    partial = path.with_name(path.name + ".partial")
    with open(partial, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["step", "loss", "lm", "ul", "ln", "lr"])
        writer.writeheader()
        for record in history:
            writer.writerow({key: record.get(key, 0.0) for key in writer.fieldnames})
    partial.replace(path)
