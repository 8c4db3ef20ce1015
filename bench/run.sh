#!/usr/bin/env bash
# Benchmarks leadflow on throwaway databases: single-event ingest, batch ingest, an optional
# wrk cross-check, the drain rate of the processing framework, the lead drain with the
# default scoring and intent rules, the score decay job, and the webhook fan-out to a local
# receiver (fast and slow). See docs/BENCHMARKS.md.
#
# usage: bench/run.sh BUILD_DIR [SCENARIO...]     (`make bench` builds and runs them all)
#   SCENARIO is a, b, c, d, e, f, g or h (default: all; or BENCH_SCENARIOS="e f"). (c) drains
#   what (a), (b) and (d) ingested, so it needs at least one of them; (e) to (h) stand alone.
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
#   BENCH_DRAIN_TIMEOUT_S [900]     give up on a drain after this long (with all four stages
#                                   the drain (c) of about 0.8 M events took over 300 s)
#   BENCH_SYNC            []        LEADFLOW_SYNC for every server; empty = the default (full)
#   BENCH_POLL            [db]      how the drains (c) and (e) see that nothing is pending:
#                                   db = a read-only count on the database every 0.25 s
#                                   (bench/benchdb.py wait-drained, about 10 ms a poll);
#                                   api = GET /api/v1/events/status/pending every 0.5 s, as
#                                   before 2026-11-25 (0.1-0.5 s of server CPU a poll with a
#                                   large backlog, which then counts in the server's CPU)
#   BENCH_KEEP            [0]       1 keeps the temporary directory (database, logs)
#   BENCH_LEAD_EVENTS     [100000]  events in the lead drain (e)
#   BENCH_LEAD_LEADS      [20000]   distinct leads those events name
#   BENCH_LEAD_KNOWN      [13333]   of them imported before the events arrive (two thirds)
#   BENCH_DECAY_ROWS      [1000000] score_history rows in the decay scenario (f)
#   BENCH_DECAY_LEADS     [20000]   leads they belong to
#   BENCH_DECAY_TIMEOUT_S [600]     give up on the decay job's request after this long
#   BENCH_FANOUT_EVENTS   [10000]   events in the fast fan-out (g)
#   BENCH_FANOUT_SLOW_EVENTS [2000] events in the slow fan-out (h)
#   BENCH_FANOUT_SUBS     [10]      subscriptions in (g) and (h), each on its own receiver port
#   BENCH_FANOUT_DELAY_MS [200]     how long the receiver of (h) waits before answering
#   BENCH_FANOUT_MODE     [live]    live: the events are ingested and processed while the
#                                   dispatcher sends; backlog: they are ingested and processed
#                                   with LEADFLOW_DISPATCHER=0 first, then the server restarts
#                                   with the dispatcher on and sends the full outbox
#   BENCH_FANOUT_TIMEOUT_S [600]    give up waiting for the deliveries after this long
#   BENCH_FANOUT_VERIFY   [0]       1: the receiver checks every signature (costs its CPU)
#   BENCH_RECEIVER_THREADS [1]      epoll threads per receiver port
#   BENCH_DISPATCH_CONCURRENCY []   LEADFLOW_DISPATCH_CONCURRENCY for (g) and (h); empty = the
#                                   server's default
#   BENCH_DISPATCH_PER_HOST []      LEADFLOW_DISPATCH_PER_HOST for (g) and (h), likewise
#
# Every server runs with LEADFLOW_SCHEDULER=0, so no scheduled job (the score decay at 02:00
# UTC) runs in the middle of a measurement; (f) runs the job by hand.
set -euo pipefail

if [ $# -lt 1 ] || [ ! -d "$1" ]; then
    echo "usage: bench/run.sh BUILD_DIR [a|b|c|d|e|f|g|h ...]" >&2
    exit 2
fi
build=$(cd "$1" && pwd)
shift
here=$(cd "$(dirname "$0")" && pwd)
# bench/benchdb.py reads and writes the databases: with the system's python3 (Debian's, linked
# against the same libsqlite3 as the server) when there is one.
benchpy=/usr/bin/python3
[ -x "$benchpy" ] || benchpy=python3
scenarios=" ${*:-${BENCH_SCENARIOS:-a b c d e f g h}} "
for s in $scenarios; do
    case "$s" in
    a | b | c | d | e | f | g | h) ;;
    *) echo "run.sh: unknown scenario '$s' (a, b, c, d, e, f, g or h)" >&2; exit 2 ;;
    esac
done
want() { [[ "$scenarios" == *" $1 "* ]]; }
if want c && ! want a && ! want b && ! want d; then
    echo "run.sh: (c) drains what (a), (b) and (d) ingested; name at least one of them" >&2
    exit 2
