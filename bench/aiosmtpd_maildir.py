"""aiosmtpd with a durable Maildir handler, for bench/compare.sh.

Usage: aiosmtpd_maildir.py HOST PORT MAILDIR

Every accepted message is written to MAILDIR/tmp, fsync'd, renamed into
MAILDIR/new and the directory fsync'd before the 250: the durability
Pillarbox gives by default. The file work runs in the default thread pool,
so sessions overlap their fsyncs instead of blocking the event loop.
"""

import asyncio
import itertools
import os
import socket
import sys
import time

from aiosmtpd.smtp import SMTP


class MaildirHandler:
    def __init__(self, root):
        self.root = root
        self.seq = itertools.count()
        self.host = socket.gethostname().replace("/", "_").replace(":", "_")

    def deliver(self, data):
        name = f"{time.time_ns()}.P{os.getpid()}Q{next(self.seq)}.{self.host}"
        tmp = os.path.join(self.root, "tmp", name)
        with open(tmp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        new_dir = os.path.join(self.root, "new")
        os.rename(tmp, os.path.join(new_dir, name))
        fd = os.open(new_dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    async def handle_DATA(self, server, session, envelope):
        data = envelope.original_content or envelope.content
        try:
            await asyncio.get_running_loop().run_in_executor(None, self.deliver, data)
        except OSError as e:
            return f"451 4.3.0 local error: {e.strerror}"
        return "250 2.0.0 OK"


def main():
    host, port, maildir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    for sub in ("tmp", "new", "cur"):
        os.makedirs(os.path.join(maildir, sub), exist_ok=True)
    handler = MaildirHandler(maildir)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(
        loop.create_server(
            lambda: SMTP(handler, hostname="aiosmtpd.bench.test", data_size_limit=64 << 20),
            host,
            port,
            backlog=4096,
        )
    )
    print("ready", flush=True)
    try:
        loop.run_forever()
    finally:
        server.close()


if __name__ == "__main__":
    main()
