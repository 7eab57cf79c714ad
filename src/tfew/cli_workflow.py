"""The `tfew` subcommands for model downloads and workflow helpers.

    tfew model download --repo bigscience/T0_3B --revision <40-hex commit> --out resources/models/t0-3b
    tfew fetch --url URL --sha256 HEX --out FILE
    tfew data mixture --tasks anli_r1 winogrande --seed 0 --mirror ../shared/data --out mixture.jsonl
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_commands(commands) -> None:
    """Register this module's subcommands on the top-level parser."""
    _add_model_download(_subcommands(commands, "model"))
    _add_data_mixture(_subcommands(commands, "data"))
    _add_fetch(commands)


def _subcommands(commands, name: str):
    """Return the subcommand registry of the existing command group `name` (e.g. `tfew model`)."""
    group = commands.choices[name]
    for action in group._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    raise RuntimeError(f"`tfew {name}` has no subcommands to extend")


def _add_model_download(model_commands) -> None:
    download = model_commands.add_parser(
        "download", help="download a hub model at a pinned commit (fails at once in offline mode)"
    )
    download.add_argument("--repo", required=True, help="hub repository, e.g. bigscience/T0_3B")
    download.add_argument("--revision", required=True, help="full 40-character commit hash to pin")
    download.add_argument("--out", type=Path, required=True, help="model folder to fill")
    download.set_defaults(handler=_run_model_download)


def _run_model_download(args) -> None:
    from tfew.hub_models import download_model

    download_model(args.repo, args.revision, args.out)


def _add_fetch(commands) -> None:
    fetch = commands.add_parser("fetch", help="download a released file (e.g. pre-trained (IA)^3 vectors)")
    fetch.add_argument("--url", required=True, help="http(s) or file:// URL")
    fetch.add_argument("--sha256", help="expected SHA-256 of the file; the download fails on a mismatch")
    fetch.add_argument("--out", type=Path, required=True, help="file to write")
    fetch.set_defaults(handler=_run_fetch)


def _run_fetch(args) -> None:
    from tfew.hub_models import fetch_file

    fetch_file(args.url, args.out, args.sha256)


def _add_data_mixture(data_commands) -> None:
    from tfew.data import seed_value

    mixture = data_commands.add_parser(
        "mixture", help="few-shot rows of several tasks in one training file, for (IA)^3 pre-training"
    )
    mixture.add_argument("--tasks", nargs="+", required=True, help="task names from `tfew data list`")
    mixture.add_argument("--seed", type=seed_value, required=True, help="few-shot seed of the rows to use")
    source = mixture.add_mutually_exclusive_group(required=True)
    source.add_argument("--mirror", type=Path, help="offline mirror directory")
    source.add_argument("--hub", action="store_true", help="fetch the official few-shot files")
    mixture.add_argument("--out", type=Path, required=True, help="output JSONL file")
    mixture.set_defaults(handler=_run_data_mixture)


def _run_data_mixture(args) -> None:
    from tfew.mixture import build_mixture

    build_mixture(args.tasks, args.seed, None if args.hub else args.mirror, args.out)
