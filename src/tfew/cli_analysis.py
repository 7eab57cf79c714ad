"""The `tfew` subcommands for significance tests and the paper's tables and figures.

    tfew significance --predictions results/demo/predictions/**/*.csv --out results/demo/significance
    tfew report --aggregate results/demo/aggregate --significance results/demo/significance \
        --out paper_figures/demo [--costs results/demo/costs/table1.csv]

`tfew aggregate` (median and IQR over seeds x templates) is registered in `tfew.cli`. The workflow runs the
notebooks in `analysis/`, which call the same functions as `tfew report` and add the explanations.
"""

from __future__ import annotations

from pathlib import Path

from tfew.stats import SignificanceSettings


def add_commands(commands) -> None:
    """Register this module's subcommands on the top-level parser."""
    _add_significance_command(commands)
    _add_report_command(commands)


def _add_significance_command(commands) -> None:
    defaults = SignificanceSettings()
    parser = commands.add_parser(
        "significance", help="paired tests between methods per task (Wilcoxon, permutation, bootstrap, McNemar)"
    )
    parser.add_argument("--predictions", type=Path, nargs="+", required=True, help="prediction CSV files of one run")
    parser.add_argument("--out", type=Path, required=True, help="output folder for the significance tables")
    parser.add_argument("--permutations", type=int, default=defaults.permutations,
                        help="resamples of the paired permutation test")
    parser.add_argument("--bootstrap-resamples", type=int, default=defaults.bootstrap_resamples,
                        help="resamples of the paired bootstrap over examples")
    parser.add_argument("--confidence", type=float, default=defaults.confidence,
                        help="confidence level of the bootstrap interval, between 0 and 1")
    parser.add_argument("--alpha", type=float, default=defaults.alpha,
                        help="level at which a McNemar cell counts as significant after Holm's correction")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seed of the resampling generators")
    parser.set_defaults(handler=_run_significance)


def _run_significance(args) -> None:
    from tfew.errors import TfewError
    from tfew.stats import run_significance

    if not 0 < args.confidence < 1:
        raise TfewError(f"--confidence {args.confidence} is invalid; pass a level between 0 and 1, e.g. 0.95")
    if args.permutations < 1 or args.bootstrap_resamples < 1:
        raise TfewError("--permutations and --bootstrap-resamples must be positive")
    settings = SignificanceSettings(permutations=args.permutations, bootstrap_resamples=args.bootstrap_resamples,
                            confidence=args.confidence, alpha=args.alpha, seed=args.seed)
    run_significance(args.predictions, args.out, settings)


def _add_report_command(commands) -> None:
    parser = commands.add_parser("report", help="write the paper's tables (CSV, Markdown, LaTeX) and figures (PDF, PNG)")
    parser.add_argument("--aggregate", type=Path, required=True, help="folder written by `tfew aggregate`")
    parser.add_argument("--significance", type=Path, help="folder written by `tfew significance` (optional)")
    parser.add_argument("--costs", type=Path, help="cost table of `tfew costs --preset paper-table1` (optional)")
    parser.add_argument("--reference", type=Path, help="published numbers (default: analysis/reference)")
    parser.add_argument("--out", type=Path, required=True, help="output folder, e.g. paper_figures/<run>")
    parser.set_defaults(handler=_run_report)


def _run_report(args) -> None:
    from tfew.aggregate import read_tables
    from tfew.figures import write_report_figures
    from tfew.report import load_reference, write_report_tables, write_significance_tables

    tables = write_report_tables(args.aggregate, args.out, args.reference, args.costs)
    write_report_figures(tables, read_tables(args.aggregate), load_reference(args.reference), args.out)
    if args.significance is not None:
        write_significance_tables(args.significance, args.out)
