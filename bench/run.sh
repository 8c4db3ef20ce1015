#!/usr/bin/env bash
# Benchmarks leadflow on a throwaway database: single-event ingest, batch ingest, an optional
# wrk cross-check, and the drain rate of the processing framework. See docs/BENCHMARKS.md.
#
# usage: bench/run.sh BUILD_DIR        (`make bench` builds and runs it)
#
# Every server listens on 127.0.0.1 only and is stopped on exit, however the script ends.
# Knobs (environment), defaults in brackets:
#   BENCH_SINGLE_REQUESTS [100000]  single-event requests in scenario (a)
#   BENCH_CONNECTIONS     [32]      connections for (a), (b) and (d)
#   BENCH_BATCH_EVENTS    [500000]  events in scenario (b)
#   BENCH_BATCH_SIZE      [100]     events per batch request in (b)
#   BENCH_LEADS           [20000]   distinct lead emails the load generator cycles through
#   BENCH_WRK             [1]       0 skips the wrk cross-check (d); it also needs wrk
#   BENCH_WRK_SECONDS     [10]      length of (d)
#   BENCH_DRAIN_WORKERS   [2]       LEADFLOW_WORKERS for the drain (c)
#   BENCH_DRAIN_TIMEOUT_S [300]     give up on the drain after this long
#   BENCH_SYNC            []        LEADFLOW_SYNC for every server; empty = the default (full)
#   BENCH_KEEP            [0]       1 keeps the temporary directory (database, logs)
#   BENCH_LEAD_EVENTS     [100000]  events in the lead drain (e)
#   BENCH_LEAD_LEADS      [20000]   distinct leads those events name
#   BENCH_LEAD_KNOWN      [13333]   of them imported before the events arrive (two thirds)
set -euo pipefail

if [ $# -ne 1 ] || [ ! -d "$1" ]; then
    echo "usage: bench/run.sh BUILD_DIR" >&2
    exit 2
fi
build=$(cd "$1" && pwd)
server_bin=$build/leadflow
loadgen=$build/lf-loadgen
for b in "$server_bin" "$loadgen"; do
    [ -x "$b" ] || { echo "run.sh: $b is missing; run 'make bench'" >&2; exit 2; }
done
for tool in curl python3; do
    command -v "$tool" >/dev/null || { echo "run.sh: needs $tool" >&2; exit 2; }
done

single_requests=${BENCH_SINGLE_REQUESTS:-100000}
connections=${BENCH_CONNECTIONS:-32}
batch_events=${BENCH_BATCH_EVENTS:-500000}
batch_size=${BENCH_BATCH_SIZE:-100}
leads=${BENCH_LEADS:-20000}
run_wrk=${BENCH_WRK:-1}
wrk_seconds=${BENCH_WRK_SECONDS:-10}
drain_workers=${BENCH_DRAIN_WORKERS:-2}
drain_timeout=${BENCH_DRAIN_TIMEOUT_S:-300}
sync_mode=${BENCH_SYNC:-}
lead_events=${BENCH_LEAD_EVENTS:-100000}
lead_leads=${BENCH_LEAD_LEADS:-20000}
lead_known=${BENCH_LEAD_KNOWN:-13333}
batch_requests=$(((batch_events + batch_size - 1) / batch_size))

# The servers get only what this script sets: no LEADFLOW_* from the caller's environment.
while read -r var; do unset "$var"; done < <(compgen -e | grep '^LEADFLOW_' || true)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/leadflow-bench.XXXXXX")
db=$tmp/bench.db
log=$tmp/server.log
jwt_secret=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
server_pid=""
port=""
failures=0
clk_tck=$(getconf CLK_TCK)

# Sends SIGTERM to the server, waits up to $1 seconds for it to drain, then kills it. Returns
# the server's exit status (137 when it had to be killed).
halt_server() {
    local rc=0
    [ -n "$server_pid" ] || return 0
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 $(($1 * 10))); do
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$server_pid" 2>/dev/null; then
        echo "run.sh: the server did not stop within $1 s of SIGTERM; killing it" >&2
        kill -KILL "$server_pid" 2>/dev/null || true
    fi
    wait "$server_pid" 2>/dev/null || rc=$?
    server_pid=""
    return "$rc"
}

