//! `tap_slots`: the exception-entry tap's coverage kernel. It takes an
//! exception through every vector slot a bare-metal EL1 kernel can reach on
//! QEMU `virt`, nests one, makes an SVC from inside the vector page, and
//! moves VBAR_EL1 between three tables: kentry's (`src/kentry.rs`, free slot
//! padding: the trampoline), `tap_slots_alt` (each slot a single `B` to
//! kentry's slot: the trampoline, no padding needed) and `tap_slots_full`
//! (each slot 31 `ADD x16, x16, #0` then a `B` to kentry's slot: no free
//! word, so porwatch falls back to its execute-never tap). POE is not used.
//!
//! # Sequence (the host test, porwatch/tests/qemu_tap.rs, checks the trace)
//!
//! | # | how                                        | slot (kentry number)     | table |
//! |---|--------------------------------------------|--------------------------|-------|
//! | 1 | `svc #1` at EL1h                           | sync_el1h (4)            | kentry |
//! | 2 | `svc #2` with SPSel = 0                    | sync_el1t (0)            | kentry |
//! | 3 | virtual timer IRQ with SPSel = 0           | irq_el1t (1)             | kentry |
//! | 4 | virtual timer IRQ at EL1h                  | irq_el1h (5)             | kentry |
//! | 5 | `svc #3` at EL0 (AArch64)                  | sync_el0_64 (8)          | kentry |
//! | 6 | virtual timer IRQ at EL0 (AArch64)         | irq_el0_64 (9)           | kentry |
//! | 7 | `svc #4`, whose handler calls `kentry_page_svc` | sync_el1h (4)       | kentry |
//! | 8 | ... its `svc #5`, nested, ELR in the vector page | sync_el1h (4)      | kentry |
//! | 9 | `svc #6`                                  | sync_el1h (4)            | alt   |
//! | 10 | `svc #7`                                  | sync_el1h (4)            | full  |
//! | 11 | virtual timer IRQ at EL1h                 | irq_el1h (5)             | full  |
//! | 12 | `svc #8`                                  | sync_el1h (4)            | kentry |
//!
//! Exceptions from EL0 return to EL1: the handler points ELR_EL1/SPSR_EL1
//! at the continuation in `RESUME`. Not reachable here: FIQ (no group-0
//! interrupt source the hypervisor passes to EL1), SError (nothing to make
//! one), and the four AArch32 EL0 slots: QEMU 10 treats the ERET to AArch32
//! User mode as an illegal exception return (EC 0x0E at the A32 code, with
//! porwatch's tap off too) although ID_AA64PFR0_EL1.EL0 = 2; not pursued.
//!
//! Console: one `tap_slots: seen SLOT esr=...` line per
//! handler call, `tap_slots: done`. Exit status: the number of mismatches;
//! 100 on an unexpected exception.
#![no_std]
#![no_main]

use core::arch::{asm, global_asm};
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use porwatch_guest_tests::exceptions::VECTOR_NAMES;
use porwatch_guest_tests::kentry::{self, Frame};
use porwatch_guest_tests::{gicv3, println, smccc, timer, Boot};
use porwatch_monitor::fdt;

const EC_SVC64: u64 = 0x15;
const STATUS_UNEXPECTED: u32 = 100;
const TIMER_TVAL: u32 = 10_000;

// kentry slot numbers.
const SYNC_EL1T: u64 = 0;
const IRQ_EL1T: u64 = 1;
const SYNC_EL1H: u64 = 4;
const IRQ_EL1H: u64 = 5;
const SYNC_EL0_64: u64 = 8;
const IRQ_EL0_64: u64 = 9;

/// SPSR for the EL1 continuation after an EL0 exception: EL1h, DAIF masked.
const SPSR_EL1H_MASKED: u64 = 0x3c5;
/// SPSR for EL0 AArch64 with IRQs masked (SVC) or unmasked (IRQ).
const SPSR_EL0T_MASKED: u64 = 0x3c0;
const SPSR_EL0T: u64 = 0x0;

