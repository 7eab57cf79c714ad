"""The SLURM profile parses with snakemake 9 and snakemake-executor-plugin-slurm 2.8.0, and the scripts behind
`make demo-slurm` compare runs and report failed jobs correctly. The run on a real Slurm cluster is
`make demo-slurm` itself (it needs root and starts daemons), not a test here."""

from __future__ import annotations

import importlib.util
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

    jobs = failed_jobs.failed_jobs(tmp_path)
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

    job = failed_jobs.parse_log(log)
    assert job.rule == "prepare_task"
    assert job.wildcards == "copa"
    assert failed_jobs.main([str(tmp_path / "missing")]) == 1


def test_shell_scripts_parse():
    for script in sorted(SCRIPTS.glob("*.sh")):
        result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert result.returncode == 0, f"{script.name}: {result.stderr}"


def test_ci_runs_demo_slurm_after_test_and_demo():
    commands = [line for line in (PROJECT_ROOT / ".ci" / "run").read_text().splitlines() if line.startswith("make")]
    assert commands == ["make test", "make demo", "make demo-slurm"]
