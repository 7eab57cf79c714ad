"""The `tfew` command line: every workflow step is one subcommand, so each also runs by hand.

    tfew data prepare --task rte --seeds 0 42 --mirror ../shared/data --out results/demo/data/rte
    tfew model tiny --texts results/demo/data/*/eval.jsonl --out results/demo/model
    tfew train --model results/demo/model --train .../few_shot_seed0.jsonl --task rte --seed 0 --out DIR
    tfew evaluate --model results/demo/model --data .../eval.jsonl --vectors DIR/vectors.safetensors --out FILE
    tfew aggregate --predictions FILE... --out results/demo/aggregate
    tfew notebook --notebook analysis/demo_report.ipynb --out FILE.ipynb -p results_dir results/demo
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


def _run_model_tiny(args) -> None:
    from tfew.data import read_jsonl
    from tfew.models import TinyT5Shape, build_tiny_model

    texts = []
    for path in args.texts:
        for row in read_jsonl(path, required_fields=("input", "choices")):
            texts.append(row["input"])
            texts.extend(row["choices"])
    shape = TinyT5Shape(vocab_size=args.vocab_size, d_model=args.d_model, num_layers=args.layers, num_decoder_layers=args.layers)
    build_tiny_model(texts, args.out, shape, args.seed)


def _add_train_command(commands) -> None:
    from tfew.train import TrainConfig

    defaults = TrainConfig()
    train = commands.add_parser("train", help="train (IA)^3 vectors with the T-Few recipe")
    train.add_argument("--model", type=Path, required=True, help="backbone folder")
    train.add_argument("--train", type=Path, required=True, help="rendered few-shot JSONL")
    train.add_argument("--task", required=True)
    train.add_argument("--seed", type=int, required=True, help="training seed (the few-shot seed in the paper)")
    train.add_argument("--loss", default=defaults.loss, help="lm, lm+ul, lm+ln or lm+ul+ln")
    train.add_argument("--steps", type=int, default=defaults.steps)
    train.add_argument("--batch-size", type=int, default=defaults.batch_size)
    train.add_argument("--grad-accumulation", type=int, default=defaults.grad_accumulation)
    train.add_argument("--lr", type=float, default=defaults.lr)
    train.add_argument("--log-every", type=int, default=defaults.log_every, help="steps between log lines")
    train.add_argument("--checkpoint-every", type=int, default=defaults.checkpoint_every)
    train.add_argument("--init-vectors", type=Path, help="start from these (IA)^3 vectors (tfew format)")
    train.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0 keeps its default)")
    train.add_argument("--out", type=Path, required=True)
    train.set_defaults(handler=_run_train)


def _run_train(args) -> None:
    import torch

    from tfew.train import TrainConfig, train

    if args.threads:
        torch.set_num_threads(args.threads)
    config = TrainConfig(
        steps=args.steps, batch_size=args.batch_size, grad_accumulation=args.grad_accumulation, lr=args.lr,
        loss=args.loss, seed=args.seed, log_every=args.log_every, checkpoint_every=args.checkpoint_every,
    )
    train(args.model, args.train, args.out, args.task, config, init_vectors=args.init_vectors)


def _add_evaluate_command(commands) -> None:
    evaluate = commands.add_parser("evaluate", help="rank classification on every template")
    evaluate.add_argument("--model", type=Path, required=True)
    evaluate.add_argument("--data", type=Path, required=True, help="rendered evaluation JSONL")
    evaluate.add_argument("--vectors", type=Path, help="(IA)^3 vectors; omit for zero-shot")
    evaluate.add_argument("--method", required=True, help="method label written to every row, e.g. t-few")
    evaluate.add_argument("--task", required=True)
    evaluate.add_argument("--seed", type=int, default=-1, help="few-shot seed of the vectors (-1 for none)")
    evaluate.add_argument("--loss-variant", default="none")
    evaluate.add_argument("--init", default="none", help="how the vectors were initialised: scratch or pretrained")
    evaluate.add_argument("--batch-size", type=int, default=16)
    evaluate.add_argument("--max-examples", type=int, help="score only examples with index below N")
    evaluate.add_argument("--threads", type=int, default=0)
    evaluate.add_argument("--out", type=Path, required=True, help="predictions CSV")
    evaluate.set_defaults(handler=_run_evaluate)


def _run_evaluate(args) -> None:
    import torch

    from tfew.evaluate import evaluate

    if args.threads:
        torch.set_num_threads(args.threads)
    columns = {"method": args.method, "task": args.task, "seed": args.seed,
               "loss_variant": args.loss_variant, "init": args.init}
    evaluate(args.model, args.data, args.out, columns, args.vectors, args.batch_size, args.max_examples)


def _add_aggregate_command(commands) -> None:
    aggregate = commands.add_parser("aggregate", help="median and IQR over seeds x templates")
    aggregate.add_argument("--predictions", type=Path, nargs="+", required=True)
    aggregate.add_argument("--out", type=Path, required=True, help="output folder")
    aggregate.set_defaults(handler=_run_aggregate)


def _run_aggregate(args) -> None:
    from tfew.aggregate import aggregate

    aggregate(args.predictions, args.out)


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
    _add_train_command(commands)
    _add_evaluate_command(commands)
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
        log.error("%s", error)
        print(f"tfew: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
