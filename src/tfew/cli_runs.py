"""The `tfew` subcommands that train, evaluate, run the in-context learning baselines and count costs.

    tfew train --model DIR --train FEW_SHOT.jsonl --task rte --seed 0 --loss lm+ul+ln --out DIR
    tfew evaluate --model DIR --data EVAL.jsonl [--vectors FILE] --method t-few --task rte --seed 0 \
        --loss-variant lm+ul+ln --init scratch --out predictions.csv
    tfew icl --model DIR --data EVAL.jsonl --train FEW_SHOT.jsonl --task rte --seed 0 --mode concat \
        --orders 2 --out predictions.csv
    tfew costs --preset paper-table1 --out table1.csv
    tfew costs --model DIR --out costs.csv
    tfew model tiny-causal --texts DATA/*.jsonl --out DIR
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from tfew.errors import TfewError, require_positive

log = logging.getLogger(__name__)


def add_commands(commands) -> None:
    """Register this module's subcommands on the top-level parser."""
    _add_train_command(commands)
    _add_evaluate_command(commands)
    _add_icl_command(commands)
    _add_costs_command(commands)
    _add_tiny_causal_command(commands)


def _set_threads(threads: int) -> None:
    import torch

    if threads < 0:
        raise TfewError(f"--threads must be 0 (torch's default) or a positive number of threads, got {threads}")
    if threads:
        torch.set_num_threads(threads)


def _add_train_command(commands) -> None:
    from tfew.data import seed_value
    from tfew.scoring import LOSS_VARIANTS
    from tfew.train import DEVICES, TrainConfig

    defaults = TrainConfig()
    train = commands.add_parser("train", help="train (IA)^3 vectors with the T-Few recipe")
    train.add_argument("--model", type=Path, required=True, help="backbone folder")
    train.add_argument("--train", type=Path, required=True, help="rendered few-shot JSONL (one row per template)")
    train.add_argument("--task", required=True, help="task name; another label (e.g. mixture) for a multitask file")
    train.add_argument("--seed", type=seed_value, required=True, help="training seed (the few-shot seed in the paper)")
    train.add_argument("--loss", default=defaults.loss, choices=sorted(LOSS_VARIANTS), help="loss terms to train with")
    train.add_argument("--steps", type=int, default=defaults.steps, help="optimizer steps")
    train.add_argument("--batch-size", type=int, default=defaults.batch_size, help="examples per optimizer step")
    train.add_argument("--grad-accumulation", type=int, default=defaults.grad_accumulation,
                       help="micro-batches per step (the batch size must be divisible by it)")
    train.add_argument("--lr", type=float, default=defaults.lr, help="Adafactor learning rate")
    train.add_argument("--warmup-ratio", type=float, default=defaults.warmup_ratio,
                       help="fraction of steps with linear warmup before the linear decay")
    train.add_argument("--max-grad-norm", type=float, default=defaults.max_grad_norm, help="gradient clipping norm")
    train.add_argument("--max-input-length", type=int, default=defaults.max_input_length,
                       help="input tokens kept; longer inputs are truncated")
    train.add_argument("--log-every", type=int, default=defaults.log_every, help="steps between log lines")
    train.add_argument("--checkpoint-every", type=int, default=defaults.checkpoint_every,
                       help="steps between resumable checkpoints")
    train.add_argument("--init-vectors", type=Path, help="start from these (IA)^3 vectors (tfew .safetensors format)")
    train.add_argument("--device", default=defaults.device, choices=DEVICES, help="where to train")
    train.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0 keeps its default)")
    train.add_argument("--out", type=Path, required=True, help="output folder")
    train.set_defaults(handler=_run_train)


def _run_train(args) -> None:
    from tfew.train import TrainConfig, train

    _set_threads(args.threads)
    config = TrainConfig(
        steps=args.steps, batch_size=args.batch_size, grad_accumulation=args.grad_accumulation, lr=args.lr,
        warmup_ratio=args.warmup_ratio, max_grad_norm=args.max_grad_norm, max_input_length=args.max_input_length,
        loss=args.loss, seed=args.seed, log_every=args.log_every, checkpoint_every=args.checkpoint_every,
        device=args.device,
    )
    train(args.model, args.train, args.out, args.task, config, init_vectors=args.init_vectors)


