//! Temporarily unavailable mailboxes and greylisting over real SMTP:
//! `pillarbox mailbox lock` gives 450 4.2.1 (also to a delivery already in
//! progress), `disable` 550 5.2.1; a greylisted triplet is refused, then
//! accepted after the (test-short) delay, with the state surviving a restart.

mod common;

use std::time::Duration;

use common::{sample_message, Config, TestDir};

fn mailbox_cli(dir: &TestDir, args: &[&str]) -> String {
    let args: Vec<&str> = std::iter::once("mailbox")
        .chain(args.iter().copied())
        .collect();
    dir.cli(&args)
}

#[test]
fn locked_mailbox_gets_450_disabled_550_and_unlock_restores_delivery() {
    let dir = TestDir::new(&Config::default());
    let server = dir.start();
    mailbox_cli(
        &dir,
        &[
            "lock",
            "alice@example.test",
            "--reason",
            "moving to new storage",
            "--for",
            "2h",
        ],
    );
    let mut c = server.session();
    c.expect("EHLO client.test", 250);
    c.expect("MAIL FROM:<x@example.test>", 250);
    let r = c.expect("RCPT TO:<alice@example.test>", 450);
    assert!(
        r.text().contains("4.2.1 mailbox temporarily unavailable"),
        "{r}"
    );
    c.expect("RCPT TO:<bob@example.test>", 250);
    c.expect("RSET", 250);

    mailbox_cli(
        &dir,
        &[
            "disable",
            "alice@example.test",
            "--reason",
            "account closed",
        ],
    );
    c.expect("MAIL FROM:<x@example.test>", 250);
    let r = c.expect("RCPT TO:<alice@example.test>", 550);
    assert!(r.text().contains("5.2.1 mailbox disabled"), "{r}");
    c.expect("RSET", 250);

    mailbox_cli(&dir, &["enable", "alice@example.test"]);
    mailbox_cli(&dir, &["unlock", "alice@example.test"]);
    let m = sample_message("after-unlock", "alice@example.test");
    assert_eq!(
        c.send_mail("x@example.test", &["alice@example.test"], &m)
            .unwrap()
            .code,
        250
    );
    assert_eq!(dir.messages("alice@example.test").len(), 1);
    assert!(
        dir.log().contains("moving to new storage"),
        "the reason is logged"
    );
}

#[test]
fn a_lock_set_during_a_transaction_covers_the_delivery_in_progress() {
    let dir = TestDir::new(&Config::default());
    let server = dir.start();
    let mut c = server.session();
    c.expect("EHLO client.test", 250);
    c.expect("MAIL FROM:<x@example.test>", 250);
    c.expect("RCPT TO:<alice@example.test>", 250);
    c.expect("RCPT TO:<bob@example.test>", 250);
    c.expect("DATA", 354);
    // The operator locks the mailbox while the message is coming in.
    mailbox_cli(
        &dir,
        &["lock", "alice@example.test", "--reason", "maintenance"],
    );
    c.send(b"Subject: in flight\r\n\r\nbody\r\n.\r\n").unwrap();
    let r = c.read_reply().unwrap();
    // bob takes it; alice's copy waits in the queue for the lock to end.
    assert_eq!(r.code, 250, "{r}");
    assert_eq!(dir.messages("bob@example.test").len(), 1);
    assert!(dir.messages("alice@example.test").is_empty());
    let list = dir.queue_cli(&["list"]);
    assert!(
        list.contains("alice@example.test deferred (450 4.2.1"),
        "{list}"
    );

    // With alice the only recipient, the DATA reply carries the lock.
    c.expect("MAIL FROM:<x@example.test>", 250);
    c.expect("RCPT TO:<carol@example.test>", 250);
    c.expect("DATA", 354);
    mailbox_cli(
        &dir,
        &["lock", "carol@example.test", "--reason", "maintenance"],
    );
    c.send(b"Subject: in flight\r\n\r\nbody\r\n.\r\n").unwrap();
    let r = c.read_reply().unwrap();
    assert_eq!(r.code, 450, "{r}");
    assert!(r.text().contains("4.2.1"), "{r}");
    assert!(dir.messages("carol@example.test").is_empty());
}

#[test]
fn greylisted_triplet_is_refused_then_accepted_after_the_delay_across_a_restart() {
    let dir = TestDir::new(&Config::default());
    dir.append_config("[greylist]\nenabled = true\ndelay = \"2s\"\nretry_window = \"1h\"\n");
    let mut server = dir.start();
    {
        let mut c = server.session();
        c.expect("EHLO client.test", 250);
        c.expect("MAIL FROM:<newsletter+1234@sender.test>", 250);
        let r = c.expect("RCPT TO:<alice@example.test>", 450);
        assert!(
            r.text().starts_with("4.2.0 greylisted, try again in"),
            "{r}"
        );
        // A retry before the delay: still greylisted, for what is left of it.
        c.expect("RSET", 250);
        c.expect("MAIL FROM:<newsletter+5678@sender.test>", 250);
        let r = c.expect("RCPT TO:<alice@example.test>", 450);
        assert!(
            r.text().contains("try again in 1 seconds")
                || r.text().contains("try again in 2 seconds"),
            "{r}"
        );
        // Another recipient is another triplet.
        let r = c.expect("RCPT TO:<bob@example.test>", 450);
        assert!(r.text().contains("4.2.0"), "{r}");
    }
    // The state lives in state.sqlite: it survives a restart.
    server.signal("TERM");
    assert!(
        server.wait_exit(Duration::from_secs(20)).is_some(),
        "server stops"
    );
    std::thread::sleep(Duration::from_millis(2100));
    let server = dir.start();
    let mut c = server.session();
    c.expect("EHLO client.test", 250);
    // The subaddress tag differs again: the normalised sender is the same triplet.
    let m = sample_message("greylist", "alice@example.test");
    let r = c
        .send_mail("newsletter+9999@sender.test", &["alice@example.test"], &m)
        .unwrap();
    assert_eq!(r.code, 250, "a retry after the delay passes: {r}");
    assert_eq!(dir.messages("alice@example.test").len(), 1);
}

