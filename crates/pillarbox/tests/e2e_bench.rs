//! `pillarbox bench` against the real Pillarbox binary, with small loads:
//! what it counts as accepted is what lands in the Maildir, refusals are
//! counted by reply code, `--json` has the documented shape, a target off
//! this machine is refused, and `--idle` reports a per-connection figure.

mod common;

use std::process::{Command, Output};

use common::{binary, run_client, transcript, Config, TestDir, CLIENT_TIMEOUT};

const EXIT_SOME_FAILED: i32 = 1;
const EXIT_USAGE: i32 = 2;

/// Runs `pillarbox bench ARGS` (quiet, bounded).
fn bench(args: &[&str]) -> Output {
    let mut cmd = Command::new(binary());
    cmd.arg("bench")
        .args(["--timeout", "20", "--quiet"])
        .args(args);
    run_client(cmd, None, CLIENT_TIMEOUT, "build the pillarbox binary")
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("--json output does not parse: {e}\n{}", transcript(out)))
}

fn assert_exit(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "expected exit {code}\n{}",
        transcript(out)
    );
}

fn num(v: &serde_json::Value, path: &[&str]) -> f64 {
    let mut cur = v;
    for key in path {
        cur = &cur[*key];
    }
    cur.as_f64()
        .unwrap_or_else(|| panic!("{} is not a number in {v}", path.join(".")))
}

#[test]
fn bench_accepted_count_equals_messages_in_the_maildir() {
    let dir = TestDir::new(&Config::default());
    let server = dir.start();
    let target = format!("127.0.0.1:{}", server.port);
    let pid = server.pid.to_string();

    // Many messages per connection, DATA.
    let out = bench(&[
        &target,
        "--sessions",
        "4",
        "--messages",
        "40",
        "--reuse",
        "--size",
        "2k",
        "--to",
        "bench@example.test",
        "--server-pid",
        &pid,
        "--json",
    ]);
    assert_exit(&out, 0);
    let v = json(&out);
    assert_eq!(v["messages"]["accepted"], 40, "{v}");
    assert_eq!(v["messages"]["failed"], 0, "{v}");
    assert_eq!(v["connections"]["opened"], 4, "{v}");
    assert_eq!(dir.messages("bench@example.test").len(), 40);

    // One message per connection, pipelined BDAT over STARTTLS, mixed sizes.
    let out = bench(&[
        &target,
        "--sessions",
        "3",
        "--messages",
        "12",
        "--pipeline",
        "--bdat",
        "--starttls",
        "--size-dist",
        "1k:1,8k:1",
        "--to",
        "bench@example.test",
        "--json",
    ]);
    assert_exit(&out, 0);
    let v = json(&out);
    assert_eq!(v["messages"]["accepted"], 12, "{v}");
    assert_eq!(
        v["connections"]["opened"], 12,
        "one connection per message: {v}"
    );
    assert_eq!(v["mode"]["security"], "starttls");
    let stored = dir.messages("bench@example.test");
    assert_eq!(stored.len(), 52);
    // Every stored message is one of the two sizes plus the headers we add.
    for m in &stored {
        m.assert_well_formed();
        assert!(m.original().len() < 9000, "{:?}", m.name());
    }
}

#[test]
fn bench_json_has_the_documented_shape() {
    let dir = TestDir::new(&Config::default());
    let server = dir.start();
    let out = bench(&[
        &format!("127.0.0.1:{}", server.port),
        "--sessions",
        "2",
        "--messages",
        "10",
        "--reuse",
        "--pipeline",
        "--to",
        "bench@example.test",
        "--server-pid",
        &server.pid.to_string(),
        "--json",
    ]);
    assert_exit(&out, 0);
    let v = json(&out);
    assert_eq!(v["mode"]["sessions"], 2);
    assert_eq!(v["mode"]["reuse"], true);
    assert_eq!(v["mode"]["pipeline"], true);
    assert_eq!(v["mode"]["bdat"], false);
    assert_eq!(v["mode"]["security"], "plain");
    assert_eq!(v["mode"]["size_dist"][0][0], 4096);
    for key in ["planned", "attempted", "accepted", "failed"] {
        assert!(v["messages"][key].is_u64(), "messages.{key} in {v}");
    }
    assert!(num(&v, &["elapsed_s"]) > 0.0);
    assert!(num(&v, &["messages_per_s"]) > 0.0);
    assert_eq!(v["bytes"], 40960);
    assert!(num(&v, &["bytes_per_s"]) > 0.0);
    let lat: Vec<f64> = ["p50", "p90", "p99", "max"]
        .iter()
        .map(|k| num(&v, &["latency_ms", k]))
        .collect();
    assert!(lat.windows(2).all(|w| w[0] <= w[1]), "ordered: {lat:?}");
    assert!(lat[0] > 0.0);
    assert!(v["replies"].as_object().is_some_and(|m| m.is_empty()));
    assert!(v["errors"].as_object().is_some_and(|m| m.is_empty()));
    assert!(num(&v, &["client", "cpu_s"]) >= 0.0);
    assert!(num(&v, &["client", "rss_kib"]) > 0.0);
    assert_eq!(v["server"]["pids"][0], server.pid);
    assert!(num(&v, &["server", "cpu_s"]) >= 0.0);
    assert!(num(&v, &["server", "cpu_s_per_1000_messages"]) >= 0.0);
    assert!(num(&v, &["server", "hwm_kib"]) >= num(&v, &["server", "rss_kib"]));
}

