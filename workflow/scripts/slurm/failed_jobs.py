"""List the failed SLURM jobs of a workflow run: rule, wildcards, SLURM state and the path of the SLURM log.

    .venv/bin/python workflow/scripts/slurm/failed_jobs.py logs/slurm
    .venv/bin/python workflow/scripts/slurm/failed_jobs.py logs/slurm --since 2026-12-04T21:00

snakemake-executor-plugin-slurm 2.8.0 writes each job's SLURM log to <logdir>/rule_<rule>/<wildcard values>/<jobid>.log,
or to <logdir>/rule_<rule>/<jobid>.log for a job without wildcards, and deletes it when the job succeeds. So the logs
left behind belong to jobs that failed, were cancelled or still run. The rule and the named wildcards are read from
the `--target-jobs` argument that the plugin passes to the job, which the log's first lines repeat, and otherwise
from the folder names. The state comes from `sacct`, and each log is listed under one heading:

- failed job: any state not named below, such as FAILED, CANCELLED, TIMEOUT or OUT_OF_MEMORY;
- job of unknown state: sacct is not installed, failed, or has no record of the job;
- still running or pending job: PENDING, RUNNING, REQUEUED and the other states of unfinished jobs;
- completed job, log kept: COMPLETED, with a log that the plugin did not delete. That happens to array tasks
  of rules with wildcards, because the plugin deletes a path under the wildcards folder, which SLURM never wrote.

Exit status: 0 when no failed job is found, 1 when at least one failed job or job of unknown state is found,
2 on a usage error such as a missing log folder or an invalid option. A job of unknown state counts as failed,
because the plugin keeps only the logs of jobs that failed or have not finished.
"""

from __future__ import annotations

import argparse
import logging
import re
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

logger = logging.getLogger("failed_jobs")

EXIT_NO_FAILED_JOB = 0
EXIT_FAILED_JOB = 1
EXIT_USAGE_ERROR = 2

# Example: --target-jobs 'train_ia3:task=rte,loss=lm+ul,seed=0'
TARGET_JOBS = re.compile(r"--target-jobs\s+'?([A-Za-z0-9_]+):?([^'\s]*)'?")

# The target appears in the header that snakemake prints when the job starts.
HEADER_LINES = 40

# sbatch --output of plugin 2.8.0 is <jobid>.log (%j) for a single job and <array job id>_<task id>.log (%A_%a)
# for an array task.
SLURM_LOG_STEM = re.compile(r"(\d+)(?:_(\d+))?")

UNKNOWN = "unknown"

# States of jobs that have not finished, from the job state codes of Slurm's squeue manual page. SPECIAL_EXIT is
# a requeued job held after a special exit code, which the plugin 2.8.0 treats as unfinished and keeps waiting for.
UNFINISHED_STATES = frozenset({
    "CONFIGURING", "COMPLETING", "PENDING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "RESIZING",
    "RESV_DEL_HOLD", "RUNNING", "SIGNALING", "SPECIAL_EXIT", "STAGE_OUT", "STOPPED", "SUSPENDED",
})

# Listing order of the statuses and the heading of each.
HEADINGS = {
    "failed": "failed job",
    "unknown": "job of unknown state",
    "running": "still running or pending job",
    "completed": "completed job, log kept",
}


@dataclass
class SlurmJob:
    """One SLURM job whose log the plugin kept."""

    slurm_job_id: str
    rule: str
    wildcards: str
    log: Path
    state: str = UNKNOWN

    @property
    def status(self) -> str:
        """Listing group of the job from its sacct state: `failed`, `unknown`, `running` or `completed`."""
        if self.state == UNKNOWN:
            return "unknown"
        name = self.state.split()[0]
        if name == "COMPLETED":
            return "completed"
        if name in UNFINISHED_STATES:
            return "running"
        return "failed"


def is_slurm_log(path: Path) -> bool:
    return path.suffix == ".log" and SLURM_LOG_STEM.fullmatch(path.stem) is not None


def is_array_task(slurm_job_id: str) -> bool:
    return "_" in slurm_job_id


def rule_and_wildcards_from_folders(path: Path, log_dir: Path) -> tuple[str, str]:
    """Return the rule and wildcard values named by the folders between log_dir and the log, or `unknown`."""
    folders = path.relative_to(log_dir).parts[:-1]
    if not folders or not folders[0].startswith("rule_") or len(folders) > 2:
        return UNKNOWN, UNKNOWN

    rule = folders[0][len("rule_"):]
    if len(folders) == 2:
        return rule, folders[1]

    # The plugin 2.8.0 writes every task of an array job to rule_<rule>/<array job id>_<task id>.log, with or
    # without wildcards, so there the folders cannot tell.
    return rule, UNKNOWN if is_array_task(path.stem) else ""


def rule_and_wildcards_from_header(path: Path) -> tuple[str, str] | None:
    """Return the rule and named wildcards of the `--target-jobs` argument in the log's header, if it has one."""
    # NOTE: for an array task the header may name the first job of its array chunk, because the plugin 2.8.0 builds
    # the sbatch command from that job. Untested on a cluster, since this profile does not submit array jobs.
    try:
        with path.open(errors="replace") as lines:
            for _, line in zip(range(HEADER_LINES), lines):
                match = TARGET_JOBS.search(line)
                if match:
                    return match.group(1), match.group(2).replace(",", ", ")
    except FileNotFoundError:
        # Deleted by the plugin since it was listed, because its job succeeded: the folders still name the rule.
        return None
    return None


