"""Config validation of the workflow: a bad config fails before any job runs, and the error names the key.

Each case runs `snakemake -n` (a dry run, so nothing executes either way) on the demo config plus a small
override file, and checks snakemake's exit status, the message and that no result folder appeared.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import PROJECT_ROOT

SNAKEMAKE = Path(sys.executable).with_name("snakemake")
DEMO_CONFIG = PROJECT_ROOT / "workflow" / "config" / "demo.yaml"


def dry_run(tmp_path: Path, mirror: Path, override: dict) -> subprocess.CompletedProcess:
    """Dry-run the demo config with `override` merged on top, in a fresh working directory."""
    for name in ("workflow", "analysis"):
        link = tmp_path / name
        if not link.exists():
            link.symlink_to(PROJECT_ROOT / name)
    merged = {"data": {"mirror": str(mirror)}, **override}
    override_file = tmp_path / "override.yaml"
    override_file.write_text(yaml.safe_dump(merged))
    command = [
        str(SNAKEMAKE), "-n", "--snakefile", str(PROJECT_ROOT / "Snakefile"), "--directory", str(tmp_path),
        "--configfile", str(DEMO_CONFIG), str(override_file),
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)


def assert_rejected(result: subprocess.CompletedProcess, tmp_path: Path, *fragments: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    for fragment in fragments:
        assert fragment in output, output
    assert "Building DAG of jobs" not in output, "the workflow got past validation"
    assert not (tmp_path / "results").exists()


@pytest.mark.mirror
def test_demo_config_is_valid(tmp_path, mirror):
    result = dry_run(tmp_path, mirror, {})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "train_ia3" in result.stdout


HUB_MODEL_ON_BRANCH = {"kind": "hub", "description": "T0-3B", "repo": "bigscience/T0_3B", "revision": "main"}

# (override merged over demo.yaml, fragments the error output must contain)
REJECTED = {
    "unknown top-level key": ({"seedz": [0]}, ["unknown config key 'seedz'"]),
    "unknown nested key": ({"train": {"stepz": 5}}, ["unknown config key 'train.stepz'", "allowed keys:", "steps"]),
    "wrong type": ({"train": {"steps": "ten"}}, ["invalid config key 'train.steps'", "'ten' is not of type 'integer'"]),
    "float written without a dot": (
        {"train": {"lr": "3e-3"}}, ["invalid config key 'train.lr'", "YAML reads 3e-3 as text", "0.003"]
    ),
    "integer written as text": (
        {"seeds": [0, "42"]}, ["invalid config key 'seeds[1]'", "'42' is not of type 'integer'"]
    ),
    "run name of dots only": ({"run_name": ".."}, ["invalid config key 'run_name'"]),
    "unknown task name": ({"tasks": ["rte", "boolq"]}, ["invalid config key 'tasks[1]'", "'boolq' is not one of"]),
    "unknown loss variant": (
        {"train": {"loss_variants": ["lm", "lm+xx"]}}, ["invalid config key 'train.loss_variants[1]'", "'lm+xx'"]
    ),
    "backbone not a model": (
        {"backbone": "t0-3b"}, ["invalid config key 'backbone'", "'t0-3b' is not a key of 'models'"]
    ),
    "mixture shares a task": (
        {"pretrained": {"mixture": {"tasks": ["anli_r1", "rte"]}}},
        ["invalid config key 'pretrained.mixture.tasks'", "['rte']"],
    ),
    "official vectors of tiny model": (
        {"pretrained": {"source": "official"}}, ["invalid config key 'pretrained.source'", "official_vectors"]
    ),
    "unpublished few-shot seed": (
        {"seeds": [0, 7]}, ["invalid config key 'seeds'", "no few-shot split of rte for seeds [7]", "sample"]
    ),
    "unpublished ICL seed": (
        {"icl": {"seeds": [5]}}, ["invalid config key 'icl.seeds'", "for seeds [5]"]
    ),
    "task without evaluation rows in the mirror": (
        {"tasks": ["rte", "anli_r2"]}, ["invalid config key 'tasks'", "no evaluation split for anli_r2"]
    ),
    "hub revision not a commit": (
        {"models": {"t0-3b": HUB_MODEL_ON_BRANCH}},
        ["invalid config key 'models.t0-3b.revision'", "'main' does not match"],
    ),
}


@pytest.mark.mirror
@pytest.mark.parametrize("case", sorted(REJECTED))
def test_invalid_config_rejected(tmp_path, mirror, case):
    override, fragments = REJECTED[case]
    result = dry_run(tmp_path, mirror, override)
    assert_rejected(result, tmp_path, *fragments)


@pytest.mark.mirror
def test_missing_mirror_directory(tmp_path, mirror):
    result = dry_run(tmp_path, mirror, {"data": {"mirror": str(tmp_path / "no-mirror")}})
    assert_rejected(result, tmp_path, "invalid config key 'data.mirror'", "no-mirror")


@pytest.mark.mirror
def test_empty_mirror_directory(tmp_path, mirror):
    empty = tmp_path / "empty-mirror"
    empty.mkdir()
    result = dry_run(tmp_path, mirror, {"data": {"mirror": str(empty)}})
    assert_rejected(result, tmp_path, "invalid config key 'tasks'", f"the mirror {empty} has no evaluation split",
                    "rte (", "story_cloze (")