fi
server_bin=$build/leadflow
loadgen=$build/lf-loadgen
receiver=$build/lf-receiver
needed=("$server_bin" "$loadgen")
if want g || want h; then needed+=("$receiver"); fi
for b in "${needed[@]}"; do
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
drain_timeout=${BENCH_DRAIN_TIMEOUT_S:-900}
sync_mode=${BENCH_SYNC:-}
poll=${BENCH_POLL:-db}
case "$poll" in
db | api) ;;
*) echo "run.sh: BENCH_POLL must be db or api" >&2; exit 2 ;;
esac
lead_events=${BENCH_LEAD_EVENTS:-100000}
lead_leads=${BENCH_LEAD_LEADS:-20000}
lead_known=${BENCH_LEAD_KNOWN:-13333}
decay_rows=${BENCH_DECAY_ROWS:-1000000}
decay_leads=${BENCH_DECAY_LEADS:-20000}
decay_timeout=${BENCH_DECAY_TIMEOUT_S:-600}
fanout_events=${BENCH_FANOUT_EVENTS:-10000}
fanout_slow_events=${BENCH_FANOUT_SLOW_EVENTS:-2000}
fanout_subs=${BENCH_FANOUT_SUBS:-10}
fanout_delay=${BENCH_FANOUT_DELAY_MS:-200}
fanout_mode=${BENCH_FANOUT_MODE:-live}
fanout_timeout=${BENCH_FANOUT_TIMEOUT_S:-600}
fanout_verify=${BENCH_FANOUT_VERIFY:-0}
receiver_threads=${BENCH_RECEIVER_THREADS:-1}
dispatch_concurrency=${BENCH_DISPATCH_CONCURRENCY:-}
dispatch_per_host=${BENCH_DISPATCH_PER_HOST:-}
case "$fanout_mode" in
live | backlog) ;;
*) echo "run.sh: BENCH_FANOUT_MODE must be live or backlog" >&2; exit 2 ;;
esac
if [ "$fanout_subs" -lt 1 ] || [ "$fanout_subs" -gt 64 ]; then
    echo "run.sh: BENCH_FANOUT_SUBS must be 1 to 64 (one receiver port each)" >&2
    exit 2
fi
batch_requests=$(((batch_events + batch_size - 1) / batch_size))

# The servers get only what this script sets: no LEADFLOW_* from the caller's environment.
while read -r var; do unset "$var"; done < <(compgen -e | grep '^LEADFLOW_' || true)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/leadflow-bench.XXXXXX")
db=$tmp/bench.db
log=$tmp/server.log
jwt_secret=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
server_pid=""
port=""
# Extra environment for the servers of a scenario (NAME=value words), and the receiver of (g)
# and (h).
server_env=()
receiver_pid=""
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

# Stops the receiver of (g) and (h) (SIGTERM: it prints its final counts), killing it after 5 s.
halt_receiver() {
    [ -n "$receiver_pid" ] || return 0
    kill -TERM "$receiver_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
        kill -0 "$receiver_pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$receiver_pid" 2>/dev/null || true
    wait "$receiver_pid" 2>/dev/null || true
    receiver_pid=""
}

cleanup() {
    local rc=$?
    halt_server 10 || true
    halt_receiver || true
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
            LEADFLOW_ACCESS_LOG=0 LEADFLOW_SCHEDULER=0 ${sync_mode:+LEADFLOW_SYNC="$sync_mode"} \
            "${server_env[@]}" \
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
server_cpu() { proc_cpu "$server_pid"; }

# CPU seconds (user + system) process $1 has used so far (0 when it is gone).
proc_cpu() {
    awk -v t="$clk_tck" '{ sub(/^.*\) /, ""); printf "%.2f\n", ($12 + $13) / t }' \
        "/proc/$1/stat" 2>/dev/null || echo 0
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

# An admin token for the tenant 'default' of $db ($token).
make_token() {
    token=$(env LEADFLOW_DB="$db" LEADFLOW_JWT_SECRET="$jwt_secret" \
        "$server_bin" token --tenant default --role admin --ttl 2h --sub bench)
}

# On the running server's database: an admin token ($token) and the unlimited source 'bench'
# ($source_secret).
setup_tenant() {
    make_token
    source_secret=$(curl -fsS -X POST "http://127.0.0.1:$port/api/v1/sources" \
        -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
        -d '{"slug":"bench","name":"Bench","rate_limit_per_s":0}' |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["secret"])')
}

# The 20 automation rules of bench/automation_rules.json (events, score thresholds, intents,
# stage entries and a timer; tasks, Slack, field updates, routing, webhooks).
setup_automation() {
    local n
    n=$(python3 - "$here/automation_rules.json" "http://127.0.0.1:$port" "$token" <<'PY'
import json, sys, urllib.request
rules, base, token = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
for rule in rules:
    req = urllib.request.Request(base + "/api/v1/automation/rules", json.dumps(rule).encode(),
                                 {"Authorization": "Bearer " + token,
                                  "Content-Type": "application/json"})
    urllib.request.urlopen(req).read()
print(len(rules))
PY
)
    echo "automation rules: $n"
}

# Stops the server, restarts it with the drain's workers and times until nothing is pending.
# Sets drained, drain_s, drain_eps, ready_s, stages, drain_cpu, drain_other; leaves the
# server stopped.
measure_drain() {
    local name=$1 to_drain db_bytes t_restart t_ready t_now left processed failed pb_n mcpu0 mcpu1
    to_drain=$(pending)
    db_bytes=$(cat "$db" "$db-wal" 2>/dev/null | wc -c)
    db_line=$(awk -v b="$db_bytes" -v n="$to_drain" \
        'BEGIN { printf "database + WAL after ingest: %.0f MB for %d events (%.0f bytes per event)", b / 1e6, n, (n > 0 ? b / n : 0) }')
    echo "pending before the restart: $to_drain; $db_line"
    stop_server
    mcpu0=$(machine_cpu)
    t_restart=$(now)
    start_server "$drain_workers"
    t_ready=$(now)
    left=$to_drain
    if [ "$poll" = db ]; then
        "$benchpy" "$here/benchdb.py" wait-drained "$db" --timeout "$drain_timeout" \
            --interval 0.25 >"$tmp/$name.wait" || true
        t_now=$(now)
        left=$(kv left "$tmp/$name.wait")
        left=${left:-$to_drain}
        if [ "$left" -ne 0 ]; then
            echo "run.sh: the drain did not finish within ${drain_timeout} s ($left left)" >&2
            failures=$((failures + 1))
        fi
    else
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
    fi
    drain_cpu=$(server_cpu)
    mcpu1=$(machine_cpu)
    drain_s=$(elapsed "$t_restart" "$t_now")
    ready_s=$(elapsed "$t_restart" "$t_ready")
    drained=$((to_drain - left))
    drain_eps=$(awk -v n="$drained" -v s="$drain_s" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }')
    # Other processes: the machine's busy time less the server's (the polls count as other;
    # they are small).
    drain_other=$(awk -v a="$mcpu0" -v b="$mcpu1" -v c="$drain_cpu" \
        'BEGIN { o = b - a - c; printf "%.2f", (o < 0 ? 0 : o) }')
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
    awk -v c="$drain_cpu" -v s="$drain_s" -v o="$drain_other" 'BEGIN {
        printf "server          %.2f s CPU (%.0f%% of one core); other processes %.2f s CPU\n", \
            c, (s > 0 ? 100 * c / s : 0), o }'
    stop_server
}

# The value of "key value" line KEY in file $2.
kv() { awk -v k="$1" '$1 == k { $1 = ""; sub(/^ /, ""); print; exit }' "$2"; }

echo "leadflow benchmark — $(date -u +%Y-%m-%dT%H:%M:%SZ); scenarios:$scenarios"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo), kernel $(uname -r)"
echo "databases: under $tmp (LEADFLOW_SYNC=${sync_mode:-full, the default}); drains polled by $poll"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews the figures)"

