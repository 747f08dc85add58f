#!/usr/bin/env bash
# bench/compare.sh: Pillarbox and its peers under the same `pillarbox bench`
# load, on this machine, in one run.
#
# Installs and configures the peers, each accepting into an fsync'd Maildir
# (or, for smtp-sink, discarding: the upper bound of the client and the
# loopback):
#   smtp-sink     Postfix's test sink (Debian package postfix)
#   postfix       Debian's Postfix, its own config/queue/data directories, a
#                 loopback port, virtual delivery to Maildir (250 after its
#                 fsync'd queue file)
#   aiosmtpd      from PyPI, with bench/aiosmtpd_maildir.py
#   smtp-server   nodemailer's, from npm, with bench/smtp_server_maildir.js
#   haraka        from npm, with the plugin in bench/haraka/
#   pillarbox     release build, default durability, local domain `localhost`
# Then ROUNDS rounds, the servers alternating within each round, each run on
# a freshly started server; then the idle-connection cost of each. Each round
# also runs the file-system floor, bench/fs_floor.c's `v0` (one delivery's
# file work alone on SESSIONS threads: create, write 4 KiB, fsync, link into
# new/, fsync new/, unlink), from which the report derives the ceiling of any
# server that fsyncs a file per message on this machine. Writes a Markdown
# report to stdout and bench/results/<date>-<commit>.md.
#
# Loopback only, every wait bounded, every process it starts stopped (by pid)
# on exit. Needs root (apt-get, Postfix).
#
# Settings (environment), defaults as the issue's targets:
#   ROUNDS=3 MESSAGES=20000 DURATION=30 SESSIONS=20 SIZE=4KiB
#   BENCH_FLAGS="--reuse"        extra `pillarbox bench` flags (e.g. "--reuse --pipeline")
#   SERVERS="smtp-sink postfix aiosmtpd smtp-server haraka pillarbox"
#   IDLE=10000 HOLD=5            idle connections per server (0: skip the idle phase)
#   IDLE_POSTFIX=200             Postfix runs a process per connection
#   IDLE_SERVERS="pillarbox haraka smtp-server aiosmtpd postfix"
#   PILLARBOX_BIN=path           default: cargo build --release, target/release/pillarbox
#   PILLARBOX_COMMIT=abc1234     the commit PILLARBOX_BIN was built from (default: the repo's HEAD)
#   WORK=/tmp/pillarbox-compare  configs, Maildirs, logs, JSON of every run
#   PEERS=$WORK/peers            the Python venv and node_modules (kept between runs)
#   INSTALL=1                    0: do not install anything (peers must be there)
#   FLOOR=1                      0: skip the file-system floor (it needs gcc)
#   SETTLE=auto                  seconds to wait after each server in SETTLE_AFTER
#                                (auto: 300 on ext2/3/4 without a journal, else 0)
#   SETTLE_AFTER=postfix         the servers that delete a file per message (see below)
#   STEAL_MAX=10                 a run the host took more than this percentage of the
#                                machine from is run again (100: never),
#                                at most STEAL_RETRIES=2 more times;
#                                the runs set aside are in discarded.jsonl, and the report
#                                names them
#
# Why the wait: on ext2/3/4 without a journal, a file creation skips every
# free inode freed in the last 60 s (300 s while its inode-table block is
# dirty), looking each one up (fs/ext4/ialloc.c, recently_deleted). Postfix
# deletes its queue file once a message is delivered, so for five minutes
# after its run every file a server creates in the same block groups costs
# far more (20,000 deletions halved Pillarbox's rate here). Each run must
# not pay for the one before it.
# A quick run (a smoke test: without the wait, the runs after Postfix's pay for
# its deletions): ROUNDS=1 MESSAGES=2000 IDLE=1000 SETTLE=0 bench/compare.sh

set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"

