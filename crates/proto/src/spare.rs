//! Spare byte buffers, kept per thread between uses.
//!
//! A busy session takes a receive buffer for every read, a body buffer for
//! every chunk of message data and a write buffer for every message, and
//! gives each back as soon as it is empty, so that an idle session holds
//! none (an idle connection costs no buffer). Allocating and freeing
//! those buffers each time went through the allocator's slow paths (a 16 or
//! 64 KiB block is too large for its per-thread caches), and a block freed on
//! another thread than the one that allocated it takes that thread's arena
//! lock. So a buffer given back here is kept for the next `take` on the same
//! thread, within a bound: at most [`KEEP`] buffers of each size class (powers
//! of two from [`SMALLEST`] to [`LARGEST`]) and none of more than twice
//! [`LARGEST`], so a thread never holds more than 2 MiB of spares (under
//! 1 MiB with the exact sizes the server asks for), however many sessions it
//! serves.

use std::cell::RefCell;

/// The smallest buffer kept, in bytes (smaller ones are cheap to allocate).
pub const SMALLEST: usize = 4 * 1024;
/// The largest buffer kept, in bytes.
pub const LARGEST: usize = 64 * 1024;
/// Buffers kept per size class and thread.
pub const KEEP: usize = 8;

/// Size classes: powers of two from SMALLEST to LARGEST.
const CLASSES: usize = (LARGEST / SMALLEST).trailing_zeros() as usize + 1;

thread_local! {
    static SPARES: RefCell<[Vec<Vec<u8>>; CLASSES]> = const { RefCell::new([const { Vec::new() }; CLASSES]) };
}

/// The class whose buffers all hold at least `cap` bytes, if kept at all.
fn class_for_take(cap: usize) -> Option<usize> {
    if cap > LARGEST {
        return None;
    }
    let size = cap.max(SMALLEST).next_power_of_two();
    Some((size / SMALLEST).trailing_zeros() as usize)
}

/// The class a buffer of capacity `cap` can serve (the largest power of two
/// not above it), if kept at all.
fn class_for_give(cap: usize) -> Option<usize> {
    if cap < SMALLEST {
        return None;
    }
    let size = 1usize << cap.ilog2();
    Some((size.min(LARGEST) / SMALLEST).trailing_zeros() as usize)
}

/// An empty buffer with room for at least `cap` bytes: a spare one of this
/// thread's if there is one, else a new one (rounded up to its size class).
pub fn take(cap: usize) -> Vec<u8> {
    let Some(class) = class_for_take(cap) else {
        return Vec::with_capacity(cap);
    };
    SPARES
        .try_with(|s| s.borrow_mut()[class].pop())
        .ok()
        .flatten()
        .unwrap_or_else(|| Vec::with_capacity(SMALLEST << class))
}

/// Gives a buffer back: kept (emptied) for a later [`take`] on this thread
/// if its class has room, else freed.
pub fn give(mut buf: Vec<u8>) {
    let Some(class) = class_for_give(buf.capacity()) else {
        return;
    };
    // A buffer grown far beyond the largest class is freed, not kept.
    if buf.capacity() > 2 * LARGEST {
        return;
    }
    buf.clear();
    let _ = SPARES.try_with(|s| {
        let mut s = s.borrow_mut();
        if s[class].len() < KEEP {
            s[class].push(buf);
        }
    });
}

/// Bytes of spare buffers this thread holds.
#[cfg(test)]
fn held() -> usize {
    SPARES
        .try_with(|s| {
            s.borrow()
                .iter()
                .flat_map(|c| c.iter().map(Vec::capacity))
                .sum()
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_given_buffer_is_taken_again_on_the_same_thread() {
        let mut b = take(16 * 1024);
        assert!(b.capacity() >= 16 * 1024);
        b.extend_from_slice(b"leftover");
        let ptr = b.as_ptr();
        give(b);
        let again = take(10 * 1024);
        assert_eq!(again.as_ptr(), ptr, "the spare was reused");
        assert!(again.is_empty(), "a spare comes back empty");
    }

    #[test]
    fn a_spare_too_small_for_the_request_is_not_handed_out() {
        give(Vec::with_capacity(4 * 1024));
        let b = take(8 * 1024);
        assert!(b.capacity() >= 8 * 1024);
    }

    #[test]
    fn each_thread_keeps_a_bounded_number_of_bytes() {
        std::thread::spawn(|| {
            for _ in 0..100 {
                for cap in [1, 4 * 1024, 5000, 16 * 1024, 64 * 1024, 100 * 1024, 1 << 20] {
                    give(Vec::with_capacity(cap));
                }
            }
            let bound: usize = (0..CLASSES).map(|c| KEEP * 2 * (SMALLEST << c)).sum();
            assert!(held() > 0, "some were kept");
            assert!(held() <= bound, "held {} bytes, bound {bound}", held());
        })
        .join()
        .unwrap();
    }

    #[test]
    fn buffers_outside_the_classes_are_neither_kept_nor_rounded() {
        assert!(take(LARGEST + 1).capacity() > LARGEST);
        give(Vec::with_capacity(LARGEST * 4));
        give(Vec::with_capacity(SMALLEST - 1));
        assert_eq!(held(), 0, "too large and too small buffers are freed");
    }
}
