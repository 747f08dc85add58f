//! The queue journal: an append-only file of records, each the whole state of
//! one message ([`Record::Put`]) or its removal ([`Record::Remove`]).
//!
//! A record is `<length u32 LE><crc32 u32 LE><JSON>`. Replay reads records in
//! order and keeps the last one of each id; it stops at the first record that
//! is short or whose checksum fails: that is a write the crash tore, and no
//! one was told it was durable (a `250` waits for [`Journal::sync_to`]). At
//! every open the journal is rewritten with only the live messages (written to
//! `journal.new`, fsync'd, renamed over `journal`, the directory fsync'd), and
//! again whenever it has grown well past what is live.
//!
//! Syncs are shared: a caller asks for the data up to its own append to be
//! durable; while one `fdatasync` runs, later callers wait for the next one,
//! which then covers all of them (group commit).

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use crate::envelope::{Message, QueueId};

/// The journal's file name in the queue directory.
pub const FILE: &str = "journal";

/// A record larger than this is taken for a torn or foreign file, not read.
const MAX_RECORD: u32 = 64 * 1024 * 1024;

/// One change, as written.
#[derive(Serialize)]
enum RecordRef<'a> {
    #[serde(rename = "put")]
    Put(&'a Message),
    #[serde(rename = "remove")]
    Remove(&'a str),
}

/// One change, as read back.
#[derive(Deserialize)]
pub enum Record {
    /// The whole state of a message.
    #[serde(rename = "put")]
    Put(Box<Message>),
    /// The message left the queue.
    #[serde(rename = "remove")]
    Remove(QueueId),
}

/// The journal of one queue directory.
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    file_mode: u32,
    out: Mutex<Out>,
    sync: Mutex<Syncs>,
    synced: Condvar,
}

#[derive(Debug)]
struct Out {
    file: File,
    /// Bytes in the file now.
    len: u64,
    /// Bytes ever appended (never reset; what [`Journal::sync_to`] counts in).
    appended: u64,
    /// A handle for `fdatasync`, so syncing does not hold the writers up.
    sync_handle: std::sync::Arc<File>,
}

#[derive(Debug, Default)]
struct Syncs {
    /// Every byte appended up to here is durable.
    synced: u64,
    running: bool,
    /// An fsync failed: what it should have made durable may be lost, so no
    /// later sync may claim otherwise (the kernel may have dropped the pages).
    failed: Option<String>,
}