ROUNDS=${ROUNDS:-3}
MESSAGES=${MESSAGES:-20000}
DURATION=${DURATION:-30}
SESSIONS=${SESSIONS:-20}
SIZE=${SIZE:-4KiB}
BENCH_FLAGS=${BENCH_FLAGS:---reuse}
SERVERS=${SERVERS:-smtp-sink postfix aiosmtpd smtp-server haraka pillarbox}
IDLE=${IDLE:-10000}
HOLD=${HOLD:-5}
IDLE_POSTFIX=${IDLE_POSTFIX:-200}
IDLE_SERVERS=${IDLE_SERVERS:-pillarbox haraka smtp-server aiosmtpd postfix}
WORK=${WORK:-/tmp/pillarbox-compare}
PEERS=${PEERS:-$WORK/peers}
INSTALL=${INSTALL:-1}
PILLARBOX_BIN=${PILLARBOX_BIN:-}
FLOOR=${FLOOR:-1}
FLOOR_BIN=
SETTLE=${SETTLE:-auto}
SETTLE_AFTER=${SETTLE_AFTER:-postfix}
STEAL_MAX=${STEAL_MAX:-10}
STEAL_RETRIES=${STEAL_RETRIES:-2}

AIOSMTPD_VERSION=1.4.6
SMTP_SERVER_VERSION=3.21.6
HARAKA_VERSION=3.3.4

STARTED_PIDS=()
POSTFIX_ETC=""

log() { printf 'compare: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# ------------------------------------------------------------------ cleanup

stop_pid() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for i in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
}

stop_postfix() {
    [ -n "$POSTFIX_ETC" ] || return 0
    local master
    master=$(cat "$POSTFIX_ETC/../spool/pid/master.pid" 2>/dev/null | tr -d ' ' || true)
    timeout 30 postfix -c "$POSTFIX_ETC" stop >/dev/null 2>&1 || true
    if [ -n "$master" ]; then
        local i
        for i in $(seq 1 100); do
            kill -0 "$master" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$master" 2>/dev/null || true
    fi
    POSTFIX_ETC=""
}

