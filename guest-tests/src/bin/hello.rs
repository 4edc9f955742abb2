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
