//! The disk reserve at MAIL and RCPT (`452 4.3.1`): below the reserve nothing is
//! taken, and a declared SIZE that does not fit above it is refused at once.

use std::sync::Arc;

use super::{ready, Decision, PolicyFuture, RecipientCheck, RecipientCx, SenderCheck, SenderCx};
use crate::services::Services;
use crate::storage::DiskWatch;

/// Refuses mail the data filesystem has no room for.
pub struct DiskReserve {
    disk: Arc<DiskWatch>,
}

impl DiskReserve {
    /// Watches `disk`.
    pub fn new(disk: Arc<DiskWatch>) -> Self {
        Self { disk }
    }
}

impl SenderCheck for DiskReserve {
    fn name(&self) -> &'static str {
        "disk-reserve"
    }

    fn check<'a>(&'a self, _: &'a Services, cx: SenderCx<'a>) -> PolicyFuture<'a> {
        ready(match self.disk.check(cx.size) {
            Ok(()) => Decision::GO_ON,
            Err(r) => Decision::stop(r),
        })
    }
}

impl RecipientCheck for DiskReserve {
    fn name(&self) -> &'static str {
        "disk-reserve"
    }

    fn check<'a>(&'a self, _: &'a Services, _: RecipientCx<'a>) -> PolicyFuture<'a> {
        // The SIZE was weighed at MAIL; here only the reserve itself.
        ready(match self.disk.check(None) {
            Ok(()) => Decision::GO_ON,
            Err(r) => Decision::stop(r),
        })
    }
}
