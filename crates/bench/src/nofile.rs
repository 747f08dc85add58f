//! The descriptors a run needs: one per connection, and some to spare.

use crate::Observer;

/// Raises the open-file limit toward `needed` and warns when even the hard
/// limit is below it: connections past it would fail with EMFILE.
pub(crate) fn check_nofile(needed: u64, observer: &dyn Observer) {
    // When the limit cannot be read, nothing is known and nothing said.
    let Ok(have) = pillarbox_client::rlimit::raise_open_files(needed) else {
        return;
    };
    if have < needed {
        observer.warning(&format!(
            "{needed} descriptors needed, the limit is {have} \
             (raise the hard limit: ulimit -Hn); connections past it fail"
        ));
    }
}
