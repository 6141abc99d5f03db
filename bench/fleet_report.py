#!/usr/bin/env python3
"""Turns bench/fleet.sh's raw results (one JSON object per line) into a Markdown section for bench/RESULTS.md.

Usage: bench/fleet_report.py bench/out/fleet-<timestamp>.jsonl > report.md
"""

import json
import sys

TITLES = {
    "router-limits": "gateway, limits declared",
    "router-learn": "gateway, learning from x-ratelimit-* and 429s",
    "router-429": "gateway, learning from 429 + Retry-After only",
    "round-robin": "naive round-robin",
}
ROUTERS = ("router-limits", "router-learn", "router-429")
# Targets of issue 4 for offered load <= 80 % of capacity.
SUCCESS_TARGET = 0.999
RATIO_TARGET = 5.0


def counters(stats, scenario):
    return (stats.get("scenarios") or {}).get(scenario) or {}


def delta(before, after, scenario, field):
    return counters(after, scenario).get(field, 0) - counters(before, scenario).get(field, 0)


def fmt_ms(v):
    if v is None:
        return "–"
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def pct(n, d):
    return f"{100.0 * n / d:.2f} %" if d else "–"


def main(path):
    meta = None
    phases = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            row = json.loads(line)
            if row.get("kind") == "meta":
                meta = row
            elif row.get("kind") == "phase":
                # Counters keyed by the fleet's scenario names, whatever suffix the phase's keys carried.
                suffix = row.get("scenario_suffix") or ""
                for side in ("mock_before", "mock_after"):
                    sc = (row[side].get("scenarios") or {})
                    row[side]["scenarios"] = {
                        (name[: -len(suffix)] if suffix and name.endswith(suffix) else name): v
                        for name, v in sc.items()
                    }
                phases.append(row)
    if meta is None:
        sys.exit(f"{path}: no meta line")
    fleet = meta["fleet"]
    out = []
    w = out.append

    tiers = {}
    for k in fleet:
        if k["fault"]:
            continue
        tiers.setdefault(k["rpm"], 0)
        tiers[k["rpm"]] += 1
    tier_text = ", ".join(f"{n} × {rpm}" for rpm, n in sorted(tiers.items()))
    faulty = [k for k in fleet if k["fault"]]
    w(f"### Run: {meta['date']}, commit {meta['git_rev']}")
    w("")
    w(f"- Machine: {meta['nproc']} vCPU {meta['cpu_model']}, {meta['mem_total']}, {meta['kernel']}, {meta['rustc']}; "
      f"load average at start {meta['loadavg']}.")
    w(f"- Command: `{meta['cmdline']}`. Pinning: {meta['pinning']}.")
    w(f"- Fleet: {len(fleet)} keys on one mock provider; healthy keys' RPM limits (keys × rpm) {tier_text}; "
      f"latencies 50–800 ms (`slow<ms>`). Faulty keys: "
      + ", ".join(f"`{k['scenario']}`" for k in faulty)
      + f" (not counted in the capacity). Healthy capacity {meta['healthy_rpm']} requests/min; offered load "
      f"{meta['load_percent']} % of it = {meta['rate']} req/s, open loop, evenly spaced, for {meta['duration_s']} s "
      "per system, each on a fresh mock (empty windows) and a fresh gateway.")
    w(f"- Attempt timeout {meta['attempt_timeout_s']} s for both (gateway `PROVIDER_TIMEOUT_MS`, baseline "
      f"`--timeout-secs`); round-robin makes up to {meta['rr_tries']} attempts per request; the gateway keeps "
      "its defaults otherwise (`REQUEST_QUEUE_TIMEOUT_SECONDS` 60, `FALLBACK_MAX_RETRIES` 20).")
    w("")
    w("| system | offered | answered OK | success | client 429 | other client errors | p50 ms | p99 ms | max ms "
      "| upstream attempts | upstream 429s | upstream 5xx / hung |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    summary = {}
    for ph in phases:
        load = ph["load"]
        before, after = ph["mock_before"], ph["mock_after"]
        hits = sum(delta(before, after, k["scenario"], "hits") for k in fleet)
        r429 = sum(delta(before, after, k["scenario"], "rate_limited") for k in fleet)
        s5xx = sum(delta(before, after, k["scenario"], "scripted_errors") for k in fleet)
        hung = sum(delta(before, after, k["scenario"], "cancelled") for k in fleet)
        other = (load["client_5xx"] + load["client_other_status"] + load["transport_errors"] + load["timeouts"]
                 + load["unfinished"] + load["shed"] + load["incomplete_streams"])
        summary[ph["system"]] = {"load": load, "upstream_429": r429}
        w(f"| {TITLES.get(ph['system'], ph['system'])} | {load['offered']:,} | {load['ok']:,} | "
          f"{pct(load['ok'], load['offered'])} | {load['client_429']:,} | {other:,} | {fmt_ms(load['p50_ms'])} | "
          f"{fmt_ms(load['p99_ms'])} | {fmt_ms(load['max_ms'])} | {hits:,} | {r429:,} | {s5xx:,} / {hung:,} |")
    w("")
    w("- *success* = answered OK / offered. *other client errors* = 5xx, other statuses, transport errors, "
      "timeouts, shed and unfinished requests as the client saw them. Latency is over the OK answers, measured "
      "from the instant each request was due (queueing in the gateway included).")
    w("- *upstream attempts / 429s / 5xx / hung* are the mock's own counters (`GET /__stats`) over the phase: "
      "requests it received, refusals of its `rpm` windows, scripted 500s, and requests dropped unanswered "
      "(the `hang` key, abandoned at the attempt timeout).")
    w("")

    rr = summary.get("round-robin")
    routers = [s for s in ROUTERS if s in summary]
    w("| target (offered load ≤ 80 % of capacity) | " + " | ".join(TITLES[s] for s in routers) + " |")
    w("|---|" + "---|" * len(routers))
    if routers:
        cells = []
        for s in routers:
            load = summary[s]["load"]
            rate = load["ok"] / load["offered"] if load["offered"] else 0.0
            met = rate >= SUCCESS_TARGET and load["client_429"] == 0
            cells.append(f"{100 * rate:.2f} %, {load['client_429']} client 429s: **{'met' if met else 'missed'}**")
        w("| ≥ 99.9 % answered, no client-visible 429 | " + " | ".join(cells) + " |")
        cells = []
        for s in routers:
            mine = summary[s]["upstream_429"]
            if rr is None:
                cells.append("no baseline run")
                continue
            theirs = rr["upstream_429"]
            ratio = theirs / mine if mine else float("inf")
            ratio_text = "∞" if mine == 0 else f"{ratio:.1f}×"
            met = ratio >= RATIO_TARGET
            cells.append(f"{mine:,} vs {theirs:,} ({ratio_text} fewer): **{'met' if met else 'missed'}**")
        w("| ≥ 5× fewer upstream 429s than round-robin | " + " | ".join(cells) + " |")
        w("")

    w("Where the upstream traffic went, per RPM tier (requests the mock received / refused with 429; "
      "*share* = the tier's share of the accepted requests, against its share of the capacity):")
    w("")
    tier_rows = {}
    for k in fleet:
        tier = f"rpm {k['rpm']}" + (f" `{k['fault']}`" if k["fault"] else "")
        tier_rows.setdefault(tier, []).append(k)
    systems = [ph["system"] for ph in phases]
    w("| tier | keys | capacity share | " + " | ".join(TITLES.get(s, s) for s in systems) + " |")
    w("|---|---:|---:|" + "---:|" * len(systems))
    healthy = meta["healthy_rpm"]
    accepted_total = {}
    for ph in phases:
        b, a = ph["mock_before"], ph["mock_after"]
        accepted_total[ph["system"]] = sum(
            delta(b, a, k["scenario"], "hits") - delta(b, a, k["scenario"], "rate_limited") for k in fleet)
    for tier, keys in sorted(tier_rows.items(), key=lambda kv: (bool(kv[1][0]["fault"]), kv[1][0]["rpm"])):
        cap = sum(k["rpm"] for k in keys)
        cap_share = "–" if keys[0]["fault"] else f"{100 * cap / healthy:.0f} %"
        cells = []
        for ph in phases:
            b, a = ph["mock_before"], ph["mock_after"]
            hits = sum(delta(b, a, k["scenario"], "hits") for k in keys)
            refused = sum(delta(b, a, k["scenario"], "rate_limited") for k in keys)
            total = accepted_total[ph["system"]]
            share = f"{100 * (hits - refused) / total:.0f} %" if total else "–"
            cells.append(f"{hits:,} / {refused:,} ({share})")
        w(f"| {tier} | {len(keys)} | {cap_share} | " + " | ".join(cells) + " |")
    w("")
    print("\n".join(out))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
