#!/usr/bin/env bash
# Run the demo config through the SLURM profile on a single-node Slurm cluster started for the purpose, and
# check the outcome (`make demo-slurm` runs it after `make demo`, as root):
#
#     sudo make demo-slurm
#
# Steps:
#   1. start the cluster (cluster_up.sh);
#   2. run the demo config with workflow/profiles/slurm into results/demo-slurm/, with the run name and the GPU
#      requests of demo_slurm.yaml;
#   3. compare its predictions and aggregates with those of the local run in results/demo/ (compare_runs.py);
#   4. check in sacct that every job completed in the profile's partition and account, holding the GPUs it
#      requested (check_accounting.py);
#   5. run one job that fails on purpose, and check that snakemake exits non-zero and that the rule, wildcards
#      and SLURM log are reported;
#   6. stop every daemon (cluster_down.sh, from a trap, so also on failure or interruption) and check that no
#      Slurm, munge or MariaDB process is left.
#
# Snakemake ignores SIGTERM while jobs run, so each snakemake call runs under `timeout -k`, which sends SIGKILL
# when SIGTERM is not enough. Environment: DEMO_SLURM_TIMEOUT (seconds for the demo run, default 2400),
# SLURM_CI_DIR (scratch folder of the cluster, default /tmp/tfew-slurm-ci).
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "$0")" && pwd)
source "$SCRIPT_DIR/common.sh"
cd "$SCRIPT_DIR/../../.."

DEMO_SLURM_TIMEOUT=${DEMO_SLURM_TIMEOUT:-2400}
FAILURE_CHECK_TIMEOUT=${FAILURE_CHECK_TIMEOUT:-300}
PROFILE=workflow/profiles/slurm
DEMO_CONFIG=workflow/config/demo.yaml
OVERRIDES=$SCRIPT_DIR/demo_slurm.yaml
PYTHON=.venv/bin/python
SNAKEMAKE=.venv/bin/snakemake

# Jobs run `tfew` from the project's environment, which they inherit through sbatch --export=ALL.
export PATH=$PWD/.venv/bin:$PATH
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1} HF_DATASETS_OFFLINE=${HF_DATASETS_OFFLINE:-1}
export TOKENIZERS_PARALLELISM=${TOKENIZERS_PARALLELISM:-false}

# The first status query comes this many seconds after a submission. The profile's 40 s suits a busy cluster,
# but the demo's jobs take seconds.
STATUS_CHECK_ARGS=(--slurm-init-seconds-before-status-checks 2)

# Rules whose jobs request one GPU under demo_slurm.yaml: those of its stages pretrain, train, evaluate and icl.
GPU_RULES='(pre)?train.*|evaluate.*|icl.*'

TIMINGS=()

run_name_of() {
    "$PYTHON" -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["run_name"])' "$1"
}

record_time() {
    TIMINGS+=("$1: $2 s")
}

# Fail when a Slurm, munge or MariaDB process is still running. This only reports and stops nothing.
check_no_daemons_left() {
    local left
    left=$(ps -eo pid=,comm= | awk '$2 ~ /^(slurmctld|slurmd|slurmdbd|slurmstepd|srun|munged|mariadbd)$/')
    if [ -n "$left" ]; then
        log "ERROR: processes left after the tear-down:"
        echo "$left" >&2
        return 1
    fi
    log "no slurmctld, slurmd, slurmdbd, slurmstepd, srun, munged or mariadbd process is left"
}

tear_down() {
    local status=$?
    trap - EXIT INT TERM
    local started=$SECONDS
    "$SCRIPT_DIR/cluster_down.sh" || status=1
    check_no_daemons_left || status=1
    record_time "tear-down" $((SECONDS - started))

    log "wall times:"
    printf '    %s\n' "${TIMINGS[@]}" >&2
    if [ "$status" -eq 0 ]; then
        log "demo-slurm passed"
    else
        log "demo-slurm FAILED (exit status $status)"
    fi
    exit "$status"
}

# Run snakemake under a hard time limit and print a summary of failed jobs when it fails.
run_snakemake() {
    local seconds=$1 log_dir=$2
    shift 2
    local since status=0
    since=$(date +%Y-%m-%dT%H:%M:%S)
    timeout -k 30 "$seconds" "$SNAKEMAKE" "$@" || status=$?
    if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
        log "ERROR: snakemake timed out after $seconds s (exit status $status)"
    fi
    if [ "$status" -ne 0 ] && [ -d "$log_dir" ]; then
        "$PYTHON" "$SCRIPT_DIR/failed_jobs.py" "$log_dir" --since "$since" || true
    fi
    return "$status"
}