const LOG_CAP: usize = 16;
static SLOT: [AtomicU64; LOG_CAP] = [const { AtomicU64::new(0) }; LOG_CAP];
static ESR: [AtomicU64; LOG_CAP] = [const { AtomicU64::new(0) }; LOG_CAP];
static CALLS: AtomicUsize = AtomicUsize::new(0);
static IRQ_SEEN: AtomicBool = AtomicBool::new(false);
/// Where an exception from EL0 resumes at EL1.
static RESUME: AtomicU64 = AtomicU64::new(0);

unsafe extern "C" {
    fn kentry_page_svc();
    static tap_slots_alt: u8;
    static tap_slots_full: u8;
    /// EL0 code: `svc #3`, then a loop (never reached).
    fn tap_slots_el0_svc();
    /// EL0 code: a loop, left by the timer IRQ.
    fn tap_slots_el0_spin();
}

global_asm!(
    r#"
.pushsection .text.tap_slots_tables, "ax"
.balign 4096
.global tap_slots_alt
tap_slots_alt:
.irp i, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
    .balign 0x80
    b       kentry_vectors + \i * 0x80
.endr
.balign 4096
.global tap_slots_full
tap_slots_full:
.irp i, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
    .balign 0x80
    .rept 31
    add     x16, x16, #0
    .endr
    b       kentry_vectors + \i * 0x80
.endr
.balign 4096
.global tap_slots_el0_svc
tap_slots_el0_svc:
    svc     #3
1:  b       1b
.global tap_slots_el0_spin
tap_slots_el0_spin:
1:  b       1b
.popsection
"#
);

fn record(slot: u64, esr: u64) -> usize {
    let n = CALLS.fetch_add(1, Ordering::Relaxed);
    if n < LOG_CAP {
        SLOT[n].store(slot, Ordering::Relaxed);
        ESR[n].store(esr, Ordering::Relaxed);
    }
    n
}

fn unexpected(frame: &Frame, slot: u64) -> ! {
    println!(
        "tap_slots: FAIL unexpected exception {} esr={:#x} elr={:#x}",
        VECTOR_NAMES[(slot & 15) as usize],
        frame.esr,
        frame.elr
    );
    smccc::test_exit(STATUS_UNEXPECTED)
}

fn to_el1(frame: &mut Frame) {
    frame.elr = RESUME.load(Ordering::Relaxed);
    frame.spsr = SPSR_EL1H_MASKED;
}

extern "C" fn handler(frame: &mut Frame, slot: u64) {
    let ec = (frame.esr >> 26) & 0x3f;
    match slot {
        SYNC_EL1T | SYNC_EL1H | SYNC_EL0_64 if ec == EC_SVC64 => {
            record(slot, frame.esr);
            if slot == SYNC_EL0_64 {
                to_el1(frame);
            } else if frame.esr & 0xffff == 4 {
                // Nested: an SVC made from inside the vector page.
                unsafe { kentry_page_svc() };
            }
        }
        IRQ_EL1T | IRQ_EL1H | IRQ_EL0_64 => {
            let intid = gicv3::ack();
            timer::cntv_stop();
            if intid != gicv3::INTID_SPURIOUS {
                gicv3::eoi(intid);
            }
            record(slot, intid as u64);
            IRQ_SEEN.store(true, Ordering::Relaxed);
            if slot == IRQ_EL0_64 {
                to_el1(frame);
            }
        }
        _ => unexpected(frame, slot),
    }
}

/// One timer IRQ taken at EL1, with SP_EL0 (`el1t`) or SP_EL1 as the stack.
fn irq_at_el1(el1t: bool) {
    IRQ_SEEN.store(false, Ordering::Relaxed);
    timer::cntv_arm(TIMER_TVAL);
    // One asm block: nothing is pushed while SPSel = 0, so the handler's
    // frame (on SP_EL1, the same address) overwrites nothing live. WFI with
    // IRQs masked still wakes on a pending IRQ.
    unsafe {
        asm!(
            "mov x9, sp",
            "msr sp_el0, x9",
            "cbz {el1t}, 1f",
            "msr spsel, #0",
            "1: msr daifclr, #2",
            "isb",
            "msr daifset, #2",
            "ldrb w9, [{flag}]",
            "cbnz w9, 2f",
            "wfi",
            "b 1b",
            "2: msr spsel, #1",
            el1t = in(reg) el1t as u64,
            flag = in(reg) IRQ_SEEN.as_ptr(),
            clobber_abi("C"),
        )
    }
}