def _add_scoring_arguments(parser, batch_size: int) -> None:
    from tfew.train import DEVICES

    parser.add_argument("--batch-size", type=int, default=batch_size, help="prompts per forward pass")
    parser.add_argument("--max-examples", type=int, help="score only examples with index below N")
    parser.add_argument("--no-length-normalization", dest="length_normalize", action="store_false",
                        help="score choices by summed token log-likelihood instead of the per-token mean")
    parser.add_argument("--device", default="auto", choices=DEVICES, help="where to run")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0 keeps its default)")
    parser.add_argument("--out", type=Path, required=True,
                        help="predictions CSV; the per-template accuracy goes to <stem>.per_template.csv beside it")


def _add_evaluate_command(commands) -> None:
    evaluate = commands.add_parser("evaluate", help="rank classification on every template (T-Few or zero-shot)")
    evaluate.add_argument("--model", type=Path, required=True, help="backbone folder")
    evaluate.add_argument("--data", type=Path, required=True, help="rendered evaluation JSONL")
    evaluate.add_argument("--vectors", type=Path, help="(IA)^3 vectors; omit for zero-shot")
    evaluate.add_argument("--method", required=True, choices=["t-few", "t0-zero-shot"],
                          help="t-few (with --vectors) or t0-zero-shot (the backbone alone)")
    evaluate.add_argument("--task", required=True, help="task name from `tfew data list`")
    evaluate.add_argument("--seed", type=int, default=-1, help="few-shot seed of the vectors (-1 for none)")
    evaluate.add_argument("--loss-variant", default="none", help="loss variant of the vectors (none for zero-shot)")
    evaluate.add_argument("--init", default="none", help="how the vectors were initialised: scratch or pretrained")
    evaluate.add_argument("--max-input-length", type=int, default=256, help="input tokens kept")
    _add_scoring_arguments(evaluate, batch_size=16)
    evaluate.set_defaults(handler=_run_evaluate)


def _run_evaluate(args) -> None:
    from tfew.evaluate import ZERO_SHOT_METHOD, evaluate

    require_positive(args, "batch_size", "max_examples", "max_input_length")
    if args.method == ZERO_SHOT_METHOD:
        _check_zero_shot_columns(args)
    _set_threads(args.threads)
    columns = {"method": args.method, "task": args.task, "seed": args.seed,
               "loss_variant": args.loss_variant, "init": args.init}
    evaluate(args.model, args.data, args.out, columns, args.vectors, args.batch_size, args.max_examples,
             length_normalize=args.length_normalize, max_input_length=args.max_input_length, device=args.device)


def _check_zero_shot_columns(args) -> None:
    """Raise when a zero-shot run is given a few-shot seed, loss variant or initialisation: it has none."""
    options = {"--seed": (args.seed, -1), "--loss-variant": (args.loss_variant, "none"), "--init": (args.init, "none")}
    wrong = [f"{option} {value}" for option, (value, expected) in options.items() if value != expected]
    if wrong:
        raise TfewError(
            f"a t0-zero-shot run trains nothing, so it has no {', '.join(wrong)}; leave these options out "
            "(they default to --seed -1 --loss-variant none --init none)"
        )


def _add_icl_command(commands) -> None:
    from tfew.data import seed_value
    from tfew.icl import ICL_MODES

    icl = commands.add_parser("icl", help="in-context learning baselines (concatenated or ensemble demonstrations)")
    icl.add_argument("--model", type=Path, required=True, help="seq2seq (T5, T0) or decoder-only model folder")
    icl.add_argument("--data", type=Path, required=True, help="rendered evaluation JSONL")
    icl.add_argument("--train", type=Path, required=True, help="rendered few-shot JSONL of the same seed")
    icl.add_argument("--task", required=True, help="task name from `tfew data list`")
    icl.add_argument("--seed", type=seed_value, required=True, help="few-shot seed; also seeds the demonstration order")
    icl.add_argument("--mode", required=True, choices=ICL_MODES,
                     help="concat: demonstrations that fit in one prompt; ensemble: one per pass, scores averaged")
    icl.add_argument("--orders", type=int, default=0, help="extra runs with permuted demonstration orders")
    icl.add_argument("--max-context", type=int, help="prompt tokens (default: the model's context length)")
    icl.add_argument("--max-demonstrations", type=int, help="use at most N demonstrations per prediction")
    _add_scoring_arguments(icl, batch_size=8)
    icl.set_defaults(handler=_run_icl)


def _run_icl(args) -> None:
    from tfew.icl import IclConfig, run_icl

    require_positive(args, "max_examples")
    _set_threads(args.threads)
    config = IclConfig(
        mode=args.mode, seed=args.seed, orders=args.orders, max_context=args.max_context,
        max_demonstrations=args.max_demonstrations, length_normalize=args.length_normalize,
        batch_size=args.batch_size, device=args.device,
    )
    run_icl(args.model, args.data, args.train, args.out, args.task, config, args.max_examples)


