"""Train (IA)^3 vectors with the T-Few recipe on a few-shot split.

Defaults follow Liu et al. 2022, Section 3.5, and the official `configs/ia3.json` and `Config.py`. The optimizer
is Adafactor at lr 3e-3 (relative_step and warmup_init off) for 1000 steps of batch 8, with linear decay after a
6% warmup and gradient clipping at norm 1.0. Inputs are truncated to 256 tokens, and each example gets a random
original-task template at every step.

Batches, template choices and dropout masks are pure functions of (seed, step), and a checkpoint holds the
vectors, the optimizer and scheduler states and the loss history, so a run resumed from its checkpoint ends
with the same vectors as an uninterrupted one. That holds bit for bit on CPU with the same number of torch
threads (the thread count changes the order of floating-point sums); GPU kernels may differ in the last bits.

    tfew train --model results/demo/models/tiny-t0 --train results/demo/data/rte/few_shot_seed0.jsonl \
        --task rte --seed 0 --loss lm+ul+ln --steps 1000 --batch-size 8 --out results/demo/train/rte/0

Outputs in `--out`: `vectors.safetensors` (+ `.json` metadata), `train_log.csv` (one row per step), and
`checkpoint.pt` while the run is unfinished.
"""

from __future__ import annotations

import csv
import logging
import pickle
import signal
import threading
import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from tfew.data import read_jsonl, sha256_of
from tfew.errors import TfewError
from tfew.ia3 import add_ia3
from tfew.models import load_seq2seq, load_tokenizer, read_model_identity
from tfew.provenance import provenance
from tfew.scoring import LOSS_VARIANTS, SCORING_METHODS, ChoiceBatch, choice_token_logprobs, encode_batch, tfew_losses
from tfew.vectors_io import load_into, load_vectors, save_vectors

log = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda", "mps")

# Fields that do not change the trained vectors, so a checkpoint written under other values still resumes.
RESUME_NEUTRAL_FIELDS = ("log_every", "checkpoint_every", "device")


