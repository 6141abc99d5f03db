#!/usr/bin/env python3
"""Turns bench/run.sh raw results (JSON lines) into the markdown report.

Input lines: {"target", "run", "mode": "plain"|"stream", "concurrency", "cpu_ticks", "load"}
where "load" is the bench-load JSON line (or null when that run failed).
Standard library only.
"""

import argparse
import json
import statistics
import sys

TARGET_ORDER = ["direct", "nginx", "gateway", "responses", "messages", "pg", "fleet"]
# The translated surfaces, compared with chat completions through the same gateway (target: at most 15% more CPU).
SURFACES = ["responses", "messages"]
MODE_TITLE = {"plain": "Non-streaming", "stream": "Streaming (SSE)"}
MODE_SHORT = {"plain": "non-streaming", "stream": "streaming"}
REPEATABLE_META = {"note", "failed"}
# Thresholds above which a phase is flagged as measured on a busy machine.
NOISY_OTHER_PCT = 5.0
NOISY_STEAL_PCT = 2.0


def load_meta(path):
    meta = {"note": [], "failed": []}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            key, _, value = line.partition("\t")
            if key in REPEATABLE_META:
                meta[key].append(value)
            else:
                meta[key] = value
    return meta


def load_results(path, clk_tck):
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            row = json.loads(line)
            load = row.get("load")
            row["cpu_us"] = None
            if load and row.get("cpu_ticks") is not None and load.get("requests_incl_warmup"):
                row["cpu_us"] = row["cpu_ticks"] * 1e6 / clk_tck / load["requests_incl_warmup"]
            row["other_pct"] = row["steal_pct"] = None
            m = row.get("machine")
            if m and m.get("total_ticks"):
                ours = (row.get("cpu_ticks") or 0) + m["mock_ticks"] + m["load_ticks"]
                row["other_pct"] = max(0, m["busy_ticks"] - ours) * 100 / m["total_ticks"]
                row["steal_pct"] = m["steal_ticks"] * 100 / m["total_ticks"]
            rows.append(row)
    return rows


def fmt(v, digits=3):
    if v is None:
        return "–"
    return f"{v:.{digits}f}"


def fmt_int(v):
    return "–" if v is None else f"{v:,}"


def phase_key(row):
    return (row["mode"], row["concurrency"])


def target_rank(t):
    return TARGET_ORDER.index(t) if t in TARGET_ORDER else len(TARGET_ORDER)


