//! A hostile guest: touches what porwatch must refuse and checks that it gets
//! the exception or error code the architecture (or SMCCC) prescribes.
#![no_std]
#![no_main]

use core::arch::asm;
use porwatch_guest_tests::exceptions::expect_sync;
use porwatch_guest_tests::{println, smccc, Boot};
use porwatch_monitor::fdt;

const EC_UNKNOWN: u64 = 0x00;
const EC_DABT_CUR: u64 = 0x25;
const FSC_SYNC_EXTERNAL: u64 = 0x10;
const ESR_WNR: u64 = 1 << 6;
const VECTOR_SYNC_EL1H: u64 = 4;
const PSCI_DENIED: i64 = -3;
const PSCI_INVALID_ADDRESS: i64 = -9;

struct Checks {
    failed: u32,
}

impl Checks {
    fn check(&mut self, name: &str, ok: bool, detail: core::fmt::Arguments) {
        if ok {
            println!("hostile: {}: ok ({})", name, detail);
        } else {
            println!("hostile: {}: FAIL ({})", name, detail);
            self.failed += 1;
        }
    }
}

/// porwatch's own memory, which it must not let the guest touch: right
/// above the end of RAM (porwatch moves to the top of RAM, and `/memory`
/// stops below it).
fn hyp_memory(plat: &fdt::Platform) -> Option<u64> {
    plat.memory.iter().map(|m| m.base + m.size).max()
}

#[unsafe(no_mangle)]
fn test_main(boot: &Boot) -> u32 {
    let mut c = Checks { failed: 0 };
    let mut plat = fdt::Platform::new();
    if fdt::discover(boot.dtb, &mut plat).is_err() {
        println!("hostile: FAIL: cannot parse the device tree");
        return 1;
    }

    // An IMPLEMENTATION DEFINED system register: trapped by HCR_EL2.TIDCP,
    // must come back as an UNDEF (EC 0, unknown reason) at EL1.
    let r = expect_sync(|| unsafe {
        asm!("mrs {0}, s3_0_c15_c0_0", out(reg) _);
    });
    c.check(
        "impdef-sysreg",
        matches!(r, Some(e) if e.ec() == EC_UNKNOWN && e.vector == VECTOR_SYNC_EL1H),
        format_args!("{:x?}", r),
    );

    match hyp_memory(&plat) {
        Some(hole) => {
            let p = hole as *mut u64;
            let w = expect_sync(|| unsafe { p.write_volatile(0x5a5a) });
            c.check(
                "write-hyp-memory",
                matches!(w, Some(e) if e.ec() == EC_DABT_CUR && e.fsc() == FSC_SYNC_EXTERNAL
                    && e.far == hole && e.esr & ESR_WNR != 0),
                format_args!("addr={:#x} {:x?}", hole, w),
            );
            let r = expect_sync(|| unsafe {
                let _ = p.read_volatile();
            });
            c.check(
                "read-hyp-memory",
                matches!(r, Some(e) if e.ec() == EC_DABT_CUR && e.fsc() == FSC_SYNC_EXTERNAL
                    && e.far == hole && e.esr & ESR_WNR == 0),
                format_args!("addr={:#x} {:x?}", hole, r),
            );
            let on = smccc::smc(smccc::PSCI_CPU_ON_64, 1, hole, 0);
            c.check(
                "cpu-on-into-hyp-memory",
                on == PSCI_INVALID_ADDRESS || on == PSCI_DENIED,
                format_args!("result={}", on),
            );
        }
        None => c.check("find-hyp-memory", false, format_args!("no RAM in the memory map")),
    }

    let h = smccc::hvc(0xdead_beef, 1, 2, 3);
    c.check("bogus-hvc", h == smccc::NOT_SUPPORTED, format_args!("x0={}", h));
    let h: u64;
    unsafe {
        asm!("hvc #0x1234", inout("x0") 0x8400_0000u64 => h, out("x1") _, out("x2") _,
             out("x3") _, options(nostack));
    }
    c.check("hvc-nonzero-imm", h as i64 == smccc::NOT_SUPPORTED, format_args!("x0={}", h as i64));
    let s = smccc::smc(0xC200_1234, 0, 0, 0);
    c.check("unknown-smc", s == smccc::NOT_SUPPORTED, format_args!("x0={}", s));
    let f = smccc::smc(smccc::PSCI_FEATURES, smccc::PSCI_SYSTEM_OFF, 0, 0);
    c.check("psci-features-system-off", f == 0, format_args!("x0={}", f));

    println!("hostile: {} check(s) failed", c.failed);
    c.failed
}
