#!/usr/bin/env python3
"""Builds Simulations/RESULTS.md from the JSON reports in Simulations/results/ (run-all.sh calls it)."""
import json
import os
import platform
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
ORDER = ["quickstart", "dropout-storm", "active-adversary", "ccs17-500-0", "ccs17-500-10", "ccs17-500-30",
         "ccs17-1000-10", "ccs17-1000-30", "scale-100k"]
# Bonawitz et al., CCS 2017 (single-threaded Java, 3.5 GHz Xeon): server and client seconds,
# 100,000 elements, complete graph.
PAPER = {
    "ccs17-500-0": (2.0, 0.85), "ccs17-500-10": (62.0, 0.85), "ccs17-500-30": (143.0, 0.85),
    "ccs17-1000-10": (180.0, 1.7), "ccs17-1000-30": (414.0, 1.7),
}


def cpu():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main():
    reports = {}
    for name in ORDER:
        path = os.path.join(HERE, "results", name + ".json")
        if os.path.exists(path):
            reports[name] = json.load(open(path))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE).stdout.strip()
    print("# Simulation results\n")
    print(f"Measured in release by `Simulations/run-all.sh` at commit `{commit}` on {os.cpu_count()} cores of {cpu()}, "
          "24 GiB. Every run checks its output against the plaintext sum. Limits are measured in the same run: "
          "`server x limit` and `device x limit` are compute time divided by the time the protocol's unavoidable work "
          "takes at the speed of each primitive measured at the start of the run: every X25519 key pair and agreement, "
          "Ed25519 signature and verification, KDF and digest, seal and open, Shamir split and reconstruction, mask "
          "expansion and addition, and one pass over every message byte (the server's unmasking spread over all cores; "
          "per phase below). `mask-only` is the earlier, narrower ratio against mask expansion and addition alone.\n")
    print("| scenario | n | m | graph k / t | correct | survivors | wall s | server s | server x limit | (mask-only) | device ms (mean) | device x limit | (mask-only) | up B/device | up / plaintext | peak RSS MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name in ORDER:
        r = reports.get(name)
        if r is None:
            print(f"| {name} | not run | | | | | | | | | | | | | | |")
            continue
        print(f"| {name} | {r['devices']} | {r['dimension']} | {r['protocol']} {r['neighbors']} / {r['threshold']} | "
              f"{'yes' if r['correct'] else 'NO: ' + r['outcome']} | {r['survivors']} | {r['totalSeconds']:.2f} | "
              f"{r['serverSeconds']:.2f} | {r['serverLimitRatio']:.2f} | {r.get('serverMaskOnlyLimitRatio', 0):.2f} | "
              f"{r['deviceSecondsMean'] * 1000:.1f} | {r['deviceLimitRatio']:.2f} | {r.get('deviceMaskOnlyLimitRatio', 0):.2f} | "
              f"{r['bytesUpPerDevice']:.0f} | {r['bytesUpPerDevice'] / r['plaintextBytes']:.2f} | {r['peakRSSBytes'] / 1048576:.0f} |")
    phase_limits(reports)
    network = {}
    for name in ["quickstart", "network-10k"]:
        path = os.path.join(HERE, "results", "network-" + name + ".json")
        if os.path.exists(path):
            network[name] = json.load(open(path))
    print("\n## Network mode\n")
    print("`veil-sim run SCENARIO --mode network`: a real `veil-aggregator` in the same process, gRPC over HTTP/2 with TLS "
          "on loopback, SQLite store, and every device a real `VeilDevice` client with its own stream (50 devices per "
          "HTTP/2 connection); dropouts really close the stream. Client and server share the 2 cores, so wall time "
          "includes all 1,000 or 10,000 clients' TLS, key agreement and masking; peak RSS is the whole process "
          "(aggregator and every client).\n")
    print("| scenario | n | m | graph k / t | correct | survivors | wall s | target wall s | aggregator compute s | connections / streams | up B/device | peak RSS MiB (process) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    targets = {"quickstart": "< 20", "network-10k": "< 120"}
    for name in ["quickstart", "network-10k"]:
        r = network.get(name)
        if r is None:
            print(f"| {name} | not run | | | | | | | | | | |")
            continue
        print(f"| {name} | {r['devices']} | {r['dimension']} | {r['protocol']} {r['neighbors']} / {r['threshold']} | "
              f"{'yes' if r['correct'] else 'NO: ' + r['outcome']} | {r['survivors']} | {r['totalSeconds']:.2f} | {targets[name]} | "
              f"{r['serverSeconds']:.2f} | {r.get('connections')} / {r.get('streams')} | {r['bytesUpPerDevice']:.0f} | "
              f"{r['peakRSSBytes'] / 1048576:.0f} |")
    external = os.path.join(HERE, "results", "external-network-10k.json")
    rss = os.path.join(HERE, "results", "external-aggregator-peak-rss-bytes")
    if os.path.exists(external) and os.path.exists(rss):
        r = json.load(open(external))
        peak = int(open(rss).read().strip()) / 1048576
        print(f"\nWith `veil-aggregator serve` in its own process and the same 10,000 devices in `veil-sim --aggregator`: "
              f"{'correct' if r['correct'] else 'WRONG'}, {r['survivors']} counted, {r['totalSeconds']:.1f} s wall; "
              f"the aggregator's peak RSS was {peak:.0f} MiB (target < 2048 MiB), and it stopped cleanly on SIGTERM.")
    features = {}
    for mode in ["in-process", "network"]:
        path = os.path.join(HERE, "results", "features-" + mode + ".json")
        if os.path.exists(path):
            features[mode] = json.load(open(path))
    print("\n## Feature scenarios\n")
    print("`veil-sim run Simulations/fleet-features.json [--mode network]`: devices record raw observations (session "
          "length, a temperature histogram, app categories, crash counts) over hourly windows; each window's rounds "
          "aggregate the encoded observations (a second round takes the devices the first did not count), and every "
          "decoded feature is checked against the plaintext computation over exactly the devices counted. In network "
          "mode each device is a real `VeilDevice` with its own SQLite observation store, rounds start through "
          "`POST /v1/rounds` and the windows are read back over the HTTP API (windows, latest, CSV export).\n")
    print("| mode | devices | windows | counted per window | rounds per window (counted/cohort) | features checked | correct | wall s | s per window | peak RSS MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for mode in ["in-process", "network"]:
        r = features.get(mode)
        if r is None:
            print(f"| {mode} | not run | | | | | | | | |")
            continue
        windows = r["windows"]
        counted = " / ".join(str(w["contributors"]) for w in windows)
        rounds = " / ".join(" + ".join(f"{x['survivors']}/{x['devices']}" for x in w["rounds"]) for w in windows)
        checks = sum(len(w["features"]) for w in windows)
        passed = sum(1 for w in windows for c in w["features"] if c["ok"])
        print(f"| {mode} | {r['devices']} | {len(windows)} | {counted} | {rounds} | {passed}/{checks} | "
              f"{'yes' if r['correct'] else 'NO'} | {r['totalSeconds']:.2f} | {r['totalSeconds'] / max(1, len(windows)):.2f} | "
              f"{r['peakRSSBytes'] / 1048576:.0f} |")
    adversary_section()
    model_check_section()
    print("\n## Against Bonawitz et al. (CCS 2017)\n")
    print("The paper's figures are single-threaded Java on a 3.5 GHz Xeon; ours use two cores, AES-NI through OpenSSL and "
          "libsodium's X25519, so part of the ratio is hardware and language, not protocol. Both run the complete graph "
          "with the dropped devices' pairwise masks regenerated by the server, which dominates the server's time.\n")
    print("| scenario | paper server s | Veil server s | paper / Veil | paper client s | Veil device s (mean) | paper / Veil |")
    print("|---|---|---|---|---|---|---|")
    for name, (server, client) in PAPER.items():
        r = reports.get(name)
        if r is None:
            print(f"| {name} | {server} | not run | | {client} | | |")
            continue
        device = r["deviceSecondsMean"]
        print(f"| {name} | {server} | {r['serverSeconds']:.2f} | {server / max(r['serverSeconds'], 1e-9):.1f} | "
              f"{client} | {device:.3f} | {client / max(device, 1e-9):.1f} |")



def seconds(x):
    """Seconds with a unit that keeps about three significant figures."""
    if x == 0:
        return "0"
    if x >= 1:
        return f"{x:.2f} s"
    if x >= 0.001:
        return f"{x * 1e3:.{2 if x < 0.01 else 1}f} ms"
    return f"{x * 1e6:.{2 if x < 1e-5 else 1}f} µs"


def phase_limits(reports):
    """Per scenario, per phase and per party: measured compute beside the limit."""
    print("\n### Against the limit, per phase\n")
    print("Device figures are the mean over the devices that did the phase; the server's are its whole compute in the "
          "phase (requests, answers and closing; unmasking's limit spread over all cores). A ratio of — means the "
          "phase has no unavoidable work for that party (an honest-but-curious device only reveals shares it holds).\n")
    print("| scenario | phase | device | device limit | device x | server | server limit | server x |")
    print("|---|---|---|---|---|---|---|---|")
    for name in ORDER:
        r = reports.get(name)
        for p in (r or {}).get("phaseLimits", []):
            dl, sl = p["deviceLimitSeconds"], p["serverLimitSeconds"]
            dx = f"{p['deviceSeconds'] / dl:.2f}" if dl > 0 else "—"
            sx = f"{p['serverSeconds'] / sl:.2f}" if sl > 0 else "—"
            print(f"| {name} | {p['phase']} | {seconds(p['deviceSeconds'])} | {seconds(dl)} | {dx} | "
                  f"{seconds(p['serverSeconds'])} | {seconds(sl)} | {sx} |")


def adversary_section():
    """The malicious-aggregator section, from Simulations/results/malicious-aggregator.json."""
    path = os.path.join(HERE, "results", "malicious-aggregator.json")
    print("\n## Malicious aggregator\n")
    if not os.path.exists(path):
        print("`veil-sim run Simulations/malicious-aggregator.json`: not run.")
        return
    r = json.load(open(path))
    print(f"`veil-sim run Simulations/malicious-aggregator.json`: a malicious aggregator runs every strategy in-process against "
          f"{r['devices']} devices ({r['colluders']} of them colluding, k {r['neighbors']} / t {r['threshold']}), each honest device "
          f"enforcing its operator's policy ({r['policy']}). \"Refused\" counts the honest devices the deviation reached that refused it; "
          "the exposure oracle tries every honest input the aggregator saw masked, from everything it saw and the colluders' secrets "
          f"(`Simulations/README.md`). {'Every strategy was defended' if r['defended'] else 'NOT every strategy was defended'}; "
          f"{r['totalSeconds']:.1f} s in total.\n")
    print("| strategy | refused by devices (of those the deviation reached) | how they refused | input recovered (recovered of honest inputs checked, over its sessions) | defended | s |")
    print("|---|---|---|---|---|---|")
    for s in r["strategies"]:
        targeted = sum(x["targeted"] for x in s["subRounds"])
        kinds = {}
        for x in s["subRounds"]:
            for kind, count in x["refusals"].items():
                kinds[kind] = kinds.get(kind, 0) + count
            for kind, count in x["removedByServer"].items():
                kinds["server removed: " + kind] = kinds.get("server removed: " + kind, 0) + count
        how = "; ".join(f"{count}× {kind}" for kind, count in sorted(kinds.items()))
        checked = sum(x["devicesChecked"] for x in s["subRounds"])
        recovered = sum(len(x["recovered"]) for x in s["subRounds"])
        print(f"| {s['strategy']} | {'yes' if s['refusedByDevices'] else 'no'} ({s['refusals']} of {targeted}) | {how} | "
              f"{'YES' if s['inputRecovered'] else 'no'} ({recovered} of {checked}) | {'yes' if s['defended'] else 'NO'} | {s['seconds']:.1f} |")
    for s in r["strategies"]:
        p = s.get("placement")
        if p:
            print(f"\ntargeted-placement: an honest device expects {p['expectedColludingNeighbours']:.2f} colluding neighbours on a uniform "
                  f"ring and an exposure needs 2t − k = {p['neededForExposure']}; without grinding the best had {p['ungroundBest']}, the best "
                  f"of {p['secretCandidates']} secrets ground after the contributions {p['secretBest']} (refused by every device: it is not "
                  f"the committed one), and the best of {p['dropCandidates']} drop sets of up to {p['dropBudget']} devices within the "
                  f"commitment {p['dropBest']} (2^{p['dropBestLog2Probability']:.1f} per device on one ring).")


def model_check_section():
    """Issue 16, item 5: simulated time against loopback with the same links emulated."""
    runs = [(label, os.path.join(HERE, "results", f"model-check{suffix}.json"))
            for label, suffix in [("no dropout", ""), ("5 % silent dropout", "-dropout")]]
    print("\n## Is simulated time honest?\n")
    print("`veil-sim check-model Simulations/model-check.json [--dropout 0.05]`: the same 1,000-device fleet on the `4g` "
          "profile with one 3 s deadline, first in-process in simulated time, then through a real aggregator on loopback "
          "(TLS, SQLite) with every device's latency, bandwidth and compute factor emulated from the same draws; devices "
          "that drop go silent, as simulated time assumes. Difference is measured over predicted. Arrivals are seconds "
          "after a phase opened; simulated time counts late arrivals, while the aggregator no longer hears a device it cut.\n")
    print("| run | phase | predicted s | measured s | difference | p50 arrival predicted / measured s | p99 predicted / measured s | cut predicted / measured |")
    print("|---|---|---|---|---|---|---|---|")
    for label, path in runs:
        if not os.path.exists(path):
            print(f"| {label} | not run | | | | | | |")
            continue
        r = json.load(open(path))
        measured = {p["phase"]: p for p in r["measured"]["phases"]}
        for p in r["predicted"]["phases"]:
            m = measured.get(p["phase"])
            if m is None:
                print(f"| {label} | {p['phase']} | {p['durationSeconds']:.2f} | did not run | | | | |")
                continue
            print(f"| {label} | {p['phase']} | {p['durationSeconds']:.2f} | {m['durationSeconds']:.2f} | "
                  f"{100 * (m['durationSeconds'] / p['durationSeconds'] - 1):+.1f} % | {p['arrivalP50']:.2f} / {m['arrivalP50']:.2f} | "
                  f"{p['arrivalP99']:.2f} / {m['arrivalP99']:.2f} | {p['cutByDeadline']} / {m['cutByDeadline']} |")
        pr, mr = r["predicted"], r["measured"]
        print(f"| {label} | **round** | {pr['roundSeconds']:.2f} | {mr['roundSeconds']:.2f} | "
              f"{100 * (mr['roundSeconds'] / pr['roundSeconds'] - 1):+.1f} % | | | {pr['cutByDeadline']} / {mr['cutByDeadline']} |")


MARKER = "<!-- Measured by hand below this line; run-all.sh keeps it as it is. -->"


def hand_written():
    """The part of RESULTS.md below MARKER: sections measured by other scripts, kept verbatim."""
    path = os.path.join(HERE, "RESULTS.md")
    if not os.path.exists(path):
        return ""
    text = open(path).read()
    return text[text.index(MARKER):] if MARKER in text else ""


if __name__ == "__main__":
    kept = hand_written()
    main()
    if kept:
        print("\n" + kept, end="")
