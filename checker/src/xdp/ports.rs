//! The per-port flow counts the program looks at before it hashes a key
//! (`checker_common::PORTS_MAP`): shared by every vipcheck process of an
//! interface through a memory mapping of the array, changed only by
//! atomic additions and subtractions.

// unsafe: mapping the array's memory, and atomics over that mapping.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

use aya::maps::MapData;
use checker_common::{FlowKey, PORT_COUNT};

/// The PORTS array of one program, mapped into this process.
pub(super) struct PortCounts {
    counts: NonNull<AtomicU64>,
    /// Kept open for the mapping's sake (a mapping holds the map anyway).
    _map: MapData,
}

/// Bytes mapped: a u64 per port (512 KiB; only the pages of the ports a
/// process uses are ever touched). A u64 because the kernel lays an
/// array's values out 8 bytes apart whatever their size: with u64 values
/// the mapping is a plain `[u64; PORT_COUNT]`.
const MAPPED: usize = PORT_COUNT as usize * std::mem::size_of::<u64>();

impl PortCounts {
    /// Maps `map` (an array of [`PORT_COUNT`] u64, BPF_F_MMAPABLE).
    pub(super) fn map(map: MapData) -> io::Result<PortCounts> {
        // SAFETY: a shared read-write mapping of the whole array, whose fd
        // is valid; the kernel checks the size and the flag.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                MAPPED,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                map.fd().as_fd().as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let counts = NonNull::new(ptr.cast::<AtomicU64>()).ok_or_else(io::Error::last_os_error)?;
        Ok(PortCounts { counts, _map: map })
    }

    fn count(&self, key: &FlowKey) -> &AtomicU64 {
        let index = key.port_index() as usize;
        debug_assert!(index < PORT_COUNT as usize);
        // SAFETY: `index` < PORT_COUNT (a u16), inside the mapping, which
        // lives as long as `self`; the program and other processes change
        // these u64 only atomically (and the kernel aligns the mapping to
        // a page).
        unsafe { &*self.counts.as_ptr().add(index) }
    }

    /// One flow more with `key`'s local port: before the flow is inserted.
    pub(super) fn add(&self, key: &FlowKey) {
        self.count(key).fetch_add(1, Ordering::SeqCst);
    }

    /// One flow less: after the flow was removed (by this call's caller
    /// and nobody else: only a successful removal subtracts). Never below
    /// zero.
    pub(super) fn sub(&self, key: &FlowKey) {
        let _ = self
            .count(key)
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
    }
}

impl Drop for PortCounts {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `map`, unmapped once.
        unsafe { libc::munmap(self.counts.as_ptr().cast(), MAPPED) };
    }
}
