// nodemailer's smtp-server with a durable Maildir handler, for bench/compare.sh.
//
// Usage: node smtp_server_maildir.js HOST PORT MAILDIR   (NODE_PATH: where smtp-server is)
//
// Every accepted message is written to MAILDIR/tmp, fsync'd, renamed into
// MAILDIR/new and the directory fsync'd before the 250 (libuv's thread pool
// does the file work, so sessions overlap their fsyncs).
'use strict';

const { SMTPServer } = require('smtp-server');
const fsp = require('fs').promises;
const os = require('os');
const path = require('path');

const [host, port, maildir] = process.argv.slice(2);
const hostname = os.hostname().replace(/[/:]/g, '_');
let seq = 0;

async function deliver(data) {
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

async function main() {
  for (const sub of ['tmp', 'new', 'cur']) {
    await fsp.mkdir(path.join(maildir, sub), { recursive: true });
  }
  const server = new SMTPServer({
    name: 'smtp-server.bench.test',
    authOptional: true,
    disabledCommands: ['AUTH', 'STARTTLS'],
    logger: false,
    size: 64 * 1024 * 1024,
    maxClients: 1000000,
    socketTimeout: 600000,
    onData(stream, session, callback) {
      const chunks = [];
      stream.on('data', (chunk) => chunks.push(chunk));
      stream.on('error', callback);
      stream.on('end', () => {
        deliver(Buffer.concat(chunks)).then(
          () => callback(null, 'OK'),
          (err) => {
            const e = new Error(`local error: ${err.message}`);
            e.responseCode = 451;
            callback(e);
          },
        );
      });
    },
  });
  server.on('error', (err) => console.error(`smtp-server: ${err.message}`));
  server.listen(Number(port), host, () => console.log('ready'));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
