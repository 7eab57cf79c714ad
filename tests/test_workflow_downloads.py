"""The workflow's download and data helpers: `tfew model download`, `tfew fetch`, `tfew data mixture`.

No test reaches the network: offline mode must fail before any connection, and the success paths read a
local Hugging Face cache or file:// URLs.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tfew.data import read_jsonl
from tfew.errors import TfewError
from tfew.hub_models import download_model, fetch_file, weight_patterns
from tfew.mixture import build_mixture
from tfew.models import load_seq2seq, read_model_identity

REPO = "bigscience/T0_3B"
COMMIT = "032a20e775dd500df0a5a7f404466183d67f172b"


@pytest.fixture
def offline(monkeypatch):
    """Offline mode as HF_HUB_OFFLINE=1 sets it, with every socket connection failing the test."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)

    def fail_connection(*args, **kwargs):
        raise AssertionError("a network connection was attempted in offline mode")

    monkeypatch.setattr(socket.socket, "connect", fail_connection)


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache folder in place of the user's."""
    from huggingface_hub import constants

    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


def test_offline_download_fails_at_once(offline, hub_cache, tmp_path):
    with pytest.raises(TfewError) as error:
        download_model(REPO, COMMIT, tmp_path / "t0-3b")
    message = str(error.value)
    assert REPO in message
    assert COMMIT in message
    assert "HF_HUB_OFFLINE=1" in message
    assert not (tmp_path / "t0-3b" / "tfew_model.json").exists()


def test_branch_revision_rejected(tmp_path):
    with pytest.raises(TfewError, match="'main' is not a 40-character commit hash"):
        download_model(REPO, "main", tmp_path / "t0-3b")


def test_offline_download_from_cache(offline, hub_cache, tiny_model_dir, tmp_path):
    snapshot = hub_cache / "models--bigscience--T0_3B" / "snapshots" / COMMIT
    shutil.copytree(tiny_model_dir, snapshot)
    (snapshot / "tfew_model.json").unlink()

    out = tmp_path / "t0-3b"
    info_file = download_model(REPO, COMMIT, out)

    info = json.loads(info_file.read_text())
    assert info["name"] == REPO
    assert info["revision"] == COMMIT
    assert "model.safetensors" in info["files"]
    assert read_model_identity(out) == {"model_name": REPO, "model_revision": COMMIT}
    assert load_seq2seq(out).config.d_model == load_seq2seq(tiny_model_dir).config.d_model


def test_cli_download_offline_exit_status(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "empty-cache")}
    tfew = Path(sys.executable).with_name("tfew")
    command = [str(tfew), "model", "download", "--repo", REPO, "--revision", COMMIT, "--out", str(tmp_path / "m")]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 2
    assert "offline mode is on (HF_HUB_OFFLINE=1)" in result.stderr
    assert "Traceback" not in result.stderr


def test_weight_patterns_prefer_safetensors():
    assert "*.safetensors" in weight_patterns(["config.json", "model.safetensors", "pytorch_model.bin"])
    assert "pytorch_model*.bin" in weight_patterns(["config.json", "pytorch_model.bin", "tf_model.h5"])
    with pytest.raises(TfewError, match="no PyTorch weights"):
        weight_patterns(["config.json", "tf_model.h5"])


def test_fetch_file_url_checks_sha256(offline, tmp_path):
    source = tmp_path / "vectors.pt"
    source.write_bytes(b"released vectors")
    digest = hashlib.sha256(b"released vectors").hexdigest()

    out = fetch_file(source.as_uri(), tmp_path / "copy" / "ia3.pt", digest)
    assert out.read_bytes() == b"released vectors"

    with pytest.raises(TfewError, match="expected 0{64}"):
        fetch_file(source.as_uri(), tmp_path / "bad" / "ia3.pt", "0" * 64)
    assert list((tmp_path / "bad").iterdir()) == []


def test_fetch_file_offline_rejects_http(offline, tmp_path):
    with pytest.raises(TfewError, match="offline mode is on"):
        fetch_file("https://example.org/ia3.pt", tmp_path / "ia3.pt")
    assert not (tmp_path / "ia3.pt").exists()


@pytest.mark.mirror
def test_mixture_indices_unique_across_tasks(mirror, tmp_path):
    out = tmp_path / "mixture.jsonl"
    examples = build_mixture(["anli_r1", "hellaswag"], 0, mirror, out)
    rows = read_jsonl(out)

    assert examples == 50 + 20  # ANLI takes 50 shots, HellaSwag 20 (Liu et al. 2022, Section 3.1)
    assert {row["task"] for row in rows} == {"anli_r1", "hellaswag"}
    tasks_of_index = {}
    for row in rows:
        tasks_of_index.setdefault(row["example_index"], set()).add(row["task"])
    assert len(tasks_of_index) == examples
    assert all(len(tasks) == 1 for tasks in tasks_of_index.values())
    hellaswag = [row for row in rows if row["task"] == "hellaswag"]
    assert min(row["example_index"] for row in hellaswag) == 50
    assert {row["task_example_index"] for row in hellaswag} == set(range(20))


def test_mixture_rejects_repeated_task(tmp_path):
    with pytest.raises(TfewError, match="name a task twice"):
        build_mixture(["anli_r1", "anli_r1"], 0, None, tmp_path / "mixture.jsonl")
