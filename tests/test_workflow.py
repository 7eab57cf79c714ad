"""The Snakemake workflow end to end: paper dry run, lint, and an interrupted demo run that resumes.

The demo test trims the demo config to one task, one seed, one loss variant and few steps. The whole DAG
(data, tiny model, emulated pre-training, training, evaluation, zero-shot, ICL, costs, analysis) still runs.
The run is interrupted with SIGINT while a training job is between checkpoints, as Ctrl-C would, and then
rerun with the same command.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import PROJECT_ROOT

SNAKEMAKE = Path(sys.executable).with_name("snakemake")
RUN = "trimmed"
TRAIN_DIR = f"results/{RUN}/train/rte/lm+ul+ln/scratch/seed0"
CONTRACT_COLUMNS = [
    "method", "task", "seed", "loss_variant", "init", "tfew_version", "git_commit", "config_hash", "model_name",
    "model_revision", "data_hashes", "template", "template_index", "template_hash", "promptsource_version",
    "example_index", "label", "prediction", "correct", "num_choices", "scores", "length_normalized",
]


def snakemake_env() -> dict:
    bin_dir = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def snakemake_command(workdir: Path, *args: str) -> list[str]:
    return [str(SNAKEMAKE), "--snakefile", str(PROJECT_ROOT / "Snakefile"), "--directory", str(workdir), *args]


def link_project(workdir: Path) -> None:
    """Make the workflow and analysis folders visible from `workdir`, where results, logs and locks go."""
    for name in ("workflow", "analysis"):
        (workdir / name).symlink_to(PROJECT_ROOT / name)


def job_counts(output: str) -> dict[str, int]:
    """Parse the 'Job stats' table that snakemake prints before a (dry) run."""
    table = output[output.index("Job stats:"):]
    counts = {}
    for line in table.splitlines()[3:]:
        match = re.fullmatch(r"(\S+)\s+(\d+)", line.strip())
        if not match:
            break
        counts[match.group(1)] = int(match.group(2))
    return counts


def test_paper_dry_run_job_counts(tmp_path):
    link_project(tmp_path)
    command = snakemake_command(tmp_path, "-n", "--configfile", "workflow/config/paper.yaml")
    result = subprocess.run(command, capture_output=True, text=True, env=snakemake_env(), timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr

    counts = job_counts(result.stdout)
    train_jobs = {rule: count for rule, count in counts.items() if rule.startswith("train")}
    assert train_jobs == {"train_ia3": 11 * 5 * 4, "train_ia3_pretrained": 11 * 5}
    assert sum(train_jobs.values()) == 275
    assert counts["evaluate_ia3"] == 275
    assert counts["evaluate_zero_shot"] == 11
    assert counts["icl"] == 2 * 2 * 11 * 5  # T5+LM and T0, concat and ensemble, tasks x seeds
    assert counts["download_model"] == 2
    assert counts["fetch_official_vectors"] == 1
    assert counts["convert_official_vectors"] == 1

    assert not (tmp_path / "resources").exists(), "a dry run must not download anything"
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("config", ["demo.yaml", "paper.yaml"])
def test_lint_reports_nothing(tmp_path, config, mirror):
    link_project(tmp_path)
    override = tmp_path / "mirror.yaml"
    override.write_text(yaml.safe_dump({"data": {"mirror": str(mirror)}}))
    configs = [f"workflow/config/{config}"] + ([str(override)] if config == "demo.yaml" else [])
    command = snakemake_command(tmp_path, "--lint", "--configfile", *configs)
    result = subprocess.run(command, capture_output=True, text=True, env=snakemake_env(), timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Lints for" not in result.stdout + result.stderr


@pytest.fixture(scope="module")
def interrupted_run(tmp_path_factory, mirror):
    """Run the trimmed demo, interrupt it during training and rerun it. Return what each run left behind."""
    workdir = tmp_path_factory.mktemp("workflow")
    link_project(workdir)
    trimmed = {
        "run_name": RUN,
        "tasks": ["rte"],
        "seeds": [0],
        "data": {"mirror": str(mirror), "max_eval_examples": 4},
        "train": {"loss_variants": ["lm+ul+ln"], "steps": 60, "batch_size": 2, "checkpoint_every": 1},
        "pretrained": {"mixture": {"tasks": ["anli_r1"], "steps": 2, "batch_size": 2}},
        "icl": {"max_examples": 2},
    }
    (workdir / "trimmed.yaml").write_text(yaml.safe_dump(trimmed))
    command = snakemake_command(
        workdir, "--profile", "workflow/profiles/local", "--configfile", "workflow/config/demo.yaml", "trimmed.yaml"
    )

    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             env=snakemake_env(), cwd=workdir, start_new_session=True)
    checkpoint = workdir / TRAIN_DIR / "checkpoint.pt"
    deadline = time.monotonic() + 240
    while not checkpoint.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    interrupted = first.poll() is None and checkpoint.exists()
    if first.poll() is None:
        # Ctrl-C reaches the whole foreground process group: snakemake and its running jobs.
        os.killpg(first.pid, signal.SIGINT)
    first_output, _ = first.communicate(timeout=120)
    assert interrupted, f"the run ended before its training job could be interrupted:\n{first_output}"

    finished_before = {
        path: path.stat().st_mtime_ns
        for path in (workdir / f"results/{RUN}/data/rte/eval.jsonl", workdir / f"results/{RUN}/models/tiny-t0/tfew_model.json")
    }
    state = {
        "workdir": workdir,
        "first_output": first_output,
        "vectors_after_interrupt": (workdir / TRAIN_DIR / "vectors.safetensors").exists(),
        "checkpoint_after_interrupt": checkpoint.exists(),
        "finished_before": finished_before,
    }

    second = subprocess.run(command, capture_output=True, text=True, env=snakemake_env(), timeout=600, cwd=workdir)
    state["second"] = second
    state["mtimes_after"] = {path: path.stat().st_mtime_ns for path in finished_before if path.exists()}
    state["again"] = subprocess.run(command + ["-n"], capture_output=True, text=True, env=snakemake_env(),
                                    timeout=120, cwd=workdir)
    return state


@pytest.mark.slow
@pytest.mark.mirror
def test_interrupt_leaves_no_partial_result(interrupted_run):
    assert not interrupted_run["vectors_after_interrupt"], "an interrupted training job left its output file"
    assert interrupted_run["checkpoint_after_interrupt"], "the interrupted training job lost its checkpoint"


@pytest.mark.slow
@pytest.mark.mirror
def test_rerun_finishes_without_repeating_jobs(interrupted_run):
    second = interrupted_run["second"]
    assert second.returncode == 0, second.stdout + second.stderr
    assert interrupted_run["mtimes_after"] == interrupted_run["finished_before"]
    counts = job_counts(second.stdout + second.stderr)
    assert "prepare_task" not in counts
    assert "tiny_model" not in counts
    assert counts["train_ia3"] == 1

    log = (interrupted_run["workdir"] / f"logs/{RUN}/train/rte/lm+ul+ln/scratch/seed0.log").read_text()
    assert re.search(r"resumed rte seed 0 from step [1-9]\d*", log), log

    again = interrupted_run["again"]
    assert again.returncode == 0, again.stdout + again.stderr
    assert "Nothing to be done" in again.stdout + again.stderr


@pytest.mark.slow
@pytest.mark.mirror
def test_trimmed_demo_writes_every_method(interrupted_run):
    results = interrupted_run["workdir"] / "results" / RUN
    files = sorted((results / "predictions").rglob("*.csv"))
    frame = pd.concat([pd.read_csv(path) for path in files if not path.name.endswith(".per_template.csv")],
                      ignore_index=True)
    assert set(CONTRACT_COLUMNS) <= set(frame.columns)

    methods = frame.groupby(["method", "init"]).size()
    assert set(methods.index) == {
        ("t-few", "scratch"), ("t-few", "pretrained"), ("t0-zero-shot", "none"),
        ("icl-concat", "none"), ("icl-ensemble", "none"),
    }
    assert set(frame["task"]) == {"rte"}
    assert frame["config_hash"].nunique() == 1
    assert frame["config_hash"].iloc[0] not in ("", "unknown")

    assert (results / "costs" / "table1.csv").is_file()
    assert (results / "costs" / "run_models.csv").is_file()
    assert (results / "pretrained" / "mixture" / "vectors.safetensors").is_file()
    figures = interrupted_run["workdir"] / "paper_figures" / RUN
    assert any(figures.glob("*.png")), "the report wrote no figure"
