"""Shared fixtures: the offline data mirror, a tiny T5 built once per session, and offline hub settings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Hub calls must fail at once in tests instead of retrying for tens of seconds.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

PROJECT_ROOT = Path(__file__).resolve().parents[1]
MIRROR = Path(os.environ.get("TFEW_MIRROR", PROJECT_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def mirror() -> Path:
    """The offline data mirror; tests that need it skip with instructions when it is absent."""
    if not (MIRROR / "few_shot").is_dir():
        pytest.skip(
            f"offline data mirror not found at {MIRROR}: place it beside the project root as shared/data "
            f"or set TFEW_MIRROR to its path"
        )
    return MIRROR


@pytest.fixture(scope="session")
def rte_data(mirror, tmp_path_factory) -> Path:
    """RTE rendered with every original-task template: 24 evaluation rows and the seed-0 few-shot split."""
    from tfew.prepare import prepare_task

    out = tmp_path_factory.mktemp("rte")
    prepare_task("rte", [0], out, mirror, max_eval_examples=24)
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(rte_data, tmp_path_factory) -> Path:
    """A tiny random T5 with T0's architecture and a tokenizer trained on the rendered RTE text."""
    from tfew.data import read_jsonl
    from tfew.models import TinyT5Shape, build_tiny_model

    texts = []
    for name in ("eval.jsonl", "few_shot_seed0.jsonl"):
        for row in read_jsonl(rte_data / name):
            texts.append(row["input"])
            texts.extend(row["choices"])
    out = tmp_path_factory.mktemp("tiny_model")
    build_tiny_model(texts, out, TinyT5Shape(vocab_size=1000), seed=0)
    return out


@pytest.fixture()
def local_downloads_only(monkeypatch):
    """Fail any download of an official T-Few file that is not a local file:// URL, so no test reaches the network."""
    import tfew.official

    real_download = tfew.official.download

    def download(url, timeout=60):
        assert url.startswith("file:"), f"test tried to download {url}"
        return real_download(url, timeout)

    monkeypatch.setattr(tfew.official, "download", download)
