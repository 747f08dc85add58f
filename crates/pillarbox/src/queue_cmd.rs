//! `pillarbox queue list|show|retry|hold|release|delete|bounce`: the running
//! server's queue, through its control socket.

use std::process::ExitCode;

use pillarbox_admin::Admin;
use pillarbox_queue::{Message, State, Summary};
use pillarbox_server::control::Request;

/// What `pillarbox queue` can do.
#[derive(clap::Subcommand)]
pub enum QueueCommand {
    /// One line per message: id, age, size, sender, and each recipient's
    /// state, last reply and next attempt.
    List {
        /// The messages as JSON (an array), as the server keeps them.
        #[arg(long)]
        json: bool,
    },
    /// One message: its envelope, each recipient's attempts, its header.
    Show {
        /// The queue id (as in `250 2.0.0 ok: queued as <id>`).
        id: String,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Try now, instead of at the next attempt's time.
    Retry {
        /// The queue id.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        /// Every message in the queue.
        #[arg(long)]
        all: bool,
    },
    /// No attempt for this message until it is released.
    Hold {
        /// The queue id.
        id: String,
    },
    /// Attempts again for a held message (at once).
    Release {
        /// The queue id.
        id: String,
    },
    /// Remove the message from the queue; no one is told (no DSN).
    Delete {
        /// The queue id.
        id: String,
    },
    /// Fail every recipient still waiting, now, and send the sender a DSN.
    Bounce {
        /// The queue id.
        id: String,
    },
}

/// Runs `cmd` against the server of `admin`'s data directory.
pub fn run(cmd: QueueCommand, admin: &Admin) -> anyhow::Result<ExitCode> {
    match cmd {
        QueueCommand::List { json } => {
            let (messages, now) = crate::block_on(admin.queue_list())??;
            if json {
                println!("{}", serde_json::to_string_pretty(&messages)?);
            } else if messages.is_empty() {
                println!("the queue is empty");
            } else {
                for m in &messages {
                    println!("{}", line(m, now));
                }
                println!("{} message(s)", messages.len());
            }
        }
        QueueCommand::Show { id, json } => {
            let entry = crate::block_on(admin.queue_show(&id))??;
            if json {
                println!("{}", serde_json::to_string_pretty(&entry)?);
            } else {
                print!("{}", show(&entry.message, &entry.header, entry.now));
            }
        }
        QueueCommand::Retry { id, all } => {
            let r = crate::block_on(admin.queue(Request::Retry {
                id: if all { None } else { id },
            }))??;
            for m in &r.messages {
                println!("{}", line(&m.summary(), r.now));
            }
            println!("{} message(s) tried again", r.messages.len());
        }
        QueueCommand::Hold { id } => done(admin, Request::Hold { id }, "held")?,
        QueueCommand::Release { id } => done(admin, Request::Release { id }, "released")?,
        QueueCommand::Delete { id } => done(admin, Request::Delete { id }, "deleted (no DSN)")?,
        QueueCommand::Bounce { id } => {
            done(admin, Request::Bounce { id }, "returned to its sender")?
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn done(admin: &Admin, req: Request, what: &str) -> anyhow::Result<()> {
    let r = crate::block_on(admin.queue(req))??;
    for m in &r.messages {
        println!("{}: {what}", m.id);
    }
    Ok(())
}

/// `3d4h`, `5m12s`, `40s`.
fn span(secs: u64) -> String {
    let (d, h, m, s) = (
        secs / 86400,
        secs % 86400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m{s:02}s"),
        (0, _, _) => format!("{h}h{m:02}m"),
        _ => format!("{d}d{h:02}h"),
    }
}

/// One message on one line.
fn line(m: &Summary, now: u64) -> String {
    let rcpts: Vec<String> = m
        .rcpts
        .iter()
        .map(|r| {
            let mut s = format!("{} {}", r.target, r.state.as_str());
            if let Some(reply) = &r.last_reply {
                s.push_str(&format!(" ({reply})"));
            }
            if !r.state.is_final() && !m.held {
                if r.next_attempt <= now {
                    s.push_str(", next attempt now");
                } else {
                    s.push_str(&format!(", next in {}", span(r.next_attempt - now)));
                }
            }
            s
        })
        .collect();
    format!(
        "{}  {}  {} B  <{}>{}  {}",
        m.id,
        span(now.saturating_sub(m.arrival)),
        m.size,
        m.sender,
        if m.held { "  [held]" } else { "" },
        rcpts.join("; ")
    )
}

/// The whole story of one message.
fn show(m: &Message, header: &str, now: u64) -> String {
    let mut out = String::new();
    out.push_str(&format!("id:        {}\n", m.id));
    out.push_str(&format!(
        "arrived:   {} ago (session {})\n",
        span(now.saturating_sub(m.arrival)),
        m.session()
    ));
    out.push_str(&format!("sender:    <{}>\n", m.sender));
    out.push_str(&format!("size:      {} bytes\n", m.size));
    if let Some(e) = &m.envid {
        out.push_str(&format!("envid:     {e}\n"));
    }
    if let Some(r) = m.ret {
        out.push_str(&format!("ret:       {r:?}\n"));
    }
    if m.held {
        out.push_str("held:      yes (pillarbox queue release)\n");
    }
    for r in &m.rcpts {
        out.push_str(&format!(
            "recipient: {} -> {}: {}",
            r.address,
            r.target,
            r.state.as_str()
        ));
        if r.state == State::Deferred {
            out.push_str(&format!(
                ", next attempt in {}",
                span(r.next_attempt.saturating_sub(now))
            ));
        }
        out.push('\n');
        for a in &r.history {
            out.push_str(&format!(
                "  {} ago: {}\n",
                span(now.saturating_sub(a.at)),
                a.reply
            ));
        }
    }
    out.push_str("header:\n");
    for l in header.lines() {
        out.push_str(&format!("  {l}\n"));
    }
    out
}