def parse_log(path: Path, log_dir: Path) -> SlurmJob:
    """Read the rule and wildcards of a job from its SLURM log, falling back to the folder names under log_dir."""
    rule, wildcards = rule_and_wildcards_from_header(path) or rule_and_wildcards_from_folders(path, log_dir)
    return SlurmJob(slurm_job_id=path.stem, rule=rule, wildcards=wildcards, log=path)


def find_logs(log_dir: Path, since: datetime | None) -> list[Path]:
    """Return the kept SLURM logs under log_dir, oldest first, optionally only those written since a time.

    The plugin deletes a log when its job succeeds, which can happen while this runs; such a log is left out.
    """
    written = {}
    for path in log_dir.rglob("*.log"):
        if not is_slurm_log(path):
            continue
        try:
            status = path.stat()
        except FileNotFoundError:
            continue
        if stat.S_ISREG(status.st_mode):
            written[path] = datetime.fromtimestamp(status.st_mtime)
    if since is not None:
        written = {path: time for path, time in written.items() if time >= since}
    return sorted(written, key=written.get)


def sacct_job_filter(slurm_job_ids: list[str]) -> str:
    """Return the `sacct -j` list: each job ID once, and the array job ID in place of each array task's."""
    ids = {slurm_job_id.split("_")[0] for slurm_job_id in slurm_job_ids}
    return ",".join(sorted(ids, key=int))


def run_sacct(slurm_job_ids: list[str]) -> str | None:
    """Return the output of sacct for the jobs, or None where sacct is missing or fails."""
    if shutil.which("sacct") is None:
        logger.warning(
            "sacct not found on PATH, so job states are unknown. Run this where the Slurm client tools are installed."
        )
        return None

    # JobID is <array job id>_<task id> for an array task, as in the log's name, and the job ID otherwise.
    command = ["sacct", "-X", "-n", "-P", "-o", "JobID,State,ExitCode", "-j", sacct_job_filter(slurm_job_ids)]
    try:
        return subprocess.run(command, capture_output=True, text=True, check=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError) as error:
        logger.warning("sacct failed, so job states are unknown: %s", error)
        return None


def sacct_states(slurm_job_ids: list[str]) -> dict[str, str]:
    """Return `state (exit code)` per SLURM job ID from sacct, or nothing where sacct is missing or fails."""
    if not slurm_job_ids:
        return {}
    output = run_sacct(slurm_job_ids)
    if output is None:
        return {}

    states = {}
    for line in output.splitlines():
        fields = line.split("|")
        if len(fields) != 3:
            logger.warning("skipped a sacct line that is not JobID|State|ExitCode: %r", line)
            continue
        slurm_job_id, state, exit_code = fields
        states[slurm_job_id] = f"{state} (exit code {exit_code})"
    return states


def kept_jobs(log_dir: Path, since: datetime | None = None) -> list[SlurmJob]:
    """Return a job per kept SLURM log under log_dir, with its sacct state where sacct has one."""
    jobs = [parse_log(path, log_dir) for path in find_logs(log_dir, since)]
    states = sacct_states([job.slurm_job_id for job in jobs])
    for job in jobs:
        job.state = states.get(job.slurm_job_id, job.state)
    return jobs


def report(job: SlurmJob) -> str:
    state = "state unknown" if job.status == "unknown" else job.state
    return (
        f"{HEADINGS[job.status]}: rule {job.rule}, wildcards {job.wildcards or '(none)'}, "
        f"SLURM job {job.slurm_job_id} {state}, SLURM log {job.log}"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    summary, _, details = __doc__.partition("\n\n")
    parser = argparse.ArgumentParser(
        description=summary, epilog=details, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("log_dir", type=Path, help="the profile's slurm-logdir, e.g. logs/slurm")
    parser.add_argument(
        "--since", type=datetime.fromisoformat, help="only logs written at or after this local time (ISO 8601)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Print one line per kept SLURM log, failed jobs first, and return the exit status that the docstring defines."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = parse_args(argv)
    if not args.log_dir.is_dir():
        logger.error(
            "SLURM log folder %s not found: pass the profile's slurm-logdir. snakemake-executor-plugin-slurm "
            "2.8.0 removes the folder when snakemake exits and no log is left in it, so it is also missing after "
            "a run whose jobs all succeeded.",
            args.log_dir,
        )
        return EXIT_USAGE_ERROR

    jobs = kept_jobs(args.log_dir, args.since)
    if not jobs:
        logger.info("no SLURM logs of failed jobs in %s", args.log_dir)
        return EXIT_NO_FAILED_JOB

    for status in HEADINGS:
        for job in jobs:
            if job.status == status:
                logger.info(report(job))

    if any(job.status in ("failed", "unknown") for job in jobs):
        return EXIT_FAILED_JOB
    return EXIT_NO_FAILED_JOB


if __name__ == "__main__":
    sys.exit(main())
