#!/usr/bin/env bash
# egressd against Squid on loopback, both measured in the same run, interleaved; prints absolute numbers and
# egressd/Squid ratios. See bench/load/README.md.
#
#   bench/load/run.sh                       # after: cmake --preset release && cmake --build --preset release
#   bench/load/run.sh squid                 # only the egressd/Squid comparison
#   bench/load/run.sh sni                   # only the cost of the SNI check (tls: off | allow | require)
#   bench/load/run.sh table                 # issue 10's table: direct | Squid | egressd, pinned, medians
#   EGRESSD_BASELINE=old/egressd bench/load/run.sh ab   # A/B: the egressd scenarios, old binary against new
#   bench/load/run.sh alerts                # the alert path's cost on denied GETs: alerts off | on | sink down
#
# The argument (or BENCH_SCENARIOS when there is none) is all (default: squid and sni), squid, sni, table, ab or
# alerts.
#
# Environment (all optional):
#   EGRESSD=path       egressd binary          (default build/release/proxy/egressd; "new" in ab)
#   EGRESSD_BASELINE=path  the egressd binary to compare against in ab ("baseline"; required there)
#   LOAD=path          egressd_load binary     (default build/release/bench/load/egressd_load)
#   EGRESSD_WORKERS    egressd instances to compare, by worker count (default "2 1")
#   BENCH_SECONDS      measured seconds per run (default 3; each run also has a 0.5 s warm-up)
#   BENCH_ROUNDS       runs per scenario and target, in alternating order (default 2; the table shows the mean)
#   BENCH_CONNECTIONS  concurrent connections for the request scenarios (default 32)
#   BENCH_IDLE         idle tunnels for the memory scenario (default 1000)
#   LOAD_THREADS       threads of the load generator (default 1)
#   BENCH_SNI_WORKERS  workers of each egressd in the sni scenario (default 1)
#   BENCH_AB_WORKERS   workers of both egressd instances in ab (default: the first of EGRESSD_WORKERS, i.e. 2)
#   BENCH_KEEP=1       keep the temporary directory (configs, logs, raw results)
# table and alerts (see bench/load/README.md for the rest): BENCH_PROXY_CPU (1), BENCH_LOAD_CPU (0), BENCH_PIN (1),
#   BENCH_TABLE_OUT=path (also write the table there), BENCH_STARTUP_NAMES (100000), BENCH_POLICY_LOAD (0);
#   BENCH_ROUNDS defaults to 3 and BENCH_IDLE to 5000 there.
#
# Network rule: everything binds and connects to 127.0.0.1 only; egressd_load refuses any other address, and the
# only name a CONNECT carries (sni scenario) is bench.test, which egressd resolves through a DNS responder this
# script runs on 127.0.0.1. Every load run is bounded by BENCH_SECONDS; the origin and the DNS responder exit by
# themselves after 15 minutes. Only processes this script started are stopped, by PID.
#
# egressd binaries with an admin endpoint (on by default at 127.0.0.1:9090) get admin: {listen: "127.0.0.1:0"} in
# the configs written here, so that several instances do not collide; older binaries refuse that key (strict
# config), so each binary is asked first with `config check` on a small config that has it.
set -euo pipefail
export LC_ALL=C

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
EGRESSD=${EGRESSD:-$root/build/release/proxy/egressd}
LOAD=${LOAD:-$root/build/release/bench/load/egressd_load}
EGRESSD_WORKERS=${EGRESSD_WORKERS-"2 1"}
BENCH_SECONDS=${BENCH_SECONDS:-3}
BENCH_CONNECTIONS=${BENCH_CONNECTIONS:-32}
LOAD_THREADS=${LOAD_THREADS:-1}
BENCH_SNI_WORKERS=${BENCH_SNI_WORKERS:-1}
read -r ab_default _ <<<"${EGRESSD_WORKERS:-2}" || true
BENCH_AB_WORKERS=${BENCH_AB_WORKERS:-${ab_default:-2}}
EGRESSD_BASELINE=${EGRESSD_BASELINE:-}

die() { echo "run.sh: $*" >&2; exit 1; }
note() { echo "# $*" >&2; }

what=${1:-${BENCH_SCENARIOS:-all}}
run_ab=0 run_table=0 run_alerts=0
case $what in
all) run_squid=1 run_sni=1 ;;
squid) run_squid=1 run_sni=0 ;;
sni) run_squid=0 run_sni=1 ;;
ab) run_squid=0 run_sni=0 run_ab=1 ;;
table) run_squid=0 run_sni=0 run_table=1 ;;
alerts) run_squid=0 run_sni=0 run_alerts=1 ;;
*) die "unknown scenario set '$what' (all, squid, sni, table, ab or alerts)" ;;
esac
if [[ $run_alerts == 1 ]]; then
    BENCH_ROUNDS=${BENCH_ROUNDS:-5}
fi
if [[ $run_table == 1 ]]; then
    BENCH_ROUNDS=${BENCH_ROUNDS:-3}
    BENCH_IDLE=${BENCH_IDLE:-5000}
else
    BENCH_ROUNDS=${BENCH_ROUNDS:-2}
    BENCH_IDLE=${BENCH_IDLE:-1000}
fi
BENCH_PROXY_CPU=${BENCH_PROXY_CPU:-1}
BENCH_LOAD_CPU=${BENCH_LOAD_CPU:-0}
BENCH_PIN=${BENCH_PIN:-1}
BENCH_TABLE_OUT=${BENCH_TABLE_OUT:-}
BENCH_STARTUP_NAMES=${BENCH_STARTUP_NAMES:-100000}
BENCH_POLICY_LOAD=${BENCH_POLICY_LOAD:-0}
BENCH_TABLE_WORKERS=${BENCH_TABLE_WORKERS:-1}
[[ $BENCH_ROUNDS =~ ^[1-9][0-9]*$ && $BENCH_ROUNDS -le 50 ]] || die "BENCH_ROUNDS must be 1 to 50"
[[ $BENCH_IDLE =~ ^[1-9][0-9]*$ && $BENCH_IDLE -le 20000 ]] || die "BENCH_IDLE must be 1 to 20000"

# The table and alerts pin the proxy alone on one CPU and the load generator and the origin on another (taskset),
# so that the proxy's core is its own. Other scenario sets run unpinned, as before.
proxy_pin=()
load_pin=()
pin_text="unpinned"
if [[ $run_table == 1 || $run_alerts == 1 ]]; then
    if [[ $BENCH_PIN != 1 ]]; then
        pin_text="unpinned (BENCH_PIN=$BENCH_PIN)"
    elif [[ $(nproc) -lt 2 ]]; then
        pin_text="unpinned: this machine has $(nproc) CPU (pinning needs 2)"
    elif ! command -v taskset >/dev/null; then
        pin_text="unpinned: no taskset (util-linux)"
    elif [[ $BENCH_PROXY_CPU == "$BENCH_LOAD_CPU" ]]; then
        die "BENCH_PROXY_CPU and BENCH_LOAD_CPU must differ"
    elif ! taskset -c "$BENCH_PROXY_CPU" true 2>/dev/null || ! taskset -c "$BENCH_LOAD_CPU" true 2>/dev/null; then
        die "cannot pin to CPU $BENCH_PROXY_CPU and $BENCH_LOAD_CPU (allowed: $(taskset -pc $$ | sed 's/.*: //'))"
    else
        proxy_pin=(taskset -c "$BENCH_PROXY_CPU")
        load_pin=(taskset -c "$BENCH_LOAD_CPU")
        pin_text="proxy pinned alone on CPU $BENCH_PROXY_CPU; load generator, origin and timing on CPU $BENCH_LOAD_CPU"
    fi
fi

[[ -x $EGRESSD ]] || die "no egressd at $EGRESSD (build it: cmake --preset release && cmake --build --preset release)"
[[ -x $LOAD ]] || die "no egressd_load at $LOAD (build it: cmake --build --preset release --target egressd_load)"
if [[ $run_ab == 1 ]]; then
    [[ -n $EGRESSD_BASELINE ]] || die "ab needs EGRESSD_BASELINE=/path/to/old/egressd (see bench/load/README.md)"
    [[ -x $EGRESSD_BASELINE ]] || die "no egressd at EGRESSD_BASELINE=$EGRESSD_BASELINE"
    [[ $BENCH_AB_WORKERS =~ ^[1-9][0-9]*$ ]] || die "BENCH_AB_WORKERS must be one worker count, not '$BENCH_AB_WORKERS'"
fi

# --- Squid, the Debian package -------------------------------------------------------------------------------
SQUID=$(command -v squid || true)
[[ -z $SQUID && -x /usr/sbin/squid ]] && SQUID=/usr/sbin/squid
if [[ ($run_squid == 1 || $run_table == 1) && -z $SQUID ]]; then
    [[ $(id -u) -eq 0 ]] || die "squid is not installed; run: sudo apt-get install -y squid"
    note "installing squid (Debian package)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y squid >/dev/null
    SQUID=/usr/sbin/squid
fi

# Enough descriptors for the idle scenario (two per tunnel in each proxy).
hard=$(ulimit -Hn)
if [[ $hard == unlimited || $hard -gt 65536 ]]; then hard=65536; fi
ulimit -n "$hard"
fds=$hard

