//! The durable mail queue.

pub mod dsn;
