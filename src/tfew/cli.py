"""The `tfew` command line: every workflow step is one subcommand, so each also runs by hand.

    tfew data prepare --task rte --seeds 0 42 --mirror ../shared/data --out results/demo/data/rte
    tfew model tiny --texts results/demo/data/*/eval.jsonl --out results/demo/models/tiny-t0
    tfew train --model results/demo/models/tiny-t0 --train .../few_shot_seed0.jsonl --task rte --seed 0 --out DIR
    tfew evaluate --model results/demo/models/tiny-t0 --data .../eval.jsonl --vectors DIR/vectors.safetensors --out FILE
    tfew aggregate --predictions FILE... --out results/demo/aggregate
    tfew significance --predictions FILE... --out results/demo/significance
    tfew report --aggregate results/demo/aggregate --significance results/demo/significance --out paper_figures/demo
    tfew notebook --notebook analysis/paper_report.ipynb --out FILE.ipynb -p results_dir results/demo
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from tfew.errors import TfewError

log = logging.getLogger("tfew")


def _add_model_commands(commands) -> None:
    model = commands.add_parser("model", help="prepare backbones")
    model_commands = model.add_subparsers(dest="model_command", required=True)
    tiny = model_commands.add_parser("tiny", help="build a tiny random T5 with T0's architecture")
    tiny.add_argument("--texts", type=Path, nargs="+", required=True, help="rendered JSONL files to train the tokenizer on")
    tiny.add_argument("--out", type=Path, required=True)
    tiny.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    tiny.add_argument("--vocab-size", type=int, default=2000, help="SentencePiece vocabulary size")
    tiny.add_argument("--d-model", type=int, default=64)
    tiny.add_argument("--layers", type=int, default=2, help="encoder and decoder blocks each")
    tiny.set_defaults(handler=_run_model_tiny)


def tokenizer_texts(paths: list[Path]) -> list[str]:
    """Collect the inputs and answer choices of rendered JSONL files: the text a local tokenizer learns from."""
    from tfew.data import read_jsonl

    texts = []
    for path in paths:
        for row in read_jsonl(path, required_fields=("input", "choices")):
            texts.append(row["input"])
            texts.extend(row["choices"])
    return texts


def _run_model_tiny(args) -> None:
    from tfew.models import TinyT5Shape, build_tiny_model

    texts = tokenizer_texts(args.texts)
    shape = TinyT5Shape(vocab_size=args.vocab_size, d_model=args.d_model, num_layers=args.layers, num_decoder_layers=args.layers)
    build_tiny_model(texts, args.out, shape, args.seed)


def _add_aggregate_command(commands) -> None:
    aggregate = commands.add_parser("aggregate", help="median and IQR over seeds x templates")
    aggregate.add_argument("--predictions", type=Path, nargs="+", required=True)
    aggregate.add_argument("--render-counts", type=Path, nargs="+",
                           help="render_stats.json of each task: adds rendered and skipped rows per template")
    aggregate.add_argument("--out", type=Path, required=True, help="output folder")
    aggregate.set_defaults(handler=_run_aggregate)


def _run_aggregate(args) -> None:
    from tfew.aggregate import aggregate

    aggregate(args.predictions, args.out, render_counts=args.render_counts)


def _add_notebook_command(commands) -> None:
    notebook = commands.add_parser("notebook", help="execute an analysis notebook with papermill")
    notebook.add_argument("--notebook", type=Path, required=True)
    notebook.add_argument("--out", type=Path, required=True, help="executed copy of the notebook")
    notebook.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    notebook.set_defaults(handler=_run_notebook)


def _run_notebook(args) -> None:
    import papermill

    args.out.parent.mkdir(parents=True, exist_ok=True)
    parameters = dict(args.parameter)
    log.info("executing %s with %s", args.notebook, parameters)
    papermill.execute_notebook(str(args.notebook), str(args.out), parameters=parameters, progress_bar=False)


# Modules that register further subcommands; each defines `add_commands(commands)`.
COMMAND_MODULES = ("tfew.cli_ia3", "tfew.cli_data", "tfew.cli_runs", "tfew.cli_analysis", "tfew.cli_workflow")


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every subcommand."""
    import importlib

    parser = argparse.ArgumentParser(prog="tfew", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    commands = parser.add_subparsers(dest="command", required=True)
    _add_model_commands(commands)
    _add_aggregate_command(commands)
    _add_notebook_command(commands)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).add_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one `tfew` command; a TfewError becomes one line on stderr and exit status 2."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        args.handler(args)
    except TfewError as error:
        return _report_error(str(error))
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as error:
        # A path given on the command line that cannot be read; other OSErrors keep their traceback.
        if error.filename is None:
            raise
        return _report_error(f"{error.strerror}: {error.filename}; check the path")
    return 0


def _report_error(message: str) -> int:
    """Print one error line for the user and return the exit status 2.

    The message goes to stderr once. The log records it at debug level only, because job logs capture stderr
    and would otherwise show it twice.
    """
    log.debug("command failed: %s", message)
    print(f"tfew: error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