tmp=$(mktemp -d /tmp/egressd-load.XXXXXX)
chmod 755 "$tmp"
pids=()

stop_pid() {  # pid: SIGTERM, wait up to 5 s, then SIGKILL; only ever a PID this script started
    local pid=$1 i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    local i
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        stop_pid "${pids[i]}"
    done
    if [[ ${BENCH_KEEP:-0} == 1 ]]; then
        note "kept $tmp"
    else
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_for_line() {  # file pattern seconds -> prints the first matching line
    local file=$1 pattern=$2 deadline=$((SECONDS + $3)) line
    while ((SECONDS < deadline)); do
        line=$(grep -m1 -- "$pattern" "$file" 2>/dev/null || true)
        if [[ -n $line ]]; then
            echo "$line"
            return 0
        fi
        sleep 0.05
    done
    return 1
}

field() {  # "result metric=x value=1 ..." name -> value
    local word
    for word in $1; do
        [[ $word == "$2="* ]] && { echo "${word#*=}"; return 0; }
    done
    echo ""
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

cpu_ns() {  # pid -> CPU time of all its threads so far, in nanoseconds (schedstat: ns on CPU)
    local total=0 f v rest
    for f in /proc/"$1"/task/*/schedstat; do
        read -r v rest <"$f" 2>/dev/null && total=$((total + v))
    done
    echo "$total"
}

declare -A proxy_port proxy_pid
# Per "scenario|target": sums over rounds of the rate, run counts, each round's rate, latencies, errors, work and
# proxy CPU seconds.
declare -A sum count vals p50 errs work cpu cpuvals

# Whether an egressd binary knows the admin key (newer binaries: an admin endpoint, on by default at
# 127.0.0.1:9090, which two instances would both bind). Asked once per binary with `config check` on a small
# config that has the key: exit 0 means it is known. If the same config without the key fails too, the probe
# itself is wrong and the script stops rather than guess.
declare -A admin_known
admin_supported() {  # binary -> status 0 when the binary accepts "admin:"
    local bin=$1 dir=$tmp/probe
    if [[ -z ${admin_known[$bin]:-} ]]; then
        mkdir -p "$dir"
        cat >"$dir/policy.yaml" <<'EOF'
version: 1
groups:
  probe:
    description: Only for the config check
    rules:
      - ports: [80]
        destinations: [127.0.0.1/32]
clients:
  probe:
    sources: [127.0.0.1/32]
    groups: [probe]
EOF
        cat >"$dir/plain.yaml" <<'EOF'
version: 1
listeners: [127.0.0.1:0]
policy: policy.yaml
workers: 1
dns:
  servers: [127.0.0.1:53]
EOF
        { cat "$dir/plain.yaml"; echo 'admin: {listen: "127.0.0.1:0"}'; } >"$dir/admin.yaml"
        if "$bin" config check "$dir/admin.yaml" >"$dir/admin.check" 2>&1; then
            admin_known[$bin]=1
        elif "$bin" config check "$dir/plain.yaml" >"$dir/plain.check" 2>&1; then
            admin_known[$bin]=0
        else
            die "$bin config check refuses even the probe config without admin: $(cat "$dir/plain.check")"
        fi
    fi
    [[ ${admin_known[$bin]} == 1 ]]
}
admin_text() { if admin_supported "$1"; then echo "admin on 127.0.0.1:0"; else echo "no admin key"; fi; }

# The config of one egressd instance, $tmp/name.yaml; the admin endpoint (where the binary has one) on a free port.
write_egressd_config() {  # name binary workers policy dns-servers dns-comment
    local name=$1 bin=$2
    cat >"$tmp/$name.yaml" <<EOF
version: 1
listeners: [127.0.0.1:0]
policy: $4
workers: $3
dns:
  servers: [$5]   # $6
timeouts:
  shutdown_grace: 2s
limits:
  max_connections: 60000
  max_connections_per_client: 60000
logging:
  stdout: true              # redirected to a file (one JSON line per decision and per close)
EOF
    if admin_supported "$bin"; then
        # This binary has an admin endpoint, by default on 127.0.0.1:9090: any free port instead.
        echo 'admin: {listen: "127.0.0.1:0"}' >>"$tmp/$name.yaml"
    fi
}

declare -A proxy_bin
start_egressd() {  # name [binary]: runs $tmp/name.yaml, fills proxy_pid[name] and proxy_port[name]
    local name=$1 bin=${2:-$EGRESSD} line
    proxy_bin[$name]=$bin
    "$bin" config check "$tmp/$name.yaml" >"$tmp/$name.check" 2>&1 || die "$name: egressd config check failed: $(cat "$tmp/$name.check")"
    # >> (O_APPEND) so that the event file can be truncated between runs.
    "${proxy_pin[@]}" "$bin" run --config "$tmp/$name.yaml" >>"$tmp/$name.events" 2>"$tmp/$name.err" &
    proxy_pid[$name]=$!
    pids+=($!)
    line=$(wait_for_line "$tmp/$name.events" '"egressd.listening"' 10) || die "$name did not start: $(cat "$tmp/$name.err")"
    proxy_port[$name]=$(sed -n 's/.*"address":"127\.0\.0\.1:\([0-9]*\)".*/\1/p' <<<"$line")
    [[ -n ${proxy_port[$name]} ]] || die "no port in $line"
}

truncate_logs() {
    local f
    for f in "$tmp"/*.events "$tmp/squid/access.log"; do
        [[ -f $f ]] && : >"$f"
    done
    return 0
}

# One load run against one target ("direct" or a proxy name), recorded under "sname|name" and in $raw.
run_cell() {  # sname name args (a word list)
    local sname=$1 name=$2 args=$3 pid c0 c1 u0 u1 t0 t1 out key w value e1 e2 e via
    if [[ $name == direct ]]; then
        via=(--direct)
    else
        via=(--proxy "127.0.0.1:${proxy_port[$name]}")
    fi
    pid=${proxy_pid[$name]:-}
    [[ -n $pid ]] && c0=$(cpu_ns "$pid")
    u0=$(cpu_ns "$origin_pid")
    t0=$EPOCHREALTIME
    # shellcheck disable=SC2086  # args is a word list by design
    out=$("${load_pin[@]}" "$LOAD" $args "${via[@]}" --seconds "$BENCH_SECONDS" --threads "$LOAD_THREADS" 2>>"$tmp/load.err" | grep '^result' || true)
    t1=$EPOCHREALTIME
    u1=$(cpu_ns "$origin_pid")
    key="$sname|$name"
    out="$out origin_cpu_util=$(awk -v a="$u0" -v b="$u1" -v t0="$t0" -v t1="$t1" 'BEGIN {printf "%.2f", (b - a) / 1e9 / (t1 - t0)}')"
    if [[ -n $pid ]]; then
        c1=$(cpu_ns "$pid")
        # Work over the whole invocation (warm-up included) against the proxy's CPU time over it.
        w=$(field "$out" total_ops)
        [[ -n $w ]] || w=$(awk -v b="$(field "$out" total_bytes)" 'BEGIN {print b / 1e6}')
        work[$key]=$(awk -v s="${work[$key]:-0}" -v v="${w:-0}" 'BEGIN {print s + v}')
        cpu[$key]=$(awk -v s="${cpu[$key]:-0}" -v a="$c0" -v b="$c1" 'BEGIN {print s + (b - a) / 1e9}')
        cpuvals[$key]="${cpuvals[$key]:-}$(awk -v w="${w:-0}" -v a="$c0" -v b="$c1" 'BEGIN {if (b > a) printf "%.1f", w / ((b - a) / 1e9); else print "n/a"}') "
        out="$out proxy_cpu_s=$(awk -v a="$c0" -v b="$c1" 'BEGIN {printf "%.3f", (b - a) / 1e9}')"
        out="$out proxy_cpu_util=$(awk -v a="$c0" -v b="$c1" -v t0="$t0" -v t1="$t1" 'BEGIN {printf "%.2f", (b - a) / 1e9 / (t1 - t0)}')"
    fi
    # Event lines written so far (up to 200 ms of them may still be queued): about 2 per tunnel or request.
    [[ -f $tmp/$name.events ]] && out="$out event_lines=$(wc -l <"$tmp/$name.events")"
    echo "$sname $name round=$round $out" >>"$raw"
    value=$(field "$out" value)
    [[ -n $value ]] || value=0
    sum[$key]=$(awk -v s="${sum[$key]:-0}" -v v="$value" 'BEGIN {print s + v}')
    count[$key]=$((${count[$key]:-0} + 1))
    vals[$key]="${vals[$key]:-}$value "
    p50[$key]="${p50[$key]:-}$(field "$out" p50_us)/$(field "$out" p99_us) "
    e1=$(field "$out" errors)
    e2=$(field "$out" timeouts)
    e=$((${e1:-1} + ${e2:-0}))  # no result line at all counts as an error
    errs[$key]=$((${errs[$key]:-0} + e))
    truncate_logs
}

# BENCH_ROUNDS rounds of one scenario over the targets; the order reverses every other round, so drift hits
# every target alike.
run_rounds() {  # sname args target...
    local sname=$1 args=$2 i name
    shift 2
    local list=("$@") order
    for ((round = 1; round <= BENCH_ROUNDS; round++)); do
        order=("${list[@]}")
        if ((round % 2 == 0)); then
            order=()
            for ((i = ${#list[@]} - 1; i >= 0; i--)); do order+=("${list[i]}"); done
        fi
        for name in "${order[@]}"; do
            run_cell "$sname" "$name" "$args"
        done
    done
    note "done: $sname"
}

mean() { awk -v s="${sum[$1]:-0}" -v n="${count[$1]:-0}" 'BEGIN {if (n > 0) printf "%.1f", s / n; else print "n/a"}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b + 0 > 0 && a != "n/a") printf "%.2f", a / b; else print "n/a"}'; }
per_cpu() { awk -v w="${work[$1]:-0}" -v c="${cpu[$1]:-0}" 'BEGIN {if (c > 0) printf "%.1f", w / c; else print "n/a"}'; }

print_load_messages() {
    if [[ -s $tmp/load.err ]]; then
        echo
        echo "load generator messages:"
        sort "$tmp/load.err" | uniq -c | head -20
        : >"$tmp/load.err"
    fi
}

# --- The origin: HTTP, echo and bulk on 127.0.0.1 ----------------------------------------------------------
"${load_pin[@]}" "$LOAD" upstream --max-seconds 900 >"$tmp/upstream.out" 2>"$tmp/upstream.err" &
pids+=($!)
origin_pid=$!
line=$(wait_for_line "$tmp/upstream.out" '^listening' 10) || die "the origin did not start: $(cat "$tmp/upstream.err")"
http_port=$(field "$line" http)
echo_port=$(field "$line" echo)
bulk_port=$(field "$line" bulk)
url="http://127.0.0.1:$http_port/small"
round=0

# =============================================================================================================
# egressd against Squid (run.sh squid)

# Memory per idle tunnel: the proxy's RSS with BENCH_IDLE idle tunnels open, minus its RSS just before.
declare -A idle_kib idle_opened
measure_idle() {  # name
    local name=$1 pid=${proxy_pid[$1]} port=${proxy_port[$1]} before after line result
    # Warm the allocator and lazily built state with a few tunnels, then settle.
    "${load_pin[@]}" "$LOAD" tunnels --proxy "127.0.0.1:$port" --target "127.0.0.1:$echo_port" --connections 8 \
        --seconds 0.3 --warmup 0 >/dev/null
    sleep 1
    before=$(rss_kib "$pid")
    # Opening is bounded: 30 s plus 1 s per 100 tunnels (a busy machine opens 5000 tunnels through Squid slowly).
    local open_s=$((30 + BENCH_IDLE / 100))
    coproc IDLE { exec "${load_pin[@]}" "$LOAD" idle --proxy "127.0.0.1:$port" --target "127.0.0.1:$echo_port" \
        --tunnels "$BENCH_IDLE" --hold $((open_s + 60)) --seconds "$open_s" 2>&1; }
    # shellcheck disable=SC2153  # IDLE_PID is set by coproc
    local idle_pid=$IDLE_PID
    line=""
    while [[ -n ${IDLE[0]:-} ]] && IFS= read -r -t $((open_s + 10)) line <&"${IDLE[0]}"; do
        [[ $line == ready* ]] && break
    done
    sleep 1
    after=$(rss_kib "$pid")
    result="(no result line)"
    if [[ -n ${IDLE[1]:-} ]]; then  # the coproc's descriptors are gone if it already exited
        echo >&"${IDLE[1]}" || true
        IFS= read -r -t 20 result <&"${IDLE[0]}" || result="(no result line)"
    fi
    wait "$idle_pid" 2>/dev/null || true
    local opened
    opened=$(field "$line" opened)
    echo "idle $name before_kib=$before after_kib=$after $line; $result" >>"$raw"
    idle_opened[$name]=${opened:-0}
    if [[ -n $opened && $opened -gt 0 ]]; then
        idle_kib[$name]=$(awk -v a="$after" -v b="$before" -v n="$opened" 'BEGIN {printf "%.1f", (a - b) / n}')
    else
        idle_kib[$name]="n/a"
    fi
    note "idle $name: RSS ${before} -> ${after} KiB with ${opened:-0} tunnels"
    sleep 1  # let the closes finish
}

write_bench_policy() {  # $tmp/policy.yaml: the load generator may reach the three origin ports
    cat >"$tmp/policy.yaml" <<EOF
version: 1
groups:
  bench-origin:
    description: The loopback origin of the load benchmark
    rules:
      - description: HTTP origin
        ports: [$http_port]
        destinations: [127.0.0.1/32]
      - description: Echo and bulk ports, reached through CONNECT
        ports: [$echo_port, $bulk_port]
        destinations: [127.0.0.1/32]
clients:
  bench:
    description: The load generator
    sources: [127.0.0.1/32]
    groups: [bench-origin]
EOF
}

check_serves() {  # name...: every proxy must answer 200 and open a tunnel before anything is measured
    local name out
    for name in "$@"; do
        [[ $name == direct ]] && continue
        out=$("$LOAD" keepalive --proxy "127.0.0.1:${proxy_port[$name]}" --url "$url" --connections 1 --seconds 0.2 \
            --warmup 0 --op-timeout 2)
        [[ $(field "$out" errors) == 0 && $(field "$out" ops) != 0 ]] || die "$name does not serve the origin: $out"
        out=$("$LOAD" tunnels --proxy "127.0.0.1:${proxy_port[$name]}" --target "127.0.0.1:$echo_port" --connections 1 \
            --seconds 0.2 --warmup 0 --op-timeout 2)
        [[ $(field "$out" errors) == 0 && $(field "$out" ops) != 0 ]] || die "$name does not tunnel to the origin: $out"
    done
}

# The throughput scenarios of the egressd/Squid comparison and of ab.
# name|unit|subcommand and arguments (the proxy or --direct is added per target)
set_scenarios() {
    scenarios=(
        "keepalive|req/s|keepalive --url $url --connections $BENCH_CONNECTIONS"
        "newconn|conn/s|newconn --url $url --connections $BENCH_CONNECTIONS"
        "tunnels|tunnels/s|tunnels --target 127.0.0.1:$echo_port --connections $BENCH_CONNECTIONS"
        "bulk x1|MB/s|bulk --target 127.0.0.1:$bulk_port --tunnels 1"
        "bulk x8|MB/s|bulk --target 127.0.0.1:$bulk_port --tunnels 8"
    )
}

# Squid with the same allow-list as egressd (the HTTP port, CONNECT to the echo and bulk ports), caching off, one
# worker, in the foreground; sets proxy_pid[squid] and proxy_port[squid].
start_squid() {
    local squid_port
    squid_port=$("$LOAD" freeport)
    mkdir -p "$tmp/squid"
    cat >"$tmp/squid/squid.conf" <<EOF
http_port 127.0.0.1:$squid_port
workers 1
cache deny all
cache_mem 0 MB
access_log stdio:$tmp/squid/access.log
cache_store_log none
cache_log $tmp/squid/cache.log
logfile_rotate 0
pid_filename $tmp/squid/squid.pid
coredump_dir $tmp/squid
netdb_filename none
pinger_enable off
dns_nameservers 127.0.0.1
visible_hostname egressd-load-bench
shutdown_lifetime 1 seconds
max_filedescriptors $fds

acl bench_client src 127.0.0.1/32
acl bench_origin dst 127.0.0.1/32
acl CONNECT method CONNECT
acl bench_http_ports port $http_port
acl SSL_ports port $echo_port $bulk_port
http_access allow bench_client bench_origin CONNECT SSL_ports
http_access allow bench_client bench_origin !CONNECT bench_http_ports
http_access deny all
EOF
    if [[ $(id -u) -eq 0 ]]; then
        # Squid drops root for cache_effective_user (Debian: proxy), which must write its logs here.
        chown -R proxy:proxy "$tmp/squid"
    fi
    "$SQUID" -k parse -f "$tmp/squid/squid.conf" >"$tmp/squid/parse.log" 2>&1 || die "squid.conf: $(tail -5 "$tmp/squid/parse.log")"
    "${proxy_pin[@]}" "$SQUID" -N -f "$tmp/squid/squid.conf" >"$tmp/squid/stdout.log" 2>&1 &
    proxy_pid[squid]=$!
    proxy_port[squid]=$squid_port
    pids+=($!)
    wait_for_line "$tmp/squid/cache.log" 'Accepting HTTP Socket connections' 20 >/dev/null ||
        die "squid did not start: $(tail -5 "$tmp/squid/cache.log" 2>/dev/null; tail -5 "$tmp/squid/stdout.log")"
}

squid_comparison() {
    # --- egressd: one instance per worker count -------------------------------------------------------------
    write_bench_policy
    targets=(direct)
    for w in $EGRESSD_WORKERS; do
        name="egressd-w$w"
        write_egressd_config "$name" "$EGRESSD" "$w" policy.yaml 127.0.0.1:53 \
            "never used: every destination is an IP literal"
        start_egressd "$name"
        targets+=("$name")
    done

    start_squid
    targets+=(squid)

    check_serves "${targets[@]}"

    echo "origin (egressd_load upstream): http=$http_port echo=$echo_port bulk=$bulk_port"
    for name in "${targets[@]}"; do
        [[ $name == direct ]] && continue
        echo "$name: 127.0.0.1:${proxy_port[$name]} pid ${proxy_pid[$name]}"
    done
    echo "squid: $("$SQUID" -v | head -1); egressd: $("$EGRESSD" --version 2>/dev/null | head -1) ($(admin_text "$EGRESSD"))"
    echo "cores: $(nproc); measured ${BENCH_SECONDS}s x ${BENCH_ROUNDS} rounds per cell, ${BENCH_CONNECTIONS} connections, load threads ${LOAD_THREADS}"
    echo

    raw="$tmp/results.txt"
    : >"$raw"

    # --- Memory per idle tunnel (first, on fresh processes) -------------------------------------------------
    for name in "${targets[@]}"; do
        [[ $name == direct ]] && continue
        measure_idle "$name"
    done
    truncate_logs

    # --- Throughput scenarios, interleaved ------------------------------------------------------------------
    set_scenarios
    for scenario in "${scenarios[@]}"; do
        IFS='|' read -r sname unit args <<<"$scenario"
        run_rounds "$sname" "$args" "${targets[@]}"
    done

    # --- Report ---------------------------------------------------------------------------------------------
    egressd_targets=()
    for name in "${targets[@]}"; do [[ $name == egressd-* ]] && egressd_targets+=("$name"); done

    printf '%-10s %-10s' scenario unit
    for name in "${targets[@]}"; do printf ' %12s' "$name"; done
    for name in "${egressd_targets[@]}"; do printf ' %12s' "${name#egressd-}/squid"; done
    printf '\n'
    for scenario in "${scenarios[@]}"; do
        IFS='|' read -r sname unit args <<<"$scenario"
        printf '%-10s %-10s' "$sname" "$unit"
        for name in "${targets[@]}"; do
            m=$(mean "$sname|$name")
            [[ ${errs[$sname|$name]:-0} -gt 0 ]] && m="$m*"
            printf ' %12s' "$m"
        done
        for name in "${egressd_targets[@]}"; do
            printf ' %12s' "$(ratio "$(mean "$sname|$name")" "$(mean "$sname|squid")")"
        done
        printf '\n'
    done
    printf '%-10s %-10s %12s' "idle" "KiB/tunnel" "-"
    for name in "${targets[@]}"; do [[ $name == direct ]] || printf ' %12s' "${idle_kib[$name]}"; done
    for name in "${egressd_targets[@]}"; do printf ' %12s' "$(ratio "${idle_kib[$name]}" "${idle_kib[squid]}")"; done
    printf '\n\n'

    echo "work per proxy CPU-second (the proxy's CPU time from /proc; steadier than raw rates on a shared machine):"
    printf '%-10s %-12s' scenario unit
    for name in "${targets[@]}"; do [[ $name == direct ]] || printf ' %12s' "$name"; done
    for name in "${egressd_targets[@]}"; do printf ' %12s' "${name#egressd-}/squid"; done
    printf '\n'
    for scenario in "${scenarios[@]}"; do
        IFS='|' read -r sname unit args <<<"$scenario"
        printf '%-10s %-12s' "$sname" "${unit%/s}/cpu-s"
        for name in "${targets[@]}"; do [[ $name == direct ]] || printf ' %12s' "$(per_cpu "$sname|$name")"; done
        for name in "${egressd_targets[@]}"; do
            printf ' %12s' "$(ratio "$(per_cpu "$sname|$name")" "$(per_cpu "$sname|squid")")"
        done
        printf '\n'
    done
    echo

    echo "bulk through a tunnel, as a fraction of the direct loopback copy:"
    for sname in "bulk x1" "bulk x8"; do
        printf '  %-8s' "$sname"
        for name in "${targets[@]}"; do
            [[ $name == direct ]] && continue
            printf '  %s %s' "$name" "$(ratio "$(mean "$sname|$name")" "$(mean "$sname|direct")")"
        done
        printf '\n'
    done
    echo
    echo "latency p50/p99 in microseconds, per round:"
    for sname in keepalive newconn tunnels; do
        printf '  %-10s' "$sname"
        for name in "${targets[@]}"; do printf '  %s: %s' "$name" "${p50[$sname|$name]% }"; done
        printf '\n'
    done
    echo
    echo "idle tunnels opened: $(for n in "${!idle_opened[@]}"; do printf '%s=%s ' "$n" "${idle_opened[$n]}"; done)"
    echo "* = some runs had errors or timeouts (see the raw results)."
    echo "Ratios above 1 favour egressd, except KiB/tunnel, where below 1 favours egressd."
    echo "egressd logs one JSON line per decision and per close to a file (stdout redirected; batched per event-loop pass, flushed every 200 ms);"
    echo "Squid logs one access.log line per request (stdio module, buffered). Squid runs 1 worker; egressd as named."
    echo
    echo "raw results:"
    cat "$raw"
    print_load_messages
}

# =============================================================================================================
# The cost of the SNI check (run.sh sni): three egressd instances that differ only in the policy's tls mode
# (off, allow, require), each tunnel a CONNECT to bench.test:<echo> carrying a TLS ClientHello for bench.test
# (517 bytes, shaped like curl's) as its first bytes, echoed back, then closed. egressd resolves bench.test
# through a DNS responder on 127.0.0.1 that answers A 127.0.0.1 with TTL 300, so after each worker's first query
# the resolver cache answers.
sni_name=bench.test

start_dns() {  # starts the responder, sets dns_port
    cat >"$tmp/dns.py" <<'EOF'
# A UDP DNS responder on 127.0.0.1 for the load benchmark: NAME A ADDRESS (TTL 300), NAME AAAA: no data,
# anything else NXDOMAIN. One line per query on stdout. Exits after MAX_SECONDS or on SIGTERM.
import signal, socket, struct, sys, time

name, address, max_seconds = sys.argv[1].lower(), sys.argv[2], float(sys.argv[3])
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("127.0.0.1", 0))
sock.settimeout(0.5)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
print(f"listening port={sock.getsockname()[1]}", flush=True)
deadline = time.monotonic() + max_seconds
while time.monotonic() < deadline:
    try:
        data, peer = sock.recvfrom(4096)
    except socket.timeout:
        continue
    try:
        qid, flags, qdcount = struct.unpack("!HHH", data[:6])
        if qdcount != 1 or flags & 0x8000:
            continue
        i, labels = 12, []
        while data[i] != 0:
            labels.append(data[i + 1:i + 1 + data[i]].decode("ascii").lower())
            i += 1 + data[i]
        qtype, qclass = struct.unpack("!HH", data[i + 1:i + 5])
        question = data[12:i + 5]
    except (IndexError, struct.error, UnicodeDecodeError):
        continue
    qname = ".".join(labels)
    answers = b""
    rcode = 0 if qname == name else 3
    if rcode == 0 and qtype == 1 and qclass == 1:
        answers = struct.pack("!HHHIH", 0xC00C, 1, 1, 300, 4) + socket.inet_aton(address)
    out_flags = 0x8000 | (flags & 0x7900) | 0x0400 | 0x0080 | rcode  # QR, opcode + RD copied, AA, RA
    reply = struct.pack("!HHHHHH", qid, out_flags, 1, 1 if answers else 0, 0, 0) + question + answers
    print(f"query {qname} type={qtype} rcode={rcode} answers={1 if answers else 0}", flush=True)
    sock.sendto(reply, peer)
EOF
    python3 "$tmp/dns.py" "$sni_name" 127.0.0.1 900 >"$tmp/dns.out" 2>"$tmp/dns.err" &
    pids+=($!)
    local line
    line=$(wait_for_line "$tmp/dns.out" '^listening' 10) || die "the DNS responder did not start: $(cat "$tmp/dns.err")"
    dns_port=$(field "$line" port)
}

sni_check() {  # name expect(pass|refuse) tunnels-args...: one short run, which must pass or be refused entirely
    local name=$1 expect=$2 out ops errors e1 e2
    shift 2
    out=$("$LOAD" tunnels --proxy "127.0.0.1:${proxy_port[$name]}" --target "127.0.0.1:$echo_port" \
        --connect-host "$sni_name" --connections 1 --seconds 0.2 --warmup 0 --op-timeout 2 "$@")
    ops=$(field "$out" ops)
    e1=$(field "$out" errors)
    e2=$(field "$out" timeouts)
    errors=$((${e1:-1} + ${e2:-0}))
    if [[ $expect == pass ]]; then
        [[ $errors == 0 && $ops != 0 ]] || die "$name: tunnels $* should pass: $out"
    else
        [[ $ops == 0 && $errors != 0 ]] || die "$name: tunnels $* should be refused: $out"
    fi
}

sni_cost() {
    start_dns
    local mode name sname args
    sni_targets=(direct)
    for mode in off allow require; do
        name="sni-$mode"
        cat >"$tmp/$name.policy.yaml" <<EOF
version: 1
tls: $mode
groups:
  bench-sni:
    description: The echo port of the loopback origin, by name
    rules:
      - description: The name the CONNECT carries (and, under allow and require, the ClientHello's SNI)
        ports: [$echo_port]
        destinations: [$sni_name]
      - description: The address $sni_name resolves to, which lifts the loopback address guard
        ports: [$echo_port]
        destinations: [127.0.0.1/32]
clients:
  bench:
    description: The load generator
    sources: [127.0.0.1/32]
    groups: [bench-sni]
EOF
        write_egressd_config "$name" "$EGRESSD" "$BENCH_SNI_WORKERS" "$name.policy.yaml" "127.0.0.1:$dns_port" \
            "the responder above: $sni_name A 127.0.0.1, TTL 300"
        start_egressd "$name"
        sni_targets+=("$name")
    done

    # Each instance does what its mode says before anything is measured: the ClientHello for bench.test
    # passes everywhere; one for another name is refused (sni_mismatch) unless the check is off; 16 bytes that
    # are not TLS are refused (not_tls) only under require.
    sni_check sni-off pass --hello-sni "$sni_name"
    sni_check sni-allow pass --hello-sni "$sni_name"
    sni_check sni-require pass --hello-sni "$sni_name"
    sni_check sni-off pass --hello-sni other.test
    sni_check sni-allow refuse --hello-sni other.test
    sni_check sni-require refuse --hello-sni other.test
    sni_check sni-off pass
    sni_check sni-allow pass
    sni_check sni-require refuse
    sleep 0.5  # egressd flushes its events every 200 ms
    local reasons
    reasons="sni-allow: $(grep -c '"reason":"sni_mismatch"' "$tmp/sni-allow.events" || true) sni_mismatch;"
    reasons="$reasons sni-require: $(grep -c '"reason":"sni_mismatch"' "$tmp/sni-require.events" || true) sni_mismatch,"
    reasons="$reasons $(grep -c '"reason":"not_tls"' "$tmp/sni-require.events" || true) not_tls"
    [[ $(grep -c '"reason":"sni_' "$tmp/sni-off.events" || true) == 0 ]] || die "sni-off logged an SNI denial"
    truncate_logs

    echo "SNI check cost: CONNECT $sni_name:$echo_port (DNS 127.0.0.1:$dns_port) with a $(($("$LOAD" hello --sni "$sni_name" | wc -c) / 2))-byte ClientHello for $sni_name"
    for name in "${sni_targets[@]}"; do
        [[ $name == direct ]] && continue
        echo "$name: 127.0.0.1:${proxy_port[$name]} pid ${proxy_pid[$name]}, tls: ${name#sni-}, workers $BENCH_SNI_WORKERS"
    done
    echo "egressd: $("$EGRESSD" --version 2>/dev/null | head -1) ($(admin_text "$EGRESSD")); cores: $(nproc); measured ${BENCH_SECONDS}s x ${BENCH_ROUNDS} rounds, ${BENCH_CONNECTIONS} connections, load threads ${LOAD_THREADS}"
    echo "refusal checks passed (events: $reasons)"
    echo

    raw="$tmp/sni-results.txt"
    : >"$raw"
    sname="tunnels+hello"
    args="tunnels --target 127.0.0.1:$echo_port --connect-host $sni_name --hello-sni $sni_name --connections $BENCH_CONNECTIONS"
    run_rounds "$sname" "$args" "${sni_targets[@]}"

    # --- Report
    local m c off_m off_c us off_us
    off_m=$(mean "$sname|sni-off")
    off_c=$(per_cpu "$sname|sni-off")
    off_us=$(awk -v c="$off_c" 'BEGIN {if (c + 0 > 0) printf "%.1f", 1e6 / c; else print "n/a"}')
    printf '%-12s %12s %10s %14s %10s %12s %12s  %s\n' target tunnels/s "/off" tunnels/cpu-s "/off" "cpu-us/tun" "+us vs off" "p50/p99 us per round"
    for name in "${sni_targets[@]}"; do
        m=$(mean "$sname|$name")
        [[ ${errs[$sname|$name]:-0} -gt 0 ]] && m="$m*"
        if [[ $name == direct ]]; then
            printf '%-12s %12s %10s %14s %10s %12s %12s  %s\n' "$name" "$m" - - - - - "${p50[$sname|$name]% }"
            continue
        fi
        c=$(per_cpu "$sname|$name")
        us=$(awk -v c="$c" 'BEGIN {if (c + 0 > 0) printf "%.1f", 1e6 / c; else print "n/a"}')
        printf '%-12s %12s %10s %14s %10s %12s %12s  %s\n' "$name" "$m" "$(ratio "$(mean "$sname|$name")" "$off_m")" \
            "$c" "$(ratio "$c" "$off_c")" "$us" \
            "$(awk -v a="$us" -v b="$off_us" 'BEGIN {if (a != "n/a" && b != "n/a") printf "%+.1f", a - b; else print "n/a"}')" \
            "${p50[$sname|$name]% }"
    done
    echo
    echo "/off: the instance divided by tls: off (1.00 = the check costs nothing measurable; below 1 = slower)."
    echo "cpu-us/tun: the proxy's CPU microseconds per tunnel (warm-up included); +us vs off: the check's share of it."
    echo "DNS queries answered: $(grep -c '^query' "$tmp/dns.out" || true) (A and AAAA per worker and instance; the cache serves the rest)"
    echo "* = some runs had errors or timeouts (see the raw results)."
    echo
    echo "raw results:"
    cat "$raw"
    print_load_messages
}

# =============================================================================================================
# A/B (run.sh ab): the egressd scenarios of the Squid comparison, run against two egressd binaries, the baseline
# (EGRESSD_BASELINE, e.g. built from the commit before a change) and the new one (EGRESSD), both with
# BENCH_AB_WORKERS workers and the same config apart from the admin key. Rounds alternate the order (baseline,
# new | new, baseline | ...: A B B A), so drift over the run hits both alike. No Squid, no direct runs.

median_of() {  # "v1 v2 ..." -> the median
    tr ' ' '\n' <<<"$1" | awk 'NF' | sort -g | awk '{v[NR] = $1} END {if (NR == 0) print "n/a"; else if (NR % 2) printf "%.1f", v[(NR + 1) / 2]; else printf "%.1f", (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
round_ratios() {  # key-new key-base -> each round's new/base, space-separated (run r of each is round r)
    awk -v a="${vals[$1]:-}" -v b="${vals[$2]:-}" 'BEGIN {
        n = split(a, x, " "); split(b, y, " ")
        for (i = 1; i <= n; i++) printf "%s%s", (i > 1 ? " " : ""), (y[i] + 0 > 0 ? sprintf("%.2f", x[i] / y[i]) : "n/a")
    }'
}
bin_id() {  # binary -> size, mtime and the start of its SHA-256, to tell the two apart
    printf '%s bytes, %s, sha256 %s' "$(stat -c %s "$1")" "$(date -r "$1" '+%Y-%m-%d %H:%M')" "$(sha256sum "$1" | cut -c1-12)"
}

ab_comparison() {
    local w=$BENCH_AB_WORKERS name sname unit args m rb rn
    write_bench_policy
    # Each instance is started and checked before the next: both use their own free ports.
    write_egressd_config base "$EGRESSD_BASELINE" "$w" policy.yaml 127.0.0.1:53 "never used: every destination is an IP literal"
    start_egressd base "$EGRESSD_BASELINE"
    write_egressd_config new "$EGRESSD" "$w" policy.yaml 127.0.0.1:53 "never used: every destination is an IP literal"
    start_egressd new "$EGRESSD"
    local ab_targets=(base new)
    check_serves "${ab_targets[@]}"

    echo "A/B: baseline against new egressd, $w worker(s) each"
    echo "origin (egressd_load upstream): http=$http_port echo=$echo_port bulk=$bulk_port"
    for name in "${ab_targets[@]}"; do
        echo "$name: ${proxy_bin[$name]}"
        echo "      $("${proxy_bin[$name]}" --version 2>/dev/null | head -1); $(bin_id "${proxy_bin[$name]}"); $(admin_text "${proxy_bin[$name]}"); 127.0.0.1:${proxy_port[$name]} pid ${proxy_pid[$name]}"
    done
    [[ $(realpath "$EGRESSD") == $(realpath "$EGRESSD_BASELINE") ]] && echo "(the same binary on both sides: the ratios show the noise of this machine)"
    echo "cores: $(nproc); measured ${BENCH_SECONDS}s x ${BENCH_ROUNDS} rounds per cell (order: base new | new base | ...), ${BENCH_CONNECTIONS} connections, load threads ${LOAD_THREADS}"
    echo

    raw="$tmp/ab-results.txt"
    : >"$raw"

    # Memory per idle tunnel first, on fresh processes.
    for name in "${ab_targets[@]}"; do
        measure_idle "$name"
    done
    truncate_logs

    set_scenarios
    for scenario in "${scenarios[@]}"; do
        IFS='|' read -r sname unit args <<<"$scenario"
        run_rounds "$sname" "$args" "${ab_targets[@]}"
    done

    # --- Report
    ab_row() { printf '%-10s %-14s %12s %12s %12s   %s\n' "$@" | sed 's/ *$//'; }
    ab_row scenario unit baseline new new/baseline "per round new/baseline; medians base/new"
    for scenario in "${scenarios[@]}"; do
        IFS='|' read -r sname unit args <<<"$scenario"
        rb=$(mean "$sname|base")
        rn=$(mean "$sname|new")
        m=$(ratio "$rn" "$rb")
        [[ ${errs[$sname|base]:-0} -gt 0 ]] && rb="$rb*"
        [[ ${errs[$sname|new]:-0} -gt 0 ]] && rn="$rn*"
        ab_row "$sname" "$unit" "$rb" "$rn" "$m" \
            "$(round_ratios "$sname|new" "$sname|base"); $(median_of "${vals[$sname|base]:-}")/$(median_of "${vals[$sname|new]:-}")"
    done
    ab_row idle KiB/tunnel "${idle_kib[base]}" "${idle_kib[new]}" "$(ratio "${idle_kib[new]}" "${idle_kib[base]}")" \
        "one measurement each, $BENCH_IDLE tunnels (opened: base ${idle_opened[base]}, new ${idle_opened[new]})"
    echo
    echo "work per proxy CPU-second (the proxy's CPU time from /proc; steadier than raw rates on a shared machine):"
    ab_row scenario unit baseline new new/baseline ""
    for scenario in "${scenarios[@]}"; do
        IFS='|' read -r sname unit args <<<"$scenario"
        ab_row "$sname" "${unit%/s}/cpu-s" "$(per_cpu "$sname|base")" "$(per_cpu "$sname|new")" \
            "$(ratio "$(per_cpu "$sname|new")" "$(per_cpu "$sname|base")")" ""
    done
    echo
    echo "latency p50/p99 in microseconds, per round:"
    for sname in keepalive newconn tunnels; do
        printf '  %-10s  base: %s  new: %s\n' "$sname" "${p50[$sname|base]% }" "${p50[$sname|new]% }"
    done
    echo
    echo "baseline and new: means over the rounds; new/baseline above 1 favours new, except KiB/tunnel, where below 1 does."
    echo "Read a ratio against the spread of the per-round ratios (or an A/A run: EGRESSD_BASELINE=\$EGRESSD)."
    echo "* = some runs had errors or timeouts (see the raw results)."
    echo
    echo "raw results:"
    cat "$raw"
    print_load_messages
}

# =============================================================================================================
# Issue 10's table (run.sh table): direct | Squid | egressd in one run, the proxy pinned alone on one CPU and the
# load generator and origin on the other, BENCH_ROUNDS interleaved rounds, medians with [min-max], the proxy's
# CPU time, then memory per idle tunnel, start-up with a long name list and (BENCH_POLICY_LOAD=1) the load time
# of a 1,000,000-rule policy.

# "v1 v2 ..." scale -> "median min max" of the values times scale ("n/a n/a n/a" when there are none)
stats_of() {
    tr ' ' '\n' <<<"$1" | awk -v k="$2" 'NF && $1 != "n/a" {print $1 * k}' | sort -g |
        awk '{v[NR] = $1} END {
            if (NR == 0) { print "n/a n/a n/a"; exit }
            m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
            print m, v[1], v[NR]
        }'
}
# value decimals -> the value with that many decimals; whole numbers of 1,000 and more get thousands separators
fmt_num() {
    awk -v v="$1" -v d="$2" 'BEGIN {
        if (v == "n/a" || v == "") { print "n/a"; exit }
        if (d > 0) { printf "%.*f\n", d, v; exit }
        s = sprintf("%.0f", v)
        if (length(s) > 3) { out = ""; while (length(s) > 3) { out = "," substr(s, length(s) - 2) out; s = substr(s, 1, length(s) - 3) }; s = s out }
        print s
    }'
}
# "v1 v2 ..." scale decimals [error-count] -> "median [min-max]" (just the value for one round), * on errors
cell_of() {
    local m lo hi text
    read -r m lo hi <<<"$(stats_of "$1" "$2")"
    text=$(fmt_num "$m" "$3")
    if [[ $m != n/a && $(wc -w <<<"$1") -gt 1 ]]; then
        text="$text [$(fmt_num "$lo" "$3")-$(fmt_num "$hi" "$3")]"
    fi
    [[ ${4:-0} -gt 0 ]] && text="$text*"
    echo "$text"
}
median_scaled() { local m _lo _hi; read -r m _lo _hi <<<"$(stats_of "$1" "$2")"; echo "$m"; }

# The table's rows measured with the load generator: key|label|scale (result unit to table unit)|decimals|targets|
# the per-CPU label|the load generator's subcommand and arguments (the proxy or --direct is added per target).
set_table_rows() {
    local c=$BENCH_CONNECTIONS
    table_rows=(
        "bulk1|CONNECT bulk, 1 tunnel, Gbit/s|0.008|1|direct squid egressd|Gbit per proxy CPU-s|bulk --target 127.0.0.1:$bulk_port --tunnels 1"
        "bulk8|CONNECT bulk, 8 tunnels, Gbit/s|0.008|1|direct squid egressd|Gbit per proxy CPU-s|bulk --target 127.0.0.1:$bulk_port --tunnels 8"
        "get64|plain HTTP 64 MiB GET, Gbit/s|0.008|1|direct squid egressd|Gbit per proxy CPU-s|download --url http://127.0.0.1:$http_port/bytes/67108864 --connections 1"
        "tunnels|CONNECT + echo + close, tunnels/s|1|0|direct squid egressd|tunnels per proxy CPU-s|tunnels --target 127.0.0.1:$echo_port --connections $c"
        "newconn|\`Connection: close\` GET, req/s|1|0|direct squid egressd|req per proxy CPU-s|newconn --url $url --connections $c"
        "keepalive|keep-alive GET, req/s|1|0|direct squid egressd|req per proxy CPU-s|keepalive --url $url --connections $c"
        "denied|denied GET (403), req/s|1|0|squid egressd|req per proxy CPU-s|keepalive --url http://127.0.0.1:$denied_port/small --expect-status 403 --connections $c"
    )
}

check_table_serves() {  # every proxy serves the 64 MiB GET and answers 403 on the denied port before measuring
    local name out
    check_serves squid egressd
    for name in squid egressd; do
        out=$("${load_pin[@]}" "$LOAD" download --proxy "127.0.0.1:${proxy_port[$name]}" \
            --url "http://127.0.0.1:$http_port/bytes/67108864" --seconds 0.5 --warmup 0 --op-timeout 5)
        [[ $(field "$out" errors) == 0 && $(field "$out" bytes) != 0 ]] || die "$name does not serve the 64 MiB GET: $out"
        out=$("${load_pin[@]}" "$LOAD" keepalive --proxy "127.0.0.1:${proxy_port[$name]}" \
            --url "http://127.0.0.1:$denied_port/small" --expect-status 403 --connections 1 --seconds 0.2 --warmup 0 \
            --op-timeout 2)
        [[ $(field "$out" errors) == 0 && $(field "$out" ops) != 0 ]] || die "$name does not deny with 403: $out"
    done
}

# Start-up with a long name list: one policy rule (egressd) or one dstdomain acl (Squid) of BENCH_STARTUP_NAMES
# names; from exec to the first successful TCP connect to the proxy's port, timed by startup_time.py on the load
# CPU, the proxy on its own CPU. A fresh process, port and (for Squid) directory every time.
startup_once() {  # name
    local name=$1 port dir out
    port=$("$LOAD" freeport)
    dir="$tmp/startup/$name-$round"
    mkdir -p "$dir"
    if [[ $name == egressd ]]; then
        cat >"$dir/egressd.yaml" <<EOF
version: 1
listeners: [127.0.0.1:$port]
policy: $tmp/startup/names.policy.yaml
workers: $BENCH_TABLE_WORKERS
dns:
  servers: [127.0.0.1:53]   # never used
logging:
  stdout: true
EOF
        admin_supported "$EGRESSD" && echo 'admin: {listen: "127.0.0.1:0"}' >>"$dir/egressd.yaml"
        out=$("${load_pin[@]}" python3 "$here/startup_time.py" --port "$port" --timeout 60 --stdout "$dir/events" \
            --stderr "$dir/err" -- "${proxy_pin[@]}" "$EGRESSD" run --config "$dir/egressd.yaml")
    else
        cat >"$dir/squid.conf" <<EOF
http_port 127.0.0.1:$port
workers 1
cache deny all
cache_mem 0 MB
access_log none
cache_store_log none
cache_log $dir/cache.log
logfile_rotate 0
pid_filename $dir/squid.pid
coredump_dir $dir
netdb_filename none
pinger_enable off
dns_nameservers 127.0.0.1
visible_hostname egressd-load-bench
shutdown_lifetime 1 seconds

acl bench_client src 127.0.0.1/32
acl bench_names dstdomain "$tmp/startup/names.squid"
http_access allow bench_client bench_names
http_access deny all
EOF
        [[ $(id -u) -eq 0 ]] && chown -R proxy:proxy "$dir"
        out=$("${load_pin[@]}" python3 "$here/startup_time.py" --port "$port" --timeout 60 --stdout "$dir/stdout" \
            --stderr "$dir/stdout" -- "${proxy_pin[@]}" "$SQUID" -N -f "$dir/squid.conf")
    fi
    echo "startup $name round=$round names=$BENCH_STARTUP_NAMES $out" >>"$raw"
    [[ $(field "$out" timeout) == 0 && $(field "$out" value) != 0 ]] ||
        die "$name did not start with $BENCH_STARTUP_NAMES names: $out (see $dir)"
    vals[startup|$name]="${vals[startup|$name]:-}$(field "$out" value) "
    startup_rss[$name]="${startup_rss[$name]:-}$(field "$out" rss_kib) "
}

# Loading a 1,000,000-rule policy, both shapes of bench/policy_bench: egressd config check (YAML to snapshot and
# exit), once each, on the proxy CPU.
policy_load_once() {  # destinations-per-rule
    local per=$1 file="$tmp/million-$1.yaml" out mib
    "${load_pin[@]}" python3 "$here/gen_policy.py" million "$per" "$file"
    mib=$(awk -v b="$(stat -c %s "$file")" 'BEGIN {printf "%.1f", b / 1048576}')
    cat >"$tmp/million-$per.conf.yaml" <<EOF
version: 1
listeners: [127.0.0.1:0]
policy: $file
workers: 1
dns:
  servers: [127.0.0.1:53]   # never used
EOF
    out=$("${load_pin[@]}" python3 "$here/startup_time.py" --exit --timeout 300 --stdout "$tmp/million-$per.out" \
        --stderr "$tmp/million-$per.err" -- "${proxy_pin[@]}" "$EGRESSD" config check "$tmp/million-$per.conf.yaml")
    echo "policy_load per_rule=$per yaml_mib=$mib $out $(head -1 "$tmp/million-$per.out")" >>"$raw"
    [[ $(field "$out" exit) == 0 ]] || die "config check of the $per-per-rule policy failed: $out $(head -3 "$tmp/million-$per.err")"
    vals[policy$per|egressd]="$(field "$out" value) "
    policy_mib[$per]=$mib
    rm -f "$file"
}

table_comparison() {
    local key label scale dec tlist plabel args name row i
    declare -gA startup_rss policy_mib
    here=$root/bench/load
    write_bench_policy
    denied_port=$("$LOAD" freeport)
    write_egressd_config egressd "$EGRESSD" "$BENCH_TABLE_WORKERS" policy.yaml 127.0.0.1:53 \
        "never used: every destination is an IP literal"
    start_egressd egressd
    start_squid
    check_table_serves

    local started
    started=$(date -u '+%Y-%m-%d %H:%M UTC')
    echo "issue 10 table: $pin_text; $(nproc) CPUs, $(uname -r)"
    echo "origin (egressd_load upstream): http=$http_port echo=$echo_port bulk=$bulk_port; denied GETs go to 127.0.0.1:$denied_port"
    for name in squid egressd; do
        echo "$name: 127.0.0.1:${proxy_port[$name]} pid ${proxy_pid[$name]}"
    done
    echo "squid: $("$SQUID" -v | head -1) (workers 1, caching off); egressd: $("$EGRESSD" --version 2>/dev/null | head -1) ($BENCH_TABLE_WORKERS worker(s), $(admin_text "$EGRESSD"))"
    echo "measured ${BENCH_SECONDS}s x ${BENCH_ROUNDS} rounds per cell (+0.5 s warm-up), ${BENCH_CONNECTIONS} connections, load threads ${LOAD_THREADS}"
    echo

    raw="$tmp/table-results.txt"
    : >"$raw"

    # --- Memory per idle tunnel, first, on fresh processes ---------------------------------------------------
    for name in squid egressd; do
        measure_idle "$name"
    done
    truncate_logs

    # --- The load generator's rows, interleaved -----------------------------------------------------------------
    set_table_rows
    for row in "${table_rows[@]}"; do
        IFS='|' read -r key label scale dec tlist plabel args <<<"$row"
        # shellcheck disable=SC2086  # tlist is a word list
        run_rounds "$key" "$args" $tlist
    done

    # --- Start-up with a long name list, interleaved --------------------------------------------------------
    mkdir -p "$tmp/startup"
    "${load_pin[@]}" python3 "$here/gen_policy.py" names "$BENCH_STARTUP_NAMES" 443 "$tmp/startup/names.policy.yaml" \
        "$tmp/startup/names.squid"
    chmod 644 "$tmp/startup/names.squid"
    local order
    for ((round = 1; round <= BENCH_ROUNDS; round++)); do
        order=(squid egressd)
        ((round % 2 == 0)) && order=(egressd squid)
        for name in "${order[@]}"; do startup_once "$name"; done
    done
    note "done: startup"

    # --- 1,000,000-rule policy load ------------------------------------------------------------------------
    if [[ $BENCH_POLICY_LOAD == 1 ]]; then
        policy_load_once 1
        policy_load_once 100
        note "done: policy load"
    fi

    # --- Report ---------------------------------------------------------------------------------------------
    local md="$tmp/table.md" d s e dm sm em ratio_d
    {
        echo "| workload | direct | Squid | egressd | egressd / direct | egressd / Squid |"
        echo "| --- | ---: | ---: | ---: | ---: | ---: |"
        for row in "${table_rows[@]}"; do
            IFS='|' read -r key label scale dec tlist plabel args <<<"$row"
            d="" dm=""
            if [[ $tlist == direct* ]]; then
                d=$(cell_of "${vals[$key|direct]:-}" "$scale" "$dec" "${errs[$key|direct]:-0}")
                dm=$(median_scaled "${vals[$key|direct]:-}" "$scale")
            fi
            s=$(cell_of "${vals[$key|squid]:-}" "$scale" "$dec" "${errs[$key|squid]:-0}")
            e=$(cell_of "${vals[$key|egressd]:-}" "$scale" "$dec" "${errs[$key|egressd]:-0}")
            sm=$(median_scaled "${vals[$key|squid]:-}" "$scale")
            em=$(median_scaled "${vals[$key|egressd]:-}" "$scale")
            ratio_d=""
            [[ -n $dm ]] && ratio_d=$(ratio "$em" "$dm")
            echo "| $label | $d | $s | $e | $ratio_d | $(ratio "$em" "$sm") |"
        done
        echo "| RSS per idle tunnel, KiB ($BENCH_IDLE tunnels, one measurement) | | ${idle_kib[squid]} | ${idle_kib[egressd]} | | $(ratio "${idle_kib[egressd]}" "${idle_kib[squid]}") |"
        echo "| start-up with a $(fmt_num "$BENCH_STARTUP_NAMES" 0)-name list, ms | | $(cell_of "${vals[startup|squid]}" 1 0) | $(cell_of "${vals[startup|egressd]}" 1 0) | | $(ratio "$(median_scaled "${vals[startup|egressd]}" 1)" "$(median_scaled "${vals[startup|squid]}" 1)") |"
        if [[ $BENCH_POLICY_LOAD == 1 ]]; then
            echo "| policy load, 1,000,000 rules x 1 destination (${policy_mib[1]} MiB YAML), s | | | $(cell_of "${vals[policy1|egressd]}" 0.001 2) | | |"
            echo "| policy load, 10,000 rules x 100 destinations (${policy_mib[100]} MiB YAML), s | | | $(cell_of "${vals[policy100|egressd]}" 0.001 2) | | |"
        fi
        echo
        echo "Work per proxy CPU-second (the proxy's CPU time from /proc/PID/task/*/schedstat over each whole run):"
        echo
        echo "| workload | Squid | egressd | egressd / Squid |"
        echo "| --- | ---: | ---: | ---: |"
        for row in "${table_rows[@]}"; do
            IFS='|' read -r key label scale dec tlist plabel args <<<"$row"
            s=$(cell_of "${cpuvals[$key|squid]:-}" "$scale" "$dec")
            e=$(cell_of "${cpuvals[$key|egressd]:-}" "$scale" "$dec")
            echo "| ${label%,*}, $plabel | $s | $e | $(ratio "$(median_scaled "${cpuvals[$key|egressd]:-}" "$scale")" "$(median_scaled "${cpuvals[$key|squid]:-}" "$scale")") |"
        done
        echo
        echo "Goals of issue 10 (ratios of medians from this run):"
        echo
        echo "| goal | measured | met |"
        echo "| --- | ---: | --- |"
        goal_row() {  # text value op threshold [decimals]: the value is shown with that many decimals (default 2)
            local met
            met=$(awk -v v="$2" -v op="$3" -v t="$4" 'BEGIN {if (v == "n/a" || v == "") print "n/a"; else if ((op == ">=" && v >= t) || (op == "<=" && v <= t)) print "yes"; else print "no"}')
            echo "| $1 | $(fmt_num "$2" "${5:-2}") | $met |"
        }
        local k
        for k in bulk1 bulk8 get64 tunnels newconn; do
            local thr=0.8 lab
            [[ $k == tunnels || $k == newconn ]] && thr=0.7
            for row in "${table_rows[@]}"; do [[ $row == "$k|"* ]] && IFS='|' read -r key lab _ <<<"$row"; done
            goal_row "${lab%,*}: egressd / direct >= $thr" \
                "$(ratio "$(median_scaled "${vals[$k|egressd]:-}" 1)" "$(median_scaled "${vals[$k|direct]:-}" 1)")" ">=" "$thr"
        done
        goal_row "keep-alive GET: egressd / Squid per proxy CPU-s >= 3" \
            "$(ratio "$(median_scaled "${cpuvals[keepalive|egressd]:-}" 1)" "$(median_scaled "${cpuvals[keepalive|squid]:-}" 1)")" ">=" 3
        goal_row "denied GET: egressd / Squid per proxy CPU-s >= 2" \
            "$(ratio "$(median_scaled "${cpuvals[denied|egressd]:-}" 1)" "$(median_scaled "${cpuvals[denied|squid]:-}" 1)")" ">=" 2
        goal_row "RSS per idle tunnel <= 8 KiB" "${idle_kib[egressd]}" "<=" 8 1
        goal_row "start-up with $(fmt_num "$BENCH_STARTUP_NAMES" 0) names <= 300 ms" \
            "$(median_scaled "${vals[startup|egressd]}" 1)" "<=" 300 0
        if [[ $BENCH_POLICY_LOAD == 1 ]]; then
            goal_row "1,000,000 rules x 1 destination: load <= 3 s" "$(median_scaled "${vals[policy1|egressd]}" 0.001)" "<=" 3
            goal_row "10,000 rules x 100 destinations: load <= 3 s" "$(median_scaled "${vals[policy100|egressd]}" 0.001)" "<=" 3
        fi
        echo
        echo "Cells: median [min-max] over $BENCH_ROUNDS interleaved rounds of ${BENCH_SECONDS}s; ratios divide medians; * = some run had errors or timeouts."
        echo "Made by \`bench/load/run.sh table\` ($started): $pin_text; $(nproc) CPUs; Squid $("$SQUID" -v | head -1 | sed 's/.*Version //') (workers 1, caching off); egressd $("$EGRESSD" --version 2>/dev/null | head -1 | sed 's/^egressd //') ($BENCH_TABLE_WORKERS worker); ${BENCH_CONNECTIONS} connections in the request rows; start-up: exec to the first accepted TCP connection."
    } >"$md"
    cat "$md"
    if [[ -n $BENCH_TABLE_OUT ]]; then
        cp "$md" "$BENCH_TABLE_OUT"
        echo
        echo "(table written to $BENCH_TABLE_OUT)"
    fi
    echo
    echo "latency p50/p99 in microseconds, per round:"
    for key in tunnels newconn keepalive denied; do
        printf '  %-10s' "$key"
        for name in direct squid egressd; do
            [[ -n ${p50[$key|$name]:-} ]] && printf '  %s: %s' "$name" "${p50[$key|$name]% }"
        done
        printf '\n'
    done
    echo "RSS right after start-up with the name list, KiB per round: squid ${startup_rss[squid]% }; egressd ${startup_rss[egressd]% }"
    echo
    echo "raw results:"
    cat "$raw"
    print_load_messages
}

