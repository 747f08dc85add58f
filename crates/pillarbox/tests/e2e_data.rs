//! Message data over a real socket to the real binary: the session driver's
//! streaming of DATA and BDAT to disk, smuggling defence, edge cases of the end
//! of data. (The pure session has golden dialogs for these; here the bytes go
//! through the driver and the store.)

mod common;

use common::{Config, Smtp, TestDir};
use std::time::Duration;

const FROM: &str = "data@client.test";

fn ready(port: u16) -> Smtp {
    let mut smtp = Smtp::connect(port).expect("connect");
    assert_eq!(smtp.read_reply().expect("greeting").code, 220);
    smtp.expect("EHLO client.test", 250);
    smtp
}

fn start_data(smtp: &mut Smtp, rcpt: &str) {
    smtp.expect(&format!("MAIL FROM:<{FROM}>"), 250);
    smtp.expect(&format!("RCPT TO:<{rcpt}>"), 250);
    smtp.expect("DATA", 354);
}

#[test]
fn bare_lf_dot_does_not_end_data_and_smuggled_mail_is_refused() {
    let dir = TestDir::new(&Config::default());
    let server = dir.start();
    let mut smtp = ready(server.port);
    start_data(&mut smtp, "victim@example.test");
    // A second transaction hidden behind `\n.\n`; only CRLF.CRLF ends data.
    smtp.send(
        b"Subject: smuggle\r\n\r\nfirst\n.\nMAIL FROM:<evil@client.test>\r\n\
          RCPT TO:<smuggled@example.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nevil\r\n.\r\n",
    )
    .expect("send");
    let reply = smtp.read_reply().expect("reply at the end of data");
    assert_eq!(
        reply.last(),
        "550 5.6.0 bare CR or LF not allowed in message"
    );
    // Nothing more may come: the smuggled commands were message data.
    smtp.set_read_timeout(Duration::from_millis(500));
    assert!(
        smtp.read_reply().is_err(),
        "a reply to a smuggled command was sent"
    );
    smtp.set_read_timeout(common::IO_TIMEOUT);
    smtp.expect("NOOP", 250);
    assert!(dir.all_messages().is_empty(), "{:?}", dir.all_messages());
}

#[test]
fn bare_cr_in_message_is_refused_after_its_end() {
    let dir = TestDir::new(&Config::default());
    let server = dir.start();
    let mut smtp = ready(server.port);
    start_data(&mut smtp, "cr@example.test");
    smtp.send(b"Subject: cr\r\n\r\nbefore\rafter\r\n.\r\n")
        .expect("send");
    let reply = smtp.read_reply().expect("reply at the end of data");
    assert_eq!(
        reply.last(),
        "550 5.6.0 bare CR or LF not allowed in message"
    );
    assert!(dir.all_messages().is_empty());
}

#[test]
fn empty_message_is_stored_with_only_our_headers() {
    let dir = TestDir::new(&Config::default());
    let server = dir.start();
    let mut smtp = ready(server.port);
    start_data(&mut smtp, "empty@example.test");
    smtp.send(b".\r\n").expect("send");
    let reply = smtp.read_reply().expect("reply at the end of data");
    assert!(reply.starts_with("250 2.0.0 ok: queued as "), "{reply}");
    let stored = dir.messages("empty@example.test");
    assert_eq!(stored.len(), 1);
    stored[0].assert_is(FROM, b"");
}

#[test]
fn dot_stuffed_first_line_is_unstuffed() {
    let dir = TestDir::new(&Config::default());
    let server = dir.start();
    let mut smtp = ready(server.port);
    start_data(&mut smtp, "dot@example.test");
    smtp.send(b"..first line starts with a dot\r\nSubject: late\r\n\r\n..\r\n.\r\n")
        .expect("send");
    let reply = smtp.read_reply().expect("reply at the end of data");
    assert!(reply.starts_with("250 2.0.0 ok: queued as "), "{reply}");
    let stored = dir.messages("dot@example.test");
    assert_eq!(stored.len(), 1);
    stored[0].assert_is(
        FROM,
        b".first line starts with a dot\r\nSubject: late\r\n\r\n.\r\n",
    );
}

