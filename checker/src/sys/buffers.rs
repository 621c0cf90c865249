//! The TCP socket buffers of the stack: one anonymous mapping a flow,
//! kept for the thread's next flow when its flow ends.
//!
//! Fresh pages of a mapping are the kernel's zero page until written, so a
//! flow pays only for what it receives and sends: a one-shot tcp check (a
//! handshake, no data) touches none of its 80 KiB. Buffers from the heap
//! (`vec![0; n]`) were zeroed by memset at every check, 20 page faults and
//! 0.07 ms of a one-shot check's CPU. A long-running engine takes the
//! mappings of ended flows again: no system call and no zeroing a flow
//! (smoltcp's ring buffers never read bytes they have not written).

// unsafe: anonymous mappings (mmap, munmap) handed out as buffers.
#![allow(unsafe_code)]

use std::cell::RefCell;
use std::ptr::NonNull;

/// Bytes of a flow's receive buffer (smoltcp advertises its window from it).
pub(crate) const RX_BUFFER: usize = 64 * 1024;
/// Bytes of a flow's send buffer.
pub(crate) const TX_BUFFER: usize = 16 * 1024;

const LEN: usize = RX_BUFFER + TX_BUFFER;

/// Mappings of ended flows kept for the next ones, at most: a daemon's
/// flows at once ("--parallel") beyond it map and unmap at each flow.
const KEPT: usize = 256;

thread_local! {
    static KEPT_REGIONS: RefCell<Kept> = const { RefCell::new(Kept(Vec::new())) };
}

/// The kept mappings, unmapped when the thread ends.
struct Kept(Vec<NonNull<u8>>);

impl Drop for Kept {
    fn drop(&mut self) {
        for region in self.0.drain(..) {
            unmap(region);
        }
    }
}

/// The receive and send buffers of one flow, in one mapping of
/// `RX_BUFFER + TX_BUFFER` bytes, readable and writable, owned by this
/// value. Dropped, the mapping goes to this thread's kept ones (or is
/// unmapped).
pub(crate) struct Buffers {
    region: NonNull<u8>,
}

impl Buffers {
    /// A kept mapping, or a new one. Out of memory aborts the process, as
    /// a failed heap allocation does.
    pub(crate) fn take() -> Buffers {
        let kept = KEPT_REGIONS
            .try_with(|kept| kept.borrow_mut().0.pop())
            .ok()
            .flatten();
        Buffers {
            region: kept.unwrap_or_else(map),
        }
    }

    /// The receive and send buffers, for the socket set that the caller
    /// drops before this value.
    ///
    /// # Safety
    /// The slices say `'static` but live only as long as this value: the
    /// caller must drop everything holding them before it drops this
    /// [`Buffers`], and call this once.
    pub(crate) unsafe fn slices(&mut self) -> (&'static mut [u8], &'static mut [u8]) {
        // SAFETY: the region is LEN bytes, mapped readable and writable and
        // owned by `self`; the two slices do not overlap; their lifetime is
        // the caller's promise (above).
        unsafe {
            let rx = std::slice::from_raw_parts_mut(self.region.as_ptr(), RX_BUFFER);
            let tx = std::slice::from_raw_parts_mut(self.region.as_ptr().add(RX_BUFFER), TX_BUFFER);
            (rx, tx)
        }
    }
}

impl Drop for Buffers {
    fn drop(&mut self) {
        let region = self.region;
        let kept = KEPT_REGIONS
            .try_with(|kept| {
                let mut kept = kept.borrow_mut();
                let room = kept.0.len() < KEPT;
                if room {
                    kept.0.push(region);
                }
                room
            })
            .unwrap_or(false);
        if !kept {
            unmap(region);
        }
    }
}

fn map() -> NonNull<u8> {
    // SAFETY: a new private anonymous mapping; no existing memory is touched.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            LEN,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    match NonNull::new(ptr.cast::<u8>()) {
        Some(region) if ptr != libc::MAP_FAILED => region,
        _ => std::alloc::handle_alloc_error(
            std::alloc::Layout::from_size_align(LEN, 4096).expect("a valid layout"),
        ),
    }
}

fn unmap(region: NonNull<u8>) {
    // SAFETY: `region` is a mapping of LEN bytes made by `map` that nothing
    // refers to any more.
    unsafe { libc::munmap(region.as_ptr().cast(), LEN) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_kept_and_taken_again_and_are_writable() {
        let mut first = Buffers::take();
        let region = first.region;
        {
            // SAFETY: the slices are dropped at the end of this block,
            // before `first`.
            let (rx, tx) = unsafe { first.slices() };
            assert_eq!((rx.len(), tx.len()), (RX_BUFFER, TX_BUFFER));
            assert!(
                rx.iter().chain(tx.iter()).all(|&b| b == 0),
                "fresh pages are zero"
            );
            rx[RX_BUFFER - 1] = 1;
            tx[0] = 2;
        }
        drop(first);
        let again = Buffers::take();
        assert_eq!(
            again.region, region,
            "the ended flow's mapping is taken again"
        );
        let other = Buffers::take();
        assert_ne!(other.region, region);
    }
}
