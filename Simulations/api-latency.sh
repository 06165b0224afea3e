#!/usr/bin/env bash
# Measures the HTTP API's latency for the latest window of a feature set on loopback (the
# in-memory /latest route and the store-backed /windows route): starts
# veil-aggregator (release) with a feature set, stores 24 released windows, then times 3,000
# sequential keep-alive requests from Python's http.client and prints p50 / p99 / max.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product veil-aggregator >/dev/null 2>&1
D="$(mktemp -d)"
trap 'kill -TERM $server 2>/dev/null || true; rm -rf "$D"' EXIT
cat > "$D/config.json" <<JSON
{ "listen": {"host": "127.0.0.1", "port": 7460}, "httpListen": {"host": "127.0.0.1", "port": 9480}, "apiListen": {"host": "127.0.0.1", "port": 9481},
  "insecurePlaintext": true, "database": "$D/a.sqlite", "apiToken": "latency-token-0123456789",
  "rounds": {"minimumCohort": 100, "maximumCohort": 1000, "minimumReleaseCohort": 100, "windowSeconds": 3600,
    "featureSet": {"name": "fleet", "version": 1, "bitWidth": 64, "maximumCohort": 100000, "features": [
      {"name": "session_seconds", "kind": "numeric", "minimum": 0, "maximum": 3600, "precision": 0.5, "maximumValuesPerDevice": 50},
      {"name": "temperature_c", "kind": "histogram", "edges": [-20, 0, 10, 20, 30, 60], "maximumValuesPerDevice": 100},
      {"name": "app_category", "kind": "categorical", "vocabulary": ["maps", "music", "video"], "maximumValuesPerDevice": 20},
      {"name": "crashes", "kind": "eventCount", "maximumValuesPerDevice": 5}]}}}
JSON
.build/release/veil-aggregator serve --config "$D/config.json" 2>"$D/log" &
server=$!
sleep 2
python3 - "$D/a.sqlite" <<'PY'
import http.client, json, sqlite3, struct, sys, time
db = sqlite3.connect(sys.argv[1])
values = [500, 800, 400000, 400000000, 3] + [10] * 5 + [0] + [100, 200, 300, 4] + [50, 1]
blob = b"".join(struct.pack("<Q", v) for v in values)
for w in range(24):
    db.execute("INSERT INTO window_aggregate VALUES (?,?,?,?,?,?,?,?,?)",
               ("fleet", 1, 1_800_000_000 + 3600 * w, len(values), 64, blob, 500, json.dumps(["round-%d" % w]), 0))
db.commit()
# The aggregator re-reads the newest windows from its store every 2 s (as it would after another
# instance's round); wait for that, then time the in-memory route and the store-backed one.
time.sleep(3)
c = http.client.HTTPConnection("127.0.0.1", 9481)
headers = {"Authorization": "Bearer latency-token-0123456789"}
for label, path in [("GET /v1/feature-sets/fleet/latest (from memory)", "/v1/feature-sets/fleet/latest"),
                    ("GET /v1/feature-sets/fleet/windows, newest window (from the store)",
                     "/v1/feature-sets/fleet/windows?from=1800082800&to=1800086400")]:
    latencies = []
    for i in range(3100):
        start = time.perf_counter()
        c.request("GET", path, headers=headers)
        response = c.getresponse()
        body = response.read()
        assert response.status == 200, (response.status, body)
        assert b'"windowStart":1800082800' in body, body[:200]
        if i >= 100:
            latencies.append(time.perf_counter() - start)
    latencies.sort()
    n = len(latencies)
    print("%s over loopback, %d keep-alive requests: p50 %.3f ms, p99 %.3f ms, max %.3f ms"
          % (label, n, latencies[n // 2] * 1e3, latencies[int(n * 0.99)] * 1e3, latencies[-1] * 1e3))
PY
