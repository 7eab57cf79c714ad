"""Check that two runs of the same workflow config produced the same results.

    .venv/bin/python workflow/scripts/slurm/compare_runs.py results/demo results/demo-slurm

`make demo-slurm` uses it to compare the SLURM run of the demo config with the local run. It compares every CSV
file under the given table folders (by default `predictions/` and `aggregate/`): the same files, the same
columns, the same rows in the same order, and the same text in every cell.

What identifies the run rather than its results is left out: the config hash (which covers `run_name`), the git
commit, and within `data_hashes` the hashes of (IA)^3 vector files, whose metadata records the config hash.
Differing commits are reported on their own, because snakemake does not rerun jobs when only the package's code
changes, so results computed at another commit may differ for that reason alone.

Exit status 0 means equal, 1 means a difference, which is printed with its file, column and first differing rows.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

logger = logging.getLogger("compare_runs")

DEFAULT_TABLES = ("predictions", "aggregate")

# Columns that differ between runs of one config by design: the hash covers the whole config, run name included,
# and the commit changes whenever anything is committed between the two runs.
RUN_IDENTITY_COLUMNS = ("config_hash", "run_name", "git_commit")

# Files listed in `data_hashes` whose bytes differ between runs of one config: (IA)^3 vector files carry the run's
# provenance, config hash included, in their metadata. The vectors themselves are compared through the scores.
RUN_STAMPED_FILES = ("vectors.safetensors",)

MAX_ROWS_SHOWN = 5
MAX_DIFFERENCES_SHOWN = 20


@dataclass
class Comparison:
    """Outcome of comparing two runs: counts of what matched, one message per difference, and the git commits
    recorded in each run's rows."""

    files: int = 0
    rows: int = 0
    differences: list[str] = field(default_factory=list)
    reference_commits: set[str] = field(default_factory=set)
    candidate_commits: set[str] = field(default_factory=set)

    @property
    def equal(self) -> bool:
        return not self.differences and self.files > 0


def table_files(run_dir: Path, tables: tuple[str, ...]) -> set[Path]:
    """Return the CSV files under the run's table folders, relative to the run folder."""
    files = set()
    for table in tables:
        folder = run_dir / table
        files.update(path.relative_to(run_dir) for path in folder.rglob("*.csv"))
    return files


def read_table(path: Path) -> pd.DataFrame:
    # Every cell as text, so that equality is exact and no float is rounded on the way in.
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def drop_run_stamped_hashes(data_hashes: str) -> str:
    """Remove the `name:sha256` entries of RUN_STAMPED_FILES from a `data_hashes` cell."""
    entries = [entry for entry in data_hashes.split(";") if entry.split(":")[0] not in RUN_STAMPED_FILES]
    return ";".join(entries)


def comparable(table: pd.DataFrame, ignore: tuple[str, ...]) -> pd.DataFrame:
    """Return the table without run-identity columns and without the hashes of run-stamped files."""
    table = table.drop(columns=[column for column in ignore if column in table.columns])
    if "data_hashes" in table.columns:
        table = table.assign(data_hashes=table["data_hashes"].map(drop_run_stamped_hashes))
    return table


def compare_table(reference: pd.DataFrame, candidate: pd.DataFrame, name: str, ignore: tuple[str, ...]) -> list[str]:
    """Return one message per difference between two versions of a table; empty when they are equal."""
    reference = comparable(reference, ignore)
    candidate = comparable(candidate, ignore)

    if list(reference.columns) != list(candidate.columns):
        return [f"{name}: columns differ: {list(reference.columns)} vs {list(candidate.columns)}"]
    if len(reference) != len(candidate):
        return [f"{name}: {len(reference)} rows vs {len(candidate)} rows"]

    differences = []
    for column in reference.columns:
        unequal = reference[column] != candidate[column]
        if not unequal.any():
            continue
        rows = list(unequal[unequal].index[:MAX_ROWS_SHOWN])
        examples = "; ".join(
            f"row {row}: {reference.at[row, column]!r} vs {candidate.at[row, column]!r}" for row in rows
        )
        differences.append(f"{name}: column {column!r} differs in {int(unequal.sum())} rows, first {examples}")
    return differences


def compare_runs(
    reference_dir: Path,
    candidate_dir: Path,
    tables: tuple[str, ...] = DEFAULT_TABLES,
    ignore: tuple[str, ...] = RUN_IDENTITY_COLUMNS,
) -> Comparison:
    """Compare the result tables of two run folders, file by file."""
    comparison = Comparison()
    reference_files = table_files(reference_dir, tables)
    candidate_files = table_files(candidate_dir, tables)

    for missing in sorted(reference_files - candidate_files):
        comparison.differences.append(f"{missing}: in {reference_dir} but missing from {candidate_dir}")
    for extra in sorted(candidate_files - reference_files):
        comparison.differences.append(f"{extra}: in {candidate_dir} but missing from {reference_dir}")
    if not reference_files:
        comparison.differences.append(f"no CSV files under {', '.join(tables)} in {reference_dir}")

    for relative in sorted(reference_files & candidate_files):
        reference = read_table(reference_dir / relative)
        candidate = read_table(candidate_dir / relative)
        comparison.reference_commits.update(reference.get("git_commit", []))
        comparison.candidate_commits.update(candidate.get("git_commit", []))
        comparison.differences.extend(compare_table(reference, candidate, str(relative), ignore))
        comparison.files += 1
        comparison.rows += len(reference)
    return comparison


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reference", type=Path, help="results folder of the reference run, e.g. results/demo")
    parser.add_argument("candidate", type=Path, help="results folder of the run to check, e.g. results/demo-slurm")
    parser.add_argument(
        "--tables", nargs="+", default=list(DEFAULT_TABLES), help="folders inside each run whose CSV files to compare"
    )
    parser.add_argument(
        "--ignore-columns",
        nargs="*",
        default=list(RUN_IDENTITY_COLUMNS),
        help="columns left out of the comparison because they identify the run",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    args = parse_args(argv)
    for run_dir in (args.reference, args.candidate):
        if not run_dir.is_dir():
            logger.error("results folder %s not found; run the workflow for it first", run_dir)
            return 1

    comparison = compare_runs(args.reference, args.candidate, tuple(args.tables), tuple(args.ignore_columns))
    if comparison.reference_commits != comparison.candidate_commits:
        logger.warning(
            "the runs come from different code: %s was computed at commit(s) %s, %s at %s; to compare results of "
            "the same code, delete %s and run the workflow for it again",
            args.reference, ", ".join(sorted(comparison.reference_commits)),
            args.candidate, ", ".join(sorted(comparison.candidate_commits)), args.reference,
        )
    if comparison.equal:
        logger.info(
            "%s and %s match: %d files, %d rows, every column except %s (and the hashes of %s)",
            args.reference, args.candidate, comparison.files, comparison.rows, ", ".join(args.ignore_columns),
            ", ".join(RUN_STAMPED_FILES),
        )
        return 0

    logger.error("%s and %s differ in %d places:", args.reference, args.candidate, len(comparison.differences))
    for difference in comparison.differences[:MAX_DIFFERENCES_SHOWN]:
        logger.error("  %s", difference)
    if len(comparison.differences) > MAX_DIFFERENCES_SHOWN:
        logger.error("  ... and %d more", len(comparison.differences) - MAX_DIFFERENCES_SHOWN)
    return 1


if __name__ == "__main__":
    sys.exit(main())
