"""Results of bench/compare.sh: one record per run, then the Markdown table.

  table.py record SERVER ROUND BENCH.json BEFORE.json AFTER.json STORED
      one JSON line: the bench's --json output with the server's CPU and
      memory (procstat.py before and after) and the messages found stored
  table.py idle SERVER BENCH.json
      one JSON line from a `pillarbox bench --idle --json` run
  table.py floor ROUND FLOOR.txt
      one JSON line from the output of bench/fs_floor.c (variant v0)
  table.py steal RECORD.json
      the share of the machine the host took during that run, in whole per
      cent (-1 when not measured)
  table.py tag RECORD.json KEY VALUE
      the record as one JSON line with KEY set to VALUE (a JSON value, else
      the string)
  table.py summary RUNS.jsonl
      one line on the last run, for the log
  table.py render RUNS.jsonl IDLE.jsonl [FLOOR.jsonl]
      the Markdown tables: median and range over rounds, each server's
      throughput also as a ratio to smtp-sink's and Postfix's of the same round,
      and the ceiling the file-system floor sets in each round
"""

import json
import os
import re
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
    busy = total = steal = None
    if m0 and m1:
        busy = max(0.0, m1["busy_s"] - m0["busy_s"])
        total = max(0.0, m1["total_s"] - m0["total_s"])
        if "steal_s" in m0 and "steal_s" in m1:
            steal = max(0.0, m1["steal_s"] - m0["steal_s"])
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
        "machine_steal": steal / total if steal is not None and total else None,
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


# fs_floor.c's one line, e.g. "v0        T=20:   8497/s writes/msg 5.85
# flushes/msg 1.04 cpu us/msg 171.8 ctxsw/msg 10.4 machine-busy us/msg 215.0 rounds 0"
FLOOR_LINE = re.compile(
    r"^(?P<variant>\S+)\s+T=(?P<threads>\d+):\s+(?P<rate>[\d.]+)/s writes/msg (?P<writes>[\d.]+) "
    r"flushes/msg (?P<flushes>[\d.]+) cpu us/msg (?P<cpu>[\d.]+) ctxsw/msg (?P<ctxsw>[\d.]+) "
    r"machine-busy us/msg (?P<machine>[\d.]+)")


def floor(rnd, path):
    with open(path) as f:
        text = f.read().strip()
    m = FLOOR_LINE.match(text)
    if not m:
        sys.exit(f"table.py floor: not a line of bench/fs_floor.c: {text!r}")
    print(json.dumps({
        "round": int(rnd),
        "variant": m["variant"],
        "threads": int(m["threads"]),
        "files_per_s": float(m["rate"]),
        "writes_per_file": float(m["writes"]),
        "flushes_per_file": float(m["flushes"]),
        "cpu_ms_per_file": float(m["cpu"]) / 1000.0,
        "machine_ms_per_file": float(m["machine"]) / 1000.0,
    }))


