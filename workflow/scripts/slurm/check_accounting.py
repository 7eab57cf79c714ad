"""Check in Slurm's accounting what the jobs of a workflow run requested and how they ended.

    .venv/bin/python workflow/scripts/slurm/check_accounting.py --since 2026-12-04T21:00 \\
        --partition gpu --account tfew --gpu-rules 'train.*'

`make demo-slurm` runs it after the demo: every job since the given time must have COMPLETED in the given
partition and account, jobs of rules matching --gpu-rules must hold exactly one GPU (gres/gpu=1), and all other
jobs none. It prints one line per rule with its job count and GPUs per job. The rule of each job comes from the
comment that snakemake-executor-plugin-slurm sets (`rule_<rule>_wildcards_<values>`), which sacct shows only when
slurm.conf has AccountingStoreFlags=job_comment.
"""

from __future__ import annotations

import argparse
import logging
import re
import subprocess
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass

logger = logging.getLogger("check_accounting")

SACCT_FIELDS = ("JobIDRaw", "JobName", "Account", "Partition", "State", "AllocTRES", "Comment")

COMMENT = re.compile(r"^rule_(.+?)(?:_wildcards_.*)?$")


@dataclass
class AccountedJob:
    """One job as sacct reports it."""

    job_id: str
    rule: str
    account: str
    partition: str
    state: str
    gpus: int


def gpus_of(alloc_tres: str) -> int:
    """Return the gres/gpu count of an AllocTRES string such as `cpu=1,gres/gpu=1,mem=2000M,node=1`."""
    match = re.search(r"gres/gpu=(\d+)", alloc_tres)
    return int(match.group(1)) if match else 0


def query_jobs(since: str) -> list[AccountedJob]:
    command = ["sacct", "-X", "-n", "-P", "-S", since, "-o", ",".join(SACCT_FIELDS)]
    output = subprocess.run(command, capture_output=True, text=True, check=True, timeout=120).stdout
    jobs = []
    for line in output.splitlines():
        job_id, _, account, partition, state, alloc_tres, comment = line.split("|", len(SACCT_FIELDS) - 1)
        match = COMMENT.match(comment)
        rule = match.group(1) if match else f"(no rule comment: {comment!r})"
        jobs.append(AccountedJob(job_id, rule, account, partition, state, gpus_of(alloc_tres)))
    return jobs


def check_jobs(jobs: list[AccountedJob], partition: str, account: str, gpu_rules: re.Pattern) -> list[str]:
    """Return one message per job that ended or was placed otherwise than expected."""
    problems = []
    if not jobs:
        problems.append("sacct lists no jobs for this run")
    for job in jobs:
        expected_gpus = 1 if gpu_rules.fullmatch(job.rule) else 0
        if job.state != "COMPLETED":
            problems.append(f"job {job.job_id} (rule {job.rule}) ended {job.state}")
        if job.partition != partition:
            problems.append(f"job {job.job_id} (rule {job.rule}) ran in partition {job.partition!r}, not {partition!r}")
        if job.account != account:
            problems.append(f"job {job.job_id} (rule {job.rule}) was charged to {job.account!r}, not {account!r}")
        if job.gpus != expected_gpus:
            problems.append(f"job {job.job_id} (rule {job.rule}) held {job.gpus} GPUs, expected {expected_gpus}")
    return problems


def summarise(jobs: list[AccountedJob]) -> list[str]:
    """Return one line per rule: job count and the GPUs its jobs held."""
    counts = Counter(job.rule for job in jobs)
    gpus = defaultdict(set)
    for job in jobs:
        gpus[job.rule].add(job.gpus)
    return [
        f"{rule}: {counts[rule]} jobs, GPUs per job {'/'.join(str(count) for count in sorted(gpus[rule]))}"
        for rule in sorted(counts)
    ]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--since", required=True, help="start of the run, as sacct -S takes it (e.g. 2026-12-04T21:00)")
    parser.add_argument("--partition", required=True, help="partition every job must have run in")
    parser.add_argument("--account", required=True, help="account every job must have been charged to")
    parser.add_argument(
        "--gpu-rules", type=re.compile, required=True, help="regular expression of the rules whose jobs hold one GPU"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    args = parse_args(argv)
    try:
        jobs = query_jobs(args.since)
    except (OSError, subprocess.SubprocessError) as error:
        logger.error("sacct failed, so the jobs cannot be checked: %s", error)
        return 1

    for line in summarise(jobs):
        logger.info("%s", line)
    problems = check_jobs(jobs, args.partition, args.account, args.gpu_rules)
    for problem in problems:
        logger.error("%s", problem)
    if problems:
        return 1
    logger.info("all %d jobs completed in partition %s, account %s, with the expected GPUs", len(jobs), args.partition, args.account)
    return 0


if __name__ == "__main__":
    sys.exit(main())