if want a || want b || want d; then
    say "setup: server with LEADFLOW_WORKERS=0, admin token, source 'bench'"
    start_server 0
    setup_tenant
    echo "server pid $server_pid on 127.0.0.1:$port; source 'bench' created"
fi

if want a; then
    say "(a) single-event ingest: $single_requests requests, $connections connections"
    run_loadgen single --mode single --connections "$connections" --requests "$single_requests"
fi

if want b; then
    say "(b) batch ingest: $batch_requests requests of $batch_size events, $connections connections"
    run_loadgen batch --mode batch --batch "$batch_size" --connections "$connections" \
        --requests "$batch_requests"
fi

wrk_line=""
if want d && [ "$run_wrk" = 1 ] && command -v wrk >/dev/null; then
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
elif want d; then
    say "(d) wrk cross-check skipped (BENCH_WRK=0 or wrk not installed)"
fi

if want c; then
    say "(c) drain: stop, restart with LEADFLOW_WORKERS=$drain_workers, wait for pending = 0"
    measure_drain drain
    c_drained=$drained c_drain_s=$drain_s c_drain_eps=$drain_eps c_stages=$stages
elif want a || want b || want d; then
    stop_server
fi

# (e) The lead stages' drain on its own database (every stage built: resolve, attribute, score,
# intent, route, automate), with the default scoring and intent rules, pipelines and team, and
# the 20 automation rules of bench/automation_rules.json:
# two thirds of the leads exist already (a bulk import with job titles, countries and
# companies), the events name lead_leads people, so about a third of them are new. The events
# are the load generator's rules mix (page views of pricing, academic and partner pages,
# downloads by asset type, forms, email, webinar, demo and quote events).
if want e; then
    say "(e) lead drain: $lead_events events over $lead_leads leads, $lead_known of them imported first; default scoring and intent rules, 20 automation rules"
    db=$tmp/leads.db
    start_server 0
    setup_tenant
    setup_automation
    # The same leads (emails, titles, countries, companies) as the load generator's events.
    "$loadgen" --mix rules --print-leads "$lead_known" >"$tmp/known.csv"
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
    e_since_ms=$(date +%s%3N)
    saved_leads=$leads
    leads=$lead_leads
    run_loadgen leads --mix rules --mode batch --batch "$batch_size" --connections 8 \
        --requests $((lead_events / batch_size))
    leads=$saved_leads
    measure_drain leaddrain
    e_drained=$drained e_drain_s=$drain_s e_drain_eps=$drain_eps e_stages=$stages
    e_cpu=$drain_cpu e_other=$drain_other
    say "(e) what the drain wrote (the database, read with python3's sqlite3)"
    "$benchpy" "$here/benchdb.py" drain-counts "$db" --since-ms "$e_since_ms" | tee "$tmp/leaddrain.counts"
    e_score_rows=$(kv score_history_rows "$tmp/leaddrain.counts")
    e_intent_rows=$(kv intent_signals_rows "$tmp/leaddrain.counts")
    e_internal=$(kv internal_events_total "$tmp/leaddrain.counts")
fi

