//! Mailbox quotas: a mailbox's usage as its `maildirsize` says, and a recount
//! from the Maildir, with the limit that applies to it.

use serde::Serialize;

use pillarbox_server::directory::Directory;
use pillarbox_server::policy::limit_for;
use pillarbox_store::quota::{self, QuotaLimit, Usage};
use pillarbox_store::users::split_account;
use pillarbox_store::{MailboxAddr, MaildirStore};

use crate::{Admin, AdminError};

/// A mailbox's usage and limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct QuotaFigures {
    /// Bytes stored.
    pub bytes: u64,
    /// Messages stored.
    pub messages: u64,
    /// The byte limit; `None`: unlimited.
    pub bytes_limit: Option<u64>,
    /// The message limit; `None`: unlimited.
    pub messages_limit: Option<u64>,
}

/// A mailbox's quota report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuotaReport {
    /// `user@domain`.
    pub mailbox: String,
    /// Usage and limits.
    #[serde(flatten)]
    pub figures: QuotaFigures,
}

impl Admin {
    /// The usage of `user`'s mailbox as its `maildirsize` says (counted when it has
    /// none), with its limit: the user's quota rule in the users file, else the
    /// configured default. Safe beside a running server: nothing in the Maildir is
    /// moved or taken.
    pub fn quota(&self, user: &str) -> Result<QuotaReport, AdminError> {
        self.quota_report(user, "read quota of", quota::peek)
    }

    /// Recounts `user`'s mailbox from its Maildir and rewrites its `maildirsize`.
    pub fn recalc_quota(&self, user: &str) -> Result<QuotaReport, AdminError> {
        self.quota_report(user, "recount quota of", quota::recalc)
    }

    fn quota_report(
        &self,
        user: &str,
        op: &'static str,
        count: fn(&std::path::Path, &QuotaLimit, u32) -> std::io::Result<Usage>,
    ) -> Result<QuotaReport, AdminError> {
        let (local, domain) = split_account(user, self.primary_domain());
        let mb = MailboxAddr::new(domain, local)?;
        let users = Directory::open(self.cfg.users_file(), self.primary_domain());
        let limit = limit_for(&self.cfg.quota, &users.current(), &mb);
        // Not MaildirStore::open: the server may be running on this data directory.
        let maildir = MaildirStore::maildir_path_in(&self.cfg.data_dir, &mb);
        if !maildir.is_dir() {
            return Err(AdminError::NoMaildir {
                mailbox: mb.to_string(),
                path: maildir,
            });
        }
        let usage = count(&maildir, &limit, self.cfg.storage.file_mode.0).map_err(|source| {
            AdminError::Maildir {
                op,
                path: maildir.clone(),
                source,
            }
        })?;
        Ok(QuotaReport {
            mailbox: mb.to_string(),
            figures: QuotaFigures {
                bytes: usage.bytes,
                messages: usage.messages,
                bytes_limit: limit.bytes,
                messages_limit: limit.messages,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_env::Env;
    use std::fs;

    #[test]
    fn recalc_counts_a_small_maildir_and_get_reads_it_back() {
        let env = Env::new();
        fs::write(
            env.cfg.users_file(),
            "alice@example.test:{PLAIN}a::::::userdb_quota_rule=*:bytes=1000\n",
        )
        .expect("users");
        let mb = MailboxAddr::new("example.test", "alice").expect("mailbox");
        let maildir = MaildirStore::maildir_path_in(&env.cfg.data_dir, &mb);
        for sub in ["cur", "new", "tmp", ".Sent/cur", ".Sent/new", ".Sent/tmp"] {
            fs::create_dir_all(maildir.join(sub)).expect("mkdir");
        }
        fs::write(maildir.join("new/1.a.host,S=100"), vec![b'x'; 100]).expect("msg");
        fs::write(maildir.join("cur/2.b.host,S=50:2,S"), vec![b'y'; 50]).expect("msg");
        fs::write(maildir.join(".Sent/cur/3.c.host,S=25:2,S"), vec![b'z'; 25]).expect("msg");
        let (admin, _) = env.admin_at(0);

        let report = admin.recalc_quota("Alice").expect("recalc");
        assert_eq!(report.mailbox, "alice@example.test");
        assert_eq!(
            report.figures,
            QuotaFigures {
                bytes: 175,
                messages: 3,
                bytes_limit: Some(1000),
                messages_limit: None,
            }
        );
        assert!(maildir.join("maildirsize").is_file());
        assert_eq!(admin.quota("alice@example.test").expect("get"), report);
    }

    #[test]
    fn quota_of_a_mailbox_without_maildir_names_the_path() {
        let env = Env::new();
        let (admin, _) = env.admin_at(0);
        let err = admin.quota("nobody").expect_err("no maildir");
        let text = err.to_string();
        assert!(
            text.starts_with("nobody@example.test has no Maildir at "),
            "{text}"
        );
        assert!(matches!(
            admin.quota("../x@example.test"),
            Err(AdminError::Store(_))
        ));
    }
}
