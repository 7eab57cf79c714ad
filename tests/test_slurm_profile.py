"""The SLURM profile parses with snakemake 9 and snakemake-executor-plugin-slurm 2.8.0, and the scripts behind
`make demo-slurm` compare runs and report failed jobs correctly. The run on a real Slurm cluster is
`make demo-slurm` itself (it needs root and starts daemons), not a test here."""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from conftest import PROJECT_ROOT

PROFILE_DIR = PROJECT_ROOT / "workflow" / "profiles" / "slurm"
PROFILE = PROFILE_DIR / "config.yaml"
SCRIPTS = PROJECT_ROOT / "workflow" / "scripts" / "slurm"
SNAKEMAKE = Path(sys.executable).parent / "snakemake"


def load_script(name: str):
    """Import one of the Python scripts under workflow/scripts/slurm/ as a module."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    # Registered before it runs, because dataclasses look their module up in sys.modules.
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def profile() -> dict:
    return yaml.safe_load(PROFILE.read_text())


@pytest.fixture(scope="module")
def parsed_args():
    """The command line that snakemake builds from the profile, through its own parser."""
    from snakemake.cli import parse_args

    _, args = parse_args(["--profile", str(PROFILE_DIR), "--dry-run"])
    return args


def test_profile_keys_are_snakemake_options(profile):
    from snakemake.cli import get_argument_parser

    options = {option for action in get_argument_parser()._actions for option in action.option_strings}
    for key in profile:
        assert f"--{key}" in options, f"profile key {key!r} is not an option of snakemake or its SLURM plugin"


def test_profile_sets_cluster_keys(parsed_args):
    assert parsed_args.executor == "slurm"
    assert parsed_args.jobs == 100
    assert {"slurm_partition", "slurm_account", "slurm_extra"} <= set(parsed_args.default_resources)
    assert parsed_args.keep_going is True
    assert parsed_args.show_failed_logs is True


def test_profile_limits_local_cores():
    """The profile caps the login-node cores of localrules jobs, and the command line can still raise the cap."""
    from snakemake.cli import parse_args

    _, defaults = parse_args(["--profile", str(PROFILE_DIR), "--dry-run"])
    assert defaults.local_cores == 2
    _, raised = parse_args(["--profile", str(PROFILE_DIR), "--dry-run", "--local-cores", "4"])
    assert raised.local_cores == 4


def test_plugin_settings_valid(parsed_args):
    from snakemake_executor_plugin_slurm.validation import validate_executor_settings
    from snakemake_interface_executor_plugins.registry import ExecutorPluginRegistry

    settings = ExecutorPluginRegistry().get_plugin("slurm").get_settings(parsed_args)
    validate_executor_settings(settings)
    assert settings.logdir == Path("logs/slurm")
    assert settings.jobname_prefix == "tfew"
    assert settings.init_seconds_before_status_checks == 40
    assert settings.keep_successful_logs is False


def test_slurm_extra_accepted_by_plugin(profile):
    from snakemake_executor_plugin_slurm.validation import validate_slurm_extra

    extra = profile["default-resources"]["slurm_extra"]
    validate_slurm_extra(SimpleNamespace(resources=SimpleNamespace(slurm_extra=extra)))


def test_gres_in_slurm_extra_rejected():
    """The profile's comment says GPUs cannot go through slurm_extra in plugin 2.8.0; this holds it to that."""
    from snakemake_executor_plugin_slurm.validation import validate_slurm_extra
    from snakemake_interface_common.exceptions import WorkflowError

    for extra in ("--gres=gpu:1", "--gpus=1"):
        with pytest.raises(WorkflowError):
            validate_slurm_extra(SimpleNamespace(resources=SimpleNamespace(slurm_extra=extra)))


def commented_set_resources_example() -> dict:
    """Return the commented `set-resources:` example of the profile, parsed as YAML."""
    lines = PROFILE.read_text().splitlines()
    start = lines.index("#   set-resources:")
    block = []
    for line in lines[start:]:
        if not line.startswith("#   "):
            break
        block.append(line[len("#   "):])
    return yaml.safe_load("\n".join(block))["set-resources"]


