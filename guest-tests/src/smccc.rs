//! SMC/HVC calls from the test kernel (SMCCC register convention).
use core::arch::asm;

/// PSCI / SMCCC function IDs used by the tests.
pub const PSCI_VERSION: u64 = 0x8400_0000;
pub const PSCI_CPU_ON_64: u64 = 0xC400_0003;
pub const PSCI_FEATURES: u64 = 0x8400_000A;
pub const PSCI_SYSTEM_OFF: u64 = 0x8400_0008;
pub const NOT_SUPPORTED: i64 = -1;
pub const SMCCC_VERSION: u64 = 0x8000_0000;
pub const SMCCC_ARCH_FEATURES: u64 = 0x8000_0001;
pub const SMCCC_ARCH_WORKAROUND_1: u64 = 0x8000_8000;
/// porwatch's vendor-hypervisor call that ends the run with a status
/// (see porwatch_monitor::psci).
pub const PORWATCH_TEST_EXIT: u64 = porwatch_monitor::psci::PORWATCH_TEST_EXIT as u64;

pub fn smc(x0: u64, x1: u64, x2: u64, x3: u64) -> i64 {
    let r: u64;
    unsafe {
        // SMCCC: x4..x17 may come back changed (results from v1.2 on).
        asm!("smc #0", inout("x0") x0 => r, inout("x1") x1 => _, inout("x2") x2 => _,
             inout("x3") x3 => _, out("x4") _, out("x5") _, out("x6") _, out("x7") _,
             out("x8") _, out("x9") _, out("x10") _, out("x11") _, out("x12") _, out("x13") _,
             out("x14") _, out("x15") _, out("x16") _, out("x17") _, options(nostack));
    }
    r as i64
}

pub fn hvc(x0: u64, x1: u64, x2: u64, x3: u64) -> i64 {
    let r: u64;
    unsafe {
        // SMCCC: x4..x17 may come back changed (results from v1.2 on).
        asm!("hvc #0", inout("x0") x0 => r, inout("x1") x1 => _, inout("x2") x2 => _,
             inout("x3") x3 => _, out("x4") _, out("x5") _, out("x6") _, out("x7") _,
             out("x8") _, out("x9") _, out("x10") _, out("x11") _, out("x12") _, out("x13") _,
             out("x14") _, out("x15") _, out("x16") _, out("x17") _, options(nostack));
    }
    r as i64
}

/// End the run: porwatch records the status, flushes its trace and exits.
pub fn test_exit(status: u32) -> ! {
    smc(PORWATCH_TEST_EXIT, status as u64, 0, 0);
    // Not under porwatch (or it refused): power off the plain PSCI way.
    smc(PSCI_SYSTEM_OFF, 0, 0, 0);
    loop {
        unsafe { asm!("wfe") };
    }
}
