#!/usr/bin/env bash
# Start a single-node Slurm cluster bound to loopback, for testing the SLURM profile in CI:
#
#     sudo workflow/scripts/slurm/cluster_up.sh      # then: source $SLURM_CI_DIR/env; sinfo
#     sudo workflow/scripts/slurm/cluster_down.sh    # stops every daemon started here, by PID
#
# It installs Debian's slurm-wlm, munge, slurmdbd and mariadb-server with apt when they are missing, then starts
# munged, mariadbd (a fresh database in the scratch directory), slurmdbd, slurmctld and slurmd. The cluster has
# one partition and one accounting account, named as in workflow/profiles/slurm/config.yaml, and one node,
# `localhost`, with this machine's CPUs, 90% of its memory, and one GPU per CPU declared as a generic resource
# (GRES). Those GPUs do not exist: Slurm counts and allocates them, so GPU requests are checked by a real
# scheduler, while the jobs run on CPU. Nothing enforces the memory requests (no cgroups).
#
# Tested with Slurm 22.05.8, munge 0.5.15 and MariaDB 10.11 (Debian bookworm). On failure it stops what it
# started, so a failed bring-up leaves no daemon behind.
set -euo pipefail

source "$(dirname "$0")/common.sh"

install_packages() {
    local missing=""
    for package in $SLURM_CI_PACKAGES; do
        if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
            missing="$missing $package"
        fi
    done
    if [ -z "$missing" ]; then
        return
    fi

    log "installing with apt:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >"$LOG_DIR/apt.log" 2>&1 || fail "apt-get update failed; see $LOG_DIR/apt.log"
    # shellcheck disable=SC2086  # the package list is meant to split into words
    apt-get install -y -q $missing >>"$LOG_DIR/apt.log" 2>&1 || fail "apt-get install failed; see $LOG_DIR/apt.log"
}

# Point the default configuration path at this cluster's, for srun inside jobs (see common.sh).
link_default_conf() {
    if [ -L "$DEFAULT_SLURM_CONF" ] && [ "$(readlink "$DEFAULT_SLURM_CONF")" = "$SLURM_CONF" ]; then
        return
    fi
    if [ -e "$DEFAULT_SLURM_CONF" ] || [ -L "$DEFAULT_SLURM_CONF" ]; then
        fail "$DEFAULT_SLURM_CONF already exists, so this machine has a Slurm installation of its own;" \
            "this script runs only where it can own that path"
    fi
    mkdir -p "$(dirname "$DEFAULT_SLURM_CONF")"
    ln -s "$SLURM_CONF" "$DEFAULT_SLURM_CONF"
}

fail_if_running() {
    local daemon pid
    for daemon in $SLURM_CI_DAEMONS; do
        pid=$(recorded_pid "$daemon")
        if is_running "$pid"; then
            fail "$daemon from an earlier bring-up is still running (PID $pid);" \
                "stop it with workflow/scripts/slurm/cluster_down.sh"
        fi
    done
}

