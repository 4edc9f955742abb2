//! Holding CPUs until the guest's PSCI CPU_ON releases them, when porwatch
//! is the PSCI provider itself (no firmware: an EL3 entry, where every CPU
//! starts at the reset vector).
//!
//! boot.S keeps every CPU but the primary (affinity 0.0.0.0) in a first pen
//! in the loaded copy of porwatch, which touches nothing but
//! `pen_release`; once the primary runs in the moved copy it sends them to
//! that copy's pen (boot.S `el3_pen`, with the MMU and caches off), where
//! each finds its slot here by MPIDR, says it arrived and waits for `go`.
//! The primary fills the slots ([`open`]) and waits until every CPU of the
//! machine has arrived ([`all_arrived`]) before the loaded copy becomes
//! guest RAM. CPU_ON sets `go` ([`release`]): the CPU sets up its own EL3
//! and enters porwatch at EL2 (boot.S `secondary_entry`). A CPU that called
//! CPU_OFF waits at EL2 instead (psci.rs); [`release`] wakes it too.
//!
//! The pen's CPUs read with their MMU and caches off: every write the
//! primary makes here is cleaned to the point of coherency, and what they
//! write (`arrived`) is read after an invalidation.
use super::mmu::clean_to_poc;
use core::sync::atomic::{AtomicU64, Ordering};
use porwatch_monitor::cpus::{Topology, MAX_CPUS};

/// `PenSlot::mpidr` of a filled slot (a bit no affinity has).
pub const PEN_VALID: u64 = 1 << 63;

/// One CPU's slot. Layout shared with boot.S (`el3_pen`).
#[repr(C, align(64))]
pub struct PenSlot {
    /// The CPU's affinity | [`PEN_VALID`] (0: unused).
    pub mpidr: AtomicU64,
    /// Non-zero once the CPU waits in the moved copy's pen.
    pub arrived: AtomicU64,
    /// Non-zero: leave the pen (CPU_ON).
    pub go: AtomicU64,
    /// The CPU's dense index (porwatch_monitor::cpus).
    pub index: AtomicU64,
}

#[unsafe(no_mangle)]
pub static PEN: [PenSlot; MAX_CPUS] = [const {
    PenSlot {
        mpidr: AtomicU64::new(0),
        arrived: AtomicU64::new(0),
        go: AtomicU64::new(0),
        index: AtomicU64::new(0),
    }
}; MAX_CPUS];

fn clean(slot: &PenSlot) {
    clean_to_poc(slot as *const PenSlot as u64, core::mem::size_of::<PenSlot>() as u64);
}

/// Fills a slot for each CPU but the boot CPU (index 0) and wakes the pen.
pub fn open(cpus: &Topology) {
    for (i, &m) in cpus.mpidrs().iter().enumerate().skip(1) {
        let slot = &PEN[i];
        slot.index.store(i as u64, Ordering::Relaxed);
        slot.arrived.store(0, Ordering::Relaxed);
        slot.go.store(0, Ordering::Relaxed);
        slot.mpidr.store(m | PEN_VALID, Ordering::Relaxed);
        clean(slot);
    }
    sev();
}

/// Whether every CPU of `cpus` but the boot CPU waits in the moved copy's
/// pen; else the MPIDR of one that does not, once `deadline` (CNTPCT) has
/// passed.
pub fn all_arrived(cpus: &Topology, deadline: u64) -> Result<(), u64> {
    for (i, &m) in cpus.mpidrs().iter().enumerate().skip(1) {
        let slot = &PEN[i];
        loop {
            // The CPU stored with its caches off: drop any stale line first.
            clean(slot);
            if slot.arrived.load(Ordering::Acquire) != 0 {
                break;
            }
            if now() > deadline {
                return Err(m);
            }
            core::hint::spin_loop();
        }
    }
    Ok(())
}

/// Wakes CPU `cpu` for a CPU_ON (the start it takes is already recorded):
/// out of the EL3 pen, or out of its CPU_OFF wait at EL2.
pub fn release(cpu: usize) {
    if let Some(slot) = PEN.get(cpu) {
        slot.go.store(1, Ordering::Release);
        clean(slot);
    }
    sev();
}

fn sev() {
    // SAFETY: barriers and an event; the waiters re-check their state.
    unsafe { core::arch::asm!("dsb sy", "sev", options(nostack)) };
}

fn now() -> u64 {
    let t: u64;
    // SAFETY: reading the physical counter.
    unsafe { core::arch::asm!("isb", "mrs {}, cntpct_el0", out(reg) t, options(nostack)) };
    t
}
