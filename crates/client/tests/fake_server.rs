//! The client against small in-process servers: AUTH with every mechanism
//! (the server side is `pillarbox_proto::sasl::ServerExchange`), PIPELINING
//! that really sends in one batch, and the errors a diagnostic must report
//! (a malformed reply, a silent server).

use std::time::Duration;

use pillarbox_client::{
    Client, ClientConfig, ClientError, Envelope, Mechanism, ReplyError, Security, Transfer,
    TrustAnchors,
};
use pillarbox_proto::sasl::{CramMd5Secret, ScramSecret, Secret, ServerExchange, ServerStep};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

const PASSWORD: &str = "correct horse";

fn config() -> ClientConfig {
    ClientConfig {
        connect_timeout: Duration::from_secs(5),
        command_timeout: Duration::from_secs(5),
        data_timeout: Duration::from_secs(5),
        trust: TrustAnchors::default(),
        ..ClientConfig::default()
    }
}

/// Accepts one connection and runs `serve` on it.
async fn server<F, Fut>(serve: F) -> u16
where
    F: FnOnce(BufReader<TcpStream>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        if let Ok((stream, _)) = listener.accept().await {
            serve(BufReader::new(stream)).await;
        }
    });
    port
}

async fn line(r: &mut BufReader<TcpStream>) -> String {
    let mut s = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), r.read_line(&mut s)).await;
    s.trim_end_matches(['\r', '\n']).to_string()
}

async fn send(r: &mut BufReader<TcpStream>, text: &str) {
    let _ = r.get_mut().write_all(text.as_bytes()).await;
}

/// A server that speaks only the AUTH exchange, with the real SASL server.
async fn auth_server(mut r: BufReader<TcpStream>) {
    send(&mut r, "220 fake.test ESMTP\r\n").await;
    let _ehlo = line(&mut r).await;
    send(
        &mut r,
        "250-fake.test\r\n250 AUTH PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256\r\n",
    )
    .await;
    let auth = line(&mut r).await;
    let mut words = auth.split(' ').skip(1);
    let mech = Mechanism::from_name(words.next().unwrap_or("")).expect("a mechanism");
    let (mut exchange, mut step) =
        ServerExchange::start(mech, words.next(), "servernonce", "fake.test", b"decoy");
    for _ in 0..8 {
        step = match step {
            ServerStep::Challenge(data) => {
                send(
                    &mut r,
                    &format!("334 {}\r\n", pillarbox_proto::sasl::encode(&data)),
                )
                .await;
                let answer = line(&mut r).await;
                exchange.respond(&answer)
            }
            ServerStep::CheckPassword { password, .. } => {
                exchange.password_checked(password == PASSWORD)
            }
            ServerStep::NeedSecret { .. } => exchange.secret(Some(match mech {
                Mechanism::CramMd5 => Secret::CramMd5(CramMd5Secret::from_password(PASSWORD)),
                _ => Secret::Scram(ScramSecret::from_password(PASSWORD, b"saltsalt", 4096)),
            })),
            ServerStep::Success { .. } => {
                send(&mut r, "235 2.7.0 authentication successful\r\n").await;
                break;
            }
            ServerStep::Failure(_) => {
                send(&mut r, "535 5.7.8 authentication credentials invalid\r\n").await;
                break;
            }
        };
    }
    let _quit = line(&mut r).await;
    send(&mut r, "221 2.0.0 bye\r\n").await;
}

