//! Free space on the data filesystem, for the disk reserve policy
//! (`[storage] reserve`): the server refuses new mail with `452 4.3.1` before the
//! disk is actually full, so deliveries already under way can still finish.

use std::ffi::CString;
use std::io;
use std::mem::MaybeUninit;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Size and free space of one filesystem, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskSpace {
    /// Bytes an unprivileged process may still write (`f_bavail`): the root-reserved
    /// blocks are not ours to count on.
    pub available: u64,
    /// Size of the filesystem (`f_blocks`).
    pub total: u64,
}

/// Reports the space of the filesystem that holds `path` (statvfs(3)).
///
/// A path containing a NUL byte cannot be passed to the C library and is an
/// `InvalidInput` error.
pub fn space(path: &Path) -> io::Result<DiskSpace> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    let mut stat = MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c_path` is a valid NUL-terminated string that outlives the call, and
    // `stat` points to writable memory of the right size and alignment.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), stat.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it filled in the whole struct.
    let stat = unsafe { stat.assume_init() };
    Ok(from_statvfs(&stat))
}

// The field types differ between platforms (u64 on 64-bit Linux, u32 on some 32-bit
// ones), so the casts are needed somewhere even where clippy sees them as no-ops.
#[allow(clippy::unnecessary_cast)]
fn from_statvfs(stat: &libc::statvfs) -> DiskSpace {
    let frsize = stat.f_frsize as u64;
    DiskSpace {
        // Saturate rather than wrap: a nonsense answer must not look like a tiny disk.
        available: (stat.f_bavail as u64).saturating_mul(frsize),
        total: (stat.f_blocks as u64).saturating_mul(frsize),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tempdir_filesystem_has_space_within_its_size() {
        let dir = tempfile::tempdir().expect("tempdir");
        let space = space(dir.path()).expect("statvfs");
        assert!(space.total > 0);
        assert!(space.available <= space.total);
    }

    #[test]
    fn nul_in_path_is_invalid_input() {
        use std::ffi::OsStr;
        let path = Path::new(OsStr::from_bytes(b"/tmp/a\0b"));
        let err = space(path).expect_err("NUL must be refused");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn missing_path_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = space(&dir.path().join("nope")).expect_err("missing path");
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}
