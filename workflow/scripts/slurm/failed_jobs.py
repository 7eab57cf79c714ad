"""List the failed SLURM jobs of a workflow run: rule, wildcards, SLURM state and the path of the SLURM log.

    .venv/bin/python workflow/scripts/slurm/failed_jobs.py logs/slurm
    .venv/bin/python workflow/scripts/slurm/failed_jobs.py logs/slurm --since 2026-12-04T21:00

snakemake-executor-plugin-slurm writes each job's SLURM log to <logdir>/rule_<rule>/<wildcard values>/<jobid>.log
and deletes it when the job succeeds, so the logs left behind belong to jobs that failed, were cancelled or
still run. The rule and the named wildcards are read from the `--target-jobs` argument that the plugin passes
to the job, which the log's first lines repeat; the state comes from `sacct` when it is available.
"""

from __future__ import annotations

import argparse
import logging
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

logger = logging.getLogger("failed_jobs")

# Example: --target-jobs 'train_ia3:task=rte,loss=lm+ul,seed=0'
TARGET_JOBS = re.compile(r"--target-jobs\s+'?([A-Za-z0-9_]+):?([^'\s]*)'?")

# The target appears in the header that snakemake prints when the job starts.
HEADER_LINES = 40


@dataclass
class FailedJob:
    """One SLURM job whose log the plugin kept."""

    slurm_job_id: str
    rule: str
    wildcards: str
    log: Path
    state: str = "unknown"


def parse_log(path: Path) -> FailedJob:
    """Read the rule and wildcards of a job from its SLURM log, falling back to the log's folder names."""
    rule = path.parts[-3][len("rule_"):] if path.parts[-3].startswith("rule_") else path.parts[-2]
    wildcards = path.parent.name
    with path.open(errors="replace") as lines:
        for _, line in zip(range(HEADER_LINES), lines):
            match = TARGET_JOBS.search(line)
            if match:
                rule, wildcards = match.group(1), match.group(2).replace(",", ", ")
                break
    return FailedJob(slurm_job_id=path.stem, rule=rule, wildcards=wildcards, log=path)


def find_logs(log_dir: Path, since: datetime | None) -> list[Path]:
    """Return the kept SLURM logs under log_dir, oldest first, optionally only those written since a time."""
    logs = [path for path in log_dir.rglob("*.log") if path.stem.isdigit()]
    if since is not None:
        logs = [path for path in logs if datetime.fromtimestamp(path.stat().st_mtime) >= since]
    return sorted(logs, key=lambda path: path.stat().st_mtime)


def sacct_states(job_ids: list[str]) -> dict[str, str]:
    """Return `state (exit code)` per SLURM job ID from sacct, or nothing where sacct is missing or fails."""
    if not job_ids or shutil.which("sacct") is None:
        return {}
    command = ["sacct", "-X", "-n", "-P", "-o", "JobIDRaw,State,ExitCode", "-j", ",".join(job_ids)]
    try:
        output = subprocess.run(command, capture_output=True, text=True, check=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError) as error:
        logger.warning("sacct failed, so job states are unknown: %s", error)
        return {}
    states = {}
    for line in output.splitlines():
        job_id, state, exit_code = line.split("|")
        states[job_id] = f"{state} (exit code {exit_code})"
    return states


def failed_jobs(log_dir: Path, since: datetime | None = None) -> list[FailedJob]:
    jobs = [parse_log(path) for path in find_logs(log_dir, since)]
    states = sacct_states([job.slurm_job_id for job in jobs])
    for job in jobs:
        job.state = states.get(job.slurm_job_id, job.state)
    return jobs


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("log_dir", type=Path, help="the profile's slurm-logdir, e.g. logs/slurm")
    parser.add_argument(
        "--since", type=datetime.fromisoformat, help="only logs written at or after this local time (ISO 8601)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Print one line per kept SLURM log; exit status 1 when there is none."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = parse_args(argv)
    if not args.log_dir.is_dir():
        logger.error("SLURM log folder %s not found; pass the profile's slurm-logdir", args.log_dir)
        return 1

    jobs = failed_jobs(args.log_dir, args.since)
    if not jobs:
        logger.info("no SLURM logs of failed jobs in %s", args.log_dir)
        return 1
    for job in jobs:
        logger.info(
            "failed job: rule %s, wildcards %s, SLURM job %s %s, SLURM log %s",
            job.rule, job.wildcards or "(none)", job.slurm_job_id, job.state, job.log,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
