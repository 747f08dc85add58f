"""Results of bench/compare.sh: one record per run, then the Markdown table.

  table.py record SERVER ROUND BENCH.json BEFORE.json AFTER.json STORED
      one JSON line: the bench's --json output with the server's CPU and
      memory (procstat.py before and after) and the messages found stored
  table.py idle SERVER BENCH.json
      one JSON line from a `pillarbox bench --idle --json` run
  table.py summary RUNS.jsonl
      one line on the last run, for the log
  table.py render RUNS.jsonl IDLE.jsonl
      the Markdown tables: median and range over rounds, each server's
      throughput also as a ratio to smtp-sink's and Postfix's of the same round
"""

import json
import statistics
import sys

ORDER = ["pillarbox", "smtp-sink", "postfix", "smtp-server", "haraka", "aiosmtpd"]


def load(path):
    with open(path) as f:
        return json.load(f)


def record(server, rnd, bench_path, before_path, after_path, stored):
    bench = load(bench_path)
    before, after = load(before_path), load(after_path)
    accepted = bench["messages"]["accepted"]
    cpu = max(0.0, after["cpu_s"] - before["cpu_s"])
    # The whole machine over the same window (runs.jsonl of older runs lack it).
    m0, m1 = before.get("machine"), after.get("machine")
    busy = total = None
    if m0 and m1:
        busy = max(0.0, m1["busy_s"] - m0["busy_s"])
        total = max(0.0, m1["total_s"] - m0["total_s"])
    print(json.dumps({
        "server": server,
        "round": int(rnd),
        "accepted": accepted,
        "failed": bench["messages"]["failed"],
        "replies": bench["replies"],
        "errors": bench["errors"],
        "messages_per_s": bench["messages_per_s"],
        "bytes_per_s": bench["bytes_per_s"],
        "latency_ms": bench["latency_ms"],
        "elapsed_s": bench["elapsed_s"],
        "client_cpu_s": bench["client"]["cpu_s"],
        "cpu_s": cpu,
        "cpu_s_per_1000": cpu * 1000.0 / accepted if accepted else None,
        "machine_cpu_s_per_1000": busy * 1000.0 / accepted if accepted and busy is not None else None,
        "machine_busy": busy / total if busy is not None and total else None,
        "hwm_kib": after["hwm_kib"],
        "pids": after["pids"],
        "stored": None if stored == "-" else int(stored),
    }))


def idle(server, bench_path):
    b = load(bench_path)
    s = b.get("server") or {}
    print(json.dumps({
        "server": server,
        "requested": b["requested"],
        "opened": b["opened"],
        "failed": b["failed"],
        "errors": b["errors"],
        "rss_before_kib": s.get("rss_before_kib"),
        "rss_holding_kib": s.get("rss_holding_kib"),
        "per_connection_kib": s.get("rss_per_connection_kib"),
        "pss_before_kib": s.get("pss_before_kib"),
        "pss_holding_kib": s.get("pss_holding_kib"),
        "pss_per_connection_kib": s.get("pss_per_connection_kib"),
        "client_per_connection_kib": b["client"]["rss_per_connection_kib"],
    }))


def lines(path):
    try:
        with open(path) as f:
            return [json.loads(l) for l in f if l.strip()]
    except FileNotFoundError:
        return []


def med_range(values, fmt):
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    m = statistics.median(values)
    if len(values) == 1:
        return fmt(m)
    return f"{fmt(m)} ({fmt(min(values))}–{fmt(max(values))})"


def order(servers):
    return sorted(servers, key=lambda s: ORDER.index(s) if s in ORDER else len(ORDER))


