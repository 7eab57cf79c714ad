#!/usr/bin/env bash
# Stop the single-node test cluster that cluster_up.sh started:
#
#     sudo workflow/scripts/slurm/cluster_down.sh
#
# It cancels the cluster's jobs, then stops each daemon by the PID that cluster_up.sh recorded (SIGTERM, then
# SIGKILL after a grace period), and finally ends any job process of this cluster that outlived its daemon:
# a process counts as one when its environment carries this cluster's TFEW_SLURM_CI_DIR (see common.sh) and
# either a SLURM_JOB_ID or the name slurmstepd. It exits non-zero if any of them is still running afterwards.
# Running it when nothing is up does nothing. The scratch directory with the logs stays for inspection.
set -uo pipefail

source "$(dirname "$0")/common.sh"

GRACE_SECONDS=${SLURM_CI_GRACE_SECONDS:-20}

cancel_jobs() {
    local pid jobs
    pid=$(recorded_pid slurmctld)
    if ! is_running "$pid"; then
        return
    fi

    jobs=$(squeue -h -o %A 2>/dev/null | tr '\n' ' ')
    if [ -n "${jobs// /}" ]; then
        log "cancelling jobs: $jobs"
        # shellcheck disable=SC2086  # one argument per job ID
        scancel --full $jobs 2>/dev/null || true
        wait_for "cancelled jobs to leave the queue" "$GRACE_SECONDS" bash -c '[ -z "$(squeue -h -t R,CG,PD -o %A)" ]' \
            || log "jobs still queued: $(squeue -h -o '%A %T' | tr '\n' ' ')"
    fi
}

# Stop one process by PID: SIGTERM, then SIGKILL if it is still alive after the grace period.
stop_pid() {
    local name=$1 pid=$2
    kill -TERM "$pid" 2>/dev/null || return 0
    local deadline=$((SECONDS + GRACE_SECONDS))
    while is_running "$pid" && [ "$SECONDS" -lt "$deadline" ]; do
        sleep 0.2
    done
    if is_running "$pid"; then
        log "$name (PID $pid) ignored SIGTERM for ${GRACE_SECONDS} s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.5
    fi
}

stop_daemons() {
    local daemon pid
    for daemon in $SLURM_CI_DAEMONS; do
        pid=$(recorded_pid "$daemon")
        if is_running "$pid"; then
            log "stopping $daemon (PID $pid)"
            stop_pid "$daemon" "$pid"
        fi
    done
}

# Print the PIDs of job processes and job step daemons that belong to this cluster.
cluster_job_pids() {
    local environ pid
    for environ in /proc/[0-9]*/environ; do
        pid=${environ#/proc/}
        pid=${pid%/environ}
        if [ "$pid" = "$$" ]; then
            continue
        fi
        # Read the environment as NUL-separated lines; processes that end meanwhile are skipped.
        local variables
        variables=$( { tr '\0' '\n' <"$environ"; } 2>/dev/null) || continue
        if ! grep -qxF "TFEW_SLURM_CI_DIR=$SLURM_CI_DIR" <<<"$variables"; then
            continue
        fi
        if grep -q '^SLURM_JOB_ID=' <<<"$variables" || [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "slurmstepd" ]; then
            echo "$pid"
        fi
    done
}

# Remove the link to this cluster's slurm.conf, and nothing else at that path.
remove_default_conf_link() {
    if [ -L "$DEFAULT_SLURM_CONF" ] && [ "$(readlink "$DEFAULT_SLURM_CONF")" = "$SLURM_CONF" ]; then
        rm -f "$DEFAULT_SLURM_CONF"
    fi
}

stop_leftover_job_processes() {
    local pid
    for pid in $(cluster_job_pids); do
        log "stopping leftover job process $pid ($(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-120))"
        stop_pid "job process" "$pid"
    done
}

verify_stopped() {
    local daemon pid status=0
    for daemon in $SLURM_CI_DAEMONS; do
        pid=$(recorded_pid "$daemon")
        if is_running "$pid"; then
            log "ERROR: $daemon (PID $pid) is still running"
            status=1
        fi
    done
    for pid in $(cluster_job_pids); do
        log "ERROR: job process $pid is still running"
        status=1
    done
    return $status
}

main() {
    if [ ! -d "$PID_DIR" ]; then
        log "no cluster state in $SLURM_CI_DIR; nothing to stop"
        return 0
    fi
    require_root

    cancel_jobs
    stop_daemons
    stop_leftover_job_processes
    remove_default_conf_link

    if verify_stopped; then
        log "all daemons and job processes of $SLURM_CI_DIR are stopped"
        rm -f "$PID_DIR"/*.pid
        return 0
    fi
    return 1
}

main "$@"