# (f) The score decay job on a database built for it: decay_rows score rows over decay_leads
# leads, about 90% of the expiring ones past their expiry but not yet marked, leads' scores
# equal to the sums of their rows (see bench/benchdb.py). The job is run by hand for the
# tenant (POST /api/v1/scheduler/jobs/score_decay/run, workers off) and timed; then the
# database is checked: nothing unexpired is past its expiry, and every lead's scores are the
# sums of its unexpired rows.
if want f; then
    say "(f) score decay: $decay_rows score rows over $decay_leads leads, most past their expiry"
    db=$tmp/decay.db
    env LEADFLOW_DB="$db" "$server_bin" seed >>"$log" 2>&1
    "$benchpy" "$here/benchdb.py" decay-populate "$db" --rows "$decay_rows" --leads "$decay_leads" |
        tee "$tmp/decay.setup"
    start_server 0
    make_token
    f_cpu0=$(server_cpu)
    f_mcpu0=$(machine_cpu)
    f_t0=$(now)
    f_rc=0
    curl -fsS --max-time "$decay_timeout" -X POST \
        "http://127.0.0.1:$port/api/v1/scheduler/jobs/score_decay/run" \
        -H "Authorization: Bearer $token" >"$tmp/decay.json" || f_rc=$?
    f_wall=$(elapsed "$f_t0" "$(now)")
    f_cpu=$(awk -v a="$f_cpu0" -v b="$(server_cpu)" 'BEGIN { printf "%.2f", b - a }')
    f_other=$(awk -v a="$f_mcpu0" -v b="$(machine_cpu)" -v c="$f_cpu" \
        'BEGIN { o = b - a - c; printf "%.2f", (o < 0 ? 0 : o) }')
    f_wal=$(stat -c %s "$db-wal" 2>/dev/null || echo 0)
    if [ "$f_rc" -ne 0 ]; then
        echo "run.sh: (f) the job's request failed (curl status $f_rc; 28 = no answer within" \
            "BENCH_DECAY_TIMEOUT_S = $decay_timeout s)" >&2
        failures=$((failures + 1))
    fi
    cat "$tmp/decay.json" 2>/dev/null || true
    echo
    python3 - "$tmp/decay.json" >"$tmp/decay.result" 2>/dev/null <<'PY' || true
import json, sys
r = json.load(open(sys.argv[1]))
res = r.get("result") or {}
print("ok", "yes" if r.get("ok") else "no")
for k in ("duration_ms", "rows_expired", "leads_rescored", "scores_changed",
          "intents_reevaluated"):
    print(k, res.get(k, "?"))
PY
    f_ms=$(kv duration_ms "$tmp/decay.result")
    f_rows=$(kv rows_expired "$tmp/decay.result")
    f_leads=$(kv leads_rescored "$tmp/decay.result")
    if [ "$f_rc" -eq 0 ]; then
        [ "$(kv ok "$tmp/decay.result")" = yes ] || failures=$((failures + 1))
        f_s=$(awk -v m="${f_ms:-0}" 'BEGIN { printf "%.2f", m / 1000 }')
        f_rps=$(awk -v n="${f_rows:-0}" -v s="$f_s" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }')
    else
        f_s=">$decay_timeout" f_rps=-
    fi
    echo "job: ${f_ms:-?} ms (request $f_wall s), ${f_rows:-?} rows expired, ${f_leads:-?} leads rescored"
    awk -v c="$f_cpu" -v s="$f_wall" -v o="$f_other" -v w="$f_wal" 'BEGIN {
        printf "server          %.2f s CPU (%.0f%% of one core); other processes %.2f s CPU; WAL %.0f MB after the job\n", \
            c, (s > 0 ? 100 * c / s : 0), o, w / 1e6 }'
    if [ "$f_rc" -eq 0 ]; then
        stop_server
    else # the job is still running in the server: it stops between batches of 500 leads
        halt_server 30 || true
    fi
    say "(f) check (python3's sqlite3) and the query plans of the job's statements"
    if "$benchpy" "$here/benchdb.py" decay-check "$db" | tee "$tmp/decay.check"; then
        f_check=ok
    else
        f_check=FAILED
        failures=$((failures + 1))
    fi
    "$benchpy" "$here/benchdb.py" plans "$db"
fi

# ---- (g) and (h): webhook fan-out to a local receiver

# The first of N consecutive free ports below the ephemeral range (see free_port).
free_ports() {
    python3 - "$1" <<'PY'
import random, socket, sys
n = int(sys.argv[1])
for _ in range(200):
    base = random.randrange(20000, 32000 - n)
    socks = []
    try:
        for p in range(base, base + n):
            s = socket.socket()
            socks.append(s)
            s.bind(("127.0.0.1", p))
    except OSError:
        continue
    finally:
        for s in socks:
            s.close()
    print(base)
    break
else:
    raise SystemExit("run.sh: no free ports found")
PY
}

# The event types of the load generator's basic mix: each event matches every subscription
# once, and the domain events the stages write (lead.created, lead.scored, ...) match none.
fanout_types='["page_view","form_submit","email_open","webinar_signup"]'