#[test]
fn bdat_chunks_of_odd_sizes_are_stored_byte_exact() {
    let dir = TestDir::new(&Config::default());
    let server = dir.start();
    let mut smtp = ready(server.port);
    smtp.expect(&format!("MAIL FROM:<{FROM}>"), 250);
    smtp.expect("RCPT TO:<bdat@example.test>", 250);
    // BDAT is not dot-stuffed: a line with a lone dot is just data.
    let msg = b"Subject: chunks\r\n\r\nline one\r\n.\r\n..two dots\r\nthe end\r\n";
    let cuts = [0, 1, 7, 18, 30, msg.len()];
    for pair in cuts.windows(2) {
        let chunk = &msg[pair[0]..pair[1]];
        let last = pair[1] == msg.len();
        let mut wire = format!(
            "BDAT {}{}\r\n",
            chunk.len(),
            if last { " LAST" } else { "" }
        )
        .into_bytes();
        wire.extend_from_slice(chunk);
        smtp.send(&wire).expect("send a chunk");
        let reply = smtp.read_reply().expect("reply to BDAT");
        if last {
            assert!(reply.starts_with("250 2.0.0 ok: queued as "), "{reply}");
        } else {
            assert_eq!(
                reply.last(),
                format!("250 2.0.0 {} octets received", chunk.len())
            );
        }
    }
    let stored = dir.messages("bdat@example.test");
    assert_eq!(stored.len(), 1);
    stored[0].assert_is(FROM, msg);
}

#[test]
fn pipelined_transactions_in_one_write_are_all_delivered() {
    let dir = TestDir::new(&Config::default());
    let server = dir.start();
    let mut smtp = ready(server.port);
    let mut wire = Vec::new();
    for n in 0..3 {
        wire.extend_from_slice(
            format!(
                "MAIL FROM:<{FROM}>\r\nRCPT TO:<pipe@example.test>\r\nDATA\r\n\
                 Subject: pipelined {n}\r\n\r\nbody {n}\r\n.\r\n"
            )
            .as_bytes(),
        );
    }
    wire.extend_from_slice(b"QUIT\r\n");
    smtp.send(&wire).expect("send everything at once");
    let mut codes = Vec::new();
    for _ in 0..13 {
        let reply = smtp.read_reply().expect("pipelined reply");
        codes.push(reply.code);
    }
    assert_eq!(
        codes,
        [250, 250, 354, 250, 250, 250, 354, 250, 250, 250, 354, 250, 221]
    );
    let stored = dir.messages("pipe@example.test");
    assert_eq!(stored.len(), 3, "{stored:?}");
}

#[test]
fn large_message_streams_to_disk_byte_exact() {
    let dir = TestDir::new(&Config::default());
    let server = dir.start();
    let mut smtp = ready(server.port);
    // About 8 MiB with 8-bit bytes and long-ish lines.
    let mut msg = b"Subject: large\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n".to_vec();
    for i in 0..80_000u32 {
        msg.extend_from_slice(
            format!("{i:08} gr\u{fc}\u{df}e \u{2603} 0123456789abcdefghijklmnopqrstuvwxyz.ABCDEFGHIJKLMNOPQRSTUVWXYZ\r\n")
                .as_bytes(),
        );
    }
    smtp.expect(&format!("MAIL FROM:<{FROM}> BODY=8BITMIME"), 250);
    smtp.expect("RCPT TO:<large@example.test>", 250);
    smtp.expect("DATA", 354);
    smtp.send(&common::dot_stuff(&msg)).expect("send");
    let reply = smtp.read_reply().expect("reply at the end of data");
    assert!(reply.starts_with("250 2.0.0 ok: queued as "), "{reply}");
    let stored = dir.messages("large@example.test");
    assert_eq!(stored.len(), 1);
    stored[0].assert_is(FROM, &msg);
}
