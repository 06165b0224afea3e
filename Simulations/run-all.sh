#!/usr/bin/env bash
# Runs every shipped scenario in release and regenerates Simulations/RESULTS.md from the reports.
# Usage: Simulations/run-all.sh [scenario-name ...]   (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product veil-sim
mkdir -p Simulations/results
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  names=(quickstart dropout-storm active-adversary ccs17-500-0 ccs17-500-10 ccs17-500-30 ccs17-1000-10 ccs17-1000-30 scale-100k)
fi
for name in "${names[@]}"; do
  echo "== $name"
  .build/release/veil-sim run "Simulations/$name.json" \
    --report-json "Simulations/results/$name.json" --report-html "Simulations/results/$name.html" \
    | tee "Simulations/results/$name.txt"
done
# Network mode: a real aggregator on loopback with TLS and SQLite, one VeilDevice client per device.
if [ $# -eq 0 ]; then
  for name in quickstart network-10k; do
    echo "== $name (network)"
    .build/release/veil-sim run "Simulations/$name.json" --mode network \
      --report-json "Simulations/results/network-$name.json" --report-html "Simulations/results/network-$name.html" \
      | tee "Simulations/results/network-$name.txt"
  done
fi
# Feature scenarios: windows of rounds over recorded observations, every decoded feature checked,
# in-process and through a real aggregator (rounds started and windows read over its HTTP API).
if [ $# -eq 0 ]; then
  for mode in in-process network; do
    echo "== fleet-features ($mode)"
    .build/release/veil-sim run Simulations/fleet-features.json --mode "$mode" \
      --report-json "Simulations/results/features-$mode.json" --report-html "Simulations/results/features-$mode.html" \
      | tee "Simulations/results/features-$mode.txt"
  done
fi
# A malicious aggregator against honest devices enforcing their policy: every strategy must be
# refused and the exposure oracle must recover no honest input (veil-sim exits 1 otherwise).
if [ $# -eq 0 ]; then
  echo "== malicious-aggregator"
  .build/release/veil-sim run Simulations/malicious-aggregator.json \
    --report-json Simulations/results/malicious-aggregator.json --report-html Simulations/results/malicious-aggregator.html \
    | tee Simulations/results/malicious-aggregator.txt
fi
# Is simulated time honest? The same fleet in simulated time and on loopback with its links
# emulated (issue 16, item 5), without and with silent dropouts.
if [ $# -eq 0 ]; then
  echo "== model-check"
  .build/release/veil-sim check-model Simulations/model-check.json --report-json Simulations/results/model-check.json \
    | tee Simulations/results/model-check.txt
  echo "== model-check (5% silent dropout)"
  .build/release/veil-sim check-model Simulations/model-check.json --dropout 0.05 --report-json Simulations/results/model-check-dropout.json \
    | tee Simulations/results/model-check-dropout.txt
fi
# The aggregator's own memory: veil-aggregator serve in its own process, the 10,000 devices in
# veil-sim against it; its peak RSS (VmHWM) is read before a SIGTERM that must stop it cleanly.
if [ $# -eq 0 ]; then
  swift build -c release --product veil-aggregator
  work="$(mktemp -d)"
  .build/release/veil-aggregator dev-certificates "$work/tls" >/dev/null
  cat > "$work/config.json" <<JSON
{ "listen": {"host": "127.0.0.1", "port": 7443}, "httpListen": null, "apiListen": null,
  "tlsCertificatePath": "$work/tls/server.pem", "tlsPrivateKeyPath": "$work/tls/server-key.pem",
  "database": "$work/aggregator.sqlite", "maximumWaitingDevices": 10100, "enrolmentsPerSecond": 100000,
  "maximumConnectionsPerAddress": 100000, "maximumStreamsPerConnection": 100000,
  "rounds": {"dimension": 1000, "bitWidth": 32, "minimumCohort": 10000, "maximumCohort": 10000,
             "gatherSeconds": 600, "phaseTimeoutSeconds": 120, "maximumWaitSeconds": 1200, "expectedDropout": 0.05,
             "threatModel": "honest-but-curious"} }
JSON
  .build/release/veil-aggregator serve --config "$work/config.json" 2>"$work/server.log" &
  server=$!
  sleep 2
  echo "== network-10k (separate aggregator process)"
  .build/release/veil-sim run Simulations/network-10k.json --mode network --aggregator localhost:7443 \
    --ca "$work/tls/ca.pem" --aggregator-database "$work/aggregator.sqlite" \
    --report-json Simulations/results/external-network-10k.json | tee Simulations/results/external-network-10k.txt
  awk '/VmHWM/ {print $2 * 1024}' "/proc/$server/status" > Simulations/results/external-aggregator-peak-rss-bytes
  kill -TERM "$server"
  wait "$server" && echo "aggregator stopped cleanly on SIGTERM"
  rm -rf "$work"
fi
# Through a second file: the script keeps the hand-measured part of the RESULTS.md it reads.
python3 Simulations/results-table.py > Simulations/RESULTS.md.new && mv Simulations/RESULTS.md.new Simulations/RESULTS.md
echo "wrote Simulations/RESULTS.md"