# Creates fanout_subs subscriptions on the running server, subscription i pointing at
# 127.0.0.1:(base + i). Prints their secrets, comma-separated, in port order.
create_subscriptions() {
    python3 - "http://127.0.0.1:$port" "$token" "$1" "$fanout_subs" "$fanout_types" <<'PY'
import json, sys, urllib.error, urllib.request
base, token, first, n, types = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), json.loads(sys.argv[5])
secrets = []
for i in range(n):
    body = {"url": f"http://127.0.0.1:{first + i}/hooks/{i}", "event_types": types,
            "description": f"bench fan-out {i + 1} of {n}"}
    req = urllib.request.Request(base + "/api/v1/subscriptions", json.dumps(body).encode(),
                                 {"Authorization": "Bearer " + token,
                                  "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req) as r:
            status, answer = r.status, json.load(r)
    except urllib.error.HTTPError as e:
        sys.exit(f"run.sh: POST /api/v1/subscriptions answered {e.code}: {e.read().decode()[:500]}")
    if status != 201 or not answer.get("secret"):
        sys.exit(f"run.sh: POST /api/v1/subscriptions answered {status}: {answer}")
    secrets.append(answer["secret"])
print(",".join(secrets))
PY
}

# Starts the receiver on fanout_subs ports from $1 with delay $2 ms, its counts in
# $tmp/$3.rstats (every 100 ms) and $tmp/$3.rcv (at exit); $4: secrets for --verify or empty.
start_receiver() {
    local first=$1 delay=$2 name=$3 secrets=$4
    rstats=$tmp/$name.rstats
    rm -f "$rstats"
    "$receiver" --port "$first" --ports "$fanout_subs" --threads "$receiver_threads" \
        --delay-ms "$delay" --stats-file "$rstats" ${secrets:+--verify "$secrets"} \
        >"$tmp/$name.rcv" 2>&1 &
    receiver_pid=$!
    for _ in $(seq 1 50); do
        [ -s "$rstats" ] && return 0
        kill -0 "$receiver_pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "run.sh: the receiver did not start on ports $first-$((first + fanout_subs - 1)):" >&2
    cat "$tmp/$name.rcv" >&2
    receiver_pid=""
    exit 1
}

# Waits until the receiver has counted $1 POSTs (or BENCH_FANOUT_TIMEOUT_S passed, or the
# receiver or the server is gone), printing progress every 5 s. 0 when they arrived.
wait_deliveries() {
    local expected=$1 got t_start t_last_say n=0
    t_start=$(date +%s)
    t_last_say=$t_start
    while :; do
        got=$(kv requests "$rstats")
        got=${got:-0}
        [ "$got" -ge "$expected" ] && return 0
        if ! kill -0 "$receiver_pid" 2>/dev/null; then
            echo "run.sh: the receiver exited ($got of $expected deliveries)" >&2
            return 1
        fi
        if ! kill -0 "$server_pid" 2>/dev/null; then
            echo "run.sh: the server exited ($got of $expected deliveries)" >&2
            tail -20 "$log" >&2
            return 1
        fi
        n=$((n + 1))
        if [ $((n % 10)) -eq 0 ]; then
            local now_s
            now_s=$(date +%s)
            if [ $((now_s - t_start)) -ge "$fanout_timeout" ]; then
                echo "run.sh: only $got of $expected deliveries within ${fanout_timeout} s" >&2
                return 1
            fi
            if [ $((now_s - t_last_say)) -ge 5 ]; then
                echo "... $got of $expected deliveries after $((now_s - t_start)) s"
                t_last_say=$now_s
            fi
        fi
        sleep 0.1
    done
}

# The CPU seconds of process $1's busiest threads (the server's threads are not named; in
# (g) one of them, the dispatcher, is the limit when it nears the wall time).
busiest_threads() {
    local t
    for t in /proc/"$1"/task/*/stat; do
        awk -v k="$clk_tck" '{ sub(/^.*\) /, ""); printf "%.2f\n", ($12 + $13) / k }' "$t" 2>/dev/null
    done | sort -rn | head -3 | tr '\n' ' ' | sed 's/ $//; s/ /, /g'
}

# What the server recorded (the database, read-only): deliveries by status, the tries, their
# durations (p50, p99, max in ms), the errors, and when the outbox rows were written and
# delivered. Waits up to 30 s for $2 deliveries to be marked succeeded (the receiver counts a
# delivery before the server records its answer).
delivery_report() {
    "$benchpy" - "$1" "$2" <<'PY'
import sqlite3, sys, time
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True, timeout=30)
expected = int(sys.argv[2])
deadline = time.monotonic() + 30
while True:
    by_status = dict(db.execute(
        "SELECT status, count(*) FROM deliveries WHERE kind = 'webhook' GROUP BY status"))
    if by_status.get("succeeded", 0) >= expected or time.monotonic() > deadline:
        break
    time.sleep(0.25)
print("deliveries_by_status", ", ".join(f"{k} {v}" for k, v in sorted(by_status.items())) or "none")
print("succeeded", by_status.get("succeeded", 0))
created0, created1, delivered1 = db.execute(
    "SELECT min(created_at), max(created_at), max(delivered_at) FROM deliveries"
    " WHERE kind = 'webhook'").fetchone()
print("outbox_written_ms", created0 or 0, created1 or 0)
print("last_delivered_ms", delivered1 or 0)
durations = [d for (d,) in db.execute(
    "SELECT duration_ms FROM delivery_attempts WHERE duration_ms IS NOT NULL ORDER BY duration_ms")]
n = len(durations)
pick = lambda q: durations[min(n - 1, int(q * n))] if n else 0
print("attempts", db.execute("SELECT count(*) FROM delivery_attempts").fetchone()[0])
print("attempt_ms_p50", pick(0.5))
print("attempt_ms_p99", pick(0.99))
print("attempt_ms_max", durations[-1] if n else 0)
failed = db.execute(
    "SELECT count(*) FROM delivery_attempts WHERE status_code IS NULL"
    " OR status_code < 200 OR status_code >= 300").fetchone()[0]
print("attempts_failed", failed)
errors = db.execute(
    "SELECT coalesce(error, 'HTTP ' || status_code), count(*) FROM delivery_attempts"
    " WHERE status_code IS NULL OR status_code < 200 OR status_code >= 300"
    " GROUP BY 1 ORDER BY 2 DESC LIMIT 3").fetchall()
print("attempt_errors", "; ".join(f"{e} ({c})" for e, c in errors) or "none")
PY
}

# (g) or (h): NAME EVENTS DELAY_MS. A server (release build) with LEADFLOW_WORKERS =
# BENCH_DRAIN_WORKERS and private targets allowed, fanout_subs subscriptions each pointing at
# its own port of the receiver, EVENTS events of the load generator's basic mix (batches of
# 100), so EVENTS x fanout_subs deliveries. Measures from the first ingest request (backlog
# mode: from the restart with the dispatcher on) until the receiver has counted them all.
# Sets fo_* for the summary.
measure_fanout() {
    local name=$1 events=$2 delay=$3
    local first secrets expected requests t0 t0_us cpu0 rcpu0 mcpu0 t_done
    local scpu rcpu mcpu lgcpu ok_wait=1
    db=$tmp/$name.db
    server_env=(LEADFLOW_ALLOW_PRIVATE_TARGETS=1
        ${dispatch_concurrency:+LEADFLOW_DISPATCH_CONCURRENCY=$dispatch_concurrency}
        ${dispatch_per_host:+LEADFLOW_DISPATCH_PER_HOST=$dispatch_per_host})
    [ "$fanout_mode" = backlog ] && server_env+=(LEADFLOW_DISPATCHER=0)
    start_server "$drain_workers"
    setup_tenant
    first=$(free_ports "$fanout_subs")
    secrets=$(create_subscriptions "$first")
    [ "$fanout_verify" = 1 ] || secrets=""
    start_receiver "$first" "$delay" "$name" "$secrets"
    echo "server pid $server_pid on 127.0.0.1:$port (workers $drain_workers, ${server_env[*]});" \
        "receiver pid $receiver_pid on 127.0.0.1:$first-$((first + fanout_subs - 1))," \
        "delay ${delay} ms${secrets:+, checking signatures}; $fanout_subs subscriptions to $fanout_types"
    requests=$(((events + 99) / 100))
    cpu0=$(server_cpu)
    rcpu0=$(proc_cpu "$receiver_pid")
    mcpu0=$(machine_cpu)
    t0_us=$(date +%s%6N)
    run_loadgen "$name" --mode batch --batch 100 --connections 4 --requests "$requests"
    fo_events=$(result_field events "$tmp/$name.out")
    expected=$((${fo_events:-0} * fanout_subs))
    lgcpu=$(result_field cpu_s "$tmp/$name.out")
    if [ "$fanout_mode" = backlog ]; then
        # process everything with the dispatcher off, then send the full outbox
        "$benchpy" "$here/benchdb.py" wait-drained "$db" --timeout "$drain_timeout" \
            --interval 0.25 >"$tmp/$name.wait" || true
        echo "processed with the dispatcher off in $(elapsed "$(awk -v u="$t0_us" 'BEGIN { printf "%.6f", u / 1e6 }')" "$(now)") s;" \
            "webhook deliveries pending: $("$benchpy" -c 'import sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True, timeout=30)
print(db.execute("SELECT count(*) FROM deliveries WHERE kind = '"'webhook'"' AND status = '"'pending'"'").fetchone()[0])' "$db")"
        stop_server
        server_env=("${server_env[@]/LEADFLOW_DISPATCHER=0/LEADFLOW_DISPATCHER=1}")
        mcpu0=$(machine_cpu)
        rcpu0=$(proc_cpu "$receiver_pid")
        lgcpu=0
        t0_us=$(date +%s%6N)
        start_server 0
        cpu0=0
    fi
    wait_deliveries "$expected" || ok_wait=0
    t_done=$(now)
    scpu=$(awk -v a="$cpu0" -v b="$(server_cpu)" 'BEGIN { printf "%.2f", b - a }')
    rcpu=$(awk -v a="$rcpu0" -v b="$(proc_cpu "$receiver_pid")" 'BEGIN { printf "%.2f", b - a }')
    mcpu=$(awk -v a="$mcpu0" -v b="$(machine_cpu)" 'BEGIN { printf "%.2f", b - a }')
    fo_threads=$(busiest_threads "$server_pid")
    [ "$ok_wait" = 1 ] || failures=$((failures + 1))
    # late and repeated deliveries still arrive within a second, if any
    sleep 1
    curl -fsS "http://127.0.0.1:$port/metrics" >"$tmp/$name.m2" || true
    delivery_report "$db" "$expected" >"$tmp/$name.db.out"
    halt_receiver
    local rc=$tmp/$name.rcv
    fo_got=$(kv requests "$rc")
    fo_unique=$(kv unique_ids "$rc")
    fo_dups=$(kv duplicates "$rc")
    fo_window=$(kv window_s "$rc")
    fo_rate=$(kv rate "$rc")
    fo_first_s=$(awk -v a="$t0_us" -v b="$(kv first_us "$rc")" \
        'BEGIN { if (b > 0) printf "%.2f", (b - a) / 1e6; else print "-" }')
    fo_e2e_s=$(awk -v a="$t0_us" -v b="$(kv last_us "$rc")" \
        'BEGIN { if (b > 0) printf "%.2f", (b - a) / 1e6; else print "-" }')
    fo_e2e_rate=$(awk -v n="${fo_got:-0}" -v s="$fo_e2e_s" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }')
    fo_scpu=$scpu fo_rcpu=$rcpu fo_expected=$expected
    fo_other=$(awk -v m="$mcpu" -v s="$scpu" -v r="$rcpu" -v l="${lgcpu:-0}" \
        'BEGIN { o = m - s - r - l; printf "%.2f", (o < 0 ? 0 : o) }')
    fo_wall=$(elapsed "$(awk -v u="$t0_us" 'BEGIN { printf "%.6f", u / 1e6 }')" "$t_done")
    fo_p50=$(kv attempt_ms_p50 "$tmp/$name.db.out")
    fo_p99=$(kv attempt_ms_p99 "$tmp/$name.db.out")
    fo_max=$(kv attempt_ms_max "$tmp/$name.db.out")
    fo_failed=$(kv attempts_failed "$tmp/$name.db.out")
    # the steady rate: the median of the whole seconds between the first and the last
    fo_steady=$(kv per_second "$rc" | tr ' ' '\n' | sed '1d;$d' | sort -n |
        awk '{ v[NR] = $1 } END { print (NR ? v[int((NR + 1) / 2)] : "-") }')
    if [ "${fo_got:-0}" -ne "$expected" ] || [ "${fo_unique:-0}" -ne "$expected" ]; then
        echo "run.sh: $name: expected $expected deliveries, the receiver counted ${fo_got:-0}" \
            "(${fo_unique:-0} distinct webhook-ids)" >&2
        failures=$((failures + 1))
    fi
    if [ -n "$secrets" ] && [ "$(kv bad_signatures "$rc")" != 0 ]; then
        echo "run.sh: $name: $(kv bad_signatures "$rc") deliveries with a bad signature" >&2
        failures=$((failures + 1))
    fi
    echo "receiver: ${fo_got:-0} POSTs, ${fo_unique:-0} distinct webhook-ids, ${fo_dups:-0} repeated," \
        "$(kv missing_ids "$rc") without one; $(kv connections_total "$rc") connections" \
        "(at most $(kv connections_max "$rc") open at once), at most $(kv suspended_max "$rc") waiting"
    echo "per second from the first delivery: $(kv per_second "$rc")"
    echo "dispatch: first delivery ${fo_first_s} s after the start, last after ${fo_e2e_s} s;" \
        "first to last ${fo_window} s: ${fo_rate} deliveries/s (steady, median whole second: ${fo_steady}/s)"
    echo "end to end: ${fo_got:-0} deliveries in ${fo_e2e_s} s from the $([ "$fanout_mode" = backlog ] && echo "restart" || echo "first ingest request"): ${fo_e2e_rate} deliveries/s"
    sed 's/^/server recorded: /' "$tmp/$name.db.out"
    grep -Ei '^leadflow_(deliver|dispatch|outbox|webhook)' "$tmp/$name.m2" 2>/dev/null |
        sed 's/^/metric: /' || true
    awk -v s="$scpu" -v r="$rcpu" -v l="${lgcpu:-0}" -v o="$fo_other" -v w="$fo_wall" 'BEGIN {
        printf "CPU over %.2f s: server %.2f s (%.0f%% of one core), receiver %.2f s, load generator %.2f s, other processes %.2f s\n", \
            w, s, (w > 0 ? 100 * s / w : 0), r, l, o }'
    echo "the server's busiest threads since it started: $fo_threads s CPU"
    stop_server
    server_env=()
}

if want g; then
    say "(g) webhook fan-out, fast receiver: $fanout_events events x $fanout_subs subscriptions ($fanout_mode)"
    measure_fanout fanout "$fanout_events" 0
    g_got=$fo_got g_window=$fo_window g_rate=$fo_rate g_e2e_s=$fo_e2e_s g_e2e_rate=$fo_e2e_rate
    g_p50=$fo_p50 g_p99=$fo_p99 g_max=$fo_max g_failed=$fo_failed g_scpu=$fo_scpu g_rcpu=$fo_rcpu
    g_other=$fo_other g_steady=$fo_steady g_dups=$fo_dups
fi

if want h; then
    say "(h) webhook fan-out, receiver answering after ${fanout_delay} ms: $fanout_slow_events events x $fanout_subs subscriptions ($fanout_mode)"
    measure_fanout fanout-slow "$fanout_slow_events" "$fanout_delay"
    h_got=$fo_got h_window=$fo_window h_rate=$fo_rate h_e2e_s=$fo_e2e_s h_e2e_rate=$fo_e2e_rate
    h_p50=$fo_p50 h_p99=$fo_p99 h_max=$fo_max h_failed=$fo_failed h_scpu=$fo_scpu h_rcpu=$fo_rcpu
    h_other=$fo_other h_steady=$fo_steady h_dups=$fo_dups
fi

say "summary (LEADFLOW_SYNC=${sync_mode:-full}; latency in ms)"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
line() { printf '%-34s %10s %8s %10s %9s %9s %9s %7s  %s\n' "$@"; }
row() { # name file target
    local f=$tmp/$2.out
    line "$1" "$(result_field events "$f")" "$(result_field elapsed_s "$f")" \
        "$(result_field eps "$f")" "$(result_field p50_ms "$f")" "$(result_field p99_ms "$f")" \
        "$(result_field max_ms "$f")" "$(result_field errors "$f")" "$3"
}
line scenario events seconds events/s p50 p99 max errors target
if want a; then
    verdict_single=$(awk -v e="$(result_field eps "$tmp/single.out")" \
        -v p="$(result_field p99_ms "$tmp/single.out")" \
        'BEGIN { print ((e >= 30000 && p <= 5) ? "met" : "NOT met") }')
    row "(a) single, $connections conns" single ">= 30000 ev/s, p99 <= 5 ms: $verdict_single"
fi
if want b; then
    verdict_batch=$(awk -v e="$(result_field eps "$tmp/batch.out")" \
        'BEGIN { print ((e >= 150000) ? "met" : "NOT met") }')
    row "(b) batch x$batch_size, $connections conns" batch ">= 150000 ev/s: $verdict_batch"
fi
if want c; then
    line "(c) drain, $drain_workers workers" "$c_drained" "$c_drain_s" "$c_drain_eps" - - - - \
        "no target; stages: $c_stages"
fi
if want e; then
    # the target falls as stages are added: resolve..intent 20000 (issue 4), ..route 15000
    # (issue 5), ..automate 12000 (issue 6)
    e_target=20000
    case ",$e_stages," in *automate*) e_target=12000 ;; *route*) e_target=15000 ;; esac
    verdict_leads=$(awk -v e="$e_drain_eps" -v t="$e_target" 'BEGIN { print ((e >= t) ? "met" : "NOT met") }')
    line "(e) lead drain, $drain_workers workers" "$e_drained" "$e_drain_s" "$e_drain_eps" - - - - \
        ">= $e_target ev/s: $verdict_leads; stages: $e_stages"
fi
if want f; then
    verdict_decay=$(awk -v s="$f_s" -v r="${f_rows:-0}" 'BEGIN { print ((r > 0 && s < 10) ? "met" : "NOT met") }')
    line "(f) score decay, $decay_rows rows" "${f_rows:-?}" "$f_s" "$f_rps" - - - - \
        "< 10 s: $verdict_decay; rows/s; check $f_check"
fi
if want g; then
    verdict_fanout=$(awk -v e="${g_rate:-0}" 'BEGIN { print ((e >= 20000) ? "met" : "NOT met") }')
    line "(g) fan-out x$fanout_subs, fast" "${g_got:-0}" "${g_window:-?}" "${g_rate:-?}" \
        "${g_p50:-?}" "${g_p99:-?}" "${g_max:-?}" "${g_failed:-?}" \
        ">= 20000 deliveries/s: $verdict_fanout"
fi
if want h; then
    verdict_slow=$(awk -v e="${h_rate:-0}" 'BEGIN { print ((e >= 2000) ? "met" : "NOT met") }')
    line "(h) fan-out x$fanout_subs, ${fanout_delay} ms" "${h_got:-0}" "${h_window:-?}" \
        "${h_rate:-?}" "${h_p50:-?}" "${h_p99:-?}" "${h_max:-?}" "${h_failed:-?}" \
        ">= 2000 deliveries/s: $verdict_slow"
fi
[ -n "$wrk_line" ] && echo "$wrk_line"
echo
for s in single batch; do
    [ -f "$tmp/$s.gc" ] && echo "$s: $(tr '\n' ';' <"$tmp/$s.gc" | sed 's/;$//; s/;/; /g; s/  */ /g')"
done
if want e; then
    echo "(e) counts the $lead_events events sent; the drain also processed $e_internal internal events (lead.created, lead.scored, ...) they caused"
    echo "(e) wrote $e_score_rows score_history rows and $e_intent_rows intent_signals rows; server $e_cpu s CPU, other processes $e_other s CPU"
fi
if want f; then
    echo "(f) ${f_leads:-?} leads rescored; server $f_cpu s CPU during the job, other processes $f_other s CPU"
fi
if want g || want h; then
    echo "(g) and (h): events/s is deliveries/s from the receiver's first to its last POST;" \
        "p50/p99/max are the server's recorded try durations; errors are failed tries"
fi
if want g; then
    echo "(g, $fanout_mode) end to end ${g_e2e_s:-?} s (${g_e2e_rate:-?} deliveries/s; steady ${g_steady:-?}/s);" \
        "server ${g_scpu:-?} s CPU, receiver ${g_rcpu:-?} s, other processes ${g_other:-?} s; ${g_dups:-0} repeated"
fi
if want h; then
    echo "(h, $fanout_mode) end to end ${h_e2e_s:-?} s (${h_e2e_rate:-?} deliveries/s; steady ${h_steady:-?}/s);" \
        "server ${h_scpu:-?} s CPU, receiver ${h_rcpu:-?} s, other processes ${h_other:-?} s; ${h_dups:-0} repeated"
fi
if [ "$failures" -ne 0 ]; then
    echo "run.sh: $failures scenario(s) had errors; see above" >&2
    exit 1
fi
