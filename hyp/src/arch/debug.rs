//! Single-stepping the guest to EL2 (the exception-entry tap): MDSCR_EL1.SS
//! with MDCR_EL2.TDE routing the software-step exceptions to EL2, and
//! PSTATE.SS set in the SPSR the guest returns with.
use aarch64_cpu::registers::*;

/// MDSCR_EL1.SS (bit 0): software step enable.
pub const MDSCR_SS: u64 = 1 << 0;
/// MDCR_EL2.TDE (bit 8): route debug exceptions from EL1/EL0 to EL2.
const MDCR_TDE: u64 = 1 << 8;
/// SPSR_ELx.SS (bit 21): the saved PSTATE.SS.
pub const SPSR_SS: u64 = 1 << 21;

/// Turns stepping on; returns the guest's MDSCR_EL1 to restore later.
pub fn start() -> u64 {
    let guest = MDSCR_EL1.get();
    MDSCR_EL1.set(guest | MDSCR_SS);
    MDCR_EL2.set(MDCR_EL2.get() | MDCR_TDE);
    guest
}

/// Turns stepping off and puts the guest's MDSCR_EL1 back.
pub fn stop(guest_mdscr: u64) {
    MDSCR_EL1.set(guest_mdscr);
    MDCR_EL2.set(MDCR_EL2.get() & !MDCR_TDE);
}

/// Unlocks the OS lock, which QEMU resets locked (software-step exceptions
/// are not generated while it is locked). Linux unlocks it at boot anyway.
pub fn unlock_os_lock() {
    OSLAR_EL1.set(0);
    super::cpu::isb();
}