#[test]
fn bench_counts_refusals_by_reply_code() {
    let cfg = Config {
        catch_all: false,
        ..Config::default()
    };
    let dir = TestDir::new(&cfg);
    let server = dir.start();
    let target = format!("127.0.0.1:{}", server.port);
    let out = bench(&[
        &target,
        "--sessions",
        "2",
        "--messages",
        "10",
        "--reuse",
        "--to",
        "nobody@example.test",
        "--json",
    ]);
    assert_exit(&out, EXIT_SOME_FAILED);
    let v = json(&out);
    assert_eq!(v["messages"]["accepted"], 0, "{v}");
    assert_eq!(v["messages"]["failed"], 10, "{v}");
    assert_eq!(v["replies"]["550"], 10, "{v}");
    assert!(
        v["reply_samples"]["550"]
            .as_str()
            .is_some_and(|s| s.starts_with("550 5.1.1")),
        "{v}"
    );
    assert!(v["latency_ms"].is_null());
    assert!(dir.all_messages().is_empty());

    // The text report names the code too; a known user in the same run of
    // the server still gets through.
    let out = bench(&[
        &target,
        "--sessions",
        "1",
        "--messages",
        "3",
        "--to",
        "nobody@example.test",
    ]);
    assert_exit(&out, EXIT_SOME_FAILED);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("550: 3"), "{text}");
    let out = bench(&[&target, "--messages", "3", "--to", "alice@example.test"]);
    assert_exit(&out, 0);
    assert_eq!(dir.messages("alice@example.test").len(), 3);
}

#[test]
fn bench_refuses_a_target_off_this_machine() {
    // TEST-NET-1 (RFC 5737): refused before any connection is tried.
    let out = bench(&["192.0.2.1:25", "--messages", "1"]);
    assert_exit(&out, EXIT_USAGE);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refusing target 192.0.2.1:25"), "{err}");
    assert!(err.contains("--allow-target"), "{err}");
    assert!(out.stdout.is_empty());
    // A missing port and a bad size are usage errors too.
    assert_exit(&bench(&["127.0.0.1"]), EXIT_USAGE);
    assert_exit(&bench(&["127.0.0.1:25", "--size", "0"]), EXIT_USAGE);
}

#[test]
fn bench_idle_reports_rss_per_connection() {
    let dir = TestDir::new(&Config::default().limit("sessions_per_client", "200"));
    let server = dir.start();
    let out = bench(&[
        &format!("127.0.0.1:{}", server.port),
        "--idle",
        "100",
        "--hold",
        "1",
        "--server-pid",
        &server.pid.to_string(),
        "--json",
    ]);
    assert_exit(&out, 0);
    let v = json(&out);
    assert_eq!(v["mode"], "idle");
    assert_eq!(v["opened"], 100, "{v}");
    assert_eq!(v["failed"], 0, "{v}");
    assert!(num(&v, &["server", "rss_before_kib"]) > 0.0, "{v}");
    assert!(num(&v, &["server", "rss_holding_kib"]) > 0.0, "{v}");
    // A figure, not a target: it exists and is plausible (under 1 MiB each).
    let per = num(&v, &["server", "rss_per_connection_kib"]);
    assert!(per < 1024.0, "{v}");
    assert!(v["client"]["rss_per_connection_kib"].is_number(), "{v}");
    // Without --server-pid the text report still counts the connections.
    let out = bench(&[
        &format!("127.0.0.1:{}", server.port),
        "--idle",
        "5",
        "--hold",
        "0.1",
    ]);
    assert_exit(&out, 0);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("5 connections opened after EHLO"), "{text}");
}

#[test]
fn twenty_sessions_into_one_mailbox_count_each_message_once_in_maildirsize() {
    // The default quota keeps `maildirsize`. Twenty sessions land messages
    // together in a new mailbox, and the file outgrows 5,120 bytes and is
    // compacted every few hundred of them while appends go on: the first
    // burst was counted twice, and a compaction lost the lines appended
    // while it ran (9 and 13 messages of 20,000 in two release-build runs).
    let dir = TestDir::new(&Config::default());
    let server = dir.start();
    let target = format!("127.0.0.1:{}", server.port);
    let out = bench(&[
        &target,
        "--sessions",
        "20",
        "--messages",
        "4000",
        "--reuse",
        "--size",
        "1k",
        "--to",
        "burst@example.test",
        "--json",
    ]);
    assert_exit(&out, 0);
    assert_eq!(json(&out)["messages"]["accepted"], 4000);
    let stored = dir.messages("burst@example.test");
    assert_eq!(stored.len(), 4000);
    let bytes: usize = stored.iter().map(|m| m.bytes.len()).sum();
    let md = std::fs::read_to_string(dir.maildir("burst@example.test").join("maildirsize"))
        .expect("maildirsize is kept under the default quota");
    let (mut b, mut n) = (0usize, 0usize);
    for line in md.lines().skip(1) {
        let mut f = line.split_whitespace().map(|v| v.parse::<usize>().unwrap());
        b += f.next().unwrap();
        n += f.next().unwrap();
    }
    assert_eq!((n, b), (4000, bytes), "maildirsize:\n{md}");
}
