#!/usr/bin/env bash
# A real one-node SLURM cluster on this machine, for trying profiles/slurm and for tests/workflow/test_slurm.py.
#
#   scripts/slurm-local-cluster.sh start    install slurm-wlm + munge when missing (apt-get, as root), write
#                                           /etc/slurm/slurm.conf for this host, start munged, slurmctld, slurmd,
#                                           wait until the node is idle
#   scripts/slurm-local-cluster.sh stop     cancel its jobs, stop the daemons it started, remove its state and config
#   scripts/slurm-local-cluster.sh status   exit 0 when the cluster answers and its node is idle or busy
#
# Idempotent: `start` on a running cluster and `stop` on a stopped one do nothing. Needs root (the daemons run as
# root and the config lives at the default path, which `srun` inside jobs reads). It refuses to overwrite a
# slurm.conf it did not write, so it never takes over a real cluster's node.
# Environment: SALBENCH_SLURM_STATE (default /var/tmp/salbench-slurm) holds spool, state, logs and pid files;
# SALBENCH_SLURM_TIMEOUT (default 90) is how many seconds `start` waits for the node.
set -euo pipefail

STATE="${SALBENCH_SLURM_STATE:-/var/tmp/salbench-slurm}"
TIMEOUT="${SALBENCH_SLURM_TIMEOUT:-90}"
CONF=/etc/slurm/slurm.conf
MARKER="# Written by salbench scripts/slurm-local-cluster.sh"
HOST="$(hostname -s)"

die() { echo "slurm-local-cluster: $*" >&2; exit 1; }
say() { echo "slurm-local-cluster: $*"; }

require_root() {
    [ "$(id -u)" -eq 0 ] || die "must run as root (it installs packages, writes $CONF and starts the SLURM daemons)"
}

alive() {  # alive PIDFILE: the process named in PIDFILE runs
    [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

install_packages() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sinfo >/dev/null \
        && command -v munged >/dev/null; then
        return
    fi
    command -v apt-get >/dev/null || die "slurm-wlm and munge are missing and there is no apt-get to install them"
    say "installing slurm-wlm and munge with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
}

write_conf() {
    if [ -f "$CONF" ] && ! grep -qF "$MARKER" "$CONF"; then
        die "$CONF exists and was not written by this script; refusing to replace a real cluster's configuration"
    fi
    local cpus mem_mb
    cpus="$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)"  # nproc honours OMP_*; the node has every core
    # 95% of MemTotal: a node that reports less memory than configured is drained
    mem_mb="$(awk '/^MemTotal:/ {printf "%d", $2 / 1024 * 0.95}' /proc/meminfo)"
    mkdir -p /etc/slurm "$STATE/spool" "$STATE/state" "$STATE/log"
    cat >"$CONF.tmp" <<EOF
$MARKER for host $HOST; removed by its 'stop'.
ClusterName=salbench
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
# Finished jobs stay visible to squeue for 10 minutes (there is no sacct without slurmdbd)
MinJobAge=600
ReturnToService=2
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$STATE/state
SlurmdSpoolDir=$STATE/spool
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
NodeName=$HOST CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
    mv "$CONF.tmp" "$CONF"
}

start_munge() {
    if [ -S /run/munge/munge.socket.2 ] && munge -n </dev/null >/dev/null 2>&1; then
        return  # a munged answers (ours or the system's)
    fi
    [ -f /etc/munge/munge.key ] || (command -v mungekey >/dev/null && mungekey --create) \
        || die "no /etc/munge/munge.key"
    mkdir -p /run/munge
    chown munge:munge /run/munge
    su -s /bin/sh munge -c munged
    touch "$STATE/munged.ours"
}

node_state() {  # the node's state as sinfo reports it; empty when the controller does not answer
    { sinfo -h -N -n "$HOST" -o %T 2>/dev/null || true; } | head -n1
}

start() {
    require_root
    install_packages
    mkdir -p "$STATE"
    if alive "$STATE/slurmctld.pid" && alive "$STATE/slurmd.pid" && [ -n "$(node_state)" ]; then
        say "already running (node $HOST: $(node_state))"
        return
    fi
    write_conf
    start_munge
    alive "$STATE/slurmctld.pid" || slurmctld
    alive "$STATE/slurmd.pid" || slurmd
    local waited=0 state=""
    while [ "$waited" -lt "$TIMEOUT" ]; do
        state="$(node_state)"
        case "$state" in
            idle*|mixed*|allocated*) say "node $HOST is $state"; return ;;
            down*|drain*) scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true ;;
        esac
        sleep 1
        waited=$((waited + 1))
    done
    die "node $HOST not idle after ${TIMEOUT}s (state '${state:-no answer}'); see $STATE/log/"
}

stop_daemon() {  # stop_daemon NAME PIDFILE
    alive "$2" || return 0
    local pid
    pid="$(cat "$2")"
    kill "$pid"
    for _ in $(seq 1 30); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.5
    done
    kill -9 "$pid" 2>/dev/null || true
}

stop() {
    require_root
    if alive "$STATE/slurmctld.pid"; then
        local jobs
        jobs="$(squeue -h -o %i 2>/dev/null || true)"
        [ -z "$jobs" ] || scancel $jobs 2>/dev/null || true
    fi
    stop_daemon slurmd "$STATE/slurmd.pid"
    stop_daemon slurmctld "$STATE/slurmctld.pid"
    if [ -f "$STATE/munged.ours" ]; then
        stop_daemon munged /run/munge/munged.pid
    fi
    rm -rf "$STATE"
    if [ -f "$CONF" ] && grep -qF "$MARKER" "$CONF"; then
        rm -f "$CONF"
    fi
    say "stopped"
}

status() {
    local state
    state="$(node_state)"
    case "$state" in
        idle*|mixed*|allocated*) say "running (node $HOST: $state)" ;;
        "") say "not running"; return 1 ;;
        *) say "node $HOST is $state"; return 1 ;;
    esac
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
