"""The `tfew ia3` (format conversion, parameter counts) and `tfew bench` (scoring benchmarks) subcommands.

    tfew ia3 convert t03b_ia3_finish.pt t0_3b.safetensors --from t-few --to tfew --base-config t0-3b
    tfew ia3 convert t0_3b.safetensors t0_3b_peft --from tfew --to peft --base-config t0-3b
    tfew ia3 count --base-config t0-11b
    tfew bench scoring
    tfew bench mixed-batch
"""

from __future__ import annotations

from pathlib import Path

from tfew.errors import require_positive

BASE_CONFIG_HELP = "target architecture: t0-3b, t0-11b, a config.json or model folder, or a hub model id"


def add_commands(commands) -> None:
    """Register this module's subcommands on the top-level parser."""
    _add_ia3_commands(commands)
    _add_bench_commands(commands)


def _add_ia3_commands(commands) -> None:
    from tfew.ia3_formats import FORMATS_IN, FORMATS_OUT

    ia3 = commands.add_parser("ia3", help="(IA)^3 vector formats and parameter counts")
    ia3_commands = ia3.add_subparsers(dest="ia3_command", required=True)

    convert = ia3_commands.add_parser(
        "convert", help="convert (IA)^3 vectors between the official T-Few, PEFT and tfew formats"
    )
    convert.add_argument("source", type=Path, help="T-Few .pt file, PEFT adapter folder or tfew .safetensors file")
    convert.add_argument("destination", type=Path, help="tfew .safetensors file or PEFT adapter folder to write")
    convert.add_argument("--from", dest="source_format", required=True, choices=FORMATS_IN, help="format of SOURCE")
    convert.add_argument("--to", dest="target_format", required=True, choices=FORMATS_OUT, help="format of DESTINATION")
    convert.add_argument("--base-config", required=True, help=BASE_CONFIG_HELP)
    convert.add_argument("--revision", help="base model revision to record (hub commit or tag)")
    convert.set_defaults(handler=_run_convert)

    count = ia3_commands.add_parser("count", help="print the trainable (IA)^3 parameters per module type")
    count.add_argument("--base-config", required=True, help=BASE_CONFIG_HELP)
    count.set_defaults(handler=_run_count)


def _run_convert(args) -> None:
    from tfew.ia3_formats import convert

    summary = convert(args.source, args.destination, args.source_format, args.target_format, args.base_config, args.revision)
    print(
        f"wrote {summary['vectors']} (IA)^3 vectors ({summary['parameters']:,} parameters, base config "
        f"{summary['base']}) to {summary['destination']}"
    )


def _run_count(args) -> None:
    from tfew.ia3_formats import meta_ia3, resolve_base_config

    ia3 = meta_ia3(resolve_base_config(args.base_config))
    print(f"{'module type':<28} {'layers':>6} {'width':>7} {'parameters':>12}")
    for module, row in ia3.parameter_counts_by_module().items():
        print(f"{module:<28} {row['layers']:>6} {row['width']:>7} {row['parameters']:>12,}")
    counts = ia3.parameter_counts()
    for group, value in counts.items():
        if group != "total":
            print(f"{'vector ' + group:<28} {'':>6} {'':>7} {value:>12,}")
    print(f"total_trainable_parameters={counts['total']}")


def _add_bench_commands(commands) -> None:
    bench = commands.add_parser("bench", help="benchmarks of rank-classification scoring")
    bench_commands = bench.add_subparsers(dest="bench_command", required=True)

    scoring = bench_commands.add_parser("scoring", help="FLOPs of the three scoring methods, on the meta device")
    scoring.add_argument("--base-config", default="t0-3b", help=BASE_CONFIG_HELP)
    scoring.add_argument("--examples", type=int, default=8, help="examples in the batch")
    scoring.add_argument("--input-tokens", type=int, default=103,
                         help="tokens per input (103: median input-plus-choices length, Liu et al. 2022, Section 4.2)")
    scoring.add_argument("--choices", type=int, nargs="+", default=[4], help="answer choices per example, cycled")
    scoring.add_argument("--choice-tokens", type=int, default=8, help="target tokens per answer choice")
    scoring.set_defaults(handler=_run_bench_scoring)

    mixed = bench_commands.add_parser("mixed-batch", help="throughput of mixed-task batches on a tiny T5 on CPU")
    mixed.add_argument("--examples", type=int, default=64, help="examples in the batch")
    mixed.add_argument("--tasks", type=int, default=8, help="tasks the examples are spread over")
    mixed.add_argument("--input-tokens", type=int, default=103, help="tokens per input")
    mixed.add_argument("--choices", type=int, nargs="+", default=[2, 3, 4], help="answer choices per example, cycled")
    mixed.add_argument("--choice-tokens", type=int, default=8, help="target tokens per answer choice")
    mixed.add_argument("--repeats", type=int, default=30, help="timed passes per batching (the fastest is reported)")
    mixed.add_argument("--threads", type=int, default=1, help="CPU threads for torch")
    mixed.set_defaults(handler=_run_bench_mixed)


def _run_bench_scoring(args) -> None:
    from tfew.bench import BatchShape, format_scoring_report, scoring_flops

    require_positive(args, "examples", "input_tokens", "choices", "choice_tokens")
    shape = BatchShape(args.examples, args.input_tokens, tuple(args.choices), args.choice_tokens)
    flops = scoring_flops(args.base_config, shape)
    print("\n".join(format_scoring_report(args.base_config, shape, flops)))


def _run_bench_mixed(args) -> None:
    import torch

    from tfew.bench import BatchShape, format_throughput_report, mixed_batch_throughput
    from tfew.errors import TfewError

    require_positive(args, "examples", "tasks", "input_tokens", "choices", "choice_tokens", "repeats", "threads")
    if args.examples % args.tasks:
        raise TfewError(f"--examples {args.examples} must be a multiple of --tasks {args.tasks}")
    torch.set_num_threads(args.threads)
    shape = BatchShape(args.examples, args.input_tokens, tuple(args.choices), args.choice_tokens)
    result = mixed_batch_throughput(shape, args.tasks, args.repeats)
    print("\n".join(format_throughput_report(shape, args.tasks, args.repeats, args.threads, result)))
