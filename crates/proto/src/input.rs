//! The bytes a session has received and not yet consumed.

/// A receive buffer: the driver appends what it reads, the session consumes.
/// Capacity is given back once it is empty, so an idle connection holds none.
#[derive(Debug, Default)]
pub struct Input {
    buf: Vec<u8>,
    start: usize,
}

impl Input {
    pub fn new() -> Self {
        Self::default()
    }

    /// The unconsumed bytes.
    pub fn data(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.buf.len()
    }

    pub fn len(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Appends received bytes.
    pub fn extend(&mut self, bytes: &[u8]) {
        self.compact();
        self.buf.extend_from_slice(bytes);
    }

    /// The vector to read into (already compacted); append only.
    pub fn read_target(&mut self) -> &mut Vec<u8> {
        self.compact();
        &mut self.buf
    }

    pub fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.buf.len());
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
    }

    /// Drops every unconsumed byte (RFC 3207 5 / CVE-2011-0411: nothing sent in
    /// plaintext before the TLS handshake may be read as a command after it).
    pub fn clear(&mut self) {
        self.buf.clear();
        self.start = 0;
    }

    /// Gives the buffer's memory back when nothing is pending (an idle
    /// connection holds none), to this thread's spares for the next read.
    pub fn release(&mut self) {
        if self.is_empty() {
            crate::spare::give(std::mem::take(&mut self.buf));
            self.start = 0;
        }
    }

    fn compact(&mut self) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
    }
}