cleanup() {
    local pid
    stop_postfix
    for pid in "${STARTED_PIDS[@]}"; do
        stop_pid "$pid"
    done
    STARTED_PIDS=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ install

install_peers() {
    [ "$(id -u)" = 0 ] || die "run as root (apt-get, Postfix)"
    local missing=()
    command -v postfix >/dev/null || missing+=(postfix)
    command -v smtp-sink >/dev/null || missing+=(postfix)
    command -v python3 >/dev/null || missing+=(python3 python3-venv)
    command -v node >/dev/null || missing+=(nodejs npm)
    [ "$FLOOR" = 1 ] && ! command -v gcc >/dev/null && missing+=(gcc libc6-dev)
    if [ ${#missing[@]} -gt 0 ]; then
        log "apt-get install ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" </dev/null >/dev/null
    fi
    mkdir -p "$PEERS"
    if ! "$PEERS/venv/bin/python" -c "import aiosmtpd" 2>/dev/null; then
        log "pip install aiosmtpd==$AIOSMTPD_VERSION"
        python3 -m venv "$PEERS/venv"
        "$PEERS/venv/bin/pip" install -q "aiosmtpd==$AIOSMTPD_VERSION"
    fi
    if [ ! -x "$PEERS/node/node_modules/.bin/haraka" ] || [ ! -d "$PEERS/node/node_modules/smtp-server" ]; then
        log "npm install smtp-server@$SMTP_SERVER_VERSION Haraka@$HARAKA_VERSION"
        mkdir -p "$PEERS/node"
        (cd "$PEERS/node" && { [ -f package.json ] || npm init -y >/dev/null; } &&
            npm install --no-audit --no-fund --loglevel=error \
                "smtp-server@$SMTP_SERVER_VERSION" "Haraka@$HARAKA_VERSION" >/dev/null)
    fi
}

build_pillarbox() {
    if [ -n "$PILLARBOX_BIN" ]; then
        [ -x "$PILLARBOX_BIN" ] || die "PILLARBOX_BIN=$PILLARBOX_BIN is not executable"
        return
    fi
    log "cargo build --release -p pillarbox"
    (cd "$REPO" && cargo build --release -q -p pillarbox)
    PILLARBOX_BIN="${CARGO_TARGET_DIR:-$REPO/target}/release/pillarbox"
}

# The file-system floor, built from bench/fs_floor.c (FLOOR=1).
build_floor() {
    [ "$FLOOR" = 1 ] || return 0
    command -v gcc >/dev/null || die "FLOOR=1 needs gcc (or set FLOOR=0)"
    FLOOR_BIN="$WORK/fs_floor"
    gcc -O2 -o "$FLOOR_BIN" "$HERE/fs_floor.c" -lpthread 2>"$WORK/fs_floor.gcc.log" ||
        die "cannot build bench/fs_floor.c: $(cat "$WORK/fs_floor.gcc.log")"
}

# ------------------------------------------------------------------ servers

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits (bounded) until 127.0.0.1:$1 accepts a connection.
wait_port() {
    local port=$1 what=$2 i
    for i in $(seq 1 300); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    die "$what did not listen on 127.0.0.1:$port within 30 s (logs in $RUN_DIR)"
}

new_maildir() {
    mkdir -p "$1/tmp" "$1/new" "$1/cur"
}

# start_SERVER DIR PORT: starts it, sets SERVER_PID (the process whose tree
# is measured) and STORE (a directory whose */new/* files are the messages
# stored, or "-").
start_smtp-sink() {
    local dir=$1 port=$2
    # -u: the sink drops root after binding; 1024: the listen backlog.
    smtp-sink -u nobody "127.0.0.1:$port" 1024 >"$dir/log" 2>&1 &
    SERVER_PID=$!
    STARTED_PIDS+=("$SERVER_PID")
    STORE="-"
}

start_aiosmtpd() {
    local dir=$1 port=$2
    new_maildir "$dir/Maildir"
    "$PEERS/venv/bin/python" "$HERE/aiosmtpd_maildir.py" 127.0.0.1 "$port" "$dir/Maildir" >"$dir/log" 2>&1 &
    SERVER_PID=$!
    STARTED_PIDS+=("$SERVER_PID")
    STORE="$dir/Maildir"
}

start_smtp-server() {
    local dir=$1 port=$2
    new_maildir "$dir/Maildir"
    NODE_PATH="$PEERS/node/node_modules" node "$HERE/smtp_server_maildir.js" 127.0.0.1 "$port" "$dir/Maildir" \
        >"$dir/log" 2>&1 &
    SERVER_PID=$!
    STARTED_PIDS+=("$SERVER_PID")
    STORE="$dir/Maildir"
}

start_haraka() {
    local dir=$1 port=$2
    new_maildir "$dir/Maildir"
    # Haraka's shipped defaults (connection.ini and the rest), then ours on top.
    mkdir -p "$dir/haraka"
    cp -r "$PEERS/node/node_modules/Haraka/config" "$dir/haraka/config"
    cp -r "$HERE/haraka/." "$dir/haraka/"
    # nodes=0: one process, no cluster (as the other event-loop servers).
    printf '[main]\nlisten=127.0.0.1:%s\nnodes=0\ninactivity_timeout=600\n' "$port" >"$dir/haraka/config/smtp.ini"
    BENCH_MAILDIR="$dir/Maildir" "$PEERS/node/node_modules/.bin/haraka" -c "$dir/haraka" >"$dir/log" 2>&1 &
    SERVER_PID=$!
    STARTED_PIDS+=("$SERVER_PID")
    STORE="$dir/Maildir"
}

start_pillarbox() {
    local dir=$1 port=$2
    cat >"$dir/pillarbox.toml" <<EOF
hostname = "pillarbox.bench.test"
data_dir = "$dir/data"

[[listen]]
address = "127.0.0.1:$port"
protocol = "smtp"

[domains]
local = ["localhost"]
catch_all = true

[limits]
sessions = 30000
sessions_per_client = 30000
EOF
    "$PILLARBOX_BIN" serve --config "$dir/pillarbox.toml" >"$dir/stdout" 2>"$dir/log" &
    SERVER_PID=$!
    STARTED_PIDS+=("$SERVER_PID")
    STORE="$dir/data/mail/localhost"
}

start_postfix() {
    local dir=$1 port=$2 procs=$3
    local etc="$dir/etc" uid gid
    mkdir -p "$etc" "$dir/spool" "$dir/data" "$dir/mail"
    chmod 755 "$dir"
    chown postfix "$dir/data"
    uid=$(id -u nobody)
    gid=$(id -g nobody)
    chown "$uid:$gid" "$dir/mail"
    # Defaults except: its own directories, loopback, virtual delivery of
    # bench@localhost to a Maildir, no DNS lookup of the client (none of the
    # servers here does one), process and per-client limits for the idle run.
    cat >"$etc/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $dir/spool
data_directory = $dir/data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = loopback-only
inet_protocols = ipv4
myhostname = postfix.bench.test
mydomain = bench.test
mydestination = \$myhostname
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
maillog_file = $dir/maillog
maillog_file_prefixes = $dir
smtpd_peername_lookup = no
virtual_mailbox_domains = localhost
virtual_mailbox_base = $dir/mail
virtual_mailbox_maps = inline:{ bench@localhost=localhost/bench/Maildir/ }
virtual_uid_maps = static:$uid
virtual_gid_maps = static:$gid
default_process_limit = $procs
smtpd_client_connection_count_limit = 0
EOF
    cat >"$etc/master.cf" <<EOF
127.0.0.1:$port inet n - n - - smtpd
pickup    unix n - n 60 1 pickup
cleanup   unix n - n - 0 cleanup
qmgr      unix n - n 300 1 qmgr
rewrite   unix - - n - - trivial-rewrite
bounce    unix - - n - 0 bounce
defer     unix - - n - 0 bounce
trace     unix - - n - 0 bounce
verify    unix - - n - 1 verify
flush     unix n - n 1000? 0 flush
proxymap  unix - - n - - proxymap
smtp      unix - - n - - smtp
relay     unix - - n - - smtp
showq     unix n - n - - showq
error     unix - - n - - error
retry     unix - - n - - error
discard   unix - - n - - discard
local     unix - n n - - local
virtual   unix - n n - - virtual
anvil     unix - - n - 1 anvil
scache    unix - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
EOF
    POSTFIX_ETC="$etc"
    timeout 60 postfix -c "$etc" start >"$dir/log" 2>&1 || die "postfix start failed: $(cat "$dir/log")"
    local i
    for i in $(seq 1 100); do
        [ -s "$dir/spool/pid/master.pid" ] && break
        sleep 0.1
    done
    SERVER_PID=$(tr -d ' \n' <"$dir/spool/pid/master.pid")
    STORE="$dir/mail/localhost"
}

# Waits (bounded) until Postfix's queue is empty: its messages are in the
# Maildir and its delivery work is counted in its CPU time.
drain_postfix() {
    local dir=$1 i n
    for i in $(seq 1 600); do
        n=$({ find "$dir/spool/incoming" "$dir/spool/active" "$dir/spool/deferred" "$dir/spool/maildrop" \
            -type f 2>/dev/null || true; } | wc -l)
        [ "$n" = 0 ] && return 0
        sleep 0.2
    done
    log "postfix: queue not empty after 120 s ($n messages)"
}

stop_server() {
    local server=$1
    if [ "$server" = postfix ]; then
        stop_postfix
    else
        stop_pid "$SERVER_PID"
        local keep=() pid
        for pid in "${STARTED_PIDS[@]}"; do
            [ "$pid" = "$SERVER_PID" ] || keep+=("$pid")
        done
        STARTED_PIDS=("${keep[@]+"${keep[@]}"}")
    fi
}

stored_count() {
    if [ "$STORE" = "-" ]; then
        echo -
    else
        { find "$STORE" -path '*/new/*' -type f 2>/dev/null || true; } | wc -l
    fi
}

# ------------------------------------------------------------------ runs

# load_run SERVER ROUND: one measured run, run again (up to STEAL_RETRIES
# times) while the host took more than STEAL_MAX percent of the machine.
load_run() {
    local server=$1 round=$2 attempt=0 steal
    while :; do
        load_run_once "$server" "$round" "$attempt"
        steal=$(python3 "$HERE/table.py" steal "$RUN_DIR/record.json")
        if [ "$steal" -le "$STEAL_MAX" ] || [ "$attempt" -ge "$STEAL_RETRIES" ]; then
            break
        fi
        attempt=$((attempt + 1))
        log "round $round $server: the host took $steal% of the machine (STEAL_MAX=$STEAL_MAX); run $((attempt + 1)) of at most $((STEAL_RETRIES + 1)) (the one set aside stays in $RUN_DIR)"
        python3 "$HERE/table.py" tag "$RUN_DIR/record.json" discarded steal >>"$RESULTS/discarded.jsonl"
        # A server that deletes a file per message slows its own next run too.
        settle "$server"
    done
    python3 "$HERE/table.py" tag "$RUN_DIR/record.json" reruns "$attempt" >>"$RESULTS/runs.jsonl"
    log "$(python3 "$HERE/table.py" summary "$RESULTS/runs.jsonl")"
}

# load_run_once SERVER ROUND ATTEMPT: its record in $RUN_DIR/record.json.
# Each attempt in a directory of its own: deleting an earlier one's Maildir
# would slow every file creation after it (see SETTLE).
load_run_once() {
    local server=$1 round=$2 attempt=$3 port
    RUN_DIR="$WORK/run/$server-$round"
    [ "$attempt" -gt 0 ] && RUN_DIR="$RUN_DIR-again$attempt"
    rm -rf "$RUN_DIR"
    mkdir -p "$RUN_DIR"
    port=$(free_port)
    "start_$server" "$RUN_DIR" "$port" 100
    wait_port "$port" "$server"
    python3 "$HERE/procstat.py" "$SERVER_PID" >"$RUN_DIR/before.json"
    # shellcheck disable=SC2086 # BENCH_FLAGS is a list of flags
    timeout $((DURATION + 180)) "$PILLARBOX_BIN" bench "127.0.0.1:$port" --quiet --json \
        --sessions "$SESSIONS" --messages "$MESSAGES" --duration "$DURATION" --size "$SIZE" \
        $BENCH_FLAGS >"$RUN_DIR/bench.json" || true
    [ -s "$RUN_DIR/bench.json" ] || die "$server: the bench printed nothing (see $RUN_DIR)"
    [ "$server" = postfix ] && drain_postfix "$RUN_DIR"
    python3 "$HERE/procstat.py" "$SERVER_PID" >"$RUN_DIR/after.json"
    local stored
    stored=$(stored_count)
    stop_server "$server"
    python3 "$HERE/table.py" record "$server" "$round" "$RUN_DIR/bench.json" \
        "$RUN_DIR/before.json" "$RUN_DIR/after.json" "$stored" >"$RUN_DIR/record.json"
}

# settle SERVER: after a server that deletes a file per message, wait until
# ext4 no longer makes the next run's file creations pay for it (SETTLE).
settle() {
    local server=$1
    if [ "$SETTLE" -gt 0 ] && [[ " $SETTLE_AFTER " == *" $server "* ]]; then
        log "$server deleted a file per message: waiting $SETTLE s before the next run (see SETTLE)"
        sleep "$SETTLE"
    fi
}

# floor_run ROUND: the file work of MESSAGES deliveries on SESSIONS threads,
# in a directory of its own on the same filesystem as the servers' Maildirs.
floor_run() {
    local round=$1 dev
    RUN_DIR="$WORK/run/fs-floor-$round"
    rm -rf "$RUN_DIR"
    mkdir -p "$RUN_DIR"
    # The block device's counters (writes, flushes per file): the filesystem's
    # source, e.g. /dev/vda -> vda; 0 when it is not a block device.
    dev=$(basename "$(df -P "$WORK" | awk 'NR == 2 {print $1}')")
    timeout 600 "$FLOOR_BIN" v0 "$MESSAGES" "$SESSIONS" "$RUN_DIR" "$dev" >"$RUN_DIR/floor.txt" ||
        die "fs-floor: bench/fs_floor.c failed (see $RUN_DIR)"
    python3 "$HERE/table.py" floor "$round" "$RUN_DIR/floor.txt" >>"$RESULTS/floor.jsonl"
    log "round $round fs-floor: $(cat "$RUN_DIR/floor.txt")"
}

# idle_run SERVER N
idle_run() {
    local server=$1 n=$2 port procs=100
    RUN_DIR="$WORK/run/$server-idle"
    rm -rf "$RUN_DIR"
    mkdir -p "$RUN_DIR"
    port=$(free_port)
    [ "$server" = postfix ] && procs=$((n + 50))
    "start_$server" "$RUN_DIR" "$port" "$procs"
    wait_port "$port" "$server"
    sleep 1 # let the server settle before the "before" figure
    local concurrency=64
    [ "$server" = postfix ] && concurrency=8
    timeout $((HOLD + 300)) "$PILLARBOX_BIN" bench "127.0.0.1:$port" --quiet --json \
        --idle "$n" --hold "$HOLD" --server-pid "$SERVER_PID" --connect-concurrency "$concurrency" \
        >"$RUN_DIR/bench.json" || true
    stop_server "$server"
    if [ -s "$RUN_DIR/bench.json" ]; then
        python3 "$HERE/table.py" idle "$server" "$RUN_DIR/bench.json" >>"$RESULTS/idle.jsonl"
        log "idle $server: $(cat "$RUN_DIR/bench.json")"
    else
        log "idle $server: the bench printed nothing (see $RUN_DIR)"
    fi
}

# journal WORK's filesystem: "with", "without" (ext2/3/4) or "" (another kind).
# A mounted ext3/4 journal shows as /proc/fs/jbd2/<device>-<inode>.
journal() {
    local dev fstype
    read -r dev fstype < <(df -T "$WORK" | awk 'NR == 2 {print $1, $2}')
    case "$fstype" in
        ext2|ext3|ext4)
            if compgen -G "/proc/fs/jbd2/$(basename "$dev")-*" >/dev/null; then
                echo with
            else
                echo without
            fi ;;
    esac
}

machine() {
    local mem disk dev fstype j
    mem=$(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
    read -r dev fstype < <(df -T "$WORK" | awk 'NR == 2 {print $1, $2}')
    disk="$dev ($fstype)"
    # ext2/3/4: with or without a journal decides what an fsync costs.
    j=$(journal)
    [ -n "$j" ] && disk="$dev ($fstype, $j a journal)"
    printf -- '- CPU: %s cores (%s)\n' "$(nproc)" \
        "$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
    printf -- '- memory: %s\n' "$mem"
    printf -- '- disk: %s, work directory %s\n' "$disk" "$WORK"
    printf -- '- kernel: %s\n' "$(uname -srm)"
    printf -- '- nofile: soft %s, hard %s\n' "$(ulimit -Sn)" "$(ulimit -Hn)"
}

main() {
    [[ "$SETTLE" == auto || "$SETTLE" =~ ^[0-9]+$ ]] ||
        die "SETTLE=$SETTLE: expected a number of seconds or auto"
    [[ "$STEAL_MAX" =~ ^[0-9]+$ ]] && [ "$STEAL_MAX" -le 100 ] ||
        die "STEAL_MAX=$STEAL_MAX: expected a whole percentage, 0 to 100"
    [[ "$STEAL_RETRIES" =~ ^[0-9]+$ ]] ||
        die "STEAL_RETRIES=$STEAL_RETRIES: expected a number of runs"
    mkdir -p "$WORK"
    # Earlier runs' Maildirs are moved aside now and deleted after the last
    # measurement: on ext4 without a journal the inode allocator skips inodes
    # freed in the last minute or more, reading each one, so deleting
    # hundreds of thousands of files right before a run slows down the file
    # creation of every server measured after it.
    if [ -d "$WORK/run" ]; then
        mv "$WORK/run" "$WORK/trash-$$"
    fi
    [ "$INSTALL" = 1 ] && install_peers
    build_pillarbox
    build_floor
    local stamp commit
    stamp=$(date -u +%Y-%m-%dT%H%M%SZ)
    commit=${PILLARBOX_COMMIT:-$(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null || echo unknown)}
    RESULTS="$WORK/results-$stamp"
    mkdir -p "$RESULTS"
    : >"$RESULTS/runs.jsonl"
    : >"$RESULTS/idle.jsonl"
    : >"$RESULTS/floor.jsonl"
    if [ "$SETTLE" = auto ]; then
        SETTLE=0
        [ "$(journal)" = without ] && SETTLE=300
    fi
    # The server under test needs a descriptor per idle connection.
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

    local round server
    for round in $(seq 1 "$ROUNDS"); do
        # Alternate: each round starts one server further along the list, so
        # no server always runs first (on a cold cache) or last.
        local list k ordered
        read -r -a list <<<"$SERVERS"
        [ "$FLOOR" = 1 ] && list+=(fs-floor)
        k=$(((round - 1) % ${#list[@]}))
        ordered=("${list[@]:k}" "${list[@]:0:k}")
        local i
        for i in "${!ordered[@]}"; do
            server=${ordered[i]}
            if [ "$server" = fs-floor ]; then
                floor_run "$round"
            else
                load_run "$server" "$round"
            fi
            # The idle phase creates no files: no wait after the last run.
            if [ "$round" -lt "$ROUNDS" ] || [ "$i" -lt $((${#ordered[@]} - 1)) ]; then
                settle "$server"
            fi
        done
    done
    if [ "$IDLE" -gt 0 ]; then
        for server in $IDLE_SERVERS; do
            if [ "$server" = postfix ]; then
                idle_run "$server" "$IDLE_POSTFIX"
            else
                idle_run "$server" "$IDLE"
            fi
        done
    fi

    local report="$RESULTS/report.md"
    {
        printf '# bench/compare.sh, %s\n\n' "$stamp"
        printf 'Pillarbox commit %s (%s). Load: `pillarbox bench --sessions %s --messages %s --duration %s --size %s %s`, ' \
            "$commit" "$PILLARBOX_BIN" "$SESSIONS" "$MESSAGES" "$DURATION" "$SIZE" "$BENCH_FLAGS"
        printf '%s rounds, servers alternating, each run on a freshly started server.\n' "$ROUNDS"
        if [ "$SETTLE" -gt 0 ]; then
            printf 'A wait of %s s after each run of: %s (they delete a file per message; see SETTLE in bench/compare.sh).\n' "$SETTLE" "$SETTLE_AFTER"
        fi
        if [ "$STEAL_MAX" -lt 100 ]; then
            printf 'A run the host took more than %s%% of the machine from was run again, at most %s more times (STEAL_MAX, STEAL_RETRIES).\n' "$STEAL_MAX" "$STEAL_RETRIES"
        fi
        if [ "$IDLE" -gt 0 ]; then
            printf 'Idle: %s connections (Postfix %s) held %s s after EHLO.\n\n' "$IDLE" "$IDLE_POSTFIX" "$HOLD"
        else
            printf 'Idle: not measured (IDLE=0).\n\n'
        fi
        machine
        printf '\nPeers: Postfix %s, aiosmtpd %s, smtp-server %s, Haraka %s, Node %s, Python %s.\n\n' \
            "$(postconf -d -h mail_version 2>/dev/null)" "$AIOSMTPD_VERSION" "$SMTP_SERVER_VERSION" \
            "$HARAKA_VERSION" "$(node --version)" "$(python3 --version | cut -d' ' -f2)"
        python3 "$HERE/table.py" render "$RESULTS/runs.jsonl" "$RESULTS/idle.jsonl" "$RESULTS/floor.jsonl"
    } >"$report"
    mkdir -p "$HERE/results"
    # One file per day and commit: a second run the same day keeps the first.
    local out
    out="$HERE/results/$(date -u +%Y-%m-%d)-$commit.md"
    cp "$report" "$out"
    cat "$report"
    log "written: $out (raw runs in $RESULTS)"
    rm -rf "$WORK"/trash-*
}

main "$@"