def phase_table(rows):
    out = [
        "| target | run | requests | rps | p50 | p90 | p99 | max | ttfb p50 | ttfb p99 | errors | CPU µs/req | other CPU % |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in sorted(rows, key=lambda r: (target_rank(r["target"]), r["run"])):
        load = row["load"]
        if not load:
            out.append(f"| {row['target']} | {row['run']} | bench-load failed | | | | | | | | | | |")
            continue
        errors = load["errors"]
        if load.get("incomplete_streams"):
            errors = f"{errors} (+{load['incomplete_streams']} no [DONE])"
        out.append(
            f"| {row['target']} | {row['run']} | {fmt_int(load['requests'])} | {fmt(load['rps'], 0)} "
            f"| {fmt(load['p50_ms'])} | {fmt(load['p90_ms'])} | {fmt(load['p99_ms'])} | {fmt(load['max_ms'])} "
            f"| {fmt(load['ttfb_p50_ms'])} | {fmt(load['ttfb_p99_ms'])} | {errors} | {fmt(row['cpu_us'], 1)} | {fmt(row['other_pct'], 0)} |"
        )
    return out


class Agg:
    """Mean and best-of-runs of one metric for one target in one phase."""

    def __init__(self, rows):
        self.rows = rows

    def values(self, target, mode, conc, metric):
        vals = []
        for r in self.rows:
            if (r["target"], r["mode"], r["concurrency"]) != (target, mode, conc):
                continue
            if metric == "cpu_us":
                v = r["cpu_us"]
            else:
                v = (r["load"] or {}).get(metric)
            if v is not None:
                vals.append(v)
        return vals

    def mean(self, target, mode, conc, metric):
        vals = self.values(target, mode, conc, metric)
        return statistics.fmean(vals) if vals else None

    def best(self, target, mode, conc, metric, higher_is_better=False):
        vals = self.values(target, mode, conc, metric)
        if not vals:
            return None
        return max(vals) if higher_is_better else min(vals)


def sub(a, b):
    return None if a is None or b is None else a - b


def div(a, b):
    return None if a is None or b is None or b == 0 else a / b


def summary(rows, meta, levels):
    """Gateway-vs-nginx table; every cell is a (mean of runs, best run) pair."""
    agg = Agg(rows)
    lo, mid, hi = levels[0], levels[len(levels) // 2], levels[-1]

    def pair(target, mode, conc, metric, higher=False):
        return agg.mean(target, mode, conc, metric), agg.best(target, mode, conc, metric, higher)

    def added(target, mode, metric):
        t, d = pair(target, mode, lo, metric), pair("direct", mode, lo, metric)
        return sub(t[0], d[0]), sub(t[1], d[1])

    def ratio(g, n):
        return div(g[0], n[0]), div(g[1], n[1])

    def cell(p, digits=3, unit=""):
        m, b = p
        if m is None:
            return "n/a"
        text = f"{m:.{digits}f}{unit}"
        return f"{text} ({b:.{digits}f}{unit})" if b is not None else text

    def row(title, n, g, digits=3):
        return f"| {title} | {cell(n, digits)} | {cell(g, digits)} | {cell(ratio(g, n), 2, '×')} |"

    lines = ["| metric | nginx | gateway | gateway / nginx |", "|---|---:|---:|---:|"]
    lines.append(row(f"added median latency vs direct, non-streaming c={lo} (ms)",
                     added("nginx", "plain", "p50_ms"), added("gateway", "plain", "p50_ms")))
    lines.append(row(f"added streaming TTFB p50 vs direct, c={lo} (ms)",
                     added("nginx", "stream", "ttfb_p50_ms"), added("gateway", "stream", "ttfb_p50_ms")))
    for mode in ("plain", "stream"):
        lines.append(row(f"p99 latency, {MODE_SHORT[mode]} c={mid} (ms)",
                         pair("nginx", mode, mid, "p99_ms"), pair("gateway", mode, mid, "p99_ms")))
    for mode in ("plain", "stream"):
        lines.append(row(f"throughput, {MODE_SHORT[mode]} c={hi} (req/s)",
                         pair("nginx", mode, hi, "rps", True), pair("gateway", mode, hi, "rps", True), 0))
    for mode in ("plain", "stream"):
        lines.append(row(f"proxy CPU per request, {MODE_SHORT[mode]} c={hi} (µs)",
                         pair("nginx", mode, hi, "cpu_us"), pair("gateway", mode, hi, "cpu_us"), 1))

    def rss_mb(target):
        kb = meta.get(f"rss_kb_{target}", "")
        return int(kb) / 1024 if kb.isdigit() else None

    n_rss, g_rss = rss_mb("nginx"), rss_mb("gateway")
    lines.append(row("peak RSS at end of run, VmHWM (MB)", (n_rss, None), (g_rss, None), 1))
    return lines


def versus(rows, levels, base, others, base_title):
    """CPU per request of `others` against `base`, per phase: mean of the runs (best run in parentheses)."""
    agg = Agg(rows)
    present = [s for s in others if any(r["target"] == s for r in rows)]
    if not present or not any(r["target"] == base for r in rows):
        return []
    out = [f"| phase | {base_title} µs/req | " + " | ".join(f"{s} µs/req | {s} / {base_title}" for s in present)
           + " | " + " | ".join(f"{s} p50 − {base_title} p50 (ms)" for s in present) + " |",
           "|---|---:|" + "---:|---:|" * len(present) + "---:|" * len(present)]
    for mode in ("plain", "stream"):
        for conc in levels:
            chat = agg.mean(base, mode, conc, "cpu_us")
            cells = [f"{MODE_SHORT[mode]} c={conc}", fmt(chat, 1)]
            for s in present:
                v, best = agg.mean(s, mode, conc, "cpu_us"), agg.best(s, mode, conc, "cpu_us")
                cells.append(f"{fmt(v, 1)} ({fmt(best, 1)})")
                cells.append(fmt(div(v, chat), 2) + "×" if div(v, chat) is not None else "n/a")
            key = "ttfb_p50_ms" if mode == "stream" else "p50_ms"
            for s in present:
                a, b = agg.mean(s, mode, conc, key), agg.mean(base, mode, conc, key)
                cells.append(fmt(a - b, 3) if a is not None and b is not None else "n/a")
            out.append("| " + " | ".join(cells) + " |")
    return out


def surfaces_summary(rows, levels):
    return versus(rows, levels[1:] or levels, "gateway", SURFACES, "chat")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", required=True)
    ap.add_argument("--meta", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    meta = load_meta(args.meta)
    clk_tck = int(meta.get("clk_tck", "100"))
    rows = load_results(args.results, clk_tck)
    levels = [int(c) for c in meta.get("concurrency", "1,16,128").split(",")]
    targets_run = sorted({r["target"] for r in rows}, key=target_rank)

    md = [f"# FreeLLMAPI proxy benchmark — {meta.get('date', '?')}", ""]
    md += [
        "## Machine and setup",
        "",
        f"- CPU: {meta.get('cpu_model', '?')}, `nproc` = {meta.get('nproc', '?')}, memory {meta.get('mem_total', '?')}",
        f"- Kernel: {meta.get('kernel', '?')}; load average at start: {meta.get('loadavg', '?')}",
        f"- Date: {meta.get('date', '?')}",
        f"- Source: git {meta.get('git_rev', '?')}, {meta.get('rustc', '?')}",
    ]
    if "nginx_version" in meta:
        md.append(f"- nginx: {meta['nginx_version']}")
    md += [
        f"- Command: `{meta.get('cmdline', '?')}`",
        f"- Targets: {', '.join(targets_run) or 'none'} (requested: {meta.get('targets', '?')})",
        f"- Pinning: {meta.get('pinning', '?')}",
        f"- Each phase: {meta.get('warmup', '?')} s warm-up (discarded) + {meta.get('duration', '?')} s measured, "
        f"run {meta.get('runs', '?')}× per target; closed loop, one keep-alive HTTP/1.1 connection per "
        "concurrent client, single-threaded bench-load",
        f"- Upstream: mock-provider, scenario `ok`, {meta.get('mock_chunks', '?')} content chunks per stream; "
        "body `{\"model\":\"mock-model\",\"messages\":[{\"role\":\"user\",\"content\":\"Say hello\"}]}` "
        "(+ `\"stream\":true` for streaming phases)",
]
    if "nginx" in targets_run:
        md.append(
            "- nginx: `worker_processes 1`, `master_process off`, upstream `keepalive 64`, `proxy_buffering off`, "
            "**access_log on** (default combined format, to a file) because the gateway also logs every request"
            + (f"; {meta['nginx_access_log_lines']} access-log lines written" if "nginx_access_log_lines" in meta else "")
        )
    if "gateway" in targets_run:
        md.append(
            "- gateway: `freellmapi serve`, `LOG_LEVEL=info LOG_FORMAT=json` to a file, `PROXY_RATE_LIMIT_RPM=0`"
            + (f"; {meta['gateway_log_lines']} log lines written" if "gateway_log_lines" in meta else "")
        )
    md += [
        f"- CPU µs/req: proxy process utime+stime delta from /proc/PID/stat (CLK_TCK={clk_tck}) across the "
        "whole bench-load invocation (warm-up included) divided by all requests it completed, warm-up included",
        "- Latency columns are milliseconds over 2xx responses (exact nearest-rank percentiles of every sample); "
        "rps counts 2xx responses; errors = non-2xx + transport failures",
        "- other CPU %: machine-wide busy time (/proc/stat) during the phase not charged to the proxy, the mock "
        "or bench-load, as a share of all cores; more than a few % means something else was competing "
        "and the phase should be re-run on a quiet machine",
    ]
    for note in meta["note"]:
        md.append(f"- Note: {note}")
    for failure in meta["failed"]:
        md.append(f"- **FAILED**: {failure}")
    md.append("")

    phases = sorted({phase_key(r) for r in rows}, key=lambda k: (k[0] != "plain", k[1]))
    for mode, conc in phases:
        md += [f"## {MODE_TITLE.get(mode, mode)}, concurrency {conc}", ""]
        md += phase_table([r for r in rows if phase_key(r) == (mode, conc)])
        md.append("")

    md += [
        "## Gateway vs nginx",
        "",
        "Each cell is the **mean of the runs**, with the **best run** in parentheses "
        "(lowest latency / highest throughput / lowest CPU). \"Added\" = target minus direct "
        "(mock alone) in the same phase. n/a = target not measured.",
        "",
    ]
    md += summary(rows, meta, levels)
    md.append("")
    surface_lines = surfaces_summary(rows, levels)
    if surface_lines:
        md += [
            "## Translated surfaces vs chat completions (same gateway)",
            "",
            "Gateway CPU per request through `/v1/responses` and `/v1/messages` against `/v1/chat/completions`, "
            "mean of the runs (best run in parentheses). Target: translation adds at most 15% CPU per request.",
            "",
        ] + surface_lines + [""]

    fleet_lines = versus(rows, levels, "pg", ["fleet"], "pg")
    if fleet_lines:
        md += [
            "## Fleet mode: Redis on vs off (same gateway on PostgreSQL, a capped key)",
            "",
            "Gateway CPU per request with `REDIS_URL` (every permit also taken from the shared ledger) against the "
            "same gateway without it, mean of the runs (best run in parentheses), and the difference of the medians "
            "(time to first byte for streams). Targets: at most +25% CPU, at most +0.2 ms at the median. "
            f"redis-server's own CPU over the whole fleet target: {meta.get('redis_cpu_s', 'n/a')} s.",
            "",
        ] + fleet_lines + [""]

    problems = []
    for r in rows:
        load = r["load"]
        if not load:
            problems.append(f"{r['target']} run{r['run']} {r['mode']} c={r['concurrency']}: bench-load failed")
            continue
        if load["errors"] or load.get("incomplete_streams"):
            problems.append(
                f"{load['label']}: {load['errors']} errors, {load.get('incomplete_streams', 0)} streams without [DONE]"
            )
        if (r["other_pct"] or 0) > NOISY_OTHER_PCT or (r["steal_pct"] or 0) > NOISY_STEAL_PCT:
            problems.append(
                f"{load['label']}: noisy machine: {r['other_pct']:.0f}% of CPU used by other processes, "
                f"{r['steal_pct']:.1f}% stolen by the hypervisor"
            )
    if problems:
        md += ["## Problems", ""] + [f"- {p}" for p in problems] + [""]

    text = "\n".join(md)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