def _add_costs_command(commands) -> None:
    from tfew.costs import TokenCounts

    defaults = TokenCounts()
    costs = commands.add_parser("costs", help="inference and training FLOPs and disk bytes per method")
    source = costs.add_mutually_exclusive_group(required=True)
    source.add_argument("--preset", choices=["paper-table1"], help="the paper's Table 1 models and token counts")
    source.add_argument("--model", type=Path, nargs="+", help="this run's model folder(s)")
    costs.add_argument("--data", type=Path, help="rendered evaluation JSONL: median example and choice tokens")
    costs.add_argument("--train", type=Path, help="rendered few-shot JSONL: median demonstration tokens, shots")
    costs.add_argument("--icl-predictions", type=Path, nargs="+", help="`tfew icl` outputs: tokens per prediction")
    costs.add_argument("--steps", type=int, default=defaults.steps, help="T-Few training steps")
    costs.add_argument("--batch-size", type=int, default=defaults.batch_size, help="T-Few examples per step")
    costs.add_argument("--example-target-tokens", type=int, default=defaults.example_target_tokens,
                       help="answer-choice tokens among the example's tokens (encoder-decoder measurement)")
    costs.add_argument("--out", type=Path, required=True, help="output CSV")
    costs.set_defaults(handler=_run_costs)


def _run_costs(args) -> None:
    from dataclasses import replace

    import pandas as pd

    from tfew.costs import TokenCounts, icl_tokens_from_predictions, model_costs, paper_table1, run_token_counts
    from tfew.evaluate import write_csv

    counts = replace(TokenCounts(), steps=args.steps, batch_size=args.batch_size,
                     example_target_tokens=args.example_target_tokens)
    if args.preset:
        if args.data or args.train or args.icl_predictions:
            raise TfewError("--data, --train and --icl-predictions apply to --model, not to --preset")
        table = paper_table1(counts)
    else:
        icl_tokens = icl_tokens_from_predictions(args.icl_predictions) if args.icl_predictions else None
        frames = [
            model_costs(model_dir, run_token_counts(model_dir, args.data, args.train, counts), icl_tokens)
            for model_dir in args.model
        ]
        table = pd.concat(frames, ignore_index=True)
    write_csv(table, args.out)
    shown = table[["method", "model", "inference_flops_per_example", "training_flops", "disk_bytes",
                   "measured_inference_flops_per_example", "measured_training_flops"]]
    log.info("costs written to %s:\n%s", args.out, shown.to_string(index=False, float_format="{:.3g}".format))


def _subcommands_of(commands, name: str):
    """Return the subcommand group of an existing command (such as `model`), to add a subcommand to it."""
    parser = commands.choices.get(name)
    if parser is None:
        raise RuntimeError(f"the `tfew {name}` command must be registered before its subcommands")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    raise RuntimeError(f"`tfew {name}` has no subcommands")


def _add_tiny_causal_command(commands) -> None:
    from tfew.causal import TinyCausalShape

    defaults = TinyCausalShape()
    tiny = _subcommands_of(commands, "model").add_parser(
        "tiny-causal", help="build a tiny random GPT-2-shaped model (a decoder-only stand-in for GPT-3 ICL)"
    )
    tiny.add_argument("--texts", type=Path, nargs="+", required=True, help="rendered JSONL files to train the tokenizer on")
    tiny.add_argument("--out", type=Path, required=True, help="output folder")
    tiny.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    tiny.add_argument("--vocab-size", type=int, default=defaults.vocab_size, help="byte-level BPE vocabulary size")
    tiny.add_argument("--d-model", type=int, default=defaults.n_embd, help="hidden size")
    tiny.add_argument("--layers", type=int, default=defaults.n_layer, help="transformer blocks")
    tiny.add_argument("--heads", type=int, default=defaults.n_head, help="attention heads")
    tiny.add_argument("--context", type=int, default=defaults.n_positions, help="context length in tokens")
    tiny.set_defaults(handler=_run_tiny_causal)


def _run_tiny_causal(args) -> None:
    from tfew.causal import TinyCausalShape, build_tiny_causal
    from tfew.cli import tokenizer_texts

    texts = tokenizer_texts(args.texts)
    shape = TinyCausalShape(vocab_size=args.vocab_size, n_embd=args.d_model, n_layer=args.layers, n_head=args.heads,
                            n_positions=args.context)
    build_tiny_causal(texts, args.out, shape, args.seed)
