"""Benchmark (IA)^3 training on CPU: steps per second and peak memory against batch size and input length.

Two backbones with T0's architecture (gated-GELU, untied output layer) and random weights: the demo's tiny T5
and a T5-small-sized one (the T5 v1.1 small shape: d_model 512, d_ff 1024, 6 heads of 64, 8 + 8 blocks, a
32,128-token output layer). Training inputs are real RTE few-shot rows from the offline mirror, each input
repeated until it exceeds the longest length measured, so truncation fixes every input at exactly the length
under test. Each configuration runs `tfew.train.train` in a fresh process, so the peak resident memory
(VmHWM on Linux) belongs to that configuration alone.

    .venv/bin/python benchmarks/bench_train.py --threads 1 --out results/bench/train.csv

Prints a Markdown table; `--out` also writes it as CSV. It is a measurement, not a test: numbers depend on
the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MIRROR = Path(os.environ.get("TFEW_MIRROR", PROJECT_ROOT.parent / "shared" / "data"))

BATCH_SIZES = (1, 2, 4, 8)  # at the recipe's input length
INPUT_LENGTHS = (64, 128, 256)  # at the recipe's batch size
RECIPE_BATCH, RECIPE_LENGTH = 8, 256


def model_shapes():
    from tfew.models import TinyT5Shape

    return {
        "tiny (demo)": (TinyT5Shape(), None),
        "t5-small-sized": (
            TinyT5Shape(d_model=512, d_kv=64, d_ff=1024, num_heads=6, num_layers=8, num_decoder_layers=8),
            32128,
        ),
    }


def prepare_inputs(mirror: Path, work: Path) -> tuple[Path, list[str]]:
    """Render RTE's seed-0 few-shot split and lengthen every input past the longest length measured."""
    from tfew.data import read_jsonl, write_jsonl
    from tfew.prepare import prepare_task

    prepare_task("rte", [0], work / "rte", mirror, max_eval_examples=8)
    rows = read_jsonl(work / "rte" / "few_shot_seed0.jsonl")
    for row in rows:
        # Roughly 4 characters per token; repeating to 8 characters per measured token leaves a wide margin.
        repeats = 1 + (8 * max(INPUT_LENGTHS)) // max(1, len(row["input"]))
        row["input"] = " ".join([row["input"]] * repeats)
    long_file = work / "rte_long_inputs.jsonl"
    write_jsonl(long_file, rows)
    texts = [row["input"] for row in rows] + [choice for row in rows for choice in row["choices"]]
    return long_file, texts


def build_model(name: str, texts: list[str], out: Path) -> Path:
    """Build one backbone with a tokenizer trained on the RTE text and save it for `train`."""
    from tfew.models import build_tiny_model, build_tiny_t5, load_tokenizer, train_tokenizer

    shape, vocab_size = model_shapes()[name]
    if vocab_size is None:
        build_tiny_model(texts, out, shape, seed=0)
        return out
    train_tokenizer(texts, out, shape.vocab_size)
    model = build_tiny_t5(shape, vocab_size=max(vocab_size, len(load_tokenizer(out))), seed=0)
    model.save_pretrained(out)
    info = {"kind": "t5-small-sized", "seed": 0, "shape": asdict(shape), "vocab_size": model.config.vocab_size}
    (out / "tfew_model.json").write_text(json.dumps(info, indent=2))
    return out


def memory_mib(field: str) -> float:
    """Return a memory figure of this process in MiB: VmHWM (peak resident) or VmRSS (current resident).

    Linux keeps ru_maxrss across exec, so a child started by `spawn` would inherit its parent's peak; VmHWM
    belongs to the new process image alone. Elsewhere ru_maxrss is the fallback (Linux and BSD report KiB).
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_configuration(model_dir: str, train_file: str, out_dir: str, batch_size: int, length: int, steps: int,
                      threads: int, results) -> None:
    """Train in this (child) process and report seconds per step and peak resident memory."""
    import pandas as pd
    import torch

    from tfew.train import TrainConfig, train

    logging.disable(logging.WARNING)
    torch.set_num_threads(threads)
    resident_after_imports = memory_mib("VmRSS")
    config = TrainConfig(steps=steps, batch_size=batch_size, max_input_length=length, log_every=steps,
                         checkpoint_every=steps, device="cpu")
    train(Path(model_dir), Path(train_file), Path(out_dir), "rte", config)
    log = pd.read_csv(Path(out_dir) / "train_log.csv")
    seconds = log["seconds"].tolist()[1:]  # the first step pays one-time allocation costs
    results.put({
        "seconds_per_step": statistics.median(seconds),
        "peak_rss_mib": memory_mib("VmHWM"),
        "rss_after_imports_mib": resident_after_imports,
    })


def measure(model_dir: Path, train_file: Path, work: Path, batch_size: int, length: int, steps: int,
            threads: int) -> dict:
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    out_dir = work / f"run_b{batch_size}_l{length}_{time.monotonic_ns()}"
    process = context.Process(target=run_configuration, args=(
        str(model_dir), str(train_file), str(out_dir), batch_size, length, steps, threads, results,
    ))
    process.start()
    process.join()
    if process.exitcode != 0:
        raise RuntimeError(f"benchmark run failed (batch {batch_size}, length {length}): exit {process.exitcode}")
    return results.get(timeout=10)


def machine_description(threads: int) -> str:
    import torch

    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} logical cores, torch {torch.__version__} with {threads} thread(s), "
            f"Python {platform.python_version()}, load average {os.getloadavg()[0]:.1f} at start")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mirror", type=Path, default=DEFAULT_MIRROR, help="offline data mirror")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads per run")
    parser.add_argument("--tiny-steps", type=int, default=20, help="steps per run for the tiny model")
    parser.add_argument("--small-steps", type=int, default=5, help="steps per run for the T5-small-sized model")
    parser.add_argument("--out", type=Path, help="also write the table as CSV here")
    args = parser.parse_args(argv)

    import pandas as pd

    print(f"machine: {machine_description(args.threads)}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="tfew-bench-") as folder:
        work = Path(folder)
        train_file, texts = prepare_inputs(args.mirror, work)
        for name in model_shapes():
            model_dir = build_model(name, texts, work / name.split()[0])
            steps = args.tiny_steps if name.startswith("tiny") else args.small_steps
            grid = [(batch, RECIPE_LENGTH) for batch in BATCH_SIZES]
            grid += [(RECIPE_BATCH, length) for length in INPUT_LENGTHS if length != RECIPE_LENGTH]
            for batch_size, length in grid:
                result = measure(model_dir, train_file, work, batch_size, length, steps, args.threads)
                row = {"model": name, "batch_size": batch_size, "input_tokens": length, "steps": steps,
                       "steps_per_second": 1 / result["seconds_per_step"],
                       "examples_per_second": batch_size / result["seconds_per_step"],
                       "peak_rss_mib": result["peak_rss_mib"],
                       "rss_after_imports_mib": result["rss_after_imports_mib"]}
                rows.append(row)
                print(f"{name}: batch {batch_size}, {length} tokens: {row['steps_per_second']:.2f} steps/s, "
                      f"peak RSS {row['peak_rss_mib']:.0f} MiB", flush=True)

    table = pd.DataFrame(rows)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.out, index=False)
    print(table.to_markdown(index=False, floatfmt=".2f"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
