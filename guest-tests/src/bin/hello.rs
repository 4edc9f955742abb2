//! The default demonstration guest: reports what porwatch handed it (memory,
//! console, PSCI), computes a checksum the host test recomputes, and exits 0.
#![no_std]
#![no_main]

use porwatch_guest_tests::{println, smccc, Boot};
use porwatch_monitor::fdt;

/// FNV-1a over a deterministic byte pattern (the host test computes the same).
fn checksum(len: usize) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for i in 0..len {
        let b = (i as u64).wrapping_mul(2_654_435_761) >> 7;
        h = (h ^ (b & 0xff)).wrapping_mul(0x100_0000_01b3);
    }
    h
}

/// FNV-1a over [start, end) in little-endian 64-bit words, then any tail
/// bytes (the host test computes the same over the file it loaded there).
fn memory_checksum(start: u64, end: u64) -> u64 {
    const PRIME: u64 = 0x100_0000_01b3;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let words = (end - start) / 8;
    for i in 0..words {
        let w = unsafe { ((start + 8 * i) as *const u64).read_volatile() };
        h = (h ^ w).wrapping_mul(PRIME);
    }
    for a in start + 8 * words..end {
        let b = unsafe { (a as *const u8).read_volatile() };
        h = (h ^ u64::from(b)).wrapping_mul(PRIME);
    }
    h
}

/// The SMCCC version as Linux's psci_init_smccc finds it: v1.0 unless
/// PSCI_FEATURES lists SMCCC_VERSION and that reports at least v1.1
/// (compared as a u32, as Linux does: an error code reads as v65535.65535).
fn smccc_version() {
    const V1_0: u32 = 0x1_0000;
    const V1_1: u32 = 0x1_0001;
    let features = smccc::smc(smccc::PSCI_FEATURES, smccc::SMCCC_VERSION, 0, 0);
    let mut ver = V1_0;
    if features != smccc::NOT_SUPPORTED {
        let v = smccc::smc(smccc::SMCCC_VERSION, 0, 0, 0) as u32;
        println!("hello: PSCI_FEATURES(SMCCC_VERSION)={} SMCCC_VERSION={:#x}", features, v);
        if v >= V1_1 {
            ver = v;
        }
    } else {
        println!("hello: PSCI_FEATURES(SMCCC_VERSION)={}", features);
    }
    println!("hello: SMC Calling Convention v{}.{}", ver >> 16, ver & 0xffff);
    if ver >= V1_1 {
        let wa1 = smccc::smc(smccc::SMCCC_ARCH_FEATURES, smccc::SMCCC_ARCH_WORKAROUND_1, 0, 0);
        let own = smccc::smc(smccc::SMCCC_ARCH_FEATURES, smccc::SMCCC_VERSION, 0, 0);
        println!("hello: SMCCC_ARCH_FEATURES ARCH_WORKAROUND_1={} SMCCC_VERSION={}", wa1, own);
    }
}

#[unsafe(no_mangle)]
fn test_main(boot: &Boot) -> u32 {
    println!("hello: porwatch guest-test running at EL1, dtb at {:#x}", boot.dtb_addr);
    let mut plat = fdt::Platform::new();
    if let Err(e) = fdt::discover(boot.dtb, &mut plat) {
        println!("hello: FAIL: cannot parse the device tree: {:?}", e);
        return 1;
    }
    for m in plat.memory.iter() {
        println!("hello: memory {:#x}..{:#x}", m.base, m.base + m.size);
    }
    if let Some((start, end)) = plat.chosen.initrd {
        println!("hello: initrd {:#x}..{:#x} checksum={:#018x}", start, end, memory_checksum(start, end));
    }
    println!("hello: {} PL011 UART(s) visible", plat.uarts.len());
    match plat.psci {
        Some(p) => {
            let method = match p.method {
                fdt::platform::PsciMethod::Smc => "smc",
                fdt::platform::PsciMethod::Hvc => "hvc",
            };
            println!("hello: device tree PSCI: method={} {}", method, p.compatible);
        }
        None => println!("hello: device tree PSCI: none"),
    }
    println!("hello: bootargs {:?}", plat.chosen.bootargs.unwrap_or(""));
    let v = smccc::smc(smccc::PSCI_VERSION, 0, 0, 0);
    println!("hello: PSCI version {}.{}", (v >> 16) & 0xffff, v & 0xffff);
    smccc_version();
    let (mmfr1, mmfr3): (u64, u64);
    unsafe {
        core::arch::asm!("mrs {}, id_aa64mmfr1_el1", out(reg) mmfr1);
        core::arch::asm!("mrs {}, s3_0_c0_c7_3", out(reg) mmfr3);
    }
    println!("hello: id_aa64mmfr1={:#x} id_aa64mmfr3={:#x}", mmfr1, mmfr3);
    println!("hello: checksum={:#018x}", checksum(1 << 16));
    println!("hello: done");
    0
}
