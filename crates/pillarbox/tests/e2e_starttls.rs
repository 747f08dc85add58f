//! STARTTLS on the real binary, driven by Python's `ssl` over a raw socket so the
//! test controls exactly which bytes arrive when.

mod common;

use common::{run_python, transcript, Config, TestDir};

/// Pipelines plaintext commands behind STARTTLS in one write (CVE-2011-0411),
/// then completes TLS and checks that the injected commands were discarded.
/// Prints one `REPLY <line>` per reply line read.
const STARTTLS_INJECTION: &str = r#"
import socket, ssl, sys
port = int(sys.argv[1])
s = socket.create_connection(('127.0.0.1', port), timeout=20)
f = s.makefile('rb')
def reply(f):
    lines = []
    while True:
        line = f.readline()
        if not line:
            raise SystemExit('connection closed after %r' % lines)
        lines.append(line.decode().rstrip('\r\n'))
        print('REPLY', lines[-1], flush=True)
        if line[3:4] != b'-':
            return lines
reply(f)
s.sendall(b'EHLO client.test\r\n')
reply(f)
s.sendall(b'STARTTLS\r\nMAIL FROM:<injected@client.test>\r\nRCPT TO:<injected@example.test>\r\n')
reply(f)
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
t = ctx.wrap_socket(s, server_hostname='mx.example.test')
tf = t.makefile('rb')
print('TLS', t.version(), flush=True)
t.sendall(b'RCPT TO:<after@example.test>\r\n')
reply(tf)
t.sendall(b'EHLO client.test\r\n')
reply(tf)
t.sendall(b'STARTTLS\r\n')
reply(tf)
t.sendall(b'MAIL FROM:<ok@client.test>\r\n')
reply(tf)
t.sendall(b'QUIT\r\n')
reply(tf)
"#;

#[test]
fn plaintext_pipelined_behind_starttls_is_discarded() {
    let dir = TestDir::new(&Config::default());
    let server = dir.start();
    let output = run_python(STARTTLS_INJECTION, &[&server.port.to_string()]);
    let text = transcript(&output);
    assert!(output.status.success(), "{text}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let replies: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("REPLY "))
        .collect();
    let after_ready = replies
        .iter()
        .position(|l| *l == "220 2.0.0 ready to start TLS")
        .unwrap_or_else(|| panic!("no STARTTLS 220:\n{text}"));
    // Under TLS: the injected MAIL is forgotten, so RCPT is out of sequence,
    // and EHLO must be given again (all earlier state is forgotten).
    let rcpt = replies.get(after_ready + 1).copied().unwrap_or("");
    assert!(
        rcpt.starts_with("503 5.5.1"),
        "RCPT under TLS must get 503 (the injected MAIL was discarded), got {rcpt:?}:\n{text}"
    );
    let ehlo: Vec<&str> = replies[after_ready + 2..]
        .iter()
        .copied()
        .take_while(|l| l.starts_with("250-"))
        .collect();
    assert!(!ehlo.iter().any(|l| l.contains("STARTTLS")), "{ehlo:?}");
    assert!(
        replies.contains(&"503 5.5.1 already under TLS"),
        "STARTTLS inside TLS:\n{text}"
    );
    assert!(replies.contains(&"250 2.1.0 sender ok"), "{text}");
    assert!(replies.contains(&"221 2.0.0 bye"), "{text}");
}