/// A client on `port` that has read the greeting and said EHLO.
async fn after_ehlo(port: u16) -> Client {
    let mut c = Client::connect("127.0.0.1", port, Security::Plain, config())
        .await
        .unwrap();
    c.read_greeting().await.unwrap();
    c.ehlo("client.test").await.unwrap();
    c
}
#[tokio::test]
async fn auth_succeeds_with_every_mechanism_and_hides_credentials() {
    for mech in Mechanism::ALL.iter().copied() {
        let port = server(auth_server).await;
        let mut c = after_ehlo(port).await;
        assert!(c.capabilities().unwrap().offers(mech));
        let reply = c.auth(mech, "alice", PASSWORD).await.unwrap();
        assert_eq!(reply.code.get(), 235, "{mech}: {reply}");
        c.quit().await.unwrap();
        let text = c.transcript().to_text();
        assert!(!text.contains(&pillarbox_proto::sasl::encode(PASSWORD.as_bytes())));
        assert!(!text.contains(PASSWORD), "{text}");
        assert!(text.contains("hidden"), "{text}");
    }
}

#[tokio::test]
async fn wrong_password_is_a_535_reply_not_an_error() {
    let port = server(auth_server).await;
    let mut c = after_ehlo(port).await;
    let reply = c.auth(Mechanism::Login, "alice", "wrong").await.unwrap();
    assert_eq!(reply.code.get(), 535);
}

#[tokio::test]
async fn pipelined_transaction_goes_in_one_batch() {
    // The server answers nothing until MAIL, RCPT and DATA are all in: a
    // client that waited for each reply would time out.
    let port = server(|mut r| async move {
        send(&mut r, "220 fake.test ESMTP\r\n").await;
        let _ehlo = line(&mut r).await;
        send(&mut r, "250-fake.test\r\n250 PIPELINING\r\n").await;
        let batch = [line(&mut r).await, line(&mut r).await, line(&mut r).await];
        assert_eq!(batch[2], "DATA", "{batch:?}");
        send(&mut r, "250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go ahead\r\n").await;
        let mut body = Vec::new();
        for _ in 0..100 {
            let l = line(&mut r).await;
            if l == "." {
                break;
            }
            body.push(l);
        }
        assert_eq!(body.last().map(String::as_str), Some("..dot"));
        send(&mut r, "250 2.0.0 queued\r\n").await;
        let _quit = line(&mut r).await;
        send(&mut r, "221 2.0.0 bye\r\n").await;
    })
    .await;
    let mut c = after_ehlo(port).await;
    let envelope = Envelope {
        from: "a@client.test".into(),
        to: vec!["b@fake.test".into()],
        mail_params: Vec::new(),
    };
    let outcome = c
        .send_mail(
            &envelope,
            b"Subject: x\r\n\r\n.dot\r\n",
            Transfer::Data,
            true,
        )
        .await
        .unwrap();
    assert!(outcome.pipelined);
    assert!(outcome.delivered(), "{outcome:?}");
    c.quit().await.unwrap();
    let answered: Vec<_> = c.replies().iter().map(|r| r.answered.clone()).collect();
    assert_eq!(answered[2].as_deref(), Some("MAIL FROM:<a@client.test>"));
    assert_eq!(answered[5].as_deref(), Some("<end of data>"));
}

#[tokio::test]
async fn malformed_greeting_is_refused_with_a_clear_error() {
    let port = server(|mut r| async move {
        send(&mut r, "hello there\r\n").await;
    })
    .await;
    let mut c = Client::connect("127.0.0.1", port, Security::Plain, config())
        .await
        .unwrap();
    let err = c.read_greeting().await.unwrap_err();
    assert!(
        matches!(err, ClientError::Reply(ReplyError::Malformed { .. })),
        "{err}"
    );
    assert!(c.transcript().to_text().contains("S: hello there"));
}

#[tokio::test]
async fn silent_server_times_out() {
    let port = server(|r| async move {
        tokio::time::sleep(Duration::from_secs(3)).await;
        drop(r);
    })
    .await;
    let cfg = ClientConfig {
        command_timeout: Duration::from_millis(200),
        ..config()
    };
    let mut c = Client::connect("127.0.0.1", port, Security::Plain, cfg)
        .await
        .unwrap();
    let err = c.read_greeting().await.unwrap_err();
    assert!(matches!(err, ClientError::Timeout { .. }), "{err}");
}
