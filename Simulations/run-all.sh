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
python3 Simulations/results-table.py > Simulations/RESULTS.md
echo "wrote Simulations/RESULTS.md"
