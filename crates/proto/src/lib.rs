//! Sans-IO SMTP for Pillarbox.
//!
//! Nothing here touches a socket, a file or a clock. The server feeds a
//! [`Session`] the bytes it received ([`Input`]) and carries out the
//! [`Event`]s it returns: replies to send, questions for policy and storage
//! ([`Question`], each kind answered with its own `Session::answer_*` method,
//! so an answer fits its question by type), message bytes to store.
//! So every reply of the contract is deterministic and testable without a
//! network (see `tests/dialogs/`).

pub mod address;
pub mod command;
pub mod dot_decoder;
pub mod extension;
pub mod hops;
pub mod input;
pub mod sasl;
pub mod session;
pub mod spare;
pub mod xtext;

pub use address::{Domain, ForwardPath, Mailbox, ReversePath};
pub use command::{Body, MailCommand, MailParams, Notify, Orcpt, RcptCommand, RcptParams, Ret};
pub use extension::Extension;
pub use input::Input;
pub use session::{
    BeginQuestion, DeliverQuestion, Event, PasswordAnswer, PasswordQuestion, Question, Recipient,
    RecipientQuestion, SecretQuestion, SenderQuestion, Session, SessionConfig, StatusQuestion,
    Transaction,
};