def render(runs_path, idle_path):
    runs = lines(runs_path)
    by_round = {}
    for r in runs:
        by_round.setdefault(r["round"], {})[r["server"]] = r
    servers = order({r["server"] for r in runs})
    out = []
    if runs:
        out.append("| server | messages/s, median (range) | × smtp-sink | × Postfix | p99 accept latency, ms | p50, ms | server CPU s per 1,000 messages | machine CPU s per 1,000 | machine busy | peak RSS, MiB | failed | stored = accepted |")
        out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for s in servers:
            rs = [by_round[k][s] for k in sorted(by_round) if s in by_round[k]]
            ratio = {}
            for ref in ("smtp-sink", "postfix"):
                ratio[ref] = []
                for k in sorted(by_round):
                    rr = by_round[k]
                    if s in rr and ref in rr and rr[ref]["messages_per_s"] > 0:
                        ratio[ref].append(rr[s]["messages_per_s"] / rr[ref]["messages_per_s"])
            lat = lambda key: [r["latency_ms"][key] if r["latency_ms"] else None for r in rs]
            if s == "smtp-sink":
                stored = "n/a (discards)"
            elif all(r["stored"] == r["accepted"] for r in rs):
                stored = "yes"
            else:
                stored = "NO: " + ", ".join(f"{r['stored']}/{r['accepted']}" for r in rs)
            out.append("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
                s,
                med_range([r["messages_per_s"] for r in rs], lambda v: f"{v:,.0f}"),
                med_range(ratio["smtp-sink"], lambda v: f"{v:.2f}"),
                med_range(ratio["postfix"], lambda v: f"{v:.2f}"),
                med_range(lat("p99"), lambda v: f"{v:.1f}"),
                med_range(lat("p50"), lambda v: f"{v:.1f}"),
                med_range([r["cpu_s_per_1000"] for r in rs], lambda v: f"{v:.2f}"),
                med_range([r.get("machine_cpu_s_per_1000") for r in rs], lambda v: f"{v:.2f}"),
                med_range([r.get("machine_busy") for r in rs], lambda v: f"{v:.0%}"),
                f"{max(r['hwm_kib'] for r in rs) / 1024:.1f}",
                sum(r["failed"] for r in rs),
                stored,
            ))
        out.append("")
        client = [r["client_cpu_s"] / max(r["elapsed_s"], 1e-9) for r in runs]
        out.append(f"Rounds: {len(by_round)}. The bench client's own CPU use during the runs: "
                   f"{min(client):.0%}–{max(client):.0%} of one core. CPU and peak RSS are summed over "
                   "each server's processes (Postfix: master and its children, shared pages counted "
                   "in each; its CPU includes delivering the queue to the Maildir). Machine CPU is "
                   "the whole machine's busy time over the same window (/proc/stat: every process, the "
                   "bench client and the kernel's threads included); machine busy is that time as a "
                   "share of all CPUs' time, so near 100% means the machine, not the server's design, "
                   "set the rate.")
        refused = {}
        for r in runs:
            for code, n in r["replies"].items():
                refused[(r["server"], code)] = refused.get((r["server"], code), 0) + n
            for kind, n in r["errors"].items():
                refused[(r["server"], kind)] = refused.get((r["server"], kind), 0) + n
        if refused:
            out.append("Non-2xx replies and errors: " + ", ".join(
                f"{s} {c}×{n}" for (s, c), n in sorted(refused.items())) + ".")
        out.append("")
    idles = lines(idle_path)
    if idles:
        out.append("| server | idle connections held after EHLO | server RSS before, MiB | holding, MiB | RSS per connection, KiB | PSS per connection, KiB |")
        out.append("|---|---:|---:|---:|---:|---:|")
        for s in order({r["server"] for r in idles}):
            for r in [x for x in idles if x["server"] == s]:
                fmt_mib = lambda v: "–" if v is None else f"{v / 1024:.1f}"
                per, pss = r["per_connection_kib"], r.get("pss_per_connection_kib")
                opened = f"{r['opened']:,}" + (f" of {r['requested']:,}" if r["opened"] != r["requested"] else "")
                out.append(f"| {s} | {opened} | {fmt_mib(r['rss_before_kib'])} | {fmt_mib(r['rss_holding_kib'])} | "
                           f"{'–' if per is None else f'{per:.1f}'} | {'–' if pss is None else f'{pss:.1f}'} |")
        out.append("")
    print("\n".join(out))


def summary(runs_path):
    r = lines(runs_path)[-1]
    lat = r["latency_ms"] or {}
    print(f"round {r['round']} {r['server']}: {r['messages_per_s']:,.0f} msg/s, "
          f"p99 {lat.get('p99', 0):.1f} ms, {r['accepted']} accepted, {r['failed']} failed, "
          f"stored {r['stored']}, CPU {r['cpu_s']:.2f} s")


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "record":
        record(*args)
    elif cmd == "idle":
        idle(*args)
    elif cmd == "summary":
        summary(*args)
    elif cmd == "render":
        render(*args)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
