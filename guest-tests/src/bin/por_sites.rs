//! `por_sites`: patched POR_EL1/POR_EL0 sites under virtual POE
//! (docs/tap.md, "Patched POR_EL1 sites"). Five sites, alone in one code
//! page: a read (`site_read`), a write (`site_write`) and a read this
//! kernel rewrites (`site_smc`) of POR_EL1, then a read and a write of
//! POR_EL0. It switches both registers between two values `ROUNDS` times
//! through them, checking every read, so porwatch patches the sites (it
//! runs each as an access of a carrier register in a shadow of the page)
//! and must keep both answers and trace exactly as before. Then it reads
//! its own code (the guest must see its instructions, never the shadow's),
//! rewrites `site_smc` into `MOVZ X0, #42` and back (the shadow must
//! follow: 42, then POR_EL1 again), and switches some more. One phase
//! writes POR_EL0 through `ROUNDS` stubs run once each (their changes take
//! the UNDEF path) while its read site is patched: the carrier must follow
//! changes made there too.
//!
//! Console: the sites' addresses, then `por_sites: ok changes=N
//! changes0=M` (POR_EL1 and POR_EL0 changes made through the write sites,
//! for the host to count in the trace). Exit status: 0, or the number of
//! failed checks.
#![no_std]
#![no_main]

use core::arch::{asm, global_asm};
use porwatch_guest_tests::{poe, println, Boot};

global_asm!(
    r#"
.pushsection .text.por_sites_code, "ax"
.balign 4096
.global por_sites_read
por_sites_read:
    mrs     x0, s3_0_c10_c2_4
    ret
.global por_sites_write
por_sites_write:
    msr     s3_0_c10_c2_4, x0
    isb
    ret
.global por_sites_smc
por_sites_smc:
    mrs     x0, s3_0_c10_c2_4
    ret
.global por_sites_read0
por_sites_read0:
    mrs     x0, s3_3_c10_c2_4
    ret
.global por_sites_write0
por_sites_write0:
    msr     s3_3_c10_c2_4, x0
    isb
    ret
.balign 4096
.popsection
.pushsection .text.por_sites_fresh, "ax"
.balign 4096
.global por_sites_fresh
por_sites_fresh:
.rept {fresh}
    msr     s3_3_c10_c2_4, x0
    ret
.endr
.balign 4096
.popsection
"#,
    fresh = const ROUNDS,
);

unsafe extern "C" {
    fn por_sites_read() -> u64;
    fn por_sites_write(v: u64);
    fn por_sites_smc() -> u64;
    fn por_sites_read0() -> u64;
    fn por_sites_write0(v: u64);
    /// `ROUNDS` copies of `MSR POR_EL0, X0; RET`, 8 bytes apart.
    static por_sites_fresh: u8;
}

/// Bytes per `por_sites_fresh` stub.
const FRESH_STUB: usize = 8;

/// Writes POR_EL0 through stub `i`: a site run once per phase, so rarely
/// patched. Its change goes through the UNDEF path while the read site is
/// patched: the carrier must follow a change made there too.
fn write0_fresh(i: u32, v: u64) {
    let stub = unsafe { (&raw const por_sites_fresh).add(i as usize * FRESH_STUB) };
    let f: unsafe extern "C" fn(u64) = unsafe { core::mem::transmute(stub) };
    unsafe { f(v) };
}

/// The instructions as assembled: `MRS X0, POR_EL1`, `MSR POR_EL1, X0`.
const MRS_X0_POR_EL1: u32 = 0xd538_a280;
const MSR_POR_EL1_X0: u32 = 0xd518_a280;
/// `MOVZ X0, #42`.
const MOVZ_X0_42: u32 = 0xd280_0540;
const ANSWER: u64 = 42;
/// kpkeys' two levels: default, and page tables writable.
const POR_A: u64 = 0x17;
const POR_B: u64 = 0x57;
/// Two POR_EL0 values (user pkeys 0 RW, 1 RW or none).
const POR0_A: u64 = 0x77;
const POR0_B: u64 = 0x07;
/// Switches per phase: far more than porwatch needs to patch every site
/// (monitor por_sites::PATCH_EVERY accesses per patch).
const ROUNDS: u32 = 400;

