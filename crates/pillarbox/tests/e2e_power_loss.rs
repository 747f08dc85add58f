//! Power loss: every message that got its `250` survives a power cut and the
//! `e2fsck` that follows it, on ext4 *without a journal*, the filesystem that
//! orders nothing for us, and on ext4 with one, the common case (durable
//! before `250`).
//!
//! A `250` means durable in the queue, and the copy in the Maildir follows
//! it: after the cut each message is in its Maildir, or queued (its body, and
//! its envelope in the journal) for the next start to deliver.
//!
//! The data dir is a small ext4 image, loop-mounted. After the
//! `250`s, a copy of the image file is what the loop device has written so far:
//! the disk as a power cut at that instant leaves it, without what is still
//! dirty in the page cache. The copy is repaired with `e2fsck -fy`, as a boot
//! after an unclean shutdown does, and read back with `debugfs`.
//!
//! Needs root and loop devices (CI runs as root); without them it fails and
//! says so.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{sample_message, Config, TestDir};

/// Messages delivered, one after another, into a mailbox that does not exist
/// before the first: the last ones have no later write to carry their inode
/// to the disk by chance.
const MESSAGES: usize = 6;

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"))
}

/// An ext4 in an image file, loop-mounted at `dir`; unmounted on drop.
struct LoopExt4 {
    image: PathBuf,
    dir: PathBuf,
}

/// With or without a journal.
#[derive(Clone, Copy, Debug)]
enum Journal {
    Without,
    With,
}

impl LoopExt4 {
    fn new(image: &Path, dir: &Path, journal: Journal) -> LoopExt4 {
        let file = fs::File::create(image).expect("create the image file");
        file.set_len(64 << 20).expect("size the image file");
        drop(file);
        let out = run(Command::new("mkfs.ext4")
            .args(["-q", "-F", "-b", "1024", "-O"])
            .arg(match journal {
                Journal::Without => "^has_journal",
                Journal::With => "has_journal",
            })
            .arg(image));
        assert!(
            out.status.success(),
            "mkfs.ext4 failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        fs::create_dir_all(dir).expect("mount point");
        let out = run(Command::new("mount")
            .args(["-o", "loop"])
            .arg(image)
            .arg(dir));
        assert!(
            out.status.success(),
            "loop-mounting {} at {} failed (this test needs root and loop devices): {}",
            image.display(),
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        LoopExt4 {
            image: image.to_path_buf(),
            dir: dir.to_path_buf(),
        }
    }

    /// The disk as a power cut now would leave it, repaired by `e2fsck -fy`.
    fn after_power_cut(&self, copy: &Path) -> Disk {
        fs::copy(&self.image, copy).expect("copy the image");
        let out = run(Command::new("e2fsck").args(["-f", "-y"]).arg(copy));
        // 0: clean, 1: errors corrected, 2: corrected, reboot; 4 and up: left uncorrected.
        assert!(
            matches!(out.status.code(), Some(0..=2)),
            "e2fsck could not repair the image ({:?}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Disk {
            image: copy.to_path_buf(),
            fsck: String::from_utf8_lossy(&out.stdout).into_owned(),
        }
    }
}

impl Drop for LoopExt4 {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// A repaired copy of the image, read with `debugfs`.
struct Disk {
    image: PathBuf,
    /// What `e2fsck` said while repairing it.
    fsck: String,
}

impl Disk {
    fn debugfs(&self, request: &str) -> Output {
        run(Command::new("debugfs")
            .arg("-R")
            .arg(request)
            .arg(&self.image))
    }

    /// The file at `path` (from the filesystem's root), or `None` if it is gone.
    fn read(&self, path: &str) -> Option<Vec<u8>> {
        let stat = self.debugfs(&format!("stat \"{path}\""));
        if !String::from_utf8_lossy(&stat.stdout).contains("Type: regular") {
            return None;
        }
        Some(self.debugfs(&format!("cat \"{path}\"")).stdout)
    }

    fn is_dir(&self, path: &str) -> bool {
        String::from_utf8_lossy(&self.debugfs(&format!("stat \"{path}\"")).stdout)
            .contains("Type: directory")
    }
}

#[test]
fn every_acknowledged_message_survives_a_power_cut_and_fsck_without_a_journal() {
    power_cut_after_deliveries(Journal::Without, "");
}

#[test]
fn every_acknowledged_message_survives_a_power_cut_with_a_journal() {
    power_cut_after_deliveries(Journal::With, "");
}

#[test]
fn with_group_commit_every_acknowledged_message_survives_a_power_cut_and_fsck() {
    power_cut_after_deliveries(Journal::Without, "[storage]\ngroup_commit = true\n");
}

/// Delivers [`MESSAGES`] with `config` appended, cuts the power, and checks
/// that every one is on the repaired disk, byte for byte, in a whole Maildir.
fn power_cut_after_deliveries(journal: Journal, config: &str) {
    let dir = TestDir::new(&Config::default());
    dir.append_config(config);
    let disk = LoopExt4::new(&dir.path().join("disk.img"), &dir.data_dir, journal);
    let server = dir.start();
    // What the server set up at start is not under test: put it on the disk.
    assert!(Command::new("sync").status().expect("run sync").success());

    let mut smtp = server.session();
    smtp.expect("EHLO client.test", 250);
    for i in 0..MESSAGES {
        let reply = smtp
            .send_mail(
                "power@client.test",
                &["kate@example.test"],
                &sample_message(&format!("power-{i}"), "kate@example.test"),
            )
            .expect("deliver");
        assert!(reply.starts_with("250 2.0.0"), "message {i}: {reply}");
    }
    // The power goes now: after the last 250, before anything else is written.
    let after = disk.after_power_cut(&dir.path().join("after-power-cut.img"));
    smtp.expect("QUIT", 221);

    let delivered = dir.messages("kate@example.test");
    assert_eq!(delivered.len(), MESSAGES, "{delivered:?}");
    let maildir = "/mail/example.test/kate/Maildir";
    for sub in ["cur", "new", "tmp"] {
        assert!(
            after.is_dir(&format!("{maildir}/{sub}")),
            "{maildir}/{sub} is gone after the power cut; e2fsck said:\n{}",
            after.fsck
        );
    }
    // A `250` means durable in the queue; the copy in the Maildir follows.
    // So each message is on the repaired disk in the Maildir, or as a queued
    // body the journal names (the next start delivers it), byte for byte.
    let journal = after.read("/queue/journal").unwrap_or_default();
    for m in &delivered {
        let path = format!("{maildir}/new/{}", m.name());
        let id = queue_id_of(&m.name());
        let queued = format!("/queue/messages/{id}");
        let (found, bytes) = match after.read(&path) {
            Some(bytes) => (path.clone(), bytes),
            None => match after.read(&queued) {
                Some(bytes) if contains(&journal, id.as_bytes()) => (queued.clone(), bytes),
                _ => panic!(
                    "{path} got its 250 and is gone after the power cut, neither in the Maildir nor in the queue ({queued}, the journal naming it); e2fsck said:\n{}",
                    after.fsck
                ),
            },
        };
        assert!(
            bytes == m.bytes,
            "{found} differs after the power cut ({} bytes, {} before)",
            bytes.len(),
            m.bytes.len()
        );
    }
}

/// The queue id in a queued copy's Maildir name, `<secs>.<id>R<n>.<host>,S=..`.
fn queue_id_of(name: &str) -> String {
    let unique = name.split('.').nth(1).unwrap_or_default();
    unique
        .rsplit_once('R')
        .map_or(unique, |(id, _)| id)
        .to_string()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
