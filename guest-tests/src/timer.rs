//! The EL1 virtual counter and timer (CNTV*), always accessible at EL1.
use core::arch::asm;

/// CNTFRQ_EL0: counter frequency in Hz.
pub fn cntfrq() -> u64 {
    let v: u64;
    unsafe { asm!("mrs {}, cntfrq_el0", out(reg) v, options(nomem, nostack)) };
    v
}

/// CNTVCT_EL0 after an ISB, so the read is not hoisted over earlier code.
#[inline(always)]
pub fn cntvct() -> u64 {
    let v: u64;
    unsafe { asm!("isb", "mrs {}, cntvct_el0", out(reg) v, options(nomem, nostack)) };
    v
}

/// CNTV_CTL_EL0.ENABLE.
pub const CNTV_CTL_ENABLE: u64 = 1 << 0;
/// CNTV_CTL_EL0.IMASK.
pub const CNTV_CTL_IMASK: u64 = 1 << 1;
/// CNTV_CTL_EL0.ISTATUS (read only).
pub const CNTV_CTL_ISTATUS: u64 = 1 << 2;

/// Arms the virtual timer to fire `ticks` counter ticks from now.
pub fn cntv_arm(ticks: u32) {
    unsafe {
        asm!("msr cntv_tval_el0, {t}", "msr cntv_ctl_el0, {c}", "isb",
             t = in(reg) ticks as u64, c = in(reg) CNTV_CTL_ENABLE, options(nostack));
    }
}

/// Disables the virtual timer (its interrupt line drops).
pub fn cntv_stop() {
    unsafe { asm!("msr cntv_ctl_el0, xzr", "isb", options(nostack)) };
}

/// CNTV_CTL_EL0.
pub fn cntv_ctl() -> u64 {
    let v: u64;
    unsafe { asm!("mrs {}, cntv_ctl_el0", out(reg) v, options(nomem, nostack)) };
    v
}
