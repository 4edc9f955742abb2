//! Open leaf tables (`porwatch.leaves=open`, the default;
//! docs/pagetables.md, "Open leaf tables").
//!
//! While no CPU has TCR2_EL1.POE set, no privileged store is checked
//! against an overlay, so no store can be a hazard; and a store to a
//! last-level table never links or unlinks a table, so the tracker does
//! not need to see it either. Such a page is then left writable at stage 2:
//! a new last-level table is never protected (the tracker's `ProtectLeaf`:
//! no TLB invalidation, which under QEMU empties the whole TLB), and one
//! protected before is opened at its next trapped store, when
//! `Watch::refresh_leaf` finds it holds one last-level table (opening
//! needs no TLB invalidation either: stage2::allow_write). Stock kernels'
//! PTE updates stop trapping.
//!
//! The invariant: a tracked page is writable at stage 2 only while its bit
//! is set here, and a bit is set only under the WATCH lock, while
//! [`relaxed`] holds and the tracker calls the page a leaf. What could end
//! a page's leaf status closes it first (pt.rs: a TTBR root set inside it,
//! a TCR_EL1 change, a pending store-exclusive to it; the tracker's
//! Protect/Unprotect and a step's start and end forget it while they set
//! the permission themselves). A CPU that sets POE marks itself in
//! `POE_CPUS` and then closes every open page under the WATCH lock before
//! it returns to the guest, so a concurrent opener either finished before
//! (and is closed) or sees the mark.
//!
//! What is not seen while a page is open: stores to it (not in
//! `pt_stats.stores`), device writes to it (DMA is not stopped), and
//! unprivileged stores under TCR2_EL1.E0POE -- they would need the kernel
//! to map a page table into user space. `porwatch.leaves=trap` keeps every
//! table page write-protected.
use crate::arch::{fast_path, stage2};
use crate::boot::config;
use core::sync::atomic::{AtomicU64, Ordering};
use porwatch_monitor::cmdline::Leaves;
use porwatch_monitor::tap::PAGE_SIZE;

/// Pages left writable (bit layout of `fast_path::leaf_bit`).
static OPEN: [AtomicU64; fast_path::LEAF_MAP_WORDS] =
    [const { AtomicU64::new(0) }; fast_path::LEAF_MAP_WORDS];
/// Bit per CPU whose TCR2_EL1.POE is set (as the guest sees it).
static POE_CPUS: AtomicU64 = AtomicU64::new(0);
/// Times a page was opened (`pt_stats.leaves_opened`).
static OPENED: AtomicU64 = AtomicU64::new(0);

/// Last-level tables may be left writable now.
fn relaxed() -> bool {
    config().opts.leaves == Leaves::Open && POE_CPUS.load(Ordering::SeqCst) == 0
}

/// After a store to `page`, which holds one last-level table (the caller
/// holds the WATCH lock and checked `Tracker::is_leaf_page`): leave it
/// writable if no overlay can deny a store.
pub(super) fn open(page: u64) {
    if !relaxed() {
        return;
    }
    let Some((w, bit)) = fast_path::leaf_bit(page) else { return };
    let was_open = OPEN[w].fetch_or(bit, Ordering::SeqCst) & bit != 0;
    if stage2::grants_write(page) != Some(true) {
        stage2::allow_write(page);
    } else if was_open {
        // Open already, yet this CPU's store trapped: its TLB still held
        // the read-only entry (stage2::allow_write).
        stage2::forget_stale_write_fault(page);
    }
    if !was_open {
        OPENED.fetch_add(1, Ordering::Relaxed);
    }
}

/// `page` just became a tracked page holding one last-level table (the
/// tracker's `ProtectLeaf`, under the WATCH lock): true if it stays
/// writable (it was, as untracked memory: no TLB invalidation), false if
/// the caller must protect it.
pub(super) fn open_new(page: u64) -> bool {
    let Some((w, bit)) = fast_path::leaf_bit(page) else { return false };
    if !relaxed() {
        OPEN[w].fetch_and(!bit, Ordering::SeqCst);
        return false;
    }
    OPEN[w].fetch_or(bit, Ordering::SeqCst);
    if stage2::grants_write(page) != Some(true) {
        stage2::allow_write(page);
    }
    OPENED.fetch_add(1, Ordering::Relaxed);
    true
}

/// `page` is write-protected again (if it was open); under the WATCH lock.
pub(super) fn close(page: u64) {
    if let Some((w, bit)) = fast_path::leaf_bit(page) {
        if OPEN[w].fetch_and(!bit, Ordering::SeqCst) & bit != 0 {
            stage2::set_writable(page, false);
        }
    }
}

/// `page`'s stage-2 permission is being set by the caller (it became
/// tracked, or untracked, or is stepped): only forget it was open.
/// Returns whether it was (then it is writable now).
pub(super) fn forget(page: u64) -> bool {
    fast_path::leaf_bit(page).is_some_and(|(w, bit)| OPEN[w].fetch_and(!bit, Ordering::SeqCst) & bit != 0)
}

/// Every open page is write-protected again; under the WATCH lock.
pub(super) fn close_all() {
    let Some(base) = fast_path::leaf_map_base() else { return };
    for (i, word) in OPEN.iter().enumerate() {
        // Openers hold the WATCH lock too: a zero word stays zero here.
        if word.load(Ordering::Relaxed) == 0 {
            continue;
        }
        let mut bits = word.swap(0, Ordering::SeqCst);
        while bits != 0 {
            let b = bits.trailing_zeros() as u64;
            bits &= bits - 1;
            stage2::set_writable(base + (i as u64 * 64 + b) * PAGE_SIZE, false);
        }
    }
}

/// The guest on this CPU set its TCR2_EL1 (the value it reads back):
/// whether privileged overlays are on decides whether pages may stay open.
/// Called without the WATCH lock (taken here when pages must close; the
/// tap calls it holding its own CPU's tap lock, which pt.rs never takes
/// for another CPU).
pub fn on_tcr2(cpu: usize, tcr2: u64) {
    let me = 1u64 << cpu;
    if tcr2 & porwatch_monitor::s1::overlay::TCR2_POE == 0 {
        POE_CPUS.fetch_and(!me, Ordering::SeqCst);
        return;
    }
    // Every CPU whose POE goes on closes (nothing left to do unless it was
    // the first): returning as soon as another CPU's bit is seen could
    // enter the guest before that CPU's close_all finished.
    if POE_CPUS.fetch_or(me, Ordering::SeqCst) & me == 0 && config().opts.leaves == Leaves::Open {
        let _w = super::WATCH.lock();
        close_all();
    }
}

/// `pt_stats.leaves_opened`.
pub(super) fn opened() -> u64 {
    OPENED.load(Ordering::Relaxed)
}