/// Runs `code` at EL0 (AArch64, `spsr` says whether IRQs are masked) until an
/// exception brings it back here.
fn run_el0(code: unsafe extern "C" fn(), spsr: u64) {
    // Fixed registers: x9 is the scratch, so no input may be given it
    // (clobber_abi's clobbers are late outputs, which inputs may share).
    unsafe {
        asm!(
            "adr x9, 1f",
            "str x9, [x10]",
            "msr elr_el1, x11",
            "msr spsr_el1, x12",
            "isb",
            "eret",
            "1:",
            in("x10") RESUME.as_ptr(),
            in("x11") code as usize,
            in("x12") spsr,
            clobber_abi("C"),
        )
    }
}

fn set_vbar(v: u64) {
    unsafe { asm!("dsb ish", "msr vbar_el1, {}", "isb", in(reg) v, options(nostack)) };
}

#[unsafe(no_mangle)]
fn test_main(boot: &Boot) -> u32 {
    let mut plat = fdt::Platform::new();
    if fdt::discover(boot.dtb, &mut plat).is_err() {
        println!("tap_slots: FAIL cannot parse the device tree");
        return 1;
    }
    let (Some(gic), Some(t)) = (plat.gic.as_ref(), plat.timer.as_ref()) else {
        println!("tap_slots: FAIL no GIC or timer in the device tree");
        return 1;
    };
    let gic = match gicv3::GicV3::init(gic) {
        Ok(g) => g,
        Err(e) => {
            println!("tap_slots: FAIL GICv3 init: {}", e);
            return 1;
        }
    };
    gic.enable_ppi(t.virt, 0x80);
    kentry::install(handler);

    let mut want: [u64; LOG_CAP] = [0; LOG_CAP];
    let mut n = 0;
    let mut expect = |slot: u64| {
        want[n] = slot;
        n += 1;
    };
    unsafe { asm!("svc #1", clobber_abi("C")) };
    expect(SYNC_EL1H);
    unsafe {
        asm!("mov x9, sp", "msr sp_el0, x9", "msr spsel, #0", "svc #2", "msr spsel, #1", clobber_abi("C"))
    };
    expect(SYNC_EL1T);
    irq_at_el1(true);
    expect(IRQ_EL1T);
    irq_at_el1(false);
    expect(IRQ_EL1H);
    run_el0(tap_slots_el0_svc, SPSR_EL0T_MASKED);
    expect(SYNC_EL0_64);
    IRQ_SEEN.store(false, Ordering::Relaxed);
    timer::cntv_arm(TIMER_TVAL);
    run_el0(tap_slots_el0_spin, SPSR_EL0T);
    expect(IRQ_EL0_64);
    unsafe { asm!("svc #4", clobber_abi("C")) };
    expect(SYNC_EL1H);
    expect(SYNC_EL1H);
    set_vbar(&raw const tap_slots_alt as u64);
    unsafe { asm!("svc #6", clobber_abi("C")) };
    expect(SYNC_EL1H);
    set_vbar(&raw const tap_slots_full as u64);
    unsafe { asm!("svc #7", clobber_abi("C")) };
    expect(SYNC_EL1H);
    irq_at_el1(false);
    expect(IRQ_EL1H);
    set_vbar(kentry::vectors());
    unsafe { asm!("svc #8", clobber_abi("C")) };
    expect(SYNC_EL1H);

    let calls = CALLS.load(Ordering::Relaxed);
    let mut failed = 0;
    for i in 0..calls.min(LOG_CAP) {
        let slot = SLOT[i].load(Ordering::Relaxed);
        println!(
            "tap_slots: seen {} esr={:#x}",
            VECTOR_NAMES[slot as usize & 15],
            ESR[i].load(Ordering::Relaxed)
        );
        if slot != want[i] {
            println!(
                "tap_slots: FAIL call {}: {}, expected {}",
                i,
                VECTOR_NAMES[slot as usize & 15],
                VECTOR_NAMES[want[i] as usize & 15]
            );
            failed += 1;
        }
    }
    if calls != n {
        println!("tap_slots: FAIL {} handler calls, expected {}", calls, n);
        failed += 1;
    }
    println!("tap_slots: done");
    failed
}
