#!/usr/bin/env bash
# A real two-node Slurm cluster on this one machine, for blender-jobs' integration tests.
#
# Each node is a slurmd in its own network namespace (own address, own hostname), joined to a
# bridge in the root namespace; slurmctld and a private munged run in the root namespace. Outside
# DIR it touches only the network objects, its slot under /run/blender-jobs-slurm and, when they
# are missing, the Debian packages.
# See README.md beside this file for the layout, the requirements and the measured times.
#
#   cluster.sh up DIR            install slurm-wlm + munge if missing, start the cluster, wait until
#                                both nodes are idle and have each run one trivial job
#   cluster.sh down DIR          stop everything of DIR's cluster (idempotent, also after a crash)
#   cluster.sh status DIR        daemons, nodes, addresses; exit 0 only when fully up
#   cluster.sh env DIR           `export ...` lines a Slurm client needs (SLURM_CONF, PATH, addresses)
#   cluster.sh kill-node DIR N [--slurmd-only]
#                                node N (node1|node2) dies: its slurmd and every process in its
#                                namespace (job steps, Blender) get SIGKILL; --slurmd-only kills slurmd alone
#   cluster.sh start-node DIR N  start node N's slurmd again and wait until Slurm takes it back
#   cluster.sh list              the clusters up on this machine (slot, DIR, owner pid)
#   cluster.sh gc                tear down clusters whose owner process (BJ_SLURM_OWNER_PID at up) is gone
#
# Environment for `up`: BJ_SLURM_OWNER_PID=PID marks the cluster as belonging to that process, so
# that a later `up` or `gc` on this machine tears it down once that process is gone (e.g. a test
# JVM killed with SIGKILL). Without it, only `down DIR` stops the cluster.
#
# Up to MAX_SLOTS clusters can run at once on one machine (different DIRs): cluster k uses the
# subnet 10.77.k.0/24, the bridge bj<k>br, the namespaces bj<k>n1/bj<k>n2 and ports 17100+2k
# (slurmctld) and 17101+2k (slurmd). The first free slot is taken, so a lone cluster is 10.77.0.x.
set -euo pipefail
# The daemons live in /usr/sbin, which a non-login root shell's PATH may lack.
export PATH="$PATH:/usr/sbin:/sbin"

readonly SLOT_ROOT=/run/blender-jobs-slurm
readonly MAX_SLOTS=8
readonly NODES=(node1 node2)
readonly UP_TIMEOUT=30      # seconds for the nodes to become idle
readonly STOP_GRACE=5       # seconds between TERM and KILL
PROG=$(basename "$0")

say() { echo "$PROG: $*" >&2; }
die() { say "error: $*"; exit 1; }