#[test]
fn greylisting_spares_trusted_networks() {
    let dir = TestDir::new(&Config::default());
    dir.append_config("[greylist]\nenabled = true\ndelay = \"300s\"\n[relay]\ntrusted_networks = [\"127.0.0.0/8\"]\n",
    );
    let server = dir.start();
    let mut c = server.session();
    c.expect("EHLO client.test", 250);
    c.expect("MAIL FROM:<a@sender.test>", 250);
    c.expect("RCPT TO:<alice@example.test>", 250);
}

#[test]
fn an_unreadable_users_file_defers_unknown_names_and_keeps_known_users_flowing() {
    let dir = TestDir::new(&Config {
        catch_all: false,
        ..Config::default()
    });
    let server = dir.start();
    let mut c = server.session();
    c.expect("EHLO client.test", 250);
    c.expect("MAIL FROM:<x@remote.test>", 250);
    c.expect("RCPT TO:<carol@example.test>", 550);
    c.expect("RSET", 250);
    // The file becomes unreadable (here: a directory where the file was).
    let users = dir.path().join("users");
    std::fs::rename(&users, dir.path().join("users.old")).unwrap();
    std::fs::create_dir(&users).unwrap();
    // The directory is looked at again at most once a second.
    let mut deferred = None;
    for _ in 0..40 {
        std::thread::sleep(Duration::from_millis(100));
        c.expect("MAIL FROM:<x@remote.test>", 250);
        let r = c.cmd("RCPT TO:<carol@example.test>").unwrap();
        c.expect("RSET", 250);
        if r.code != 550 {
            deferred = Some(r);
            break;
        }
    }
    let r =
        deferred.expect("carol still refused 550 four seconds after the file became unreadable");
    assert_eq!(r.code, 451, "{r}");
    assert!(r.text().contains("4.3.0"), "{r}");
    // A user of the last good copy still gets mail.
    c.expect("MAIL FROM:<x@remote.test>", 250);
    c.expect("RCPT TO:<alice@example.test>", 250);
    assert!(
        dir.log().contains("users file unreadable"),
        "the cause is logged"
    );
}

#[test]
fn aliases_and_plus_addresses_reach_the_right_mailboxes_and_the_file_is_reread() {
    let dir = TestDir::new(&Config {
        catch_all: false,
        users: vec![
            "alice@example.test::1000:1000::::".to_string(),
            "bob@example.test::1000:1000::::".to_string(),
        ],
        ..Config::default()
    });
    let aliases = dir.path().join("aliases");
    std::fs::write(
        &aliases,
        "# the team\nteam@example.test  alice@example.test, bob@example.test\n@other.test bob\n",
    )
    .unwrap();
    dir.append_config(&format!(
        "[aliases]\nfile = {:?}\n",
        aliases.display().to_string()
    ));
    let server = dir.start();
    let mut c = server.session();
    c.expect("EHLO client.test", 250);
    let m = sample_message("to-the-team", "team@example.test");
    assert_eq!(
        c.send_mail(
            "x@remote.test",
            &["team@example.test", "alice+news@example.test"],
            &m
        )
        .unwrap()
        .code,
        250
    );
    // alice is reached twice (the alias and her + address): one copy.
    assert_eq!(dir.messages("alice@example.test").len(), 1);
    assert_eq!(dir.messages("bob@example.test").len(), 1);
    let m = sample_message("catch-all", "anyone@other.test");
    assert_eq!(
        c.send_mail("x@remote.test", &["anyone@other.test"], &m)
            .unwrap()
            .code,
        250
    );
    assert_eq!(dir.messages("bob@example.test").len(), 2);
    c.expect("MAIL FROM:<x@remote.test>", 250);
    c.expect("RCPT TO:<sales@example.test>", 550);
    c.expect("RSET", 250);
    // A new alias is read within a few seconds, without a restart.
    std::fs::write(&aliases, "sales@example.test alice\n").unwrap();
    let mut accepted = false;
    for _ in 0..40 {
        std::thread::sleep(Duration::from_millis(100));
        c.expect("MAIL FROM:<x@remote.test>", 250);
        let r = c.cmd("RCPT TO:<sales@example.test>").unwrap();
        c.expect("RSET", 250);
        if r.code == 250 {
            accepted = true;
            break;
        }
        assert_eq!(r.code, 550, "{r}");
    }
    assert!(accepted, "the new alias was not read within four seconds");
    assert!(
        dir.log().contains("aliases file loaded"),
        "the reload is logged"
    );
}

#[test]
fn a_bare_quota_rule_in_the_users_file_is_warned_about() {
    let dir = TestDir::new(&Config {
        users: vec![
            "alice@example.test::1000:1000::::quota_rule=*:storage=1M".to_string(),
            "bob@example.test::1000:1000::::userdb_quota_rule=*:storage=1M".to_string(),
        ],
        ..Config::default()
    });
    let _server = dir.start();
    let log = dir.log();
    assert!(
        log.contains("user=alice@example.test") && log.contains("write `userdb_quota_rule=`"),
        "{log}"
    );
    assert!(!log.contains("user=bob@example.test"), "{log}");
}
