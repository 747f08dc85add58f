#!/usr/bin/env python3
"""Writes a queue journal of N deferred messages into DATA_DIR/queue, for
measuring what a large queue costs the server (memory, `queue list`).

    python3 bench/queue_fill.py DATA_DIR N [RECIPIENTS]

Each message is from a distinct sender to RECIPIENTS (default 1) local
mailboxes, deferred with one attempt behind it (452 4.2.2) and its next
attempt an hour ahead, so the server holds them without trying them. The
bodies are not written: the measurement is of the queue's index, and a body
is read only at an attempt. The record format is the server's journal:
<length u32 LE><crc32 u32 LE><JSON>.
"""
import json
import os
import struct
import sys
import time
import zlib


def record(obj):
    body = json.dumps(obj, separators=(",", ":")).encode()
    return struct.pack("<II", len(body), zlib.crc32(body) & 0xFFFFFFFF) + body


def main():
    data_dir, n = sys.argv[1], int(sys.argv[2])
    per = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    qdir = os.path.join(data_dir, "queue")
    os.makedirs(os.path.join(qdir, "messages"), exist_ok=True)
    now = int(time.time())
    with open(os.path.join(qdir, "journal"), "wb") as f:
        for i in range(n):
            rcpts = []
            for r in range(per):
                user = f"user{(i * per + r) % 1000}"
                rcpts.append({
                    "address": f"{user}@example.test",
                    "notify": {"success": False, "failure": True, "delay": True},
                    "target": {"kind": "local", "domain": "example.test", "user": user},
                    "state": "deferred",
                    "attempts": 1,
                    "next_attempt": now + 3600,
                    "history": [{"at": now - 60, "reply": "452 4.2.2 mailbox full, try again later"}],
                })
            msg = {
                "id": f"66200000000{i:05X}Q1",
                "arrival": now - 60,
                "sender": f"sender{i}@client.test",
                "size": 4096,
                "wire_size": 4180,
                "rcpts": rcpts,
            }
            f.write(record({"put": msg}))
    print(f"{n} messages written to {qdir}/journal")


if __name__ == "__main__":
    main()
