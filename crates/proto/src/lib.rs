//! Sans-IO SMTP for Pillarbox.
//!
//! Nothing here touches a socket, a file or a clock. The server feeds a
//! [`Session`] the bytes it received ([`Input`]) and carries out the
//! [`Event`]s it returns: replies to send, questions for policy and storage
//! ([`Question`], answered with [`Session::answer`]), message bytes to store.
//! So every reply of the contract is deterministic and testable without a
//! network (see `tests/dialogs/`).

pub mod address;
pub mod command;
pub mod dot_decoder;
pub mod input;
pub mod sasl;
pub mod session;
pub mod spare;

pub use address::{Domain, ForwardPath, Mailbox, ReversePath};
pub use input::Input;
pub use session::{Answer, Event, Question, Session, SessionConfig, Transaction};