# =============================================================================================================
# The alert path's cost (run.sh alerts): the denied-GET rate of three egressd instances that differ only in their
# alerts: none (off), a webhook sink whose loopback receiver answers 200 (on), and one whose receiver answers 500
# to everything (down: every delivery retried, then failed, the queue full, drops counted). Default dedup: every
# denial of the run has one (client, host, port, reason) key, so each is an observation handed to the engine and
# folded into its open group, which is the per-denial cost. Pinned like the table; BENCH_ROUNDS interleaved
# rounds, medians, ratios to off.

start_receiver() {  # name status: a loopback webhook receiver answering every POST with status; sets receiver_port
    local name=$1 line
    cat >"$tmp/receiver.py" <<'EOF'
import http.server, sys, threading
status = int(sys.argv[1])
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print("listening", server.server_address[1], flush=True)
threading.Timer(900, server.shutdown).start()  # bounded, like the origin
server.serve_forever()
EOF
    "${load_pin[@]}" python3 "$tmp/receiver.py" "$2" >"$tmp/$name.out" 2>"$tmp/$name.err" &
    pids+=($!)
    line=$(wait_for_line "$tmp/$name.out" '^listening' 10) || die "the $name receiver did not start: $(cat "$tmp/$name.err")"
    receiver_port=${line#listening }
}

alerts_metrics() {  # name -> the instance's egressd_alerts_total and egressd_alert_queue samples, on one line
    local line port
    line=$(grep -m1 '"egressd.admin_listening"' "$tmp/$1.events.all" 2>/dev/null || true)
    port=$(sed -n 's/.*"address":"127\.0\.0\.1:\([0-9]*\)".*/\1/p' <<<"$line")
    [[ -n $port ]] || { echo "(no admin endpoint)"; return; }
    curl -s --max-time 5 --noproxy '*' "http://127.0.0.1:$port/metrics" | grep -E '^egressd_alert(s_total|_queue)' |
        grep -v ' 0$' | sed 's/^egressd_//' | tr '\n' ' '
}

alerts_cost() {
    local name sname args out c=$BENCH_CONNECTIONS
    write_bench_policy
    denied_port=$("$LOAD" freeport)
    for name in off on down; do
        write_egressd_config "alerts-$name" "$EGRESSD" "$BENCH_TABLE_WORKERS" policy.yaml 127.0.0.1:53 \
            "never used: every destination is an IP literal"
    done
    start_receiver receiver-ok 200
    printf 'alerts:\n  - webhook: http://127.0.0.1:%s/alerts\n    name: bench\n' "$receiver_port" >>"$tmp/alerts-on.yaml"
    start_receiver receiver-down 500
    printf 'alerts:\n  - webhook: http://127.0.0.1:%s/alerts\n    name: bench\n' "$receiver_port" >>"$tmp/alerts-down.yaml"
    local targets=(alerts-off alerts-on alerts-down)
    for name in "${targets[@]}"; do
        start_egressd "$name"
        # The admin endpoint's address is in the first lines, which truncate_logs empties after every run.
        cp "$tmp/$name.events" "$tmp/$name.events.all"
        out=$("${load_pin[@]}" "$LOAD" keepalive --proxy "127.0.0.1:${proxy_port[$name]}" \
            --url "http://127.0.0.1:$denied_port/small" --expect-status 403 --connections 1 --seconds 0.2 --warmup 0 \
            --op-timeout 2)
        [[ $(field "$out" errors) == 0 && $(field "$out" ops) != 0 ]] || die "$name does not deny with 403: $out"
    done

    echo "alert path cost: $pin_text; $(nproc) CPUs, $(uname -r)"
    echo "egressd: $("$EGRESSD" --version 2>/dev/null | head -1), $BENCH_TABLE_WORKERS worker(s) each; denied GETs to 127.0.0.1:$denied_port"
    echo "alerts-off: no alerts; alerts-on: a webhook sink, its receiver answers 200; alerts-down: its receiver answers 500"
    echo "measured ${BENCH_SECONDS}s x ${BENCH_ROUNDS} rounds per cell (+0.5 s warm-up, order reversed every round), ${c} connections, load threads ${LOAD_THREADS}"
    echo

    raw="$tmp/alerts-results.txt"
    : >"$raw"
    sname=denied
    args="keepalive --url http://127.0.0.1:$denied_port/small --expect-status 403 --connections $c"
    run_rounds "$sname" "$args" "${targets[@]}"

    local off_rate off_cpu rate per
    off_rate=$(median_of "${vals[$sname|alerts-off]:-}")
    off_cpu=$(median_of "${cpuvals[$sname|alerts-off]:-}")
    printf '%-12s %18s %6s %25s %6s   %s\n' target "denied GET, req/s" "/off" "req per proxy CPU-second" "/off" \
        "per round, req/s"
    for name in "${targets[@]}"; do
        rate=$(median_of "${vals[$sname|$name]:-}")
        per=$(median_of "${cpuvals[$sname|$name]:-}")
        printf '%-12s %18s %6s %25s %6s   %s\n' "$name" "$rate$([[ ${errs[$sname|$name]:-0} -gt 0 ]] && echo '*')" \
            "$(ratio "$rate" "$off_rate")" "$per" "$(ratio "$per" "$off_cpu")" "${vals[$sname|$name]% }"
    done
    echo
    echo "Medians over the rounds; /off divides medians. * = some run had errors or timeouts."
    echo "latency p50/p99 in microseconds, per round:"
    for name in "${targets[@]}"; do
        printf '  %-12s %s\n' "$name" "${p50[$sname|$name]% }"
    done
    echo "alert counters at the end (non-zero):"
    for name in alerts-on alerts-down; do
        echo "  $name: $(alerts_metrics "$name")"
    done
    echo
    echo "raw results:"
    cat "$raw"
    print_load_messages
}

# =============================================================================================================
if [[ $run_squid == 1 ]]; then
    squid_comparison
fi
if [[ $run_sni == 1 ]]; then
    [[ $run_squid == 1 ]] && echo
    sni_cost
fi
if [[ $run_ab == 1 ]]; then
    ab_comparison
fi
if [[ $run_table == 1 ]]; then
    table_comparison
fi
if [[ $run_alerts == 1 ]]; then
    alerts_cost
fi
