//! Which mailboxes exist: the users file, and `catch_all`.

mod common;

use common::{sample_message, Config, TestDir};

#[test]
fn without_catch_all_only_users_file_mailboxes_exist() {
    let config = Config {
        catch_all: false,
        users: vec![
            "alice@example.test::1000:1000::::".to_string(),
            "bob@other.test::1000:1000::::".to_string(),
        ],
        ..Config::default()
    };
    let dir = TestDir::new(&config);
    let server = dir.start();
    let mut smtp = server.session();
    smtp.expect("EHLO client.test", 250);
    smtp.expect("MAIL FROM:<sender@client.test>", 250);
    let reply = smtp
        .cmd("RCPT TO:<mallory@example.test>")
        .expect("RCPT reply");
    assert_eq!(reply.last(), "550 5.1.1 no such user here");
    smtp.expect("RCPT TO:<alice@example.test>", 250);
    smtp.expect("RCPT TO:<bob@other.test>", 250);
    smtp.expect("DATA", 354);
    let msg = sample_message("users-file", "alice@example.test");
    smtp.send(&common::dot_stuff(&msg))
        .expect("send the message");
    let reply = smtp.read_reply().expect("final reply");
    assert!(reply.starts_with("250 2.0.0 ok: queued as "), "{reply}");
    smtp.expect("QUIT", 221);

    for rcpt in ["alice@example.test", "bob@other.test"] {
        let stored = dir.messages(rcpt);
        assert_eq!(stored.len(), 1, "{rcpt}: {stored:?}");
        stored[0].assert_is("sender@client.test", &msg);
    }
    assert!(
        !dir.maildir("mallory@example.test").exists(),
        "no Maildir may be made for an unknown user"
    );
}

#[test]
fn with_catch_all_every_local_part_is_a_mailbox() {
    let dir = TestDir::new(&Config::default());
    let server = dir.start();
    let mut smtp = server.session();
    smtp.expect("EHLO client.test", 250);
    smtp.expect("MAIL FROM:<sender@client.test>", 250);
    smtp.expect("RCPT TO:<anyone.at.all@example.test>", 250);
    smtp.expect("DATA", 354);
    let msg = sample_message("catch-all", "anyone.at.all@example.test");
    smtp.send(&common::dot_stuff(&msg))
        .expect("send the message");
    let reply = smtp.read_reply().expect("final reply");
    assert!(reply.starts_with("250 2.0.0 ok: queued as "), "{reply}");
    let stored = dir.messages("anyone.at.all@example.test");
    assert_eq!(stored.len(), 1, "{stored:?}");
    stored[0].assert_is("sender@client.test", &msg);
}

#[test]
fn local_parts_with_path_characters_cannot_leave_their_mailbox() {
    let dir = TestDir::new(&Config::default());
    let server = dir.start();
    let mut smtp = server.session();
    smtp.expect("EHLO client.test", 250);
    smtp.expect("MAIL FROM:<sender@client.test>", 250);
    // Valid RFC 5321 addresses (quoted strings, `/` is atext) that would name
    // other directories if a local part became a path unchecked.
    for rcpt in [
        "\"../../../escape\"@example.test",
        "\"../../escape\"@example.test",
        "\"../other.test/bob\"@example.test",
        "\"..\"@example.test",
        "\".\"@example.test",
        "\"\"@example.test",
        "a/../../escape@example.test",
    ] {
        let reply = smtp.cmd(&format!("RCPT TO:<{rcpt}>")).expect("RCPT reply");
        assert!(reply.code >= 500, "RCPT TO:<{rcpt}> got {reply}");
    }
    smtp.expect("RCPT TO:<bob@other.test>", 250);
    smtp.expect("DATA", 354);
    let msg = sample_message("path-characters", "bob@other.test");
    smtp.send(&common::dot_stuff(&msg))
        .expect("send the message");
    let reply = smtp.read_reply().expect("final reply");
    assert!(reply.starts_with("250 2.0.0 ok: queued as "), "{reply}");

    assert!(!dir.path().join("escape").exists());
    assert!(!dir.data_dir.join("escape").exists());
    let all = dir.all_messages();
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(
        all[0].path.parent().and_then(|p| p.parent()),
        Some(dir.maildir("bob@other.test").as_path())
    );
}