usage() {
    sed -n '4,28p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

now_ms() { date +%s%3N; }

# DIR must be absolute and plain: it is written into slurm.conf and into `export` lines.
resolve_dir() {
    local d=$1
    [[ -n $d ]] || die "DIR is missing"
    mkdir -p -- "$d"
    d=$(cd -- "$d" && pwd -P)
    [[ $d =~ ^/[A-Za-z0-9._/+-]+$ ]] || die "DIR '$d' may only contain letters, digits and . _ / + - (it goes into slurm.conf)"
    echo "$d"
}

# ---------------------------------------------------------------------------------------------
# Slot bookkeeping: $SLOT_ROOT/slot-K/{dir,owner_pid,owner_start}. mkdir is the atomic claim.

slot_names() { # k -> sets BRIDGE NS1 NS2 VETH1 VETH2 SUBNET HOST_ADDR CTLD_PORT SLURMD_PORT
    local k=$1
    BRIDGE="bj${k}br"
    SUBNET="10.77.${k}"
    HOST_ADDR="${SUBNET}.1"
    CTLD_PORT=$((17100 + 2 * k))
    SLURMD_PORT=$((17101 + 2 * k))
}
node_ns() { echo "bj${1}n${2#node}"; }       # slot, node -> namespace name
node_veth() { echo "bj${1}v${2#node}"; }     # slot, node -> host-side veth name
node_addr() { echo "10.77.${1}.1${2#node}"; } # slot, node -> address

proc_start_time() { # pid -> start time in clock ticks (field 22 of /proc/PID/stat), empty if gone
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
    stat=${stat##*) }
    # after "pid (comm) " the fields start at field 3, so field 22 is word 20
    # shellcheck disable=SC2086  # split into fields on purpose
    set -- $stat
    echo "${20}"
}

owner_alive() { # slot dir -> 0 if it has no owner pid or the owner still runs
    local s=$1 pid start
    [[ -f $s/owner_pid ]] || return 0
    pid=$(cat "$s/owner_pid")
    start=$(cat "$s/owner_start" 2>/dev/null || true)
    [[ -n $pid && -d /proc/$pid ]] || return 1
    [[ -z $start || $(proc_start_time "$pid") == "$start" ]]
}

slot_of_dir() { # DIR -> slot number, or empty
    local dir=$1 s
    for s in "$SLOT_ROOT"/slot-*; do
        [[ -f $s/dir ]] || continue
        if [[ $(cat "$s/dir") == "$dir" ]]; then echo "${s##*slot-}"; return; fi
    done
    if [[ -f $dir/cluster.env ]]; then
        sed -n 's/^SLOT=//p' "$dir/cluster.env"
    fi
}

claim_slot() { # DIR -> prints the claimed slot number
    local dir=$1 k s
    mkdir -p "$SLOT_ROOT"
    for ((k = 0; k < MAX_SLOTS; k++)); do
        s="$SLOT_ROOT/slot-$k"
        slot_names "$k"
        # A subnet or name someone else (not us) already uses on this machine is skipped.
        if ip -o addr show to "${SUBNET}.0/24" 2>/dev/null | grep -q .; then continue; fi
        if ip link show "$BRIDGE" >/dev/null 2>&1; then continue; fi
        if [[ -e /run/netns/$(node_ns "$k" node1) || -e /run/netns/$(node_ns "$k" node2) ]]; then continue; fi
        if port_busy "$CTLD_PORT"; then continue; fi
        if mkdir "$s" 2>/dev/null; then
            echo "$dir" >"$s/dir"
            if [[ -n ${BJ_SLURM_OWNER_PID:-} ]]; then
                echo "$BJ_SLURM_OWNER_PID" >"$s/owner_pid"
                proc_start_time "$BJ_SLURM_OWNER_PID" >"$s/owner_start"
            fi
            echo "$k"
            return 0
        fi
    done
    return 1
}

port_busy() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }

# ---------------------------------------------------------------------------------------------
# Packages

ensure_packages() {
    local missing=()
    command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null || missing+=(slurm-wlm)
    command -v munged >/dev/null || missing+=(munge)
    command -v ip >/dev/null && command -v ss >/dev/null || missing+=(iproute2)
    command -v nsenter >/dev/null && command -v unshare >/dev/null || missing+=(util-linux)
    ((${#missing[@]} == 0)) && return 0
    command -v apt-get >/dev/null || die "missing ${missing[*]} and there is no apt-get to install them; install them by hand"
    say "installing ${missing[*]} with apt-get (once per machine, about 15 s)"
    mkdir -p "$SLOT_ROOT"
    # Two clusters coming up at once must not race for dpkg's lock.
    (
        flock -w 600 9 || die "timed out waiting for another cluster.sh's apt-get"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq && apt-get install -y -qq -o DPkg::Lock::Timeout=300 "${missing[@]}"
    ) 9>"$SLOT_ROOT/apt.lock" >"${UP_DIR:-/tmp}/apt-get.txt" 2>&1 \
        || die "apt-get install ${missing[*]} failed; see ${UP_DIR:-/tmp}/apt-get.txt: $(tail -3 "${UP_DIR:-/tmp}/apt-get.txt" | tr '\n' ' ')"
}

# ---------------------------------------------------------------------------------------------
# Processes

# Every process of DIR's cluster outside the namespaces has DIR's slurm.conf or munge socket on
# its command line (the daemons are started with -f DIR/slurm.conf / -S DIR/munge/munge.sock),
# which finds them even when pid files are gone.
pids_of_dir() {
    local dir=$1 p cmd
    for p in /proc/[0-9]*; do
        cmd=$({ tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null) || continue
        case " $cmd " in
            *" $dir/slurm.conf "* | *" $dir/munge/munge.sock "*) echo "${p#/proc/}" ;;
        esac
    done
}

pids_in_ns() { # namespace -> pids of every process in it
    [[ -e /run/netns/$1 ]] || return 0
    ip netns pids "$1" 2>/dev/null || true
}

alive() { # pids -> those still running (a zombie is not running)
    local p
    for p in "$@"; do
        if [[ -d /proc/$p ]] && ! grep -q '^State:.*Z' "/proc/$p/status" 2>/dev/null; then echo "$p"; fi
    done
    return 0
}

# TERM, wait up to STOP_GRACE, then KILL and wait again (bounded).
stop_pids() {
    local sig=${1}; shift
    local pids=("$@") left i
    ((${#pids[@]})) || return 0
    kill "-$sig" "${pids[@]}" 2>/dev/null || true
    for ((i = 0; i < STOP_GRACE * 10; i++)); do
        left=$(alive "${pids[@]}")
        [[ -z $left ]] && return 0
        sleep 0.1
    done
    # shellcheck disable=SC2086
    kill -KILL $left 2>/dev/null || true
    for ((i = 0; i < 30; i++)); do
        left=$(alive "${pids[@]}")
        [[ -z $left ]] && return 0
        sleep 0.1
    done
    say "warning: processes still alive after SIGKILL: $left"
    return 1
}

pid_from_file() { # file, expected comm -> pid if the file names a live process of that name
    local f=$1 comm=$2 pid
    [[ -f $f ]] || return 0
    pid=$(tr -dc 0-9 <"$f")
    [[ -n $pid && -n $(alive "$pid") ]] || return 0
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$comm" ]] && echo "$pid"
    return 0
}

wait_for_pidfile() { # file comm seconds log -> waits until the daemon's pid file names a live process
    local f=$1 comm=$2 secs=$3 log=$4 i
    for ((i = 0; i < secs * 10; i++)); do
        [[ -n $(pid_from_file "$f" "$comm") ]] && return 0
        sleep 0.1
    done
    die "$comm did not start within ${secs}s; last lines of $log: $(tail -5 "$log" 2>/dev/null | tr '\n' ' ')"
}

# ---------------------------------------------------------------------------------------------
# up

write_conf() {
    local dir=$1 k=$2 host
    host=$(uname -n)
    cat >"$dir/slurm.conf" <<EOF
# Written by test-fixtures/slurm/cluster.sh; the cluster of slot $k (see README.md there).
ClusterName=bj$k
SlurmctldHost=$host($HOST_ADDR)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.sock
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool-%n
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd-%n.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd-%n.log
# No systemd, no cgroups: what works on a plain machine or container.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
SchedulerType=sched/backfill
# slurmctld starts batch jobs from its background loop, which ticks about once a second and by
# default waits batch_sched_delay=3 s between passes; 0 makes a pilot start within about 1 s.
SchedulerParameters=batch_sched_delay=0
# A node that comes back registers as usable again (start-node after kill-node).
ReturnToService=2
# Fault tests should not wait Slurm's defaults: a dead slurmd is noticed after 10 s and a
# cancelled job gets SIGKILL 5 s after SIGTERM. A job on a failed node is not requeued by Slurm:
# blender-jobs decides what to retry.
SlurmdTimeout=10
KillWait=5
JobRequeue=0
NodeName=node1 NodeAddr=$(node_addr "$k" node1) CPUs=1 RealMemory=4000 State=UNKNOWN
NodeName=node2 NodeAddr=$(node_addr "$k" node2) CPUs=1 RealMemory=4000 State=UNKNOWN
# bj: the default partition. bjdown: accepts jobs but never starts them (reason PartitionDown),
# for "pilot never starts" tests.
PartitionName=bj Nodes=node1,node2 Default=YES MaxTime=INFINITE State=UP
PartitionName=bjdown Nodes=node1,node2 Default=NO MaxTime=INFINITE State=DOWN
EOF
    cat >"$dir/cgroup.conf" <<EOF
CgroupPlugin=autodetect
IgnoreSystemd=yes
EOF
    cat >"$dir/cluster.env" <<EOF
SLOT=$k
DIR=$dir
SLURM_CONF=$dir/slurm.conf
HOST_ADDR=$HOST_ADDR
NODE1_ADDR=$(node_addr "$k" node1)
NODE2_ADDR=$(node_addr "$k" node2)
PARTITION=bj
DOWN_PARTITION=bjdown
CTLD_PORT=$CTLD_PORT
EOF
}

start_munge() {
    local dir=$1 i
    mkdir -p "$dir/munge"
    # munged refuses a socket directory that is not searchable by everyone; the key stays 0400.
    chmod 755 "$dir" "$dir/munge"
    head -c 1024 /dev/urandom >"$dir/munge/munge.key"
    chmod 400 "$dir/munge/munge.key"
    munged -S "$dir/munge/munge.sock" --key-file "$dir/munge/munge.key" \
        --pid-file "$dir/munge/munged.pid" --log-file "$dir/munge/munged.log" \
        --seed-file "$dir/munge/munge.seed" \
        || die "munged did not start: $(tail -3 "$dir/munge/munged.log" 2>/dev/null | tr '\n' ' ')"
    for ((i = 0; i < 50; i++)); do
        munge -n -S "$dir/munge/munge.sock" 2>/dev/null | unmunge -S "$dir/munge/munge.sock" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    die "munged does not answer on $dir/munge/munge.sock; see $dir/munge/munged.log"
}

start_network() {
    local k=$1 n ns veth
    ip link add "$BRIDGE" type bridge \
        || die "cannot create bridge $BRIDGE: this needs root with CAP_NET_ADMIN (a container without it cannot run the Slurm tests)"
    ip addr add "$HOST_ADDR/24" dev "$BRIDGE"
    ip link set "$BRIDGE" up
    for n in "${NODES[@]}"; do
        ns=$(node_ns "$k" "$n")
        veth=$(node_veth "$k" "$n")
        ip netns add "$ns" || die "cannot create network namespace $ns (needs CAP_SYS_ADMIN and CAP_NET_ADMIN)"
        ip link add "$veth" type veth peer name "${veth}p"
        ip link set "${veth}p" netns "$ns"
        ip -n "$ns" link set "${veth}p" name eth0
        ip -n "$ns" addr add "$(node_addr "$k" "$n")/24" dev eth0
        ip -n "$ns" link set lo up
        ip -n "$ns" link set eth0 up
        ip link set "$veth" master "$BRIDGE"
        ip link set "$veth" up
    done
}

# slurmd runs inside the node's namespace: nsenter keeps the host's /sys (ip netns exec would
# remount it without /sys/fs/cgroup, which slurmd needs), unshare --uts gives it its own hostname.
start_slurmd() {
    local dir=$1 k=$2 n=$3 ns
    ns=$(node_ns "$k" "$n")
    rm -f "$dir/slurmd-$n.pid"
    mkdir -p "$dir/spool-$n"
    # shellcheck disable=SC2016  # $1.. expand in the inner sh
    SLURM_CONF="$dir/slurm.conf" nsenter --net="/run/netns/$ns" -- unshare --uts -- \
        sh -c 'hostname "$1" 2>/dev/null || echo "$1" >/proc/sys/kernel/hostname; exec "$2" -f "$3" -N "$1"' \
        sh "$n" "$(command -v slurmd)" "$dir/slurm.conf" \
        || die "slurmd for $n did not start; see $dir/slurmd-$n.log: $(tail -3 "$dir/slurmd-$n.log" 2>/dev/null | tr '\n' ' ')"
    wait_for_pidfile "$dir/slurmd-$n.pid" slurmd 10 "$dir/slurmd-$n.log"
}

node_state() { # dir node -> sinfo's compact state (idle, idle*, down*, alloc, ...)
    SLURM_CONF="$1/slurm.conf" timeout 10 sinfo -h -N -n "$2" -o '%t' 2>/dev/null | head -1
}

wait_nodes_up() { # dir seconds node...
    local dir=$1 secs=$2; shift 2
    local deadline=$(($(date +%s) + secs)) n st ok
    while :; do
        ok=1
        for n in "$@"; do
            st=$(node_state "$dir" "$n")
            case $st in idle | alloc | mix | comp) ;; *) ok=0 ;; esac
        done
        ((ok)) && return 0
        if (($(date +%s) >= deadline)); then
            local states
            states=$(SLURM_CONF="$dir/slurm.conf" timeout 10 sinfo -N -o '%N %t %E' 2>&1 | tr '\n' ';')
            die "nodes $* not idle within ${secs}s (sinfo: $states); see $dir/slurmctld.log and $dir/slurmd-*.log"
        fi
        sleep 0.2
    done
}

on_up_exit() {
    local rc=$?
    trap - EXIT
    if ((rc != 0)); then
        say "up failed; tearing down what it started"
        teardown "$UP_DIR" "$UP_SLOT" >&2 || true
    fi
    exit "$rc"
}

# One trivial job per node, run to completion: proves the whole path (controller, munge
# credentials, slurmd, slurmstepd in the namespace) and lets slurmctld's scheduler get past its
# first pass, which comes about 3 s after start; without it the first test's jobs wait for it.
warm_up() {
    local dir=$1 secs=$2 n ids=() id deadline st
    for n in "${NODES[@]}"; do
        id=$(SLURM_CONF="$dir/slurm.conf" timeout 10 sbatch --parsable -w "$n" -J bj-warm-up -o /dev/null \
            --chdir "$dir/jobs" --wrap 'hostname') || die "sbatch of the warm-up job on $n failed"
        ids+=("${id%%;*}")
    done
    deadline=$(($(date +%s) + secs))
    for id in "${ids[@]}"; do
        while :; do
            st=$(SLURM_CONF="$dir/slurm.conf" timeout 10 scontrol -o show job "$id" 2>/dev/null | grep -o 'JobState=[A-Z_]*' || true)
            case $st in
                JobState=COMPLETED) break ;;
                JobState=PENDING | JobState=CONFIGURING | JobState=RUNNING | JobState=COMPLETING | '') ;;
                *) die "warm-up job $id ended $st; see $dir/slurmctld.log and $dir/slurmd-*.log" ;;
            esac
            (($(date +%s) < deadline)) || die "warm-up job $id not done within ${secs}s ($st); see $dir/slurmctld.log"
            sleep 0.1
        done
    done
}

cmd_up() {
    local dir k t0
    t0=$(now_ms)
    [[ $(id -u) == 0 ]] || die "must run as root (it creates network namespaces and starts Slurm daemons as root)"
    dir=$(resolve_dir "${1:-}")
    UP_DIR=$dir
    if [[ -f $dir/cluster.env ]] && [[ -n $(pids_of_dir "$dir") ]]; then
        die "a cluster is already up in $dir; run '$PROG down $dir' first"
    fi
    ensure_packages
    gc_stale
    k=$(claim_slot "$dir") || die "no free cluster slot on this machine (all $MAX_SLOTS subnets 10.77.0-$((MAX_SLOTS - 1)).0/24 are in use); '$PROG list' shows them, '$PROG down DIR' stops one"
    slot_names "$k"
    # From here on, any failure tears down what was started.
    UP_SLOT=$k
    trap on_up_exit EXIT

    rm -rf "$dir/state" "$dir"/spool-* "$dir"/*.log "$dir"/*.pid "$dir/munge"
    mkdir -p "$dir/state" "$dir/jobs"
    write_conf "$dir" "$k"
    start_munge "$dir"
    start_network "$k"
    SLURM_CONF="$dir/slurm.conf" slurmctld -f "$dir/slurm.conf" \
        || die "slurmctld did not start: $(tail -5 "$dir/slurmctld.log" 2>/dev/null | tr '\n' ' ')"
    wait_for_pidfile "$dir/slurmctld.pid" slurmctld 10 "$dir/slurmctld.log"
    local n
    for n in "${NODES[@]}"; do start_slurmd "$dir" "$k" "$n"; done
    wait_nodes_up "$dir" "$UP_TIMEOUT" "${NODES[@]}"
    warm_up "$dir" "$UP_TIMEOUT"
    trap - EXIT
    say "cluster up in $(($(now_ms) - t0)) ms: slot $k, controller $HOST_ADDR:$CTLD_PORT, node1=$(node_addr "$k" node1) node2=$(node_addr "$k" node2), SLURM_CONF=$dir/slurm.conf"
}

# ---------------------------------------------------------------------------------------------
# down

# Stops everything of slot k / DIR, whatever state it is in. Returns non-zero if something is left.
teardown() {
    local dir=$1 k=$2 n ns pids=() p left=0
    if [[ -n $k ]]; then slot_names "$k"; fi
    # 1. The daemons, by pid file and by command line (pid files may be gone after a crash).
    for p in $(pid_from_file "$dir/slurmctld.pid" slurmctld) $(pid_from_file "$dir/slurmd-node1.pid" slurmd) \
        $(pid_from_file "$dir/slurmd-node2.pid" slurmd) $(pid_from_file "$dir/munge/munged.pid" munged) \
        $(pids_of_dir "$dir"); do
        pids+=("$p")
    done
    # 2. Everything in the nodes' namespaces: slurmd, slurmstepd, job processes (Blender).
    if [[ -n $k ]]; then
        for n in "${NODES[@]}"; do
            for p in $(pids_in_ns "$(node_ns "$k" "$n")"); do pids+=("$p"); done
        done
    fi
    if ((${#pids[@]})); then
        # Slurm daemons first get TERM so they can save state; munged last would be nicer but
        # the state is thrown away anyway.
        mapfile -t pids < <(printf '%s\n' "${pids[@]}" | sort -un)
        stop_pids TERM "${pids[@]}" || left=1
    fi
    # 3. Network: deleting a namespace deletes its veth end, and with it the pair.
    if [[ -n $k ]]; then
        for n in "${NODES[@]}"; do
            ns=$(node_ns "$k" "$n")
            if [[ -e /run/netns/$ns ]]; then
                # Processes that slipped in after step 2 (none expected) would keep it alive.
                for p in $(pids_in_ns "$ns"); do kill -KILL "$p" 2>/dev/null || true; done
                ip netns del "$ns" || left=1
            fi
            ip link del "$(node_veth "$k" "$n")" 2>/dev/null || true
        done
        ip link del "$BRIDGE" 2>/dev/null || true
        ip link show "$BRIDGE" >/dev/null 2>&1 && { say "bridge $BRIDGE is still there"; left=1; }
    fi
    # shellcheck disable=SC2046  # a list of pids
    if [[ -n $(alive $(pids_of_dir "$dir")) ]]; then say "processes of $dir still running"; left=1; fi
    ((left == 0)) || return 1
    # 4. Release the slot last, so nobody reuses names that are still in use.
    if [[ -n $k && -d $SLOT_ROOT/slot-$k ]] && [[ ! -f $SLOT_ROOT/slot-$k/dir || $(cat "$SLOT_ROOT/slot-$k/dir") == "$dir" ]]; then
        rm -rf "${SLOT_ROOT:?}/slot-$k"
    fi
    rm -f "$dir"/*.pid "$dir/munge/munged.pid" "$dir/munge/munge.sock" 2>/dev/null || true
    return 0
}

cmd_down() {
    local dir k t0
    t0=$(now_ms)
    [[ -n ${1:-} ]] || die "usage: $PROG down DIR"
    # DIR may be gone (a temp dir cleaned after a crash) while its daemons still run: the slot
    # registry and the daemons' command lines still name it.
    if [[ -d $1 ]]; then dir=$(cd -- "$1" && pwd -P); else dir=$(realpath -m -- "$1"); fi
    k=$(slot_of_dir "$dir")
    teardown "$dir" "$k" || die "could not stop everything of $dir (see above)"
    say "cluster of $dir down in $(($(now_ms) - t0)) ms"
}

gc_stale() {
    local s dir k
    for s in "$SLOT_ROOT"/slot-*; do
        [[ -d $s ]] || continue
        if ! owner_alive "$s"; then
            dir=$(cat "$s/dir" 2>/dev/null || echo /nonexistent)
            k=${s##*slot-}
            say "tearing down the cluster of $dir (slot $k): its owner process $(cat "$s/owner_pid") is gone"
            teardown "$dir" "$k" || say "warning: could not fully tear down slot $k"
        fi
    done
}

# ---------------------------------------------------------------------------------------------
# the rest

need_cluster() { # DIR -> sets DIR K and the slot names, or dies
    [[ -n ${1:-} && -f $1/cluster.env ]] || die "no cluster in '${1:-}' (no cluster.env); run '$PROG up DIR' first"
    DIR=$(cd -- "$1" && pwd -P)
    K=$(sed -n 's/^SLOT=//p' "$DIR/cluster.env")
    slot_names "$K"
}

need_node() {
    local n
    for n in "${NODES[@]}"; do [[ $1 == "$n" ]] && return 0; done
    die "unknown node '$1'; the nodes are ${NODES[*]}"
}

cmd_env() {
    need_cluster "$1"
    echo "export SLURM_CONF='$DIR/slurm.conf'"
    # Literally "$PATH": the caller's own PATH, after the directory of the Slurm commands.
    echo "export PATH=\"$(dirname "$(command -v sbatch)"):\$PATH\""
    echo "export BJ_SLURM_HOST_ADDR='$HOST_ADDR'"
    echo "export BJ_SLURM_NODE1_ADDR='$(node_addr "$K" node1)'"
    echo "export BJ_SLURM_NODE2_ADDR='$(node_addr "$K" node2)'"
    echo "export BJ_SLURM_PARTITION='bj'"
    echo "export BJ_SLURM_DOWN_PARTITION='bjdown'"
}

cmd_status() {
    need_cluster "$1"
    local ok=0 n p
    echo "slot $K: bridge $BRIDGE $HOST_ADDR/24, controller port $CTLD_PORT, slurmd port $SLURMD_PORT"
    p=$(pid_from_file "$DIR/munge/munged.pid" munged); echo "munged: ${p:-not running}"; [[ -n $p ]] || ok=1
    p=$(pid_from_file "$DIR/slurmctld.pid" slurmctld); echo "slurmctld: ${p:-not running}"; [[ -n $p ]] || ok=1
    for n in "${NODES[@]}"; do
        p=$(pid_from_file "$DIR/slurmd-$n.pid" slurmd)
        echo "slurmd $n ($(node_addr "$K" "$n"), netns $(node_ns "$K" "$n")): ${p:-not running}"
        [[ -n $p ]] || ok=1
    done
    if ! SLURM_CONF="$DIR/slurm.conf" timeout 10 sinfo -N -o '%N %P %t %E'; then ok=1; fi
    return $ok
}

cmd_kill_node() {
    need_cluster "$1"; need_node "${2:-}"
    local n=$2 only=${3:-} pids
    if [[ $only == --slurmd-only ]]; then
        pids=$(pid_from_file "$DIR/slurmd-$n.pid" slurmd)
    elif [[ -z $only ]]; then
        pids=$(pids_in_ns "$(node_ns "$K" "$n")")
    else
        die "unknown option '$only' (only --slurmd-only)"
    fi
    # shellcheck disable=SC2086
    [[ -n $pids ]] && stop_pids KILL $pids
    say "killed $n (${only:-slurmd and every process on the node})"
}

cmd_start_node() {
    need_cluster "$1"; need_node "${2:-}"
    local n=$2
    [[ -z $(pid_from_file "$DIR/slurmd-$n.pid" slurmd) ]] || die "$n's slurmd is already running"
    start_slurmd "$DIR" "$K" "$n"
    wait_nodes_up "$DIR" "$UP_TIMEOUT" "$n"
    say "$n is back"
}

cmd_list() {
    local s
    for s in "$SLOT_ROOT"/slot-*; do
        [[ -d $s ]] || continue
        echo "slot ${s##*slot-}: $(cat "$s/dir" 2>/dev/null) owner=$(cat "$s/owner_pid" 2>/dev/null || echo none)$(owner_alive "$s" || echo ' (owner gone)')"
    done
}

case ${1:-} in
    up) cmd_up "${2:-}" ;;
    down) cmd_down "${2:-}" ;;
    status) cmd_status "${2:-}" ;;
    env) cmd_env "${2:-}" ;;
    kill-node) cmd_kill_node "${2:-}" "${3:-}" "${4:-}" ;;
    start-node) cmd_start_node "${2:-}" "${3:-}" ;;
    list) cmd_list ;;
    gc) gc_stale ;;
    *) usage ;;
esac