reset_scratch_directory() {
    case $SLURM_CI_DIR in
        /*/*) ;;
        *) fail "SLURM_CI_DIR=$SLURM_CI_DIR must be an absolute path below a top-level directory" ;;
    esac
    # Delete only a directory that an earlier bring-up created, never one that happens to share the name.
    if [ -e "$SLURM_CI_DIR" ] && [ ! -e "$SLURM_CI_DIR/.tfew-slurm-ci" ]; then
        fail "$SLURM_CI_DIR exists but was not created by cluster_up.sh; remove it or set SLURM_CI_DIR elsewhere"
    fi
    rm -rf "$SLURM_CI_DIR"
    mkdir -p "$LOG_DIR"
    touch "$SLURM_CI_DIR/.tfew-slurm-ci"
}

prepare_directories() {
    mkdir -p "$ETC_DIR" "$PID_DIR" "$SLURM_CI_DIR/ctld_state" "$SLURM_CI_DIR/slurmd_spool"
    chmod 755 "$SLURM_CI_DIR"

    # munged and mariadbd drop to their own users, which must own the directories they write. munged requires
    # its socket directory to be searchable by all; the key file itself is readable by munge only.
    install -d -m 755 -o munge -g munge "$MUNGE_DIR"
    install -d -m 750 -o mysql -g mysql "$DB_DIR"
}

# Run a daemon in foreground mode as a background job, record its PID, and fail at once if it exits.
start_daemon() {
    local name=$1
    shift
    "$@" >"$LOG_DIR/$name.out" 2>&1 </dev/null &
    echo $! >"$PID_DIR/$name.pid"
    sleep 0.2
    if ! is_running "$!"; then
        tail -n 20 "$LOG_DIR/$name.out" >&2 || true
        fail "$name exited right after start; its output is in $LOG_DIR/$name.out"
    fi
}

# Wait until a readiness check passes, failing early if the daemon has died.
wait_ready() {
    local name=$1 seconds=$2
    shift 2
    local pid deadline=$((SECONDS + seconds))
    pid=$(recorded_pid "$name")
    until "$@" >/dev/null 2>&1; do
        if ! is_running "$pid"; then
            tail -n 20 "$LOG_DIR/$name.out" >&2 || true
            fail "$name (PID $pid) exited before it was ready; see $LOG_DIR/$name.out and $LOG_DIR/$name.log"
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            fail "$name (PID $pid) was not ready after ${seconds} s; see $LOG_DIR/$name.out and $LOG_DIR/$name.log"
        fi
        sleep 0.5
    done
    log "$name is up (PID $pid)"
}

start_munge() {
    # A key of its own, so this cluster trusts no other munge installation on the machine.
    mungekey --create --keyfile="$MUNGE_DIR/munge.key"
    chown munge:munge "$MUNGE_DIR/munge.key"
    chmod 400 "$MUNGE_DIR/munge.key"

    # setpriv executes munged in place (no fork), so the recorded PID is munged's own.
    start_daemon munged setpriv --reuid=munge --regid=munge --init-groups \
        munged --foreground --socket="$MUNGE_SOCKET" --key-file="$MUNGE_DIR/munge.key" \
        --pid-file="$MUNGE_DIR/munged.pid" --log-file="$MUNGE_DIR/munged.log" --seed-file="$MUNGE_DIR/munged.seed"
    wait_ready munged 20 bash -c "munge -n --socket='$MUNGE_SOCKET' | unmunge --socket='$MUNGE_SOCKET'"
}

db() {
    mariadb --no-defaults --socket="$DB_SOCKET" --user=root "$@"
}

start_mariadb() {
    mariadb-install-db --no-defaults --user=mysql --datadir="$DB_DIR/data" --skip-test-db \
        --auth-root-authentication-method=socket >"$LOG_DIR/mariadb-install.out" 2>&1 \
        || fail "mariadb-install-db failed; see $LOG_DIR/mariadb-install.out"

    # No TCP listener at all: slurmdbd reaches the database through this Unix socket.
    start_daemon mariadbd mariadbd --no-defaults --user=mysql --datadir="$DB_DIR/data" --socket="$DB_SOCKET" \
        --skip-networking --pid-file="$DB_DIR/mariadbd.pid" --log-error="$LOG_DIR/mariadbd.log"
    wait_ready mariadbd 60 db -e "SELECT 1"

    DB_PASSWORD=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
    db -e "CREATE USER 'slurm'@'localhost' IDENTIFIED BY '$DB_PASSWORD';
           GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"
}

# NOTE: slurmdbd 22.05 listens on port 6819 of every interface, because DbdAddr names the address that clients
# use but does not restrict the listener. It answers only requests signed with this cluster's own munge key.
write_slurmdbd_conf() {
    cat >"$ETC_DIR/slurmdbd.conf" <<EOF
# slurmdbd of the test cluster, written by cluster_up.sh.
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=root
LogFile=$LOG_DIR/slurmdbd.log
PidFile=$SLURM_CI_DIR/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=$DB_PASSWORD
StorageLoc=slurm_acct_db
EOF
    # slurmdbd rejects a configuration file that others can read, because it contains the database password.
    chmod 600 "$ETC_DIR/slurmdbd.conf"
}

write_slurm_conf() {
    local cpus memory
    cpus=$(nproc)
    # Below the detected total, because slurmd marks a node invalid that has less memory than configured.
    memory=$(awk '/^MemTotal:/ { printf "%d", $2 / 1024 * 0.9 }' /proc/meminfo)

    cat >"$ETC_DIR/slurm.conf" <<EOF
# The test cluster with one node on loopback, written by cluster_up.sh.
ClusterName=$SLURM_CI_CLUSTER
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
CredType=cred/munge
# Bind every daemon to the address its host name resolves to (127.0.0.1) instead of all interfaces.
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
MpiDefault=none
MailProg=/bin/true
# No cgroups: processes are tracked by parent PID, and tasks are not bound to CPUs.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
# For slurmdbd connections this key names the munge socket, not a password.
AccountingStoragePass=$MUNGE_SOCKET
AccountingStorageTRES=gres/gpu
# Store each job's comment, where the executor plugin names the rule and wildcards, so that sacct shows it.
AccountingStoreFlags=job_comment
# As on most real clusters, a job must name an account that the user belongs to.
AccountingStorageEnforce=associations
JobCompType=jobcomp/none
GresTypes=gpu
ReturnToService=2
# Finished jobs stay visible to squeue for 300 s, which the executor plugin needs for its squeue status mode.
MinJobAge=300
StateSaveLocation=$SLURM_CI_DIR/ctld_state
SlurmdSpoolDir=$SLURM_CI_DIR/slurmd_spool
SlurmctldPidFile=$SLURM_CI_DIR/slurmctld.pid
SlurmdPidFile=$SLURM_CI_DIR/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
# A job that requests no memory gets this much per CPU instead of the whole node.
DefMemPerCPU=$((memory / cpus))
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory Gres=gpu:$cpus State=UNKNOWN
PartitionName=$SLURM_CI_PARTITION Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF

    # Slurm drops GPUs that have no device file, so each declared GPU gets an empty regular file in place of
    # /dev/nvidiaN. slurmd logs that these are not character devices, then counts and allocates them anyway.
    mkdir -p "$SLURM_CI_DIR/dev"
    local index
    for index in $(seq 0 $((cpus - 1))); do
        touch "$SLURM_CI_DIR/dev/gpu$index"
    done
    cat >"$ETC_DIR/gres.conf" <<EOF
NodeName=localhost Name=gpu File=$SLURM_CI_DIR/dev/gpu[0-$((cpus - 1))]
EOF
}

start_slurmdbd() {
    write_slurmdbd_conf
    # The MariaDB client library inside slurmdbd takes the socket of a "localhost" connection from here.
    start_daemon slurmdbd env MYSQL_UNIX_PORT="$DB_SOCKET" slurmdbd -D
    wait_ready slurmdbd 60 sacctmgr -n list cluster
}

add_accounts() {
    sacctmgr -i add cluster "$SLURM_CI_CLUSTER" >/dev/null
    sacctmgr -i add account "$SLURM_CI_ACCOUNT" Cluster="$SLURM_CI_CLUSTER" \
        Description="tfew workflow tests" Organization=tfew >/dev/null
    sacctmgr -i add user root Account="$SLURM_CI_ACCOUNT" Cluster="$SLURM_CI_CLUSTER" >/dev/null
    log "accounting: cluster $SLURM_CI_CLUSTER, account $SLURM_CI_ACCOUNT for user root"
}

node_is_idle() {
    [ "$(sinfo -h -n localhost -o %t)" = "idle" ]
}

start_slurm() {
    start_daemon slurmctld slurmctld -D
    wait_ready slurmctld 60 bash -c "scontrol ping | grep -q UP"

    start_daemon slurmd slurmd -D -N localhost
    wait_ready slurmd ${SLURM_CI_SLURMD_WAIT:-60} node_is_idle
}

write_env_file() {
    cat >"$SLURM_CI_DIR/env" <<EOF
# Source this file to use the test cluster's commands (sinfo, sbatch, sacct, ...).
export SLURM_CONF=$SLURM_CONF
export TFEW_SLURM_CI_DIR=$SLURM_CI_DIR
EOF
}

main() {
    require_root
    fail_if_running
    local started=$SECONDS

    # A fresh scratch directory each time: job IDs, accounting and state all start from nothing.
    reset_scratch_directory
    install_packages
    prepare_directories

    # From here on a failure must not leave half a cluster running.
    trap 'log "bring-up failed; stopping what was started"; "$(dirname "$0")/cluster_down.sh" || true' EXIT

    link_default_conf
    start_munge
    start_mariadb
    write_slurm_conf
    start_slurmdbd
    add_accounts
    start_slurm
    write_env_file

    trap - EXIT
    log "cluster $SLURM_CI_CLUSTER is up in $((SECONDS - started)) s; run 'source $SLURM_CI_DIR/env' to use it"
    sinfo -o "%P %a %D %t %c %m %G" >&2
}

main "$@"
