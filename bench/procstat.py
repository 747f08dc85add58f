"""CPU time and memory of a process and all its descendants, from /proc.

Usage: procstat.py PID   ->   {"pids": n, "cpu_s": s, "rss_kib": k, "hwm_kib": k,
                                "pss_kib": k, "machine": {...}}

cpu_s is utime+stime+cutime+cstime summed over the tree: a child that has
exited and been reaped (a Postfix smtpd, say) is counted in its parent's
cutime/cstime, so a before/after difference covers the work of processes
that came and went in between. rss_kib and hwm_kib (VmRSS, VmHWM) are
summed over the live processes, and so is pss_kib (Pss from smaps_rollup:
shared pages divided among the processes sharing them).

machine is the whole machine's CPU time from /proc/stat, in seconds summed
over every CPU: busy_s (user, nice, system, irq, softirq: every process, the
bench client and the kernel's own threads included), steal_s (time the
virtual machine's host gave to others while one of our CPUs wanted to run)
and total_s (busy, idle, iowait and steal), so a before/after difference
gives the CPU a run cost beyond the server's own processes, how busy the
machine was, and how much of it the host took away.
"""

import json
import os
import sys


def stat_fields(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    return text[text.rfind(")") + 1 :].split()


def status_kib(pid, key, name="status"):
    try:
        with open(f"/proc/{pid}/{name}") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def tree(root):
    children = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            fields = stat_fields(name)
            if fields and len(fields) > 1:
                children.setdefault(int(fields[1]), []).append(int(name))
    pids, i = [root], 0
    while i < len(pids):
        pids.extend(children.get(pids[i], []))
        i += 1
    return pids


def machine(ticks):
    with open("/proc/stat") as f:
        first = f.readline().split()
    # cpu user nice system idle iowait irq softirq steal [guest guest_nice]:
    # guest time is already counted in user.
    user, nice, system, idle, iowait, irq, softirq, steal = (int(x) for x in first[1:9])
    busy = user + nice + system + irq + softirq
    return {
        "busy_s": busy / ticks,
        "steal_s": steal / ticks,
        "total_s": (busy + idle + iowait + steal) / ticks,
    }


def main():
    root = int(sys.argv[1])
    ticks = os.sysconf("SC_CLK_TCK")
    out = {"pids": 0, "cpu_s": 0.0, "rss_kib": 0, "hwm_kib": 0, "pss_kib": 0}
    for pid in tree(root):
        fields = stat_fields(pid)
        if not fields:
            continue
        out["pids"] += 1
        out["cpu_s"] += sum(int(x) for x in fields[11:15]) / ticks
        out["rss_kib"] += status_kib(pid, "VmRSS:")
        out["hwm_kib"] += status_kib(pid, "VmHWM:")
        out["pss_kib"] += status_kib(pid, "Pss:", "smaps_rollup")
    if out["pids"] == 0:
        sys.exit(f"procstat: no process {root}")
    out["machine"] = machine(ticks)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