/// Writes instruction word `insn` at `va` and makes it visible to fetches.
fn rewrite(va: u64, insn: u32) {
    unsafe {
        core::ptr::write_volatile(va as *mut u32, insn);
        asm!("dc cvau, {0}", "dsb ish", "ic ivau, {0}", "dsb ish", "isb", in(reg) va, options(nostack));
    }
}

/// `ROUNDS` switches of both registers through the sites (POR_EL0's
/// writes through the fresh stubs if `fresh`); returns the failed checks.
fn switch(changes: &mut [u64; 2], fresh: bool) -> u32 {
    let mut fails = 0;
    for i in 0..ROUNDS {
        let (v, v0) = if i % 2 == 0 { (POR_B, POR0_B) } else { (POR_A, POR0_A) };
        unsafe { por_sites_write(v) };
        if fresh {
            write0_fresh(i, v0);
        } else {
            unsafe { por_sites_write0(v0) };
        }
        changes[0] += 1;
        changes[1] += 1;
        let (r, s, r0) = unsafe { (por_sites_read(), por_sites_smc(), por_sites_read0()) };
        if r != v || s != v || r0 != v0 {
            println!(
                "por_sites: FAIL round {}: wrote {:#x}/{:#x}, site_read {:#x}, site_smc {:#x}, POR_EL0 {:#x}",
                i, v, v0, r, s, r0
            );
            fails += 1;
        }
    }
    fails
}

#[unsafe(no_mangle)]
fn test_main(_boot: &Boot) -> u32 {
    if !poe::s1poe_present() {
        println!("por_sites: FAIL no FEAT_S1POE advertised (run with the tap on)");
        return 1;
    }
    let read = por_sites_read as unsafe extern "C" fn() -> u64 as usize as u64;
    let write = por_sites_write as unsafe extern "C" fn(u64) as usize as u64;
    let smc = por_sites_smc as unsafe extern "C" fn() -> u64 as usize as u64;
    let fresh = (&raw const por_sites_fresh) as u64;
    println!(
        "por_sites: site_read={:#x} site_write={:#x} site_smc={:#x} fresh={:#x}",
        read, write, smc, fresh
    );
    unsafe { por_sites_write(POR_A) };
    unsafe { por_sites_write0(POR0_A) };
    let mut changes = [1u64, 1];
    let mut fails = switch(&mut changes, false);
    // POR_EL0 changed at sites not patched, read at a patched one.
    fails += switch(&mut changes, true);

    // The guest sees its own code, whatever porwatch runs instead.
    let words = [read, write, smc].map(|a| unsafe { core::ptr::read_volatile(a as *const u32) });
    if words != [MRS_X0_POR_EL1, MSR_POR_EL1_X0, MRS_X0_POR_EL1] {
        println!("por_sites: FAIL the code reads {:#x?}", words);
        fails += 1;
    }

    // Rewriting a site: the new instruction runs, then the old one again.
    let now = unsafe { por_sites_read() };
    rewrite(smc, MOVZ_X0_42);
    let got = unsafe { por_sites_smc() };
    if got != ANSWER {
        println!("por_sites: FAIL rewritten site_smc returned {:#x}, expected {}", got, ANSWER);
        fails += 1;
    }
    rewrite(smc, MRS_X0_POR_EL1);
    let got = unsafe { por_sites_smc() };
    if got != now {
        println!("por_sites: FAIL restored site_smc returned {:#x}, expected POR_EL1 {:#x}", got, now);
        fails += 1;
    }
    fails += switch(&mut changes, false);
    if fails == 0 {
        println!("por_sites: ok changes={} changes0={}", changes[0], changes[1]);
    }
    fails
}
