// Haraka plugin for bench/compare.sh: accepts every recipient and queues each
// message into a durable Maildir (BENCH_MAILDIR): write to tmp/, fsync,
// rename into new/, fsync the directory, then OK (250).
'use strict';

const fsp = require('fs').promises;
const os = require('os');
const path = require('path');

const hostname = os.hostname().replace(/[/:]/g, '_');
let seq = 0;

async function deliver(maildir, data) {
  const name = `${Date.now()}.P${process.pid}Q${seq++}.${hostname}`;
  const tmp = path.join(maildir, 'tmp', name);
  const file = await fsp.open(tmp, 'wx', 0o600);
  try {
    await file.writeFile(data);
    await file.sync();
  } finally {
    await file.close();
  }
  const newDir = path.join(maildir, 'new');
  await fsp.rename(tmp, path.join(newDir, name));
  const dir = await fsp.open(newDir, 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

exports.register = function () {
  this.maildir = process.env.BENCH_MAILDIR;
  if (!this.maildir) throw new Error('bench_maildir: BENCH_MAILDIR is not set');
};

exports.hook_rcpt = function (next) {
  next(OK);
};

exports.hook_queue = function (next, connection) {
  const txn = connection.transaction;
  txn.message_stream.get_data((data) => {
    deliver(this.maildir, data).then(
      () => next(OK),
      (err) => next(DENYSOFT, `local error: ${err.message}`),
    );
  });
};