run_demo() {
    log "running the demo config through $PROFILE into results/$SLURM_RUN"
    rm -rf "results/$SLURM_RUN" "logs/$SLURM_RUN" "paper_figures/$SLURM_RUN"
    run_snakemake "$DEMO_SLURM_TIMEOUT" logs/slurm --profile "$PROFILE" --configfile "$DEMO_CONFIG" "$OVERRIDES" \
        "${STATUS_CHECK_ARGS[@]}"
}

# One job that fails on purpose must make snakemake exit with 1, naming the rule, wildcards and SLURM log.
check_failure_report() {
    local work_dir=$SLURM_CI_DIR/failure-check
    local output=$SLURM_CI_DIR/log/failure-check.out status=0
    rm -rf "$work_dir"
    mkdir -p "$work_dir"
    log "checking the report of a failing job (its errors below are expected)"
    run_snakemake "$FAILURE_CHECK_TIMEOUT" "$work_dir/logs/slurm" --profile "$PROFILE" \
        --snakefile "$SCRIPT_DIR/failing_job.smk" --directory "$work_dir" "${STATUS_CHECK_ARGS[@]}" \
        >"$output" 2>&1 || status=$?
    cat "$output" >&2

    if [ "$status" -ne 1 ]; then
        log "ERROR: snakemake exited with $status for a failing job; expected 1"
        return 1
    fi
    local report
    report=$("$PYTHON" "$SCRIPT_DIR/failed_jobs.py" "$work_dir/logs/slurm" 2>&1) || true
    local slurm_log
    slurm_log=$(find "$work_dir/logs/slurm/rule_fail_on_purpose" -name '*.log' | head -n 1)
    if ! grep -q "Error in rule fail_on_purpose" "$output"; then
        log "ERROR: the snakemake output does not name the failed rule fail_on_purpose"
        return 1
    fi
    if [ -z "$slurm_log" ] || ! grep -qF "$slurm_log" "$output"; then
        log "ERROR: the snakemake output does not give the path of the job's SLURM log"
        return 1
    fi
    if ! grep -q "rule fail_on_purpose, wildcards task=rte, seed=42, SLURM job [0-9]* FAILED" <<<"$report"; then
        log "ERROR: failed_jobs.py did not report rule, wildcards and state; it printed: $report"
        return 1
    fi
    log "the failing job was reported as expected: $report"
}

main() {
    require_root
    LOCAL_RUN=$(run_name_of "$DEMO_CONFIG")
    SLURM_RUN=$(run_name_of "$OVERRIDES")
    if [ ! -d "results/$LOCAL_RUN/predictions" ]; then
        fail "results/$LOCAL_RUN/predictions not found: run 'make demo' first, so there is a local run to compare with"
    fi

    trap tear_down EXIT
    trap 'log "interrupted"; exit 130' INT TERM

    local started=$SECONDS
    "$SCRIPT_DIR/cluster_up.sh"
    record_time "cluster bring-up (apt install included when needed)" $((SECONDS - started))

    started=$SECONDS
    local run_start
    run_start=$(date +%Y-%m-%dT%H:%M:%S)
    run_demo
    record_time "demo through SLURM" $((SECONDS - started))

    # The remaining checks are independent, so each runs even when an earlier one fails.
    local failed=()
    started=$SECONDS
    "$PYTHON" "$SCRIPT_DIR/compare_runs.py" "results/$LOCAL_RUN" "results/$SLURM_RUN" \
        || failed+=("results differ from the local run")
    "$PYTHON" "$SCRIPT_DIR/check_accounting.py" --since "$run_start" --partition "$SLURM_CI_PARTITION" \
        --account "$SLURM_CI_ACCOUNT" --gpu-rules "$GPU_RULES" || failed+=("accounting check")
    record_time "comparison with the local run and accounting check" $((SECONDS - started))

    started=$SECONDS
    check_failure_report || failed+=("failing-job report")
    record_time "failing-job check" $((SECONDS - started))

    if [ "${#failed[@]}" -gt 0 ]; then
        fail "failed checks: $(printf '%s; ' "${failed[@]}")"
    fi
}

main "$@"
