//! Holding CPUs until the guest's PSCI CPU_ON releases them, when porwatch
//! is the PSCI provider itself (no firmware: an EL3 entry). A CPU that
//! called CPU_OFF waits at EL2 in psci.rs for its power state to change;
//! [`release`] wakes it.

/// Wakes CPUs waiting for a CPU_ON (`cpu` is the one released; the state
/// that says so was written before this call).
pub fn release(_cpu: usize) {
    // SAFETY: barriers and an event; the waiters re-check their state.
    unsafe { core::arch::asm!("dsb sy", "sev", options(nostack)) };
}