@dataclass
class TrainConfig:
    """The T-Few recipe; every default is the paper's setting (Liu et al. 2022, Section 3.5)."""

    steps: int = 1000  # optimizer steps
    batch_size: int = 8  # examples per optimizer step
    grad_accumulation: int = 1  # micro-batches per step; batch_size must be divisible by it
    lr: float = 3e-3  # Adafactor learning rate with relative_step=False and warmup_init=False
    warmup_ratio: float = 0.06  # fraction of steps with linear warmup, then linear decay to zero
    max_grad_norm: float = 1.0  # gradient clipping by global L2 norm (official Config.py grad_clip_norm)
    max_input_length: int = 256  # tokens; longer inputs are truncated on the right
    loss: str = "lm+ul+ln"  # one of LOSS_VARIANTS
    seed: int = 0  # training seed; the paper uses the few-shot seed
    log_every: int = 10  # steps between log lines
    checkpoint_every: int = 100  # steps between resumable checkpoints
    scoring_method: str = "shared"  # how decoder rows reuse the encoder; see tfew.scoring.SCORING_METHODS
    device: str = "auto"  # auto picks cuda, then mps, then cpu

    def validate(self) -> None:
        """Raise TfewError naming the first invalid field."""
        if self.loss not in LOSS_VARIANTS:
            raise TfewError(f"unknown loss variant {self.loss!r}; choose one of {sorted(LOSS_VARIANTS)}")
        for name in ("steps", "batch_size", "grad_accumulation", "max_input_length", "log_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise TfewError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.batch_size % self.grad_accumulation:
            raise TfewError(
                f"batch size {self.batch_size} is not divisible by gradient accumulation {self.grad_accumulation}; "
                f"pick an accumulation that divides the batch size"
            )
        if not self.lr > 0 or not self.max_grad_norm > 0:
            raise TfewError(f"lr ({self.lr}) and max_grad_norm ({self.max_grad_norm}) must be positive")
        if not 0 <= self.warmup_ratio < 1:
            raise TfewError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.scoring_method not in SCORING_METHODS:
            raise TfewError(f"unknown scoring method {self.scoring_method!r}; choose one of {SCORING_METHODS}")
        if self.device not in DEVICES:
            raise TfewError(f"unknown device {self.device!r}; choose one of {DEVICES}")

    @property
    def warmup_steps(self) -> int:
        return int(self.warmup_ratio * self.steps)

    def recipe(self) -> dict:
        """Return the fields that determine the trained vectors (checked when a run resumes)."""
        return {key: value for key, value in asdict(self).items() if key not in RESUME_NEUTRAL_FIELDS}


def pick_device(requested: str = "auto") -> tuple[torch.device, torch.dtype | None]:
    """Return the device and the autocast dtype: bf16 on CUDA GPUs that support it, None (fp32) otherwise.

    fp16 is not offered because T5's activations overflow in fp16, which turns losses into NaN.
    """
    if requested not in DEVICES:
        raise TfewError(f"unknown device {requested!r}; choose one of {DEVICES}")
    if requested in ("auto", "cuda") and torch.cuda.is_available():
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else None
        return torch.device("cuda"), dtype
    if requested == "cuda":
        raise TfewError("--device cuda was requested but torch sees no CUDA GPU; use --device cpu or auto")
    mps_available = torch.backends.mps.is_available()
    if requested == "mps" and not mps_available:
        raise TfewError("--device mps was requested but this torch build has no MPS support; use --device cpu")
    if requested == "mps" or (requested == "auto" and mps_available):
        return torch.device("mps"), None
    return torch.device("cpu"), None


def group_by_example(rendered: list[dict]) -> list[list[dict]]:
    """Group rendered rows (one per example and template) into one list of renderings per example."""
    groups: dict[int, list[dict]] = defaultdict(list)
    for row in rendered:
        groups[row["example_index"]].append(row)
    return [groups[index] for index in sorted(groups)]


def epoch_order(num_examples: int, seed: int, epoch: int) -> np.ndarray:
    """Return the seeded permutation of the few-shot examples used in one pass over them."""
    return np.random.default_rng([seed, epoch, 0]).permutation(num_examples)


def batch_for_step(examples: list[list[dict]], config: TrainConfig, step: int) -> list[dict]:
    """Draw the batch of one step: positions in an endless stream of seeded epoch permutations.

    Each example then gets one of its templates at random. A few-shot set smaller than the batch wraps into
    the next permutation, so a batch may hold the same example twice (under different templates, likely).
    """
    template_rng = np.random.default_rng([config.seed, step, 1])
    orders: dict[int, np.ndarray] = {}
    batch = []
    start = step * config.batch_size
    for position in range(start, start + config.batch_size):
        epoch, offset = divmod(position, len(examples))
        if epoch not in orders:
            orders[epoch] = epoch_order(len(examples), config.seed, epoch)
        renderings = examples[orders[epoch][offset]]
        batch.append(renderings[template_rng.integers(len(renderings))])
    return batch


def make_optimizer(parameters, config: TrainConfig):
    """Return Adafactor and the linear warmup-then-decay schedule of the recipe."""
    from transformers import get_linear_schedule_with_warmup
    from transformers.optimization import Adafactor

    optimizer = Adafactor(
        parameters,
        lr=config.lr,
        relative_step=False,
        warmup_init=False,
        scale_parameter=True,
        weight_decay=0.0,
    )
    scheduler = get_linear_schedule_with_warmup(optimizer, config.warmup_steps, config.steps)
    return optimizer, scheduler


def term_counts(batch: ChoiceBatch) -> dict[str, float]:
    """Count what each loss term averages over: correct-choice tokens, incorrect-choice tokens, examples."""
    correct = batch.choice_of_row == batch.labels.index_select(0, batch.example_of_row)
    tokens = batch.choice_mask.sum(dim=1)
    return {
        "lm": float(tokens[correct].sum()),
        "ul": float(tokens[~correct].sum()),
        "ln": float(batch.num_examples),
    }


@dataclass
class RunState:
    """Everything a checkpoint restores besides tensors: the next step and the per-step log so far."""

    step: int = 0
    history: list[dict] = field(default_factory=list)


class Trainer:
    """One (IA)^3 training run: the model, the optimizer, the few-shot examples and the checkpoint file."""

    def __init__(self, model_dir: Path, train_file: Path, out_dir: Path, task: str, config: TrainConfig,
                 init_vectors: Path | None = None):
        config.validate()
        self.config = config
        self.task = task
        self.model_dir = Path(model_dir)
        self.train_file = Path(train_file)
        self.out_dir = Path(out_dir)
        self.init_vectors = Path(init_vectors) if init_vectors is not None else None
        self.checkpoint = self.out_dir / "checkpoint.pt"
        self.device, self.autocast_dtype = pick_device(config.device)

        self.examples = load_training_examples(self.train_file, task)
        self.tokenizer = load_tokenizer(self.model_dir)
        self.model = load_seq2seq(self.model_dir).to(self.device)
        self.model.train()  # dropout on, as in the official training loop
        self.ia3 = add_ia3(self.model, [task])
        self.identity = read_model_identity(self.model_dir)
        if self.init_vectors is not None:
            vectors, info = read_init_vectors(self.init_vectors)
            load_into(self.ia3, vectors, info, self.init_vectors, self.identity["model_name"])
            log.info("initialised (IA)^3 vectors from %s", self.init_vectors)
        self.optimizer, self.scheduler = make_optimizer(self.ia3.trainable_parameters(), config)
        self.resume_key = self.run_identity()
        self.log_truncation()

    @property
    def init_label(self) -> str:
        return "scratch" if self.init_vectors is None else "pretrained"

    def run_identity(self) -> dict:
        """Return what a checkpoint must match to be resumed: recipe, data, initial vectors and backbone."""
        return {
            "task": self.task,
            "recipe": self.config.recipe(),
            "train_sha256": sha256_of(self.train_file),
            "init_sha256": sha256_of(self.init_vectors) if self.init_vectors else None,
            "model": self.identity,
        }

    def log_truncation(self) -> None:
        inputs = sorted({rendering["input"] for example in self.examples for rendering in example})
        lengths = [len(ids) for ids in self.tokenizer(inputs).input_ids]
        truncated = sum(length > self.config.max_input_length for length in lengths)
        if truncated:
            log.warning(
                "%s: %d of %d rendered training inputs are longer than %d tokens and are truncated",
                self.task, truncated, len(inputs), self.config.max_input_length,
            )

    def save_checkpoint(self, state: RunState) -> None:
        """Write the checkpoint atomically, so a run killed while writing keeps the previous one."""
        payload = {
            "step": state.step,
            "history": state.history,
            "identity": self.resume_key,
            "vectors": self.ia3.vectors(0),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
        }
        partial = self.checkpoint.with_name(self.checkpoint.name + ".partial")
        torch.save(payload, partial)
        partial.replace(self.checkpoint)

    def load_checkpoint(self) -> RunState:
        """Restore the last checkpoint, or start at step 0 when there is none."""
        if not self.checkpoint.is_file():
            return RunState()
        try:
            payload = torch.load(self.checkpoint, weights_only=True, map_location=self.device)
        except (RuntimeError, OSError, EOFError, pickle.UnpicklingError) as error:
            # torch's own message may suggest weights_only=False, which would run code from the file, so it is left out.
            raise TfewError(f"checkpoint {self.checkpoint} cannot be read ({type(error).__name__}: the file is "
                            "truncated or not a tfew checkpoint); delete it to restart this run from step 0") from None
        check_resumable(self.checkpoint, payload["identity"], self.resume_key)
        self.ia3.load_vectors(payload["vectors"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scheduler.load_state_dict(payload["scheduler"])
        log.info("resumed %s seed %d from step %d (%s)", self.task, self.config.seed, payload["step"], self.checkpoint)
        return RunState(step=payload["step"], history=payload["history"])

    def train_step(self, step: int) -> dict:
        """Run one optimizer step and return its log record; raise on a non-finite loss or gradient."""
        config = self.config
        torch.manual_seed(config.seed * 1_000_003 + step)  # dropout masks depend on (seed, step) only
        examples = batch_for_step(self.examples, config, step)
        micro_size = config.batch_size // config.grad_accumulation
        batches = [
            encode_batch(self.tokenizer, examples[start : start + micro_size], config.max_input_length)
            for start in range(0, config.batch_size, micro_size)
        ]
        totals = {name: sum(term_counts(batch)[name] for batch in batches) for name in ("lm", "ul", "ln")}
        use_ul, use_ln = LOSS_VARIANTS[config.loss]

        terms_logged = defaultdict(float)
        for batch in batches:
            batch = batch.to(self.device)
            with torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None):
                token_logprobs = choice_token_logprobs(self.model, batch, self.ia3, config.scoring_method)
            terms = tfew_losses(token_logprobs, batch, use_ul=use_ul, use_ln=use_ln)

            # Each term is a mean over its own unit (tokens or examples). Weighting a micro-batch's mean by its
            # share of those units makes the accumulated gradient equal to the gradient of the whole batch.
            counts = term_counts(batch)
            loss = 0.0
            for name in ("lm", "ul", "ln"):
                weight = counts[name] / totals[name] if totals[name] else 0.0
                value = getattr(terms, name) * weight
                loss = loss + value
                terms_logged[name] += float(value.detach())
            self.check_finite(float(loss.detach()), "loss", step)
            loss.backward()

        grad_norm = torch.nn.utils.clip_grad_norm_(self.ia3.trainable_parameters(), config.max_grad_norm)
        self.check_finite(float(grad_norm), "gradient norm", step)
        lr = self.scheduler.get_last_lr()[0]
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return {"step": step + 1, "loss": sum(terms_logged.values()), **terms_logged, "lr": lr,
                "grad_norm": float(grad_norm)}

    def check_finite(self, value: float, what: str, step: int) -> None:
        if not np.isfinite(value):
            raise TfewError(
                f"non-finite {what} ({value}) at step {step + 1} of {self.config.steps} (task {self.task}, seed "
                f"{self.config.seed}, loss variant {self.config.loss}); the last checkpoint, if any, is "
                f"{self.checkpoint}. Lower the learning rate, check the initial vectors and the backbone for "
                f"NaN values, or train in fp32 (--device cpu)"
            )


def load_training_examples(train_file: Path, task: str) -> list[list[dict]]:
    """Read a rendered few-shot file and group its rows per example.

    When `task` is a registered task, every row must belong to it. Any other name (such as "mixture") labels
    vectors trained on a multitask file, whose rows may come from several tasks.
    """
    from tfew.tasks import TASKS

    rows = read_jsonl(train_file, required_fields=("input", "choices", "label", "example_index"))
    if not rows:
        raise TfewError(f"no training examples in {train_file}; render the few-shot split with `tfew data prepare`")
    row_tasks = sorted({row.get("task", task) for row in rows})
    if task in TASKS and row_tasks != [task]:
        raise TfewError(
            f"{train_file} contains rows of task(s) {row_tasks}, but --task is {task!r}; pass the file of {task!r} "
            f"or a label that is not a task name (such as 'mixture') for multitask training"
        )
    if task not in TASKS:
        log.info("multitask training file %s: rows of %s, vectors labelled %r", train_file, row_tasks, task)
    return group_by_example(rows)


def read_init_vectors(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Load initial (IA)^3 vectors and their metadata in the package's format; other formats need converting."""
    if Path(path).suffix != ".safetensors":
        raise TfewError(
            f"initial vectors {path} are not in the tfew format (.safetensors); convert an official T-Few "
            f"checkpoint or a PEFT adapter first with `tfew ia3 convert SRC DST --from t-few|peft --to tfew`"
        )
    vectors, info = load_vectors(path)
    bad = [name for name, vector in vectors.items() if not torch.isfinite(vector).all()]
    if bad:
        raise TfewError(f"initial vectors {path} hold NaN or infinite values in {bad[:3]}")
    return vectors, info


def check_resumable(checkpoint: Path, saved: dict, current: dict) -> None:
    """Raise when a checkpoint was written by a run with other settings, data or backbone."""
    differences = []
    for key in sorted(set(saved) | set(current)):
        if key == "recipe":
            for name in sorted(set(saved[key]) | set(current[key])):
                if saved[key].get(name) != current[key].get(name):
                    differences.append(f"{name}: {saved[key].get(name)!r} -> {current[key].get(name)!r}")
        elif saved.get(key) != current.get(key):
            differences.append(f"{key}: {saved.get(key)!r} -> {current.get(key)!r}")
    if differences:
        raise TfewError(
            f"checkpoint {checkpoint} belongs to a run with other settings ({'; '.join(differences)}); rerun with "
            f"the original settings to resume, or delete the checkpoint to start over"
        )


@contextmanager
def stop_requests():
    """Turn SIGTERM and SIGINT into a flag that the loop checks after each step, so it can checkpoint first.

    Schedulers such as SLURM send SIGTERM before they kill a job; Ctrl-C sends SIGINT. Outside the main thread
    signal handlers cannot be installed, and the flag simply stays clear.
    """
    requested = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield requested
        return

    def handler(signum, frame):
        log.warning("received %s; stopping after the current step", signal.Signals(signum).name)
        requested.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield requested
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def train(
    model_dir: Path,
    train_file: Path,
    out_dir: Path,
    task: str,
    config: TrainConfig,
    init_vectors: Path | None = None,
    max_steps_this_run: int | None = None,
) -> Path:
    """Train (IA)^3 vectors; write `vectors.safetensors` and `train_log.csv` to `out_dir` and return the vectors.

    A checkpoint in `out_dir` from an earlier run with the same settings is resumed. `max_steps_this_run`
    stops after that many steps and returns the checkpoint path (the checkpoint stays for a later resume).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(model_dir, train_file, out_dir, task, config, init_vectors)
    state = trainer.load_checkpoint()
    first_step = state.step
    last_step = config.steps if max_steps_this_run is None else min(config.steps, first_step + max_steps_this_run)
    log.info(
        "training (IA)^3 on %s: %d examples, seed %d, loss %s, init %s, steps %d-%d of %d, batch %d (x%d "
        "accumulation), device %s%s",
        task, len(trainer.examples), config.seed, config.loss, trainer.init_label, first_step + 1, last_step,
        config.steps, config.batch_size, config.grad_accumulation, trainer.device,
        " with bf16 autocast" if trainer.autocast_dtype is not None else " in fp32",
    )

    run_loop(trainer, state, last_step)

    if state.step < config.steps:
        trainer.save_checkpoint(state)
        log.info("stopped at step %d of %d; rerun the same command to resume from %s", state.step, config.steps,
                 trainer.checkpoint)
        return trainer.checkpoint

    write_outputs(trainer, state)
    trainer.checkpoint.unlink(missing_ok=True)
    return out_dir / "vectors.safetensors"


def run_loop(trainer: Trainer, state: RunState, last_step: int) -> None:
    """Run steps until `last_step`, logging, checkpointing, and stopping early on SIGTERM or SIGINT."""
    config = trainer.config
    started = time.perf_counter()
    first_step = state.step
    progress = tqdm(range(first_step, last_step), desc=f"train {trainer.task} seed {config.seed}", disable=None)
    with stop_requests() as stop_requested:
        for step in progress:
            step_started = time.perf_counter()
            record = trainer.train_step(step)
            record["seconds"] = time.perf_counter() - step_started
            state.history.append(record)
            state.step = step + 1
            progress.set_postfix(loss=f"{record['loss']:.4f}", lr=f"{record['lr']:.2e}")

            if state.step % config.log_every == 0 or state.step == config.steps:
                rate = (state.step - first_step) / (time.perf_counter() - started)
                log.info(
                    "step %d/%d loss %.4f (lm %.4f ul %.4f ln %.4f) grad norm %.3f lr %.2e %.2f steps/s",
                    state.step, config.steps, record["loss"], record["lm"], record["ul"], record["ln"],
                    record["grad_norm"], record["lr"], rate,
                )
            if state.step % config.checkpoint_every == 0 and state.step < config.steps:
                trainer.save_checkpoint(state)
            if stop_requested.is_set() and state.step < last_step:
                trainer.save_checkpoint(state)
                raise TfewError(
                    f"training of {trainer.task} seed {config.seed} interrupted at step {state.step} of "
                    f"{config.steps}; checkpoint saved to {trainer.checkpoint}; rerun the same command to resume"
                )
    progress.close()


LOG_COLUMNS = ["step", "loss", "lm", "ul", "ln", "lr", "grad_norm", "seconds"]


def write_outputs(trainer: Trainer, state: RunState) -> None:
    """Write the per-step log (with run identity and provenance) and the vectors with their metadata."""
    config = trainer.config
    run_columns = {"task": trainer.task, "seed": config.seed, "loss_variant": config.loss, "init": trainer.init_label}
    inputs = [trainer.train_file] + ([trainer.init_vectors] if trainer.init_vectors else [])
    versions = sorted({rendering.get("promptsource_version", "") for example in trainer.examples for rendering in example})
    shared = {
        **run_columns,
        **provenance(trainer.identity, inputs, run_settings=asdict(config)),
        "promptsource_version": ";".join(versions),
    }
    write_train_log(trainer.out_dir / "train_log.csv", state.history, shared)

    metadata = {
        **run_columns,
        "base_model": trainer.identity["model_name"],
        "base_revision": trainer.identity["model_revision"],
        "train_config": asdict(config),
        "init_vectors": str(trainer.init_vectors) if trainer.init_vectors else None,
        "provenance": shared,
        "final_loss": state.history[-1]["loss"] if state.history else None,
    }
    save_vectors(trainer.out_dir / "vectors.safetensors", trainer.ia3.vectors(0), metadata)
    log.info("saved (IA)^3 vectors to %s", trainer.out_dir / "vectors.safetensors")


def write_train_log(path: Path, history: list[dict], shared: dict) -> None:
    """Write one CSV row per step (loss terms, lr, gradient norm, seconds) plus the run's identity columns."""
    partial = path.with_name(path.name + ".partial")
    with open(partial, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=LOG_COLUMNS + list(shared))
        writer.writeheader()
        for record in history:
            writer.writerow({**{key: record.get(key, "") for key in LOG_COLUMNS}, **shared})
    partial.replace(path)

