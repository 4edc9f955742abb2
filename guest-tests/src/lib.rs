//! Runtime shared by porwatch's EL1 test kernels: entry, exception vectors,
//! console, SMCCC calls. Each test kernel is a binary in `src/bin/` that
//! defines `test_main`. These kernels start with the MMU off (all data
//! accesses are Device-nGnRnE, so everything is built with strict alignment,
//! which the aarch64-unknown-none target does by default); `seed` and
//! `pt_stress` then turn it on ([`mmu`]) and model Linux's kpkeys page-table
//! protection ([`kpkeys`], [`kentry`]).
#![no_std]

pub mod cmdline;
pub mod console;
pub mod exceptions;
pub mod gicv3;
pub mod kentry;
pub mod kpkeys;
pub mod mmu;
pub mod poe;
pub mod smccc;
pub mod smp;
pub mod timer;

use core::arch::global_asm;

global_asm!(include_str!("rt/entry.S"));

/// What a test kernel learns at boot.
pub struct Boot {
    /// The device tree porwatch handed over (x0 at entry).
    pub dtb: &'static [u8],
    pub dtb_addr: usize,
}

unsafe extern "Rust" {
    /// Defined by each test kernel; its return value is the run's exit status.
    fn test_main(boot: &Boot) -> u32;
}

#[unsafe(no_mangle)]
extern "C" fn guest_entry(dtb_addr: usize) -> ! {
    let dtb = unsafe { dtb_slice(dtb_addr) };
    console::init_from_dtb(dtb);
    let boot = Boot { dtb, dtb_addr };
    let status = unsafe { test_main(&boot) };
    smccc::test_exit(status)
}

/// The DTB as a slice, sized by its header (0 length if there is none).
unsafe fn dtb_slice(addr: usize) -> &'static [u8] {
    const FDT_MAGIC: u32 = 0xd00d_feed;
    if addr == 0 || !addr.is_multiple_of(8) {
        return &[];
    }
    let hdr = addr as *const u32;
    let magic = u32::from_be(unsafe { hdr.read_volatile() });
    if magic != FDT_MAGIC {
        return &[];
    }
    let size = u32::from_be(unsafe { hdr.add(1).read_volatile() }) as usize;
    unsafe { core::slice::from_raw_parts(addr as *const u8, size) }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    println!("guest PANIC: {}", info);
    smccc::test_exit(101)
}