fn encode(rec: &RecordRef<'_>, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; 8]);
    // A Message is plain data: serializing it to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, rec);
    let len = (out.len() - start - 8) as u32;
    let crc = crc32fast::hash(&out[start + 8..]);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Reads the next whole record into `body` and decodes it; `None` at the end
/// or at a torn or corrupt record (what follows it is not read).
fn read_record(reader: &mut impl Read, body: &mut Vec<u8>) -> io::Result<Option<Record>> {
    let mut head = [0u8; 8];
    if !read_full(reader, &mut head)? {
        return Ok(None);
    }
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
    let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    if len > MAX_RECORD {
        return Ok(None);
    }
    body.clear();
    body.resize(len as usize, 0);
    if !read_full(reader, body)? || crc32fast::hash(body) != crc {
        return Ok(None);
    }
    Ok(serde_json::from_slice::<Record>(body).ok())
}

/// Fills `buf`; `false` when the input ends first.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    let mut at = 0;
    while at < buf.len() {
        match reader.read(&mut buf[at..]) {
            Ok(0) => return Ok(false),
            Ok(n) => at += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

impl Journal {
    /// Opens (or creates) the journal in `dir`, replays it and rewrites it
    /// with only what is live. Returns the journal and the live messages.
    pub fn open(dir: &Path, file_mode: u32) -> io::Result<(Journal, HashMap<QueueId, Message>)> {
        let path = dir.join(FILE);
        let mut live: HashMap<QueueId, Message> = HashMap::new();
        match File::open(&path) {
            // Read a record at a time: a large queue's journal is never
            // held whole in memory.
            Ok(f) => {
                let len = f.metadata()?.len();
                let mut reader = io::BufReader::with_capacity(256 * 1024, f);
                let mut good = 0u64;
                let mut body = Vec::new();
                while let Some(r) = read_record(&mut reader, &mut body)? {
                    good += 8 + body.len() as u64;
                    match r {
                        Record::Put(m) => {
                            live.insert(m.id.clone(), *m);
                        }
                        Record::Remove(id) => {
                            live.remove(&id);
                        }
                    }
                }
                if good < len {
                    tracing_note(&path, good, len);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        live.shrink_to_fit();
        let file = write_snapshot(dir, file_mode, live.values())?;
        let len = file.metadata()?.len();
        let sync_handle = std::sync::Arc::new(file.try_clone()?);
        let journal = Journal {
            dir: dir.to_path_buf(),
            file_mode,
            out: Mutex::new(Out {
                file,
                len,
                appended: 0,
                sync_handle,
            }),
            sync: Mutex::new(Syncs::default()),
            synced: Condvar::new(),
        };
        Ok((journal, live))
    }

    fn out(&self) -> MutexGuard<'_, Out> {
        self.out.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn syncs(&self) -> MutexGuard<'_, Syncs> {
        self.sync.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends the states of `puts` and the removals of `removes` in one
    /// write; returns the position to pass to [`Self::sync_to`]. On a failed
    /// write the file is cut back to where it was, so no torn record is
    /// followed by good ones.
    pub fn append(&self, puts: &[&Message], removes: &[&str]) -> io::Result<u64> {
        let mut buf = Vec::with_capacity(512 * (puts.len() + removes.len()));
        for m in puts {
            encode(&RecordRef::Put(m), &mut buf);
        }
        for id in removes {
            encode(&RecordRef::Remove(id), &mut buf);
        }
        let mut out = self.out();
        if let Err(e) = out.file.write_all(&buf) {
            let len = out.len;
            if out.file.set_len(len).is_err() {
                self.fail("a failed append could not be cut back");
            }
            return Err(e);
        }
        out.len += buf.len() as u64;
        out.appended += buf.len() as u64;
        Ok(out.appended)
    }

    /// The journal's size on disk, for deciding when to rewrite it.
    pub fn len(&self) -> u64 {
        self.out().len
    }

    /// Whether the journal holds no record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn fail(&self, why: &str) {
        let mut s = self.syncs();
        s.failed.get_or_insert_with(|| why.to_string());
        self.synced.notify_all();
    }

    /// Returns once every byte appended up to `upto` is on disk: an
    /// `fdatasync` that started after that append has finished. Concurrent
    /// callers share the syncs.
    pub fn sync_to(&self, upto: u64) -> io::Result<()> {
        let mut s = self.syncs();
        loop {
            if let Some(why) = &s.failed {
                return Err(io::Error::other(format!("queue journal unusable: {why}")));
            }
            if s.synced >= upto {
                return Ok(());
            }
            if s.running {
                s = self.synced.wait(s).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            s.running = true;
            drop(s);
            let (target, handle) = {
                let out = self.out();
                (out.appended, out.sync_handle.clone())
            };
            let r = handle.sync_data();
            s = self.syncs();
            s.running = false;
            match r {
                Ok(()) => s.synced = s.synced.max(target),
                Err(e) => {
                    s.failed
                        .get_or_insert_with(|| format!("fdatasync failed: {e}"));
                }
            }
            self.synced.notify_all();
        }
    }

    /// Rewrites the journal with only `live` (what the queue holds now),
    /// while appends wait. Called with the queue's index locked, so `live` is
    /// exactly the state the old journal described.
    pub fn rewrite<'a>(&self, live: impl Iterator<Item = &'a Message>) -> io::Result<()> {
        let mut out = self.out();
        let file = write_snapshot(&self.dir, self.file_mode, live)?;
        out.len = file.metadata()?.len();
        out.sync_handle = std::sync::Arc::new(file.try_clone()?);
        out.file = file;
        // Everything the old file held is in the new one, durable.
        let appended = out.appended;
        drop(out);
        let mut s = self.syncs();
        s.synced = s.synced.max(appended);
        self.synced.notify_all();
        Ok(())
    }
}

/// Writes `live` into `journal.new`, fsyncs it, renames it over `journal`
/// and fsyncs the directory; returns the file open for appending.
fn write_snapshot<'a>(
    dir: &Path,
    file_mode: u32,
    live: impl Iterator<Item = &'a Message>,
) -> io::Result<File> {
    let tmp = dir.join("journal.new");
    let path = dir.join(FILE);
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(file_mode)
        .open(&tmp)?;
    let mut out = io::BufWriter::with_capacity(256 * 1024, f);
    let mut buf = Vec::new();
    for m in live {
        buf.clear();
        encode(&RecordRef::Put(m), &mut buf);
        out.write_all(&buf)?;
    }
    let f = out.into_inner().map_err(|e| e.into_error())?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, &path)?;
    File::open(dir)?.sync_all()?;
    OpenOptions::new().append(true).open(&path)
}

fn tracing_note(path: &Path, good: u64, len: u64) {
    tracing::warn!(
        journal = %path.display(),
        kept = good,
        dropped = len - good,
        "queue journal ends in a torn record (a crash during an append no client was answered for); it is dropped"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(id: &str) -> Message {
        crate::envelope::sample(id, 7)
    }

    #[test]
    fn replay_keeps_the_last_state_and_forgets_removed_messages() {
        let dir = tempfile::tempdir().unwrap();
        let (j, live) = Journal::open(dir.path(), 0o600).unwrap();
        assert!(live.is_empty());
        let (a, mut b, c) = (msg("A"), msg("B"), msg("C"));
        let at = j.append(&[&a, &b, &c], &[]).unwrap();
        j.sync_to(at).unwrap();
        b.held = true;
        let at = j.append(&[&b], &["A"]).unwrap();
        j.sync_to(at).unwrap();
        drop(j);
        let (_, live) = Journal::open(dir.path(), 0o600).unwrap();
        assert_eq!(live.len(), 2);
        assert!(live["B"].held);
        assert_eq!(live["C"], c);
    }

    #[test]
    fn a_torn_last_record_is_dropped_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (j, _) = Journal::open(dir.path(), 0o600).unwrap();
        let at = j.append(&[&msg("A"), &msg("B")], &[]).unwrap();
        j.sync_to(at).unwrap();
        drop(j);
        let path = dir.path().join(FILE);
        let len = fs::metadata(&path).unwrap().len();
        // Cut the last record in half.
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(len - 20).unwrap();
        drop(f);
        let (j, live) = Journal::open(dir.path(), 0o600).unwrap();
        assert_eq!(live.keys().collect::<Vec<_>>(), ["A"]);
        // Appends after the replay are read back (the torn tail is gone).
        let at = j.append(&[&msg("C")], &[]).unwrap();
        j.sync_to(at).unwrap();
        drop(j);
        let (_, live) = Journal::open(dir.path(), 0o600).unwrap();
        assert_eq!(live.len(), 2);
    }

    #[test]
    fn a_flipped_byte_stops_the_replay_at_that_record() {
        let dir = tempfile::tempdir().unwrap();
        let (j, _) = Journal::open(dir.path(), 0o600).unwrap();
        let first = j.append(&[&msg("A")], &[]).unwrap();
        let at = j.append(&[&msg("B")], &[]).unwrap();
        j.sync_to(at).unwrap();
        drop(j);
        let path = dir.path().join(FILE);
        let mut bytes = fs::read(&path).unwrap();
        let i = first as usize + 20;
        bytes[i] ^= 0x55;
        fs::write(&path, &bytes).unwrap();
        let (_, live) = Journal::open(dir.path(), 0o600).unwrap();
        assert_eq!(live.keys().collect::<Vec<_>>(), ["A"]);
    }

    #[test]
    fn concurrent_syncs_all_return_and_everything_is_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let (j, _) = Journal::open(dir.path(), 0o600).unwrap();
        std::thread::scope(|s| {
            for t in 0..8 {
                let j = &j;
                s.spawn(move || {
                    for i in 0..50 {
                        let at = j.append(&[&msg(&format!("T{t}N{i}"))], &[]).unwrap();
                        j.sync_to(at).unwrap();
                    }
                });
            }
        });
        drop(j);
        let (_, live) = Journal::open(dir.path(), 0o600).unwrap();
        assert_eq!(live.len(), 400);
    }

    #[test]
    fn a_rewrite_keeps_only_the_live_messages() {
        let dir = tempfile::tempdir().unwrap();
        let (j, _) = Journal::open(dir.path(), 0o600).unwrap();
        for i in 0..100 {
            j.append(&[&msg(&format!("M{i}"))], &[]).unwrap();
        }
        let before = j.len();
        let keep = msg("M5");
        j.rewrite(std::iter::once(&keep)).unwrap();
        assert!(j.len() < before / 50);
        let at = j.append(&[&msg("N")], &[]).unwrap();
        j.sync_to(at).unwrap();
        drop(j);
        let (_, live) = Journal::open(dir.path(), 0o600).unwrap();
        let mut ids: Vec<_> = live.keys().cloned().collect();
        ids.sort();
        assert_eq!(ids, ["M5", "N"]);
    }
}
