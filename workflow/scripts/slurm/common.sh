# Settings and helpers shared by the single-node Slurm scripts; sourced, never run.
#
# Every file of the test cluster lives under one scratch directory, so nothing in /etc, /run or /var/lib is
# written. Each daemon is started by these scripts in the foreground, so `$!` is its PID; that PID goes to
# $PID_DIR/<daemon>.pid and the tear-down stops exactly those processes.

SLURM_CI_DIR=${SLURM_CI_DIR:-/tmp/tfew-slurm-ci}
SLURM_CI_CLUSTER=${SLURM_CI_CLUSTER:-tfew-ci}

# The partition and account below are the ones workflow/profiles/slurm/config.yaml names, so that the
# profile runs here unchanged.
SLURM_CI_PARTITION=${SLURM_CI_PARTITION:-gpu}
SLURM_CI_ACCOUNT=${SLURM_CI_ACCOUNT:-tfew}

# Debian bookworm packages: slurm-wlm 22.05 (slurmctld, slurmd, client commands), munge for authentication,
# slurmdbd and mariadb-server for job accounting, which `sacct` reads.
SLURM_CI_PACKAGES="slurm-wlm munge slurmdbd mariadb-server"

ETC_DIR=$SLURM_CI_DIR/etc
PID_DIR=$SLURM_CI_DIR/pids
LOG_DIR=$SLURM_CI_DIR/log
MUNGE_DIR=$SLURM_CI_DIR/munge
DB_DIR=$SLURM_CI_DIR/mariadb
MUNGE_SOCKET=$MUNGE_DIR/munge.socket
DB_SOCKET=$DB_DIR/mysqld.sock

# Every Slurm command (sbatch, squeue, sacct, ...) and daemon reads its configuration from here, and the
# snakemake executor plugin inherits it through the environment.
export SLURM_CONF=$ETC_DIR/slurm.conf

# snakemake-executor-plugin-slurm-jobstep 0.6 removes every SLURM_* variable before it calls srun inside a job,
# SLURM_CONF included, so srun falls back to the default path. cluster_up.sh links it to SLURM_CONF there,
# unless a real Slurm installation already owns that path.
DEFAULT_SLURM_CONF=/etc/slurm/slurm.conf

# Marks the daemons of this cluster and, through sbatch --export=ALL, the processes of its jobs, so that the
# tear-down can find job processes that outlive their daemons.
export TFEW_SLURM_CI_DIR=$SLURM_CI_DIR

# Stop order: job-side daemons first, the database last but one, munge last because all others use it.
SLURM_CI_DAEMONS="slurmd slurmctld slurmdbd mariadbd munged"

log() {
    printf '[slurm-ci %(%H:%M:%S)T] %s\n' -1 "$*" >&2
}

fail() {
    log "ERROR: $*"
    exit 1
}

require_root() {
    if [ "$(id -u)" -ne 0 ]; then
        fail "this script starts system daemons and installs packages with apt, so it must run as root" \
            "(for example: sudo make demo-slurm)"
    fi
}

# Print the PID recorded for a daemon while that process still runs under the daemon's name, else nothing.
# The name check keeps a stale PID file from pointing at an unrelated process that reused the PID.
recorded_pid() {
    local pid_file=$PID_DIR/$1.pid pid
    if [ -s "$pid_file" ]; then
        pid=$(cat "$pid_file")
        if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ]; then
            echo "$pid"
        fi
    fi
}

is_running() {
    [ -n "$1" ] && kill -0 "$1" 2>/dev/null
}

# Wait up to $2 seconds for a check command ($3...) to succeed; return 1 on timeout.
wait_for() {
    local what=$1 seconds=$2
    shift 2
    local deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            log "timed out after ${seconds} s waiting for $what"
            return 1
        fi
        sleep 0.5
    done
}
