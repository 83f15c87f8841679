#!/usr/bin/env bash
# egressd against Squid on loopback, both measured in the same run, interleaved; prints absolute numbers and
# egressd/Squid ratios. See bench/load/README.md.
#
#   bench/load/run.sh                       # after: cmake --preset release && cmake --build --preset release
#
# Environment (all optional):
#   EGRESSD=path       egressd binary          (default build/release/proxy/egressd)
#   LOAD=path          egressd_load binary     (default build/release/bench/load/egressd_load)
#   EGRESSD_WORKERS    egressd instances to compare, by worker count (default "2 1")
#   BENCH_SECONDS      measured seconds per run (default 3; each run also has a 0.5 s warm-up)
#   BENCH_ROUNDS       runs per scenario and target, in alternating order (default 2; the table shows the mean)
#   BENCH_CONNECTIONS  concurrent connections for the request scenarios (default 32)
#   BENCH_IDLE         idle tunnels for the memory scenario (default 1000)
#   LOAD_THREADS       threads of the load generator (default 1)
#   BENCH_KEEP=1       keep the temporary directory (configs, logs, raw results)
#
# Network rule: everything binds and connects to 127.0.0.1 only; egressd_load refuses any other address. Every
# load run is bounded by BENCH_SECONDS; the origin exits by itself after 15 minutes. Only processes this
# script started are stopped, by PID.
set -euo pipefail
export LC_ALL=C

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
EGRESSD=${EGRESSD:-$root/build/release/proxy/egressd}
LOAD=${LOAD:-$root/build/release/bench/load/egressd_load}
EGRESSD_WORKERS=${EGRESSD_WORKERS-"2 1"}
BENCH_SECONDS=${BENCH_SECONDS:-3}
BENCH_ROUNDS=${BENCH_ROUNDS:-2}
BENCH_CONNECTIONS=${BENCH_CONNECTIONS:-32}
BENCH_IDLE=${BENCH_IDLE:-1000}
LOAD_THREADS=${LOAD_THREADS:-1}

die() { echo "run.sh: $*" >&2; exit 1; }
note() { echo "# $*" >&2; }

[[ -x $EGRESSD ]] || die "no egressd at $EGRESSD (build it: cmake --preset release && cmake --build --preset release)"
[[ -x $LOAD ]] || die "no egressd_load at $LOAD (build it: cmake --build --preset release --target egressd_load)"

# --- Squid, the Debian package -------------------------------------------------------------------------------
SQUID=$(command -v squid || true)
[[ -z $SQUID && -x /usr/sbin/squid ]] && SQUID=/usr/sbin/squid
if [[ -z $SQUID ]]; then
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

# --- The origin: HTTP, echo and bulk on 127.0.0.1 ----------------------------------------------------------
"$LOAD" upstream --max-seconds 900 >"$tmp/upstream.out" 2>"$tmp/upstream.err" &
pids+=($!)
origin_pid=$!
line=$(wait_for_line "$tmp/upstream.out" '^listening' 10) || die "the origin did not start: $(cat "$tmp/upstream.err")"
http_port=$(field "$line" http)
echo_port=$(field "$line" echo)
bulk_port=$(field "$line" bulk)
url="http://127.0.0.1:$http_port/small"

# --- egressd: one instance per worker count -----------------------------------------------------------------
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

declare -A proxy_port proxy_pid
targets=(direct)
for w in $EGRESSD_WORKERS; do
    name="egressd-w$w"
    cat >"$tmp/$name.yaml" <<EOF
version: 1
listeners: [127.0.0.1:0]
policy: policy.yaml
workers: $w
dns:
  servers: [127.0.0.1:53]   # never used: every destination is an IP literal
timeouts:
  shutdown_grace: 2s
limits:
  max_connections: 60000
  max_connections_per_client: 60000
logging:
  stdout: true              # redirected to a file (one JSON line per decision and per close)
