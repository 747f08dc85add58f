"""Where a process's threads spend a run: on a CPU, or waiting for one.

Usage: threads.py SECONDS PID [PID ...]

Over SECONDS, for each PID's threads, grouped (a thread seen in epoll_wait
is an event-loop thread: Tokio's runtime workers in Pillarbox; the other
threads of a process that has such threads are its pool threads: Tokio's
blocking pool, where Pillarbox syncs and links each message; the process's
first thread is its main thread), prints from /proc/PID/task/TID/schedstat:

  cpu          CPU time used, in CPUs (1.00: one CPU all the time)
  runq-wait    time spent runnable but waiting for a CPU, in threads (1.00:
               one thread waiting all the time): CPU contention
  slices/s     times a thread got a CPU (each after a wake-up or a
               preemption: about the context switches)
  wait/slice   the mean wait for a CPU per slice, in microseconds

The kernel keeps these counters exactly (they need schedstats, on by default
for /proc/PID/schedstat). Threads that come and go during the window are
counted from when they are first seen.
"""

import os
import sys
import time


def snap(pid):
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                run, wait, slices = (int(x) for x in f.read().split()[:3])
        except (OSError, ValueError):
            continue
        out[tid] = (run, wait, slices)
    return out


def in_epoll(pid, tid):
    try:
        with open(f"/proc/{pid}/task/{tid}/wchan") as f:
            return f.read() == "do_epoll_wait"
    except OSError:
        return False


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    try:
        seconds = float(sys.argv[1])
        pids = [int(p) for p in sys.argv[2:]]
    except ValueError:
        sys.exit(__doc__)
    if not 0 < seconds <= 3600:
        sys.exit("threads.py: SECONDS must be in (0, 3600]")
    before = {pid: snap(pid) for pid in pids}
    loop = {pid: set() for pid in pids}
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        for pid in pids:
            for tid in snap(pid):
                if in_epoll(pid, tid):
                    loop[pid].add(tid)
        time.sleep(0.01)
    after = {pid: snap(pid) for pid in pids}
    elapsed = time.monotonic() - start
    for pid in pids:
        groups = {}
        for tid, (run, wait, slices) in after[pid].items():
            r0, w0, s0 = before[pid].get(tid, (0, 0, 0))
            if tid == str(pid):
                group = "main"
            elif tid in loop[pid]:
                group = "event loop"
            else:
                group = "pool" if loop[pid] else "other"
            g = groups.setdefault(group, [0, 0, 0, 0])
            g[0] += run - r0
            g[1] += wait - w0
            g[2] += slices - s0
            g[3] += 1
        for group, (run, wait, slices, n) in sorted(groups.items()):
            print(
                f"{pid} {group:10} threads={n:3} cpu={run / 1e9 / elapsed:5.2f} "
                f"runq-wait={wait / 1e9 / elapsed:5.2f} slices/s={slices / elapsed:7.0f} "
                f"wait/slice={wait / max(slices, 1) / 1e3:6.1f}us"
            )
    print(f"over {elapsed:.2f} s")


if __name__ == "__main__":
    main()
