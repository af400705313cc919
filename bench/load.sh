#!/usr/bin/env bash
# Load benchmark of the real sks binary with wrk (Debian's wrk package).
# sks runs pinned to CPU 0 and wrk to CPU 1. It measures, in one run:
#  - durable issue rate: /stored_token from loopback, 32 clients (seeding)
#  - /valid throughput and p50/p99 at 32 connections, sks on badger on disk
#  - the same with sks on a private redis-server (appendfsync always, so
#    seeding is as durable as badger's synced writes; Redis also on CPU 0),
#    with its client-side cache (the default) and without (cache_size = -1)
#  - the same against a minimal net/http server answering from a Go map
#  - idle RSS with 100,000 tokens, and start-up to first answer
# Usage: bench/load.sh [runs]   (default 3; medians are printed at the end)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "wrk missing: apt-get install -y wrk" >&2; exit 1; }
command -v redis-server >/dev/null || { echo "redis-server missing: apt-get install -y redis-server" >&2; exit 1; }
runs=${1:-3}
dur=${SKS_BENCH_DURATION:-10s}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/sks" ./cmd/sks
go build -o "$work/loadtool" ./bench/loadtool
export SKS_TOKENS="$work/tokens.txt"

start_sks() { # port sks-args...
  local port=$1; shift
  taskset -c 0 "$work/sks" "$@" -l 127.0.0.1 -p "$port" -log-level warn >"$work/sks.out" 2>&1 &
  echo $! > "$work/sks.pid"
  for _ in $(seq 200); do curl -sf "http://127.0.0.1:$port/version" >/dev/null && return; sleep 0.05; done
  echo "sks did not start" >&2; cat "$work/sks.out" >&2; exit 1
}
stop_sks() { kill "$(cat "$work/sks.pid")"; wait "$(cat "$work/sks.pid")" 2>/dev/null || true; }

# A private Redis on a free loopback port, empty for each run; the config
# file points sks at it. The EXIT trap kills it too (it is a job).
redis_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis_pw=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
printf '[tokens.redis]\naddrs = ["127.0.0.1:%s"]\npassword = "%s"\n' "$redis_port" "$redis_pw" > "$work/redis.toml"
{ cat "$work/redis.toml"; echo 'cache_size = -1'; } > "$work/redis-nocache.toml"
start_redis() {
  rm -rf "$work/redis"; mkdir -p "$work/redis"
  taskset -c 0 redis-server --bind 127.0.0.1 --port "$redis_port" --dir "$work/redis" --save "" \
    --appendonly yes --appendfsync always --daemonize no --requirepass "$redis_pw" >"$work/redis.out" 2>&1 &
  echo $! > "$work/redis.pid"
  for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$redis_port") 2>/dev/null && return; sleep 0.05; done
  echo "redis-server did not start" >&2; cat "$work/redis.out" >&2; exit 1
}
stop_redis() { kill "$(cat "$work/redis.pid")"; wait "$(cat "$work/redis.pid")" 2>/dev/null || true; }

wrk_run() { # url label
  # 2 s unmeasured first: caches warm, as in steady state (the Redis store's
  # cache would otherwise spend the first second of the run filling).
  taskset -c 1 wrk -t1 -c32 -d2s -s bench/valid.lua "$1" > /dev/null
  taskset -c 1 wrk -t1 -c32 -d"$dur" --latency -s bench/valid.lua "$1" > "$work/wrk.txt"
  rps=$(awk '/Requests\/sec/ {print $2}' "$work/wrk.txt")
  p50=$(awk '$1=="50%" {print $2}' "$work/wrk.txt")
  p99=$(awk '$1=="99%" {print $2}' "$work/wrk.txt")
  errs=$(grep -c "Non-2xx\|Socket errors" "$work/wrk.txt" || true)
  echo "$2 rps=$rps p50=$p50 p99=$p99 errors=$errs"
}

