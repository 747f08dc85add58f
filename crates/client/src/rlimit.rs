//! The open-file limit of this process. Every connection is a descriptor:
//! a server holding `limits.sessions` sessions and a load generator holding
//! thousands of idle connections both need more than the usual soft limit
//! of 1024, and may raise it as far as the hard limit without privilege.

use std::io;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit when it is below
/// `wanted` (`u64::MAX`: whenever it is below the hard limit). Returns the
/// soft limit in force afterwards, which is still below `wanted` when the
/// hard limit is.
// `rlim_t` is `u64` on Linux, the only system Pillarbox runs on.
pub fn raise_open_files(wanted: u64) -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes into the rlimit we own and pass by
    // a valid, exclusive pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let soft = lim.rlim_cur;
    if soft >= wanted || lim.rlim_cur >= lim.rlim_max {
        return Ok(soft);
    }
    let raised = libc::rlimit {
        rlim_cur: lim.rlim_max,
        rlim_max: lim.rlim_max,
    };
    // SAFETY: setrlimit only reads the rlimit we own and pass by a valid
    // pointer; raising the soft limit up to the hard one needs no privilege.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
        Ok(raised.rlim_cur)
    } else {
        // The old limit still holds: say what it is.
        Ok(soft)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_in_force_is_reported_and_never_lowered() {
        let before = raise_open_files(0).expect("getrlimit");
        assert!(before > 0);
        let after = raise_open_files(u64::MAX).expect("getrlimit");
        assert!(after >= before);
    }
}