EOF
    "$EGRESSD" config check "$tmp/$name.yaml" >"$tmp/$name.check" 2>&1 || die "egressd config check failed: $(cat "$tmp/$name.check")"
    # >> (O_APPEND) so that the event file can be truncated between runs.
    "$EGRESSD" run --config "$tmp/$name.yaml" >>"$tmp/$name.events" 2>"$tmp/$name.err" &
    proxy_pid[$name]=$!
    pids+=($!)
    line=$(wait_for_line "$tmp/$name.events" '"egressd.listening"' 10) || die "$name did not start: $(cat "$tmp/$name.err")"
    proxy_port[$name]=$(sed -n 's/.*"address":"127\.0\.0\.1:\([0-9]*\)".*/\1/p' <<<"$line")
    [[ -n ${proxy_port[$name]} ]] || die "no port in $line"
    targets+=("$name")
done

# --- Squid: same allow-list, caching off, one worker, foreground --------------------------------------------
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
"$SQUID" -N -f "$tmp/squid/squid.conf" >"$tmp/squid/stdout.log" 2>&1 &
proxy_pid[squid]=$!
proxy_port[squid]=$squid_port
pids+=($!)
wait_for_line "$tmp/squid/cache.log" 'Accepting HTTP Socket connections' 20 >/dev/null ||
    die "squid did not start: $(tail -5 "$tmp/squid/cache.log" 2>/dev/null; tail -5 "$tmp/squid/stdout.log")"
targets+=(squid)

truncate_logs() {
    local name
    for name in "${targets[@]}"; do
        [[ $name == egressd-* ]] && : >"$tmp/$name.events"
    done
    [[ -f $tmp/squid/access.log ]] && : >"$tmp/squid/access.log"
    return 0
}

# Every proxy must answer 200 before anything is measured.
for name in "${targets[@]}"; do
    [[ $name == direct ]] && continue
    out=$("$LOAD" keepalive --proxy "127.0.0.1:${proxy_port[$name]}" --url "$url" --connections 1 --seconds 0.2 \
        --warmup 0 --op-timeout 2)
    [[ $(field "$out" errors) == 0 && $(field "$out" ops) != 0 ]] || die "$name does not serve the origin: $out"
    out=$("$LOAD" tunnels --proxy "127.0.0.1:${proxy_port[$name]}" --target "127.0.0.1:$echo_port" --connections 1 \
        --seconds 0.2 --warmup 0 --op-timeout 2)
    [[ $(field "$out" errors) == 0 && $(field "$out" ops) != 0 ]] || die "$name does not tunnel to the origin: $out"
done

echo "origin (egressd_load upstream): http=$http_port echo=$echo_port bulk=$bulk_port"
for name in "${targets[@]}"; do
    [[ $name == direct ]] && continue
    echo "$name: 127.0.0.1:${proxy_port[$name]} pid ${proxy_pid[$name]}"
done
echo "squid: $("$SQUID" -v | head -1); egressd: $("$EGRESSD" --version 2>/dev/null | head -1)"
echo "cores: $(nproc); measured ${BENCH_SECONDS}s x ${BENCH_ROUNDS} rounds per cell, ${BENCH_CONNECTIONS} connections, load threads ${LOAD_THREADS}"
echo

raw="$tmp/results.txt"
: >"$raw"

