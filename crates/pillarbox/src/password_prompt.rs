//! Asking for a password on the terminal with echo off: `pillarbox users add|passwd`
//! and `pillarbox probe --auth`.
//!
//! The question goes to `/dev/tty`, not standard input, so a redirected standard
//! input is never read as a password by mistake, and the typed characters are not
//! shown (the newline still is, so the next output starts on a line of its own).

use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::io::AsRawFd;

/// Longest answer read; a terminal line in canonical mode holds no more.
const MAX_ANSWER: u64 = 4096;

/// What was typed.
#[derive(Debug)]
pub struct Answer {
    /// The line, without its line end.
    pub text: String,
    /// The line was ended with Enter; false when input ended first (Ctrl-D).
    pub complete: bool,
}

/// Why no password was read.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    /// `/dev/tty` could not be opened: no controlling terminal (CI, a daemon).
    #[error("no terminal")]
    NoTerminal(#[source] io::Error),
    /// The terminal's settings could not be read.
    #[error("read terminal settings")]
    ReadSettings(#[source] io::Error),
    /// Echo could not be switched off.
    #[error("switch terminal echo off")]
    EchoOff(#[source] io::Error),
    /// Writing the prompt failed.
    #[error("write the password prompt")]
    Write(#[source] io::Error),
    /// Reading the answer failed.
    #[error("read the password from the terminal")]
    Read(#[source] io::Error),
}

impl PromptError {
    /// The operating system's error.
    pub fn io(&self) -> &io::Error {
        match self {
            PromptError::NoTerminal(e)
            | PromptError::ReadSettings(e)
            | PromptError::EchoOff(e)
            | PromptError::Write(e)
            | PromptError::Read(e) => e,
        }
    }
}

/// Shows `prompt` on the terminal and reads one line with echo off.
pub fn ask_hidden(prompt: &str) -> Result<Answer, PromptError> {
    let tty = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(PromptError::NoTerminal)?;
    let echo = EchoOff::new(&tty)?;
    let mut writer = &tty;
    writer
        .write_all(prompt.as_bytes())
        .and_then(|()| writer.flush())
        .map_err(PromptError::Write)?;
    let mut line = String::new();
    BufReader::new(&tty)
        .take(MAX_ANSWER)
        .read_line(&mut line)
        .map_err(PromptError::Read)?;
    drop(echo);
    let complete = line.ends_with('\n');
    if !complete {
        // End of input: no newline was echoed; start the next output on its own line.
        writer.write_all(b"\n").map_err(PromptError::Write)?;
    }
    Ok(Answer {
        text: strip_line_end(line),
        complete,
    })
}

/// `line` without one trailing `\n` or `\r\n`.
pub fn strip_line_end(mut line: String) -> String {
    if line.ends_with('\n') {
        line.pop();
        if line.ends_with('\r') {
            line.pop();
        }
    }
    line
}

/// Terminal echo switched off (the newline still echoed) until dropped.
struct EchoOff<'a> {
    tty: &'a fs::File,
    saved: libc::termios,
}

impl<'a> EchoOff<'a> {
    fn new(tty: &'a fs::File) -> Result<Self, PromptError> {
        let fd = tty.as_raw_fd();
        // SAFETY: termios is a plain C struct of integers and arrays, for which all
        // zero bytes is a valid value; tcgetattr overwrites it on success.
        let mut term: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: fd is open for as long as `tty` is borrowed, and `term` is a valid,
        // writable termios.
        if unsafe { libc::tcgetattr(fd, &mut term) } != 0 {
            return Err(PromptError::ReadSettings(io::Error::last_os_error()));
        }
        let saved = term;
        term.c_lflag &= !libc::ECHO;
        term.c_lflag |= libc::ECHONL;
        // SAFETY: fd is open as above; `term` is the terminal's own settings with
        // two flags changed, and tcsetattr only reads it.
        if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &term) } != 0 {
            return Err(PromptError::EchoOff(io::Error::last_os_error()));
        }
        Ok(EchoOff { tty, saved })
    }
}

impl Drop for EchoOff<'_> {
    fn drop(&mut self) {
        // SAFETY: the guard borrows the file, so the descriptor is still open; it
        // restores the settings tcgetattr read from it in `new`, which tcsetattr
        // only reads.
        unsafe { libc::tcsetattr(self.tty.as_raw_fd(), libc::TCSANOW, &self.saved) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_end_is_not_part_of_the_password() {
        assert_eq!(strip_line_end("pw\n".into()), "pw");
        assert_eq!(strip_line_end("pw\r\n".into()), "pw");
        assert_eq!(strip_line_end("pw".into()), "pw");
        assert_eq!(strip_line_end("p w \n".into()), "p w ");
    }
}