: > "$work/results"
for run in $(seq "$runs"); do
  echo "== run $run of $runs"
  rm -rf "$work/data"; start_sks 4431 -d "$work/data"
  "$work/loadtool" seed -url http://127.0.0.1:4431 -n 10000 -c 32 -o "$SKS_TOKENS" | tee -a "$work/results"
  wrk_run http://127.0.0.1:4431 "sks-badger" | tee -a "$work/results"
  stop_sks
  start_redis; start_sks 4431 -c "$work/redis.toml"
  "$work/loadtool" seed -url http://127.0.0.1:4431 -n 10000 -c 32 -o "$SKS_TOKENS" | sed 's/^/sks-redis: /' | tee -a "$work/results"
  wrk_run http://127.0.0.1:4431 "sks-redis" | tee -a "$work/results"
  stop_sks
  start_sks 4431 -c "$work/redis-nocache.toml"   # same Redis, same tokens
  wrk_run http://127.0.0.1:4431 "sks-redis-nocache" | tee -a "$work/results"
  stop_sks; stop_redis
  taskset -c 0 "$work/loadtool" ceiling -l 127.0.0.1:4432 -tokens "$SKS_TOKENS" & cpid=$!
  sleep 0.5
  wrk_run http://127.0.0.1:4432 "ceiling" | tee -a "$work/results"
  kill $cpid; wait $cpid 2>/dev/null || true
done

echo "== idle RSS with 100,000 tokens"
rm -rf "$work/data"; start_sks 4431 -d "$work/data"
"$work/loadtool" seed -url http://127.0.0.1:4431 -n 100000 -c 32 -o "$work/t100k.txt" | tee -a "$work/results"
sleep 2
rss=$(awk '/VmRSS/ {print $2}' "/proc/$(cat "$work/sks.pid")/status")
echo "RSS right after loading 100,000 tokens: $((rss / 1024)) MiB (includes badger's mmapped tables during compaction)" | tee -a "$work/results"
stop_sks
# Idle: a server holding the 100,000 tokens, restarted, answering requests.
start_sks 4431 -d "$work/data"
head -1000 "$work/t100k.txt" | while read -r t; do curl -sf "http://127.0.0.1:4431/valid?realm=bench&token=$t" >/dev/null; done
sleep 2
rss=$(awk '/VmRSS/ {print $2}' "/proc/$(cat "$work/sks.pid")/status")
echo "idle RSS: $((rss / 1024)) MiB with 100,000 tokens stored (restarted, 1,000 validated)" | tee -a "$work/results"
stop_sks
echo "== start-up"
"$work/loadtool" startup -url http://127.0.0.1:4431 -runs 5 -- "$work/sks" -d "$work/data" -l 127.0.0.1 -p 4431 -log-level warn | tee -a "$work/results"

echo "== medians over $runs runs"
python3 - "$work/results" <<'PY'
import re, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    m = re.match(r"(\S+) rps=([\d.]+) p50=(\S+) p99=(\S+)", line)
    if m:
        def ms(v):
            n = float(re.match(r"[\d.]+", v).group())
            return n / 1000 if v.endswith("us") else n * 1000 if v.endswith("s") and not v.endswith("ms") else n
        rows.setdefault(m.group(1), []).append((float(m.group(2)), ms(m.group(3)), ms(m.group(4))))
    m = re.match(r"(sks-redis: )?issued (\d+) durable tokens .*: (\d+) tokens/s", line)
    if m and m.group(2) == "10000":
        rows.setdefault("issue-redis" if m.group(1) else "issue", []).append((float(m.group(3)), 0, 0))
med = {k: [statistics.median(c) for c in zip(*v)] for k, v in rows.items()}
for k in ("sks-badger", "sks-redis", "sks-redis-nocache", "ceiling"):
    if k in med:
        print(f"{k:17s} /valid: {med[k][0]:8.0f} req/s  p50 {med[k][1]:.3f} ms  p99 {med[k][2]:.3f} ms")
if "ceiling" in med:
    for k in ("sks-badger", "sks-redis", "sks-redis-nocache"):
        if k in med:
            print(f"{k} / ceiling: {med[k][0] / med['ceiling'][0]:.2f}")
if "issue" in med:
    print(f"durable issue rate (/stored_token, 32 clients): {med['issue'][0]:.0f} tokens/s")
if "issue-redis" in med:
    print(f"durable issue rate on Redis (appendfsync always): {med['issue-redis'][0]:.0f} tokens/s")
PY
