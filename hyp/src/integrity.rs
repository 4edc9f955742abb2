//! A digest of hyp's code and read-only data ([`Layout::start`] to
//! [`Layout::rodata_end`]: text, rodata, relocations; nothing there changes
//! after boot.S relocated the image) taken at boot and compared when the
//! guest stops. Stage 2 and the SMMU keep the guest and its devices away
//! from hyp memory; this checks that they did. A mismatch is a hypervisor
//! failure (panic: message on both UARTs, a `panic` record, exit 70).
use crate::arch::layout::Layout;
use core::sync::atomic::{AtomicU64, Ordering};
use porwatch_monitor::digest::fnv1a64;

static START: AtomicU64 = AtomicU64::new(0);
static END: AtomicU64 = AtomicU64::new(0);
static AT_BOOT: AtomicU64 = AtomicU64::new(0);

fn digest(start: u64, end: u64) -> u64 {
    let words = (start..end).step_by(8).map(|a| {
        // SAFETY: hyp's own image, mapped (RX / RO) at EL2, 8-byte aligned
        // (the linker script aligns both ends to pages).
        unsafe { core::ptr::read_volatile(a as *const u64) }
    });
    fnv1a64(words)
}

/// Takes the boot digest (after relocation, with the MMU on).
pub fn record(layout: &Layout) {
    START.store(layout.start, Ordering::Relaxed);
    END.store(layout.rodata_end, Ordering::Relaxed);
    AT_BOOT.store(digest(layout.start, layout.rodata_end), Ordering::Relaxed);
}

/// Compares the image with its boot digest; panics if it changed.
pub fn check() {
    let (start, end) = (START.load(Ordering::Relaxed), END.load(Ordering::Relaxed));
    if start == end {
        return; // no guest was started
    }
    if digest(start, end) != AT_BOOT.load(Ordering::Relaxed) {
        panic!("hyp image changed during the run (code or read-only data written behind porwatch's back)");
    }
}
