#!/usr/bin/env bash
# Measures what veil-device costs a node (issue 15, item 6), in release, on this machine: idle
# RSS, peak RSS and CPU of an agent through one feature round at m ≈ 1,000 and m ≈ 100,000 (three
# agents and a real veil-aggregator serve on loopback), the stripped binary's size, and the
# observation store's size per 10,000 observations. Prints one line per figure.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product veil-aggregator >/dev/null
swift build -c release --product veil-device >/dev/null
BIN=$(swift build -c release --show-bin-path)
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
"$BIN/veil-aggregator" dev-certificates "$WORK/tls" >/dev/null

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
anon_kib() { awk '/^RssAnon/ {print $2}' "/proc/$1/status"; }
file_kib() { awk '/^RssFile/ {print $2}' "/proc/$1/status"; }
pss_kib() { awk '/^Pss:/ {print $2}' "/proc/$1/smaps_rollup"; }
# RSS of an idle process, split: private anonymous memory (heap, stacks, relocated data) and
# file-backed pages (code and read-only data of the binary and its libraries, which the page
# cache shares and can drop).
idle_line() { echo "$(( $(rss_kib "$1") / 1024 )) MiB ($(( $(anon_kib "$1") / 1024 )) MiB private, $(( $(file_kib "$1") / 1024 )) MiB file-backed; PSS $(( $(pss_kib "$1") / 1024 )) MiB)"; }
peak_kib() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }
cpu_seconds() { awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"; }

strip -o "$WORK/veil-device.stripped" "$BIN/veil-device"
echo "binary: veil-device $(( $(stat -c %s "$BIN/veil-device") / 1048576 )) MiB, stripped $(( $(stat -c %s "$WORK/veil-device.stripped") / 1048576 )) MiB"

WINDOW=$(( ( $(date +%s) - 7200 ) / 3600 * 3600 ))
for M in 1000 100000; do
  # m ≈ M: categorical features of up to 9,999 entries (each takes entries + 1 slots).
  python3 - "$M" "$WORK/aggregator-$M.json" "$WORK" <<'PY'
import json, sys
m, path, work = int(sys.argv[1]), sys.argv[2], sys.argv[3]
features, left, i = [], m - 1, 0
while left > 1:
    entries = min(9999, left - 1)
    features.append({"name": f"f{i}", "kind": "categorical", "vocabulary": [f"c{j}" for j in range(entries)], "maximumValuesPerDevice": 20})
    left -= entries + 1
    i += 1
json.dump({"listen": {"host": "127.0.0.1", "port": 17543}, "httpListen": {"host": "127.0.0.1", "port": 17580},
           "apiListen": {"host": "127.0.0.1", "port": 17544}, "database": f"{work}/aggregator-{m}.sqlite",
           "tlsCertificatePath": f"{work}/tls/server.pem", "tlsPrivateKeyPath": f"{work}/tls/server-key.pem",
           "rounds": {"minimumCohort": 3, "maximumCohort": 3, "threshold": 2, "graph": "complete", "threatModel": "honest-but-curious",
                      "expectedDropout": 1e-7, "gatherSeconds": 0.5,
                      "featureSet": {"name": f"footprint{m}", "version": 1, "bitWidth": 32, "maximumCohort": 1000, "features": features}}},
          open(path, "w"))
PY
  "$BIN/veil-aggregator" serve --config "$WORK/aggregator-$M.json" --log-level error &
  AGG=$!; PIDS+=("$AGG")
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/17543) 2>/dev/null && break; sleep 0.1; done
  AGENTS=()
  for d in 0 1 2; do
    STATE="$WORK/agent-$M-$d"
    TOKEN=$("$BIN/veil-aggregator" enrolment-token --database "$WORK/aggregator-$M.sqlite" | grep -o 'veil-enrol-[0-9a-f]*' | head -1)
    "$BIN/veil-device" enrol --state "$STATE" --aggregator localhost:17543 --ca "$WORK/tls/ca.pem" --token "$TOKEN" \
      --minimum-cohort 3 --assumed-dropout 1e-7 --threat-model honest-but-curious >/dev/null
    printf '{"feature":"f0","category":"c1","at":%d}\n{"feature":"f0","category":"c2","at":%d}\n' $((WINDOW + 60)) $((WINDOW + 61)) \
      | "$BIN/veil-device" record --state "$STATE" --jsonl >/dev/null
  done
  for d in 0 1 2; do
    "$BIN/veil-device" run --state "$WORK/agent-$M-$d" --log-level error &
    AGENTS+=($!); PIDS+=($!)
  done
  # Until agent 0 hears its window counted.
  for _ in $(seq 600); do
    "$BIN/veil-device" status --state "$WORK/agent-$M-0" --json | grep -q "\"lastCountedWindow\" : $WINDOW" && break
    sleep 0.1
  done
  "$BIN/veil-device" status --state "$WORK/agent-$M-0" --json | grep -q "\"lastCountedWindow\" : $WINDOW" \
    || { echo "m=$M: the round did not count agent 0"; exit 1; }
  A=${AGENTS[0]}
  echo "m=$M: agent peak RSS $(( $(peak_kib "$A") / 1024 )) MiB, CPU from start to counted $(cpu_seconds "$A") s (TLS, definitions, encoding, the round)"
  sleep 3
  echo "m=$M: agent RSS when idle after the round $(idle_line "$A")"
  for p in "${AGENTS[@]}"; do kill -TERM "$p"; done
  for p in "${AGENTS[@]}"; do wait "$p" || true; done
  kill -TERM "$AGG"; wait "$AGG" || true
done

# The floor: a Swift program that imports Foundation, encodes one JSON object and sleeps.
cat > "$WORK/floor.swift" <<'SWIFT'
import Foundation
print(try JSONEncoder().encode(["idle": true]).count)
Thread.sleep(forTimeInterval: 2)
SWIFT
swiftc -O "$WORK/floor.swift" -o "$WORK/floor"
"$WORK/floor" >/dev/null & FLOOR=$!; PIDS+=("$FLOOR")
sleep 1
echo "floor: an idle Swift program that only uses Foundation: $(idle_line "$FLOOR")"
wait "$FLOOR" || true

# The observation store: 10,000 observations of the open window, recorded as JSON Lines.
STATE="$WORK/agent-1000-0"
NOW=$(date +%s)
python3 - "$NOW" > "$WORK/observations.jsonl" <<'PY'
import json, sys
for i in range(10000):
    print(json.dumps({"feature": "f0", "category": f"c{i % 999}", "at": int(sys.argv[1])}))
PY
BEFORE=$(du -cb "$STATE"/observations/*.sqlite* | tail -1 | cut -f1)
"$BIN/veil-device" record --state "$STATE" --jsonl < "$WORK/observations.jsonl" >/dev/null
AFTER=$(du -cb "$STATE"/observations/*.sqlite* | tail -1 | cut -f1)
echo "store: $(( (AFTER - BEFORE) / 1024 )) KiB per 10,000 observations (SQLite with its WAL)"