cleanup() {
    local rc=$?
    halt_server 10 || true
    if [ "${BENCH_KEEP:-0}" = 1 ] || [ "$rc" -ne 0 ]; then
        echo "run.sh: kept $tmp (database and server.log)" >&2
    else
        rm -rf "$tmp"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say() { printf '\n== %s\n' "$*"; }

# A free port below the kernel's ephemeral range (32768 and up by default), where other
# programs' "bind to port 0" picks and client connections do not land.
free_port() {
    python3 - <<'PY'
import random, socket
for _ in range(200):
    port = random.randrange(20000, 32000)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        s.close()
    print(port)
    break
else:
    raise SystemExit("run.sh: no free port found")
PY
}

# 1 when a process other than the server also listens on the port. The server sets
# SO_REUSEPORT, so a second listener does not make it fail: it silently shares the port.
port_shared() {
    command -v ss >/dev/null || { echo 0; return; }
    ss -Hltnp "sport = :$port" | grep -v "pid=$server_pid," | grep -c . || true
}

# Starts the server with LEADFLOW_WORKERS=$1 on a free port and waits until /health answers.
start_server() {
    local workers=$1 try up
    for try in 1 2 3; do
        port=$(free_port)
        env LEADFLOW_DB="$db" LEADFLOW_JWT_SECRET="$jwt_secret" \
            LEADFLOW_LISTEN="127.0.0.1:$port" LEADFLOW_WORKERS="$workers" \
            LEADFLOW_ACCESS_LOG=0 ${sync_mode:+LEADFLOW_SYNC="$sync_mode"} \
            "$server_bin" serve >>"$log" 2>&1 &
        server_pid=$!
        up=0
        for _ in $(seq 1 150); do
            kill -0 "$server_pid" 2>/dev/null || break
            if curl -fs -o /dev/null "http://127.0.0.1:$port/health"; then
                up=1
                break
            fi
            sleep 0.1
        done
        if [ "$up" = 1 ] && [ "$(port_shared)" -eq 0 ]; then
            return 0
        fi
        if [ "$up" = 1 ]; then
            echo "run.sh: another process listens on port $port too; trying another port" >&2
        elif kill -0 "$server_pid" 2>/dev/null; then
            echo "run.sh: the server did not answer /health within 15 s" >&2
        else
            echo "run.sh: the server exited at start (try $try)" >&2
        fi
        tail -5 "$log" >&2
        halt_server 10 || true
    done
    exit 1
}

# Stops the server as an operator would (SIGTERM, drain); fails unless it exits 0.
stop_server() {
    local rc=0
    halt_server 60 || rc=$?
    if [ "$rc" -ne 0 ]; then
        echo "run.sh: the server exited with status $rc after SIGTERM" >&2
        tail -20 "$log" >&2
        exit 1
    fi
}

# CPU seconds (user + system) the server has used so far.
server_cpu() {
    awk -v t="$clk_tck" '{ sub(/^.*\) /, ""); printf "%.2f\n", ($12 + $13) / t }' \
        "/proc/$server_pid/stat"
}

# CPU seconds the whole machine has been busy (user, nice, system, irq, softirq), all cores.
machine_cpu() {
    awk -v t="$clk_tck" '$1 == "cpu" { printf "%.2f\n", ($2 + $3 + $4 + $7 + $8) / t; exit }' \
        /proc/stat
}

# One metric's value from /metrics (first match), or 0.
metric() {
    awk -v m="$1" '$1 == m { print $2; found = 1; exit } END { if (!found) print 0 }' "$2"
}

# The "pending" count of the status endpoint; tries up to 5 times before failing.
pending() {
    local try body
    for try in 1 2 3 4 5; do
        if body=$(curl -fsS --max-time 30 "http://127.0.0.1:$port/api/v1/events/status/pending" \
            -H "Authorization: Bearer $token"); then
            python3 -c 'import json, sys; print(json.load(sys.stdin)["pending"])' <<<"$body"
            return 0
        fi
        echo "run.sh: pending count failed (try $try); server alive: $(kill -0 "$server_pid" 2>/dev/null && echo yes || echo no)" >&2
        sleep 0.2
    done
    return 1
}

# The field KEY=value from the RESULT line in file $2.
result_field() {
    grep '^RESULT ' "$2" | tr ' ' '\n' | awk -F= -v k="$1" '$1 == k { print $2 }'
}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

# Runs the load generator; keeps its output in $tmp/$1.out and the ingest metrics around it.
run_loadgen() {
    local name=$1
    shift
    curl -fsS "http://127.0.0.1:$port/metrics" >"$tmp/$name.m0"
    local cpu0 mcpu0
    cpu0=$(server_cpu)
    mcpu0=$(machine_cpu)
    local rc=0
    "$loadgen" --url "http://127.0.0.1:$port" --source bench --secret "$source_secret" \
        --leads "$leads" --timeout-s 300 "$@" | tee "$tmp/$name.out" || rc=$?
    local cpu1 mcpu1
    cpu1=$(server_cpu)
    mcpu1=$(machine_cpu)
    curl -fsS "http://127.0.0.1:$port/metrics" >"$tmp/$name.m1"
    if [ "$rc" -ne 0 ]; then
        echo "run.sh: $name: the load generator reported errors (status $rc)" >&2
        failures=$((failures + 1))
    fi
    awk -v a="$cpu0" -v b="$cpu1" 'BEGIN { printf "%.2f\n", b - a }' >"$tmp/$name.cpu"
    awk -v a="$mcpu0" -v b="$mcpu1" 'BEGIN { printf "%.2f\n", b - a }' >"$tmp/$name.mcpu"
    group_commit_report "$name"
}

# Group commits during a run: count, mean events per commit, mean commit time.
group_commit_report() {
    local name=$1 c0 c1 s0 s1 t0 t1
    c0=$(metric leadflow_ingest_batch_size_count "$tmp/$name.m0")
    c1=$(metric leadflow_ingest_batch_size_count "$tmp/$name.m1")
    s0=$(metric leadflow_ingest_batch_size_sum "$tmp/$name.m0")
    s1=$(metric leadflow_ingest_batch_size_sum "$tmp/$name.m1")
    t0=$(metric leadflow_ingest_commit_duration_seconds_sum "$tmp/$name.m0")
    t1=$(metric leadflow_ingest_commit_duration_seconds_sum "$tmp/$name.m1")
    awk -v c0="$c0" -v c1="$c1" -v s0="$s0" -v s1="$s1" -v t0="$t0" -v t1="$t1" \
        -v cpu="$(cat "$tmp/$name.cpu")" -v mcpu="$(cat "$tmp/$name.mcpu")" \
        -v lg="$(result_field cpu_s "$tmp/$name.out")" -v cores="$(nproc)" \
        -v el="$(result_field elapsed_s "$tmp/$name.out")" '
        BEGIN {
            n = c1 - c0
            printf "server          %.2f s CPU (%.0f%% of one core)\n", cpu, (el > 0 ? 100 * cpu / el : 0)
            other = mcpu - cpu - lg
            if (other < 0) other = 0
            printf "machine         %.0f%% of %d cores busy; other processes %.2f s CPU\n", \
                (el > 0 ? 100 * mcpu / (el * cores) : 0), cores, other
            if (n > 0)
                printf "group commits   %d, %.1f events each on average, %.2f ms each on average, writer busy %.0f%%\n", \
                    n, (s1 - s0) / n, 1000 * (t1 - t0) / n, (el > 0 ? 100 * (t1 - t0) / el : 0)
        }' | tee "$tmp/$name.gc"
}

# On the running server's database: an admin token ($token) and the unlimited source 'bench'
# ($source_secret).
setup_tenant() {
    token=$(env LEADFLOW_DB="$db" LEADFLOW_JWT_SECRET="$jwt_secret" \
        "$server_bin" token --tenant default --role admin --ttl 2h --sub bench)
    source_secret=$(curl -fsS -X POST "http://127.0.0.1:$port/api/v1/sources" \
        -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
        -d '{"slug":"bench","name":"Bench","rate_limit_per_s":0}' |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["secret"])')
}

echo "leadflow benchmark — $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo), kernel $(uname -r)"
echo "database: $db (LEADFLOW_SYNC=${sync_mode:-full, the default})"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews the figures)"