def ceiling_table(by_round, floors):
    """Per round: the most messages/s a server that does the floor's file work
    per message and nothing else could accept with every CPU busy, the client
    and the loopback costing what they cost in smtp-sink's run of that round."""
    cpus = os.cpu_count() or 1
    out = ["| round | floor: files/s | floor: machine CPU ms per file | smtp-sink: machine CPU ms per message | "
           "ceiling, msg/s | pillarbox, msg/s | pillarbox, share of the ceiling | "
           "pillarbox: machine CPU ms per message beyond floor and sink | "
           "½ smtp-sink, msg/s | 5× Postfix, msg/s |",
           "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for f in sorted(floors, key=lambda x: x["round"]):
        rr = by_round.get(f["round"], {})
        sink = rr.get("smtp-sink")
        sink_ms = sink.get("machine_cpu_s_per_1000") if sink else None
        ceiling = cpus * 1000.0 / (f["machine_ms_per_file"] + sink_ms) if sink_ms is not None else None
        rate = lambda s, k=1.0: f"{rr[s]['messages_per_s'] * k:,.0f}" if s in rr else "–"
        pb = rr.get("pillarbox")
        share = beyond = "–"
        if pb and ceiling:
            share = f"{pb['messages_per_s'] / ceiling:.0%}"
        if pb and pb.get("machine_cpu_s_per_1000") is not None and sink_ms is not None:
            beyond = f"{pb['machine_cpu_s_per_1000'] - f['machine_ms_per_file'] - sink_ms:.3f}"
        out.append(f"| {f['round']} | {f['files_per_s']:,.0f} | {f['machine_ms_per_file']:.3f} | "
                   f"{'–' if sink_ms is None else f'{sink_ms:.3f}'} | "
                   f"{'–' if ceiling is None else f'{ceiling:,.0f}'} | {rate('pillarbox')} | "
                   f"{share} | {beyond} | "
                   f"{rate('smtp-sink', 0.5)} | {rate('postfix', 5.0)} |")
    f0 = floors[0]
    out.append("")
    out.append(f"The floor is `bench/fs_floor.c` variant `{f0['variant']}` on {f0['threads']} threads, run in "
               "each round beside the servers: per message a named file created, 4 KiB written and "
               "fsync'd, linked into a Maildir's `new/`, `new/` fsync'd, the first name unlinked, and "
               "nothing else (no SMTP, no network). The ceiling is what a server that does that per "
               f"message and nothing more could accept with all {cpus} CPUs busy, counting the client "
               "and the loopback (and the sink's own work) at what smtp-sink's run of the same round "
               "cost the machine per message. What Pillarbox's run cost the machine per message beyond "
               "the floor and the sink is its own work: the protocol, the hand-overs between threads, "
               "the bookkeeping and the log. The floor, the sink and Pillarbox run minutes apart in a "
               "round: on a machine whose cost per file swings, that figure swings with it (it can "
               "even come out below zero).")
    return out


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


def render(runs_path, idle_path, floor_path=None):
    runs = lines(runs_path)
    by_round = {}
    for r in runs:
        by_round.setdefault(r["round"], {})[r["server"]] = r
    servers = order({r["server"] for r in runs})
    out = []
    if runs:
        out.append("| server | messages/s, median (range) | × smtp-sink | × Postfix | p99 accept latency, ms | p50, ms | server CPU s per 1,000 messages | machine CPU s per 1,000 | machine busy | stolen by the host | peak RSS, MiB | failed | stored = accepted |")
        out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
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
            out.append("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
                s,
                med_range([r["messages_per_s"] for r in rs], lambda v: f"{v:,.0f}"),
                med_range(ratio["smtp-sink"], lambda v: f"{v:.2f}"),
                med_range(ratio["postfix"], lambda v: f"{v:.2f}"),
                med_range(lat("p99"), lambda v: f"{v:.1f}"),
                med_range(lat("p50"), lambda v: f"{v:.1f}"),
                med_range([r["cpu_s_per_1000"] for r in rs], lambda v: f"{v:.2f}"),
                med_range([r.get("machine_cpu_s_per_1000") for r in rs], lambda v: f"{v:.2f}"),
                med_range([r.get("machine_busy") for r in rs], lambda v: f"{v:.0%}"),
                med_range([r.get("machine_steal") for r in rs], lambda v: f"{v:.0%}"),
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
                   "set the rate. Stolen by the host is the share of all CPUs' time the virtual "
                   "machine's host ran something else while one of ours wanted to run (/proc/stat's "
                   "steal): where it is high, every figure of that run is low, whoever ran.")
        discarded = lines(os.path.join(os.path.dirname(runs_path), "discarded.jsonl"))
        if discarded:
            out.append("Run again because the host took more of the machine than STEAL_MAX "
                       "(these attempts are not in the table; the steal column shows what the kept "
                       "runs lost): " + ", ".join(
                           f"{r['server']} round {r['round']} ({r['machine_steal']:.0%} stolen, "
                           f"{r['messages_per_s']:,.0f} msg/s)" for r in discarded) + ".")
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
    floors = lines(floor_path) if floor_path else []
    if floors:
        out.extend(ceiling_table(by_round, floors))
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


def steal(record_path):
    s = load(record_path).get("machine_steal")
    print(-1 if s is None else round(100 * s))


def tag(record_path, key, value):
    r = load(record_path)
    try:
        r[key] = json.loads(value)
    except ValueError:
        r[key] = value
    print(json.dumps(r))


def summary(runs_path):
    r = lines(runs_path)[-1]
    lat = r["latency_ms"] or {}
    print(f"round {r['round']} {r['server']}: {r['messages_per_s']:,.0f} msg/s, "
          f"p99 {lat.get('p99', 0):.1f} ms, {r['accepted']} accepted, {r['failed']} failed, "
          f"stored {r['stored']}, CPU {r['cpu_s']:.2f} s"
          + (f", stolen {r['machine_steal']:.0%}" if r.get("machine_steal") is not None else ""))


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "record":
        record(*args)
    elif cmd == "idle":
        idle(*args)
    elif cmd == "floor":
        floor(*args)
    elif cmd == "steal":
        steal(*args)
    elif cmd == "tag":
        tag(*args)
    elif cmd == "summary":
        summary(*args)
    elif cmd == "render":
        render(*args)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