@pytest.fixture(scope="module")
def demo_slurm_dry_run() -> str:
    """The output of a dry run of the demo config with the overrides of `make demo-slurm`, through the profile.
    --forceall lists every job, whatever an earlier run left in results/demo-slurm/."""
    result = subprocess.run(
        [
            str(SNAKEMAKE), "--dry-run", "--forceall", "--profile", "workflow/profiles/slurm",
            "--configfile", "workflow/config/demo.yaml", str(SCRIPTS / "demo_slurm.yaml"),
        ],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PATH": f"{SNAKEMAKE.parent}{os.pathsep}{os.environ['PATH']}"},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def rules_in_job_table(dry_run_output: str) -> set[str]:
    """Return the rule names of the dry run's job table (`job  count` ... `total  N`)."""
    table = dry_run_output[dry_run_output.index("Job stats:"):]
    table = table[:table.index("\ntotal")]
    return {line.split()[0] for line in table.splitlines()[3:] if line.strip()}


class JobResources(dict):
    """Resources as the SLURM plugin reads them from a job: `resources.get(key)` and `resources.key`."""

    def __getattr__(self, name):
        return self[name]


def test_set_resources_example_names_real_rules(demo_slurm_dry_run):
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    example = commented_set_resources_example()
    rules = rules_in_job_table(demo_slurm_dry_run)
    for rule, resources in example.items():
        assert rule in rules, f"the profile's set-resources example names {rule!r}, which is not a rule of the demo"
        assert set(resources) <= {"mem_mb", "runtime", "gpu", "gpu_model", "gres", "slurm_extra"}
        set_gres_string(SimpleNamespace(resources=JobResources(resources)))


def test_dry_run_of_demo_slurm_config(demo_slurm_dry_run):
    """The demo config with the overrides of `make demo-slurm` passes the schema and builds its DAG through the
    profile, and the target rule carries the profile's partition and account."""
    assert "results/demo-slurm/" in demo_slurm_dry_run
    assert "train_ia3" in rules_in_job_table(demo_slurm_dry_run)
    resources = re.search(r"^rule all:\n(?:    .*\n)*?    resources: (.*)$", demo_slurm_dry_run, flags=re.MULTILINE)
    assert resources is not None, demo_slurm_dry_run[-3000:]
    assert "slurm_partition=gpu" in resources.group(1)
    assert "slurm_account=tfew" in resources.group(1)


@pytest.fixture(scope="module")
def demo_like_run(rte_data, tiny_model_dir, tmp_path_factory) -> Path:
    """A run folder with real zero-shot predictions of the tiny model on RTE, and their aggregates."""
    from tfew.cli import main

    run = tmp_path_factory.mktemp("run") / "demo"
    predictions = run / "predictions" / "t0-zero-shot" / "rte.csv"
    status = main([
        "evaluate", "--model", str(tiny_model_dir), "--data", str(rte_data / "eval.jsonl"),
        "--method", "t0-zero-shot", "--task", "rte", "--max-examples", "4", "--out", str(predictions),
    ])
    assert status == 0
    assert main(["aggregate", "--predictions", str(predictions), "--out", str(run / "aggregate")]) == 0
    return run


def copy_run(run: Path, destination: Path) -> Path:
    shutil.copytree(run, destination)
    return destination


def test_compare_runs_ignores_run_identity(demo_like_run, tmp_path):
    import pandas as pd

    compare_runs = load_script("compare_runs")
    other = copy_run(demo_like_run, tmp_path / "demo-slurm")
    for path in (other / "predictions").rglob("*.csv"):
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
        table["config_hash"] = "0123456789abcdef"
        table["git_commit"] = "another-commit"
        table.to_csv(path, index=False)

    comparison = compare_runs.compare_runs(demo_like_run, other)
    assert comparison.differences == []
    assert comparison.equal
    assert comparison.files >= 2
    assert comparison.rows > 0
    assert "another-commit" in comparison.candidate_commits
    assert comparison.reference_commits != comparison.candidate_commits


def test_compare_runs_finds_changed_score(demo_like_run, tmp_path):
    import pandas as pd

    compare_runs = load_script("compare_runs")
    other = copy_run(demo_like_run, tmp_path / "demo-slurm")
    path = next((other / "predictions").rglob("*.csv"))
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    table.loc[3, "scores"] = "[-1.0, -2.0]"
    table.to_csv(path, index=False)

    comparison = compare_runs.compare_runs(demo_like_run, other)
    assert not comparison.equal
    assert len(comparison.differences) == 1
    assert "'scores'" in comparison.differences[0]
    assert "row 3" in comparison.differences[0]
    assert compare_runs.main([str(demo_like_run), str(other)]) == 1


def test_compare_runs_data_hashes(demo_like_run, tmp_path):
    """The hash of a vector file, which records the config hash, may differ; the hash of a data file may not."""
    import pandas as pd

    compare_runs = load_script("compare_runs")
    other = copy_run(demo_like_run, tmp_path / "demo-slurm")
    path = next((other / "predictions").rglob("*.csv"))
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    table["data_hashes"] = table["data_hashes"] + ";vectors.safetensors:0123456789abcdef"
    table.to_csv(path, index=False)
    assert compare_runs.compare_runs(demo_like_run, other).equal

    table["data_hashes"] = "eval.jsonl:0123456789abcdef"
    table.to_csv(path, index=False)
    comparison = compare_runs.compare_runs(demo_like_run, other)
    assert len(comparison.differences) == 1
    assert "'data_hashes'" in comparison.differences[0]


def test_compare_runs_finds_missing_file(demo_like_run, tmp_path):
    compare_runs = load_script("compare_runs")
    other = copy_run(demo_like_run, tmp_path / "demo-slurm")
    removed = next((other / "aggregate").rglob("*.csv"))
    removed.unlink()

    comparison = compare_runs.compare_runs(demo_like_run, other)
    assert not comparison.equal
    assert any("missing from" in difference and removed.name in difference for difference in comparison.differences)


def test_compare_runs_rejects_empty_runs(tmp_path):
    compare_runs = load_script("compare_runs")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert not compare_runs.compare_runs(tmp_path / "a", tmp_path / "b").equal


# The first lines that snakemake 9.27 writes to a SLURM log of the executor plugin 2.8.0 (trimmed).
SLURM_LOG_HEADER = """
SNAKEMAKE
=========
  Snakemake version: 9.27.1
  Command: /work/.venv/lib/python3.11/site-packages/snakemake/__main__.py --snakefile /work/Snakefile \
--target-jobs 'train_ia3:task=rte,loss=lm+ul+ln,seed=42' --allowed-rules train_ia3 --cores all --attempt 1 \
--executor slurm-jobstep --jobs 1 --mode remote
Building DAG of jobs...
"""


def test_failed_jobs_reads_rule_and_wildcards(tmp_path):
    failed_jobs = load_script("failed_jobs")
    log = tmp_path / "rule_train_ia3" / "rte_lm+ul+ln_42" / "17.log"
    log.parent.mkdir(parents=True)
    log.write_text(SLURM_LOG_HEADER)

    jobs = failed_jobs.kept_jobs(tmp_path)
    assert len(jobs) == 1
    assert jobs[0].rule == "train_ia3"
    assert jobs[0].wildcards == "task=rte, loss=lm+ul+ln, seed=42"
    assert jobs[0].slurm_job_id == "17"
    assert jobs[0].log == log


def test_failed_jobs_falls_back_to_folders(tmp_path):
    """A job that died before snakemake started leaves an empty log; its folders still name rule and wildcards."""
    failed_jobs = load_script("failed_jobs")
    log = tmp_path / "rule_prepare_task" / "copa" / "5.log"
    log.parent.mkdir(parents=True)
    log.write_text("")

    job = failed_jobs.parse_log(log, tmp_path)
    assert job.rule == "prepare_task"
    assert job.wildcards == "copa"
    assert failed_jobs.main([str(tmp_path / "missing")]) == 2


def write_log(log_dir: Path, relative: str, text: str = "") -> Path:
    """Write a SLURM log at log_dir/relative, creating its folders."""
    log = log_dir / relative
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(text)
    return log


def install_fake_sacct(tmp_path: Path, monkeypatch, output: str) -> Path:
    """Put a `sacct` that prints output and records its arguments alone on PATH, and return the arguments file."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    arguments = tmp_path / "sacct-arguments"
    sacct = bin_dir / "sacct"
    sacct.write_text(f"#!/bin/sh\necho \"$@\" > '{arguments}'\nprintf '%s' '{output}'\n")
    sacct.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    return arguments


def hide_sacct(tmp_path: Path, monkeypatch) -> None:
    """Leave only an empty folder on PATH, so that no `sacct` is found."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


# Log paths under the log folder, with the rule and wildcards their folders name. snakemake-executor-plugin-slurm
# 2.8.0 writes rule_<rule>/<jobid>.log for a job without wildcards. The last three layouts are not the plugin's.
FOLDER_LAYOUTS = [
    ("rule_prepare_task/copa/5.log", "prepare_task", "copa"),
    ("rule_aggregate/456.log", "aggregate", ""),
    ("123.log", "unknown", "unknown"),
    ("other/deeper/folders/9.log", "unknown", "unknown"),
    ("not_a_rule/copa/6.log", "unknown", "unknown"),
]


@pytest.mark.parametrize(("relative", "rule", "wildcards"), FOLDER_LAYOUTS)
def test_failed_jobs_rule_from_folders(relative, rule, wildcards, tmp_path, monkeypatch):
    """A log without a header is listed with what its folders name, also under a relative log folder."""
    failed_jobs = load_script("failed_jobs")
    hide_sacct(tmp_path, monkeypatch)
    write_log(tmp_path / "slurm", relative)
    monkeypatch.chdir(tmp_path)

    jobs = failed_jobs.kept_jobs(Path("slurm"))
    assert len(jobs) == 1
    assert jobs[0].slurm_job_id == Path(relative).stem
    assert jobs[0].rule == rule
    assert jobs[0].wildcards == wildcards
    assert jobs[0].log == Path("slurm") / relative


def test_failed_jobs_array_task_logs(tmp_path, monkeypatch):
    """Array tasks write <array job id>_<task id>.log into the rule folder. Other file names are not SLURM logs."""
    failed_jobs = load_script("failed_jobs")
    hide_sacct(tmp_path, monkeypatch)
    with_header = write_log(tmp_path, "rule_train_ia3/123_4.log", SLURM_LOG_HEADER)
    empty = write_log(tmp_path, "rule_train_ia3/123_5.log")
    for name in ("notes.log", "12a.log", "123_.log", "_4.log", "123_4_5.log", "123.txt"):
        write_log(tmp_path, f"rule_train_ia3/{name}")

    jobs = {job.log: job for job in failed_jobs.kept_jobs(tmp_path)}
    assert set(jobs) == {with_header, empty}
    assert jobs[with_header].slurm_job_id == "123_4"
    assert jobs[with_header].rule == "train_ia3"
    assert jobs[with_header].wildcards == "task=rte, loss=lm+ul+ln, seed=42"
    assert jobs[empty].rule == "train_ia3"
    assert jobs[empty].wildcards == "unknown"


def test_failed_jobs_skips_vanished_logs(tmp_path, monkeypatch):
    """A log deleted while the script runs (its job succeeded) and a folder named like a log are left out."""
    failed_jobs = load_script("failed_jobs")
    hide_sacct(tmp_path, monkeypatch)
    kept = write_log(tmp_path, "rule_train_ia3/rte_0/101.log", SLURM_LOG_HEADER)
    (tmp_path / "rule_train_ia3" / "rte_0" / "102.log").symlink_to(tmp_path / "deleted.log")
    (tmp_path / "rule_train_ia3" / "rte_0" / "103.log").mkdir()

    assert [job.log for job in failed_jobs.kept_jobs(tmp_path)] == [kept]

    kept.unlink()
    assert failed_jobs.rule_and_wildcards_from_header(kept) is None


SACCT_OUTPUT = "\n".join([
    "17|FAILED|1:0",
    "18|RUNNING|0:0",
    "19|PENDING|0:0",
    "20|REQUEUED|0:0",
    "21|CANCELLED by 1000|0:15",
    "22|COMPLETED|0:0",
    "30_2|RUNNING|0:0",
    "30_3|TIMEOUT|0:0",
    "30_[4-9]|PENDING|0:0",
])


def write_logs_of_states(log_dir: Path) -> dict[str, Path]:
    """Write a log per job of SACCT_OUTPUT and for job 40, which sacct has no record of, and return them by ID."""
    job_ids = ["17", "18", "19", "20", "21", "22", "30_2", "30_3", "40"]
    return {job_id: write_log(log_dir, f"rule_train_ia3/rte_lm_0/{job_id}.log") for job_id in job_ids}


def test_failed_jobs_states_from_sacct(tmp_path, monkeypatch):
    failed_jobs = load_script("failed_jobs")
    arguments = install_fake_sacct(tmp_path, monkeypatch, SACCT_OUTPUT)
    write_logs_of_states(tmp_path / "slurm")

    jobs = {job.slurm_job_id: job for job in failed_jobs.kept_jobs(tmp_path / "slurm")}
    assert jobs["17"].status == "failed"
    assert jobs["17"].state == "FAILED (exit code 1:0)"
    assert jobs["21"].status == "failed"
    assert jobs["30_3"].status == "failed"
    for job_id in ("18", "19", "20", "30_2"):
        assert jobs[job_id].status == "running", job_id
    assert jobs["22"].status == "completed"
    assert jobs["40"].status == "unknown"
    assert jobs["40"].state == "unknown"

    queried = arguments.read_text().split()
    job_list = queried[queried.index("-j") + 1].split(",")
    assert sorted(job_list) == sorted(["17", "18", "19", "20", "21", "22", "30", "40"])


def test_failed_jobs_lists_running_apart(tmp_path, monkeypatch, caplog):
    failed_jobs = load_script("failed_jobs")
    install_fake_sacct(tmp_path, monkeypatch, SACCT_OUTPUT)
    write_logs_of_states(tmp_path / "slurm")
    caplog.set_level(logging.INFO, logger="failed_jobs")

    assert failed_jobs.main([str(tmp_path / "slurm")]) == 1
    lines = caplog.messages
    failed = [line for line in lines if line.startswith("failed job:")]
    running = [line for line in lines if line.startswith("still running or pending job:")]
    assert len(failed) == 3
    assert len(running) == 4
    assert all("RUNNING" not in line and "PENDING" not in line and "REQUEUED" not in line for line in failed)
    assert any("SLURM job 20 REQUEUED" in line for line in running)
    assert any(line.startswith("completed job") and "SLURM job 22 COMPLETED" in line for line in lines)
    assert any(line.startswith("job of unknown state:") and "SLURM job 40 " in line for line in lines)


def test_failed_jobs_state_unknown_without_sacct(tmp_path, monkeypatch, caplog):
    failed_jobs = load_script("failed_jobs")
    hide_sacct(tmp_path, monkeypatch)
    write_log(tmp_path / "slurm", "rule_train_ia3/rte_lm_0/17.log", SLURM_LOG_HEADER)
    caplog.set_level(logging.INFO, logger="failed_jobs")

    assert failed_jobs.main([str(tmp_path / "slurm")]) == 1
    reports = [line for line in caplog.messages if "SLURM job 17" in line]
    assert len(reports) == 1
    assert "state unknown" in reports[0]
    assert "rule train_ia3, wildcards task=rte, loss=lm+ul+ln, seed=42" in reports[0]


def test_failed_jobs_exit_status(tmp_path, monkeypatch):
    """0 without failed jobs, 1 with at least one, 2 on a usage error."""
    failed_jobs = load_script("failed_jobs")
    install_fake_sacct(tmp_path, monkeypatch, "18|RUNNING|0:0\n22|COMPLETED|0:0\n17|OUT_OF_MEMORY|0:125")
    log_dir = tmp_path / "slurm"
    log_dir.mkdir()
    assert failed_jobs.main([str(log_dir)]) == 0

    write_log(log_dir, "rule_train_ia3/rte_lm_0/18.log")
    write_log(log_dir, "rule_aggregate/22.log")
    assert failed_jobs.main([str(log_dir)]) == 0

    write_log(log_dir, "rule_train_ia3/rte_lm_0/17.log")
    assert failed_jobs.main([str(log_dir)]) == 1

    assert failed_jobs.main([str(tmp_path / "missing")]) == 2
    with pytest.raises(SystemExit) as usage_error:
        failed_jobs.main([str(log_dir), "--since", "yesterday"])
    assert usage_error.value.code == 2


def test_failed_jobs_help_documents_exit_status():
    result = subprocess.run(
        [sys.executable, str(SCRIPTS / "failed_jobs.py"), "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    assert "exit status" in result.stdout.lower()
    for status in ("0", "1", "2"):
        assert re.search(rf"\b{status}\b", result.stdout), status


def test_shell_scripts_parse():
    for script in sorted(SCRIPTS.glob("*.sh")):
        result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert result.returncode == 0, f"{script.name}: {result.stderr}"


def test_ci_runs_demo_slurm_after_test_and_demo():
    commands = [line for line in (PROJECT_ROOT / ".ci" / "run").read_text().splitlines() if line.startswith("make")]
    assert commands == ["make test", "make demo", "make demo-slurm"]