say "setup: server with LEADFLOW_WORKERS=0, admin token, source 'bench'"
start_server 0
setup_tenant
echo "server pid $server_pid on 127.0.0.1:$port; source 'bench' created"

say "(a) single-event ingest: $single_requests requests, $connections connections"
run_loadgen single --mode single --connections "$connections" --requests "$single_requests"

say "(b) batch ingest: $batch_requests requests of $batch_size events, $connections connections"
run_loadgen batch --mode batch --batch "$batch_size" --connections "$connections" \
    --requests "$batch_requests"

wrk_line=""
if [ "$run_wrk" = 1 ] && command -v wrk >/dev/null; then
    say "(d) wrk cross-check: one fixed signed body, no idempotency key, ${wrk_seconds} s"
    # Without a key the server gives every event its own, so each request is a new event.
    body='{"event_type":"page_view","source":"bench","lead":{"email":"wrk@acme-1.example","first_name":"W"},"metadata":{"path":"/pricing"},"utm":{"source":"linkedin","campaign":"q4"}}'
    sig=$(BODY="$body" KEY="$source_secret" python3 -c 'import hashlib, hmac, os
print(hmac.new(os.environ["KEY"].encode(), os.environ["BODY"].encode(), hashlib.sha256).hexdigest())')
    cat >"$tmp/wrk.lua" <<LUA
wrk.method = "POST"
wrk.path = "/api/v1/events"
wrk.body = '$body'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Source"] = "bench"
wrk.headers["X-Webhook-Signature"] = "sha256=$sig"
LUA
    wrk -t2 -c"$connections" -d"${wrk_seconds}s" --latency -s "$tmp/wrk.lua" \
        "http://127.0.0.1:$port/api/v1/events" | tee "$tmp/wrk.out"
    wrk_rps=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$tmp/wrk.out")
    wrk_p50=$(awk '$1 == "50%" { print $2 }' "$tmp/wrk.out")
    wrk_p99=$(awk '$1 == "99%" { print $2 }' "$tmp/wrk.out")
    wrk_bad=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$tmp/wrk.out")
    wrk_line=$(printf '%-34s %10s %8s %10s %9s %9s %9s %7s  %s' "(d) wrk cross-check, single" \
        "-" "$wrk_seconds" "${wrk_rps:-?}" "${wrk_p50:-?}" "${wrk_p99:-?}" "-" "${wrk_bad:-0}" \
        "(wrk units; no target)")
else
    say "(d) wrk cross-check skipped (BENCH_WRK=0 or wrk not installed)"
fi

# Stops the server, restarts it with the drain's workers and times until nothing is pending.
# Sets drained, drain_s, drain_eps, ready_s, stages; leaves the server stopped.
measure_drain() {
    local name=$1 to_drain db_bytes t_restart t_ready t_now left processed failed pb_n
    to_drain=$(pending)
    db_bytes=$(cat "$db" "$db-wal" 2>/dev/null | wc -c)
    db_line=$(awk -v b="$db_bytes" -v n="$to_drain" \
        'BEGIN { printf "database + WAL after ingest: %.0f MB for %d events (%.0f bytes per event)", b / 1e6, n, (n > 0 ? b / n : 0) }')
    echo "pending before the restart: $to_drain; $db_line"
    stop_server
    t_restart=$(now)
    start_server "$drain_workers"
    t_ready=$(now)
    left=$to_drain
    while :; do
        left=$(pending)
        t_now=$(now)
        [ "$left" -eq 0 ] && break
        if awk -v a="$t_restart" -v b="$t_now" -v m="$drain_timeout" 'BEGIN { exit !(b - a > m) }'; then
            echo "run.sh: the drain did not finish within ${drain_timeout} s ($left left)" >&2
            failures=$((failures + 1))
            break
        fi
        sleep 0.5
    done
    drain_s=$(elapsed "$t_restart" "$t_now")
    ready_s=$(elapsed "$t_restart" "$t_ready")
    drained=$((to_drain - left))
    drain_eps=$(awk -v n="$drained" -v s="$drain_s" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }')
    curl -fsS "http://127.0.0.1:$port/metrics" >"$tmp/$name.m1"
    processed=$(metric leadflow_events_processed_total "$tmp/$name.m1")
    failed=$(metric leadflow_events_failed_total "$tmp/$name.m1")
    pb_n=$(metric leadflow_process_batch_size_count "$tmp/$name.m1")
    # Which stages ran: the newest benchmark event's result names them.
    stages=$(curl -fsS "http://127.0.0.1:$port/api/v1/events?limit=1&status=processed&source=bench" \
        -H "Authorization: Bearer $token" | python3 -c 'import json, sys
items = json.load(sys.stdin).get("items") or [{}]
stages = ((items[0].get("result") or {}).get("stages")) or []
print(", ".join(stages) if stages else "none")' || echo "unknown")
    echo "stages that ran: $stages"
    echo "drained $drained events in $drain_s s from the restart (server ready after $ready_s s):" \
        "$drain_eps events/s; processed_total $processed, failed_total $failed, $pb_n worker transactions"
    stop_server
}

say "(c) drain: stop, restart with LEADFLOW_WORKERS=$drain_workers, wait for pending = 0"
measure_drain drain
c_drained=$drained c_drain_s=$drain_s c_drain_eps=$drain_eps c_stages=$stages

# (e) The lead stages' drain on its own database: two thirds of the leads exist already (a
# bulk import), the events name lead_leads people, so about a third of them are new.
say "(e) lead drain: $lead_events events over $lead_leads leads, $lead_known of them imported first"
db=$tmp/leads.db
start_server 0
setup_tenant
# The load generator's lead k is user<k>@acme-<k % 500>.example.
python3 -c 'import sys
n = int(sys.argv[1])
print("email,first_name,company")
for k in range(n):
    print(f"user{k}@acme-{k % 500}.example,U{k},Acme {k % 500}")' "$lead_known" >"$tmp/known.csv"
t_import=$(now)
curl -fsS -X POST "http://127.0.0.1:$port/api/v1/leads/bulk" -H "Authorization: Bearer $token" \
    -H 'Content-Type: text/csv' --data-binary @"$tmp/known.csv" >"$tmp/import.json"
import_s=$(elapsed "$t_import" "$(now)")
echo "bulk import of $lead_known leads: $(python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print(d["created"], "created,", d["failed"], "failed")' "$tmp/import.json") in $import_s s"
# The import's own lead.created events are processed before the measured events arrive.
stop_server
start_server "$drain_workers"
while [ "$(pending)" -ne 0 ]; do sleep 0.2; done
stop_server
start_server 0
saved_leads=$leads
leads=$lead_leads
run_loadgen leads --mode batch --batch "$batch_size" --connections 8 \
    --requests $((lead_events / batch_size))
leads=$saved_leads
measure_drain leaddrain
e_drained=$drained e_drain_s=$drain_s e_drain_eps=$drain_eps e_stages=$stages

say "summary (LEADFLOW_SYNC=${sync_mode:-full}; latency in ms)"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
row() { # name file target
    local f=$tmp/$2.out
    printf '%-34s %10s %8s %10s %9s %9s %9s %7s  %s\n' "$1" \
        "$(result_field events "$f")" "$(result_field elapsed_s "$f")" \
        "$(result_field eps "$f")" "$(result_field p50_ms "$f")" "$(result_field p99_ms "$f")" \
        "$(result_field max_ms "$f")" "$(result_field errors "$f")" "$3"
}
verdict_single=$(awk -v e="$(result_field eps "$tmp/single.out")" \
    -v p="$(result_field p99_ms "$tmp/single.out")" \
    'BEGIN { print ((e >= 30000 && p <= 5) ? "met" : "NOT met") }')
verdict_batch=$(awk -v e="$(result_field eps "$tmp/batch.out")" \
    'BEGIN { print ((e >= 150000) ? "met" : "NOT met") }')
printf '%-34s %10s %8s %10s %9s %9s %9s %7s  %s\n' scenario events seconds events/s p50 p99 max \
    errors target
row "(a) single, $connections conns" single ">= 30000 ev/s, p99 <= 5 ms: $verdict_single"
row "(b) batch x$batch_size, $connections conns" batch ">= 150000 ev/s: $verdict_batch"
verdict_leads=$(awk -v e="$e_drain_eps" 'BEGIN { print ((e >= 30000) ? "met" : "NOT met") }')
printf '%-34s %10s %8s %10s %9s %9s %9s %7s  %s\n' "(c) drain, $drain_workers workers" "$c_drained" \
    "$c_drain_s" "$c_drain_eps" "-" "-" "-" "-" "no target; stages: $c_stages"
printf '%-34s %10s %8s %10s %9s %9s %9s %7s  %s\n' "(e) lead drain, $drain_workers workers" \
    "$e_drained" "$e_drain_s" "$e_drain_eps" "-" "-" "-" "-" \
    ">= 30000 ev/s: $verdict_leads; stages: $e_stages"
[ -n "$wrk_line" ] && echo "$wrk_line"
echo
for s in single batch; do
    echo "$s: $(tr '\n' ';' <"$tmp/$s.gc" | sed 's/;$//; s/;/; /g; s/  */ /g')"
done
echo "(e) counts the $lead_events events sent plus the lead.created events resolve made for the new leads"
if [ "$failures" -ne 0 ]; then
    echo "run.sh: $failures scenario(s) had errors; see above" >&2
    exit 1
fi