# --- Memory per idle tunnel (first, on fresh processes) -----------------------------------------------------
declare -A idle_kib idle_opened
measure_idle() {  # name
    local name=$1 pid=${proxy_pid[$1]} port=${proxy_port[$1]} before after line result
    # Warm the allocator and lazily built state with a few tunnels, then settle.
    "$LOAD" tunnels --proxy "127.0.0.1:$port" --target "127.0.0.1:$echo_port" --connections 8 --seconds 0.3 \
        --warmup 0 >/dev/null
    sleep 1
    before=$(rss_kib "$pid")
    coproc IDLE { exec "$LOAD" idle --proxy "127.0.0.1:$port" --target "127.0.0.1:$echo_port" --tunnels "$BENCH_IDLE" \
        --hold 60 --seconds 30 2>&1; }
    # shellcheck disable=SC2153  # IDLE_PID is set by coproc
    local idle_pid=$IDLE_PID
    line=""
    while [[ -n ${IDLE[0]:-} ]] && IFS= read -r -t 40 line <&"${IDLE[0]}"; do
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
for name in "${targets[@]}"; do
    [[ $name == direct ]] && continue
    measure_idle "$name"
done
truncate_logs

# --- Throughput scenarios, interleaved ----------------------------------------------------------------------
# name|unit|subcommand and arguments (the proxy or --direct is added per target)
scenarios=(
    "keepalive|req/s|keepalive --url $url --connections $BENCH_CONNECTIONS"
    "newconn|conn/s|newconn --url $url --connections $BENCH_CONNECTIONS"
    "tunnels|tunnels/s|tunnels --target 127.0.0.1:$echo_port --connections $BENCH_CONNECTIONS"
    "bulk x1|MB/s|bulk --target 127.0.0.1:$bulk_port --tunnels 1"
    "bulk x8|MB/s|bulk --target 127.0.0.1:$bulk_port --tunnels 8"
)
declare -A sum count p50 errs work cpu
for scenario in "${scenarios[@]}"; do
    IFS='|' read -r sname unit args <<<"$scenario"
    for ((round = 1; round <= BENCH_ROUNDS; round++)); do
        order=("${targets[@]}")
        if ((round % 2 == 0)); then  # reverse order every other round, so drift hits every target alike
            order=()
            for ((i = ${#targets[@]} - 1; i >= 0; i--)); do order+=("${targets[i]}"); done
        fi
        for name in "${order[@]}"; do
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
            out=$("$LOAD" $args "${via[@]}" --seconds "$BENCH_SECONDS" --threads "$LOAD_THREADS" 2>>"$tmp/load.err" | grep '^result' || true)
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
                out="$out proxy_cpu_s=$(awk -v a="$c0" -v b="$c1" 'BEGIN {printf "%.3f", (b - a) / 1e9}')"
                out="$out proxy_cpu_util=$(awk -v a="$c0" -v b="$c1" -v t0="$t0" -v t1="$t1" 'BEGIN {printf "%.2f", (b - a) / 1e9 / (t1 - t0)}')"
            fi
            echo "$sname $name round=$round $out" >>"$raw"
            value=$(field "$out" value)
            [[ -n $value ]] || value=0
            sum[$key]=$(awk -v s="${sum[$key]:-0}" -v v="$value" 'BEGIN {print s + v}')
            count[$key]=$((${count[$key]:-0} + 1))
            p50[$key]="${p50[$key]:-}$(field "$out" p50_us)/$(field "$out" p99_us) "
            e1=$(field "$out" errors)
            e2=$(field "$out" timeouts)
            e=$((${e1:-1} + ${e2:-0}))  # no result line at all counts as an error
            errs[$key]=$((${errs[$key]:-0} + e))
            truncate_logs
        done
    done
    note "done: $sname"
done

# --- Report -------------------------------------------------------------------------------------------------
mean() { awk -v s="${sum[$1]:-0}" -v n="${count[$1]:-0}" 'BEGIN {if (n > 0) printf "%.1f", s / n; else print "n/a"}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b + 0 > 0 && a != "n/a") printf "%.2f", a / b; else print "n/a"}'; }
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

per_cpu() { awk -v w="${work[$1]:-0}" -v c="${cpu[$1]:-0}" 'BEGIN {if (c > 0) printf "%.1f", w / c; else print "n/a"}'; }
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
if [[ -s $tmp/load.err ]]; then
    echo
    echo "load generator messages:"
    sort "$tmp/load.err" | uniq -c | head -20
fi
