//! `exceptions`: the exception-entry tap's test kernel. It mimics Linux with
//! the kpkeys patch "arm64: Reset POR_EL1 on exception entry": its EL1
//! vector table (the shared one of `src/kentry.rs`) saves `POR_EL1` on entry
//! and, if it is not `POR_DEFAULT`, resets it (MSR + ISB) before calling the
//! handler; on exit it restores the saved value (MSR, no ISB: ERET
//! synchronises) if it differs from the current one.
//!
//! * `POR_DEFAULT  = 0x17` (pkey 0 RWX, pkey 1 R)
//! * `POR_PGTABLES = 0x57` (pkey 0 RWX, pkey 1 RW)
//!
//! With FEAT_S1POE absent (`porwatch.tap=off`: ID_AA64MMFR3_EL1.S1POE = 0)
//! every POR_EL1/TCR2_EL1 access is skipped, by the Rust code and by the
//! vector code (it tests the flag `kpkeys::POE`); the exceptions taken are
//! the same.
//!
//! # Layout (for the host test)
//!
//! The vector table is `src/kentry.rs`'s: it starts at the 4 KiB-aligned
//! symbol `kentry_vectors` (16 slots of 0x80; `el1h_64_sync` and
//! `el1h_64_irq` name the slots 0x200 and 0x280); the common entry code
//! `kentry_entry` follows at +0x800, then the exit code `kentry_exit`, and
//! the page is padded to its end, so that page holds nothing else. All 16
//! slots share the entry/exit code, which calls this kernel's handler
//! through the pointer `kentry::install` sets; only the "current EL with
//! SPx" slots 0x200 (sync) and 0x280 (IRQ) are ever taken, anything else
//! fails the test (exit status 100). Symbols: `kentry_entry_por_msr` is the
//! entry code's `MSR POR_EL1, x4` (x4 = POR_DEFAULT), `kentry_exit_por_msr`
//! the exit code's `MSR POR_EL1, x2` (x2 = the saved value). The order is
//! Linux's (kernel_entry / kernel_exit with the kpkeys patch):
//!
//! * entry: x0-x30 saved; POR_EL1 read, saved, reset if != POR_DEFAULT;
//!   *then* ELR_EL1 and SPSR_EL1 read, then ESR_EL1 and FAR_EL1 (Linux reads
//!   those in its C handlers);
//! * exit: POR_EL1 restored if != current; *then* ELR_EL1 and SPSR_EL1
//!   written; x0-x30 reloaded; ERET. (The patch restores unconditionally;
//!   the compare only saves an emulated MSR. porwatch records changes only,
//!   so the trace is the same.)
//!
//! So under virtual POE every emulated POR access happens while ELR/SPSR/
//! ESR/FAR_EL1 still hold the innermost entry's values, or before the guest
//! writes them back from its frame.
//!
//! # Expected sequence with poe=1
//!
//! Every POR_EL1 write, in program order (`main` = test code outside the
//! vector page, `handler` = Rust handler outside the vector page, `entry` /
//! `exit` = the vector page's MSRs above). Each numbered row is one
//! exception taken at EL1 (`POR@entry` = POR_EL1 when it is taken); no other
//! exception is taken at EL1 (virtual POE emulates POR/TCR2 silently).
//!
//! | # | step | event                                                   | POR@entry | POR writes (by)            |
//! |---|------|---------------------------------------------------------|-----------|----------------------------|
//! |   | a    | TCR2_EL1 \|= POE (bit 3); POR := 0x17                  |           | 0x17 (main)                |
//! |   | b    | POR := 0x57                                             |           | 0x57 (main)                |
//! | 1 | b    | SVC #1: slot 0x200, EC 0x15, ISS 1                      | 0x57      | 0x17 (entry), 0x57 (exit)  |
//! | 2 | c    | BRK #2: slot 0x200, EC 0x3C, ISS 2; ELR += 4            | 0x57      | 0x17 (entry), 0x57 (exit)  |
//! | 3 | d    | unaligned LDAR: slot 0x200, EC 0x25, DFSC 0x21; ELR += 4 | 0x57     | 0x17 (entry), 0x57 (exit)  |
//! |   | e    | POR := 0x17                                             |           | 0x17 (main)                |
//! |   | f    | GICv3 + CNTV set up; POR := 0x57; timer armed           |           | 0x57 (main)                |
//! | 4 | f    | IRQ: slot 0x280, INTID 27 (CNTV)                        | 0x57      | 0x17 (entry), 0x57 (exit)  |
//! |   | f    | POR := 0x17                                             |           | 0x17 (main)                |
//! |   | g    | POR := 0x17 (unchanged)                                 |           | 0x17 (main)                |
//! | 5 | g    | SVC #3: slot 0x200, EC 0x15, ISS 3                      | 0x17      | none (already default)     |
//! |   | g    | #5's handler: POR := 0x57, then BRK #4                  |           | 0x57 (handler)             |
//! | 6 | g    | BRK #4 nested in #5's handler: slot 0x200, EC 0x3C, ISS 4; ELR += 4 | 0x57 | 0x17 (entry), 0x57 (exit) |
//! |   | g    | #5's exit (saved 0x17, current 0x57)                    |           | 0x17 (exit)                |
//!
//! Every handler observes POR_EL1 = 0x17; after #6 returns, #5's handler
//! observes 0x57 again; after each of #1-#4 `main` observes 0x57, after #5
//! 0x17. The rows marked "(unchanged)" write the value POR_EL1 already holds
//! (porwatch does not record such writes). By porwatch's `at_entry` rule
//! (the first change after an entry) #5's handler write is `at_entry=1` for
//! entry #5, since #5's entry code changed nothing. The exceptions (1-6) and the
//! checksum are the same with poe=0, which makes no POR/TCR2 access at all.
//!
//! The data abort is an LDAR (8-byte load-acquire) from an address = 9 mod
//! 16: unaligned *and* crossing a 16-byte boundary, so it is an alignment
//! fault on every implementation (with or without FEAT_LSE2), whatever
//! SCTLR_EL1.A and the memory type. (QEMU 10 with the MMU off faults neither
//! a plain unaligned LDR nor an unaligned LDXR, and setting SCTLR_EL1.A
//! would add two trapped SCTLR_EL1 writes to the trace.)
//!
//! # Checksum (independent of POE)
//!
//! FNV-1a 64 (offset basis 0xcbf29ce484222325, prime 0x100000001b3) over
//! bytes; `fold(w)` feeds the 8 bytes of the u64 `w`, least significant first.
//! For each exception in the order taken: sync: `fold(EC << 32 | key)` with
//! key = ESR[15:0] (the immediate) for SVC/BRK, ESR[5:0] (DFSC) for data
//! aborts; IRQ: `fold(1 << 63 | INTID)`. Then `fold(number of handler calls)`.
//! Expected words: 0x15_00000001, 0x3c_00000002, 0x25_00000021,
//! 0x80000000_0000001b, 0x15_00000003, 0x3c_00000004, then 6:
//! `exceptions: checksum=0xc0b191f202270788`.
//!
//! Console: one `exceptions: ...` line per step, `exceptions: FAIL ...` per
//! mismatch, then `exceptions: checksum=0x%016x` and `exceptions: done`.
//! Exit status: the number of mismatches (POR values checked only with
//! poe=1); 100 on an unexpected exception.
#![no_std]
#![no_main]

use core::arch::asm;
use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use porwatch_guest_tests::exceptions::VECTOR_NAMES;
use porwatch_guest_tests::kentry::{self, Frame, EC_DABT_CUR, VEC_IRQ_EL1H, VEC_SYNC_EL1H};
use porwatch_guest_tests::kpkeys::{self, poe_on, POR_DEFAULT, POR_PGTABLES};
use porwatch_guest_tests::{gicv3, poe, println, smccc, timer, Boot};
use porwatch_monitor::fdt;

const EC_SVC64: u64 = 0x15;
const EC_BRK64: u64 = 0x3c;
const DFSC_ALIGNMENT: u64 = 0x21;
/// The EL1 virtual timer's INTID on QEMU virt (the DT is what is used).
const INTID_CNTV: u32 = 27;
/// Ticks until the virtual timer fires.
const TIMER_TVAL: u32 = 10_000;
/// Exit status on an exception the test did not ask for.
const STATUS_UNEXPECTED: u32 = 100;

/// The expected sequence as checksum words (see the module doc).
const EXPECTED_WORDS: [u64; 6] = [
    EC_SVC64 << 32 | 1,
    EC_BRK64 << 32 | 2,
    EC_DABT_CUR << 32 | DFSC_ALIGNMENT,
    1 << 63 | INTID_CNTV as u64,
    EC_SVC64 << 32 | 3,
    EC_BRK64 << 32 | 4,
];
const EXPECTED_CHECKSUM: u64 = 0xc0b1_91f2_0227_0788;

/// One handler call, as the handler saw it.
struct Seen {
    vector: AtomicU64,
    esr: AtomicU64,
    far: AtomicU64,
    /// POR_EL1 when the exception was taken (saved by the entry code).
    por_entry: AtomicU64,
    /// POR_EL1 in force inside the handler.
    por_handler: AtomicU64,
    /// IRQ: the acknowledged INTID.
    intid: AtomicU64,
    /// SVC #3: POR_EL1 after the nested BRK #4 returned.
    por_after_nested: AtomicU64,
}

impl Seen {
    const fn new() -> Self {
        Seen {
            vector: AtomicU64::new(0),
            esr: AtomicU64::new(0),
            far: AtomicU64::new(0),
            por_entry: AtomicU64::new(0),
            por_handler: AtomicU64::new(0),
            intid: AtomicU64::new(0),
            por_after_nested: AtomicU64::new(0),
        }
    }
    fn get(a: &AtomicU64) -> u64 {
        a.load(Ordering::Relaxed)
    }
    fn ec(&self) -> u64 {
        (Self::get(&self.esr) >> 26) & 0x3f
    }
    fn imm16(&self) -> u64 {
        Self::get(&self.esr) & 0xffff
    }
    fn dfsc(&self) -> u64 {
        Self::get(&self.esr) & 0x3f
    }
    /// This call's checksum word (see the module doc).
    fn word(&self) -> u64 {
        if Self::get(&self.vector) == VEC_IRQ_EL1H {
            1 << 63 | Self::get(&self.intid)
        } else if self.ec() == EC_DABT_CUR {
            self.ec() << 32 | self.dfsc()
        } else {
            self.ec() << 32 | self.imm16()
        }
    }
}

const LOG_CAP: usize = 8;
static LOG: [Seen; LOG_CAP] = [const { Seen::new() }; LOG_CAP];
static CALLS: AtomicUsize = AtomicUsize::new(0);
static IRQ_SEEN: AtomicBool = AtomicBool::new(false);

// POR_EL1 accessors, not kpkeys' own: they are inlined, so each POR_EL1
// write is made from `test_main` or the handler itself.

/// POR_EL1, or 0 without POE.
fn por() -> u64 {
    if poe_on() {
        unsafe { poe::read_por_el1() }
    } else {
        0
    }
}

/// POR_EL1 := v (+ ISB), skipped without POE.
fn set_por(v: u64) {
    if poe_on() {
        unsafe { poe::write_por_el1(v) }
    }
}

fn unexpected(frame: &Frame, vector: u64, why: &str) -> ! {
    println!(
        "exceptions: FAIL unexpected exception ({}) {} esr={:#x} elr={:#x} far={:#x}",
        why,
        VECTOR_NAMES[(vector & 15) as usize],
        frame.esr,
        frame.elr,
        frame.far
    );
    smccc::test_exit(STATUS_UNEXPECTED)
}

/// Called by kentry's vector code with the frame and the slot number; IRQs
/// are masked. May be re-entered (BRK #4 from SVC #3's handler).
extern "C" fn exc_handler(frame: &mut Frame, vector: u64) {
    let n = CALLS.fetch_add(1, Ordering::Relaxed);
    let Some(seen) = LOG.get(n) else { unexpected(frame, vector, "too many") };
    let set = |a: &AtomicU64, v: u64| a.store(v, Ordering::Relaxed);
    set(&seen.vector, vector);
    set(&seen.esr, frame.esr);
    set(&seen.far, frame.far);
    set(&seen.por_entry, frame.por);
    set(&seen.por_handler, por());
    match vector {
        VEC_SYNC_EL1H => match seen.ec() {
            // ELR already points after the SVC.
            EC_SVC64 if seen.imm16() == 3 => {
                set_por(POR_PGTABLES);
                // A nested synchronous exception from the handler.
                unsafe { asm!("brk #4", clobber_abi("C")) };
                set(&seen.por_after_nested, por());
            }
            EC_SVC64 => {}
            EC_BRK64 | EC_DABT_CUR => frame.elr += 4,
            _ => unexpected(frame, vector, "exception class"),
        },
        VEC_IRQ_EL1H => {
            let intid = gicv3::ack();
            timer::cntv_stop();
            if intid != gicv3::INTID_SPURIOUS {
                gicv3::eoi(intid);
            }
            set(&seen.intid, intid as u64);
            IRQ_SEEN.store(true, Ordering::Relaxed);
        }
        _ => unexpected(frame, vector, "vector"),
    }
}

/// A POR_EL1 value for printing: `-` without POE.
struct Por(u64);
impl fmt::Display for Por {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if poe_on() {
            write!(f, "{:#x}", self.0)
        } else {
            f.write_str("-")
        }
    }
}

struct Checks {
    failed: u32,
}

impl Checks {
    fn check(&mut self, step: &str, what: &str, got: u64, want: u64) {
        if got != want {
            println!("exceptions: FAIL {}: {} = {:#x}, expected {:#x}", step, what, got, want);
            self.failed += 1;
        }
    }

    /// Checks a POR_EL1 observation (only meaningful with POE).
    fn check_por(&mut self, step: &str, what: &str, got: u64, want: u64) {
        if poe_on() {
            self.check(step, what, got, want);
        }
    }

    /// Checks the `idx`-th handler call: vector, EC, immediate/DFSC, POR at
    /// entry and in the handler.
    fn check_sync(&mut self, step: &str, idx: usize, ec: u64, key: u64, por_entry: u64) {
        let s = &LOG[idx];
        let key_got = if ec == EC_DABT_CUR { s.dfsc() } else { s.imm16() };
        self.check(step, "vector", Seen::get(&s.vector), VEC_SYNC_EL1H);
        self.check(step, "EC", s.ec(), ec);
        self.check(step, if ec == EC_DABT_CUR { "DFSC" } else { "imm" }, key_got, key);
        self.check_por(step, "POR_EL1 at entry", Seen::get(&s.por_entry), por_entry);
        self.check_por(step, "POR_EL1 in handler", Seen::get(&s.por_handler), POR_DEFAULT);
    }

    fn check_calls(&mut self, step: &str, want: usize) {
        self.check(step, "handler calls", CALLS.load(Ordering::Relaxed) as u64, want as u64);
    }
}

fn fnv1a_fold(h: u64, w: u64) -> u64 {
    w.to_le_bytes().iter().fold(h, |h, &b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}

fn checksum(words: impl Iterator<Item = u64>, calls: u64) -> u64 {
    let h = words.fold(0xcbf2_9ce4_8422_2325, fnv1a_fold);
    fnv1a_fold(h, calls)
}

/// A line about handler call `idx`.
fn report(step: &str, idx: usize, after: u64) {
    let s = &LOG[idx];
    println!(
        "exceptions: {} {} esr={:#x} por_entry={} por_handler={} por_after={}",
        step,
        VECTOR_NAMES[(Seen::get(&s.vector) & 15) as usize],
        Seen::get(&s.esr),
        Por(Seen::get(&s.por_entry)),
        Por(Seen::get(&s.por_handler)),
        Por(after),
    );
}

/// Step f: one virtual-timer IRQ taken with POR_EL1 raised.
fn step_irq(c: &mut Checks, plat: &fdt::Platform) {
    const STEP: &str = "f irq";
    let (Some(gic), Some(t)) = (plat.gic.as_ref(), plat.timer.as_ref()) else {
        println!("exceptions: FAIL {}: no GIC or timer in the device tree", STEP);
        c.failed += 1;
        return;
    };
    let gic = match gicv3::GicV3::init(gic) {
        Ok(g) => g,
        Err(e) => {
            println!("exceptions: FAIL {}: GICv3 init: {}", STEP, e);
            c.failed += 1;
            return;
        }
    };
    c.check(STEP, "DT virtual timer INTID", t.virt as u64, INTID_CNTV as u64);
    if t.virt >= 32 {
        println!("exceptions: FAIL {}: INTID {} is not a PPI", STEP, t.virt);
        c.failed += 1;
        return;
    }
    gic.enable_ppi(t.virt, 0x80);

    let idx = CALLS.load(Ordering::Relaxed);
    IRQ_SEEN.store(false, Ordering::Relaxed);
    set_por(POR_PGTABLES);
    timer::cntv_arm(TIMER_TVAL);
    let start = timer::cntvct();
    // Give up after about a second.
    let limit = timer::cntfrq().max(1_000_000);
    // Unmask, let a pending IRQ in, mask again; WFI with IRQs masked still
    // wakes on a pending IRQ, so there is no lost-wakeup window.
    let taken = loop {
        unsafe {
            asm!("msr daifclr, #2", "isb", "msr daifset, #2", clobber_abi("C"), options(nostack));
        }
        if IRQ_SEEN.load(Ordering::Relaxed) {
            break true;
        }
        if timer::cntvct().wrapping_sub(start) > limit {
            break false;
        }
        unsafe { asm!("wfi", options(nomem, nostack)) };
    };
    let after = por();
    set_por(POR_DEFAULT);
    if !taken {
        timer::cntv_stop();
        println!(
            "exceptions: FAIL {}: no IRQ within {} ticks (CNTV_CTL_EL0={:#x})",
            STEP,
            limit,
            timer::cntv_ctl()
        );
        c.failed += 1;
        return;
    }
    c.check_calls(STEP, idx + 1);
    let s = &LOG[idx];
    c.check(STEP, "vector", Seen::get(&s.vector), VEC_IRQ_EL1H);
    c.check(STEP, "INTID", Seen::get(&s.intid), t.virt as u64);
    c.check_por(STEP, "POR_EL1 at entry", Seen::get(&s.por_entry), POR_PGTABLES);
    c.check_por(STEP, "POR_EL1 in handler", Seen::get(&s.por_handler), POR_DEFAULT);
    c.check_por(STEP, "POR_EL1 after return", after, POR_PGTABLES);
    println!(
        "exceptions: {} intid={} por_entry={} por_handler={} por_after={}",
        STEP,
        Seen::get(&s.intid),
        Por(Seen::get(&s.por_entry)),
        Por(Seen::get(&s.por_handler)),
        Por(after)
    );
}

#[unsafe(no_mangle)]
fn test_main(boot: &Boot) -> u32 {
    let mut c = Checks { failed: 0 };
    let mut plat = fdt::Platform::new();
    if fdt::discover(boot.dtb, &mut plat).is_err() {
        println!("exceptions: FAIL cannot parse the device tree");
        return 1;
    }
    kentry::install(exc_handler);
    println!("exceptions: vectors at {:#x}", kentry::vectors());

    // a. POE?
    let poe = kpkeys::init();
    println!("exceptions: poe={}", poe as u8);
    if poe {
        unsafe {
            let tcr2 = poe::read_tcr2_el1() | poe::TCR2_POE;
            poe::write_tcr2_el1(tcr2);
        }
        set_por(POR_DEFAULT);
        let tcr2 = unsafe { poe::read_tcr2_el1() };
        c.check("a", "TCR2_EL1.POE", tcr2 & poe::TCR2_POE, poe::TCR2_POE);
        c.check("a", "POR_EL1", por(), POR_DEFAULT);
        println!("exceptions: a tcr2_el1={:#x} por_el1={:#x}", tcr2, por());
    }

    // b. Raised POR, SVC #1.
    set_por(POR_PGTABLES);
    unsafe { asm!("svc #1", clobber_abi("C")) };
    let after = por();
    c.check_calls("b svc#1", 1);
    c.check_sync("b svc#1", 0, EC_SVC64, 1, POR_PGTABLES);
    c.check_por("b svc#1", "POR_EL1 after return", after, POR_PGTABLES);
    report("b svc#1", 0, after);

    // c. BRK #2, still raised.
    unsafe { asm!("brk #2", clobber_abi("C")) };
    let after = por();
    c.check_calls("c brk#2", 2);
    c.check_sync("c brk#2", 1, EC_BRK64, 2, POR_PGTABLES);
    c.check_por("c brk#2", "POR_EL1 after return", after, POR_PGTABLES);
    report("c brk#2", 1, after);

    // d. Alignment fault: an 8-byte load-acquire, unaligned and crossing a
    // 16-byte boundary (see the module doc).
    #[repr(C, align(16))]
    struct Buf([u8; 32]);
    static BUF: Buf = Buf([0; 32]);
    let p = BUF.0.as_ptr() as u64 + 9;
    unsafe { asm!("ldar x1, [x0]", in("x0") p, clobber_abi("C")) };
    let after = por();
    c.check_calls("d dabt", 3);
    c.check_sync("d dabt", 2, EC_DABT_CUR, DFSC_ALIGNMENT, POR_PGTABLES);
    c.check("d dabt", "FAR_EL1", Seen::get(&LOG[2].far), p);
    c.check_por("d dabt", "POR_EL1 after return", after, POR_PGTABLES);
    report("d dabt", 2, after);

    // e. Lower.
    set_por(POR_DEFAULT);
    c.check_por("e lower", "POR_EL1", por(), POR_DEFAULT);
    println!("exceptions: e lower por_el1={}", Por(por()));

    // f. IRQ 27 with POR raised.
    step_irq(&mut c, &plat);
    let irq_calls = CALLS.load(Ordering::Relaxed);

    // g. Nested: SVC #3 whose handler raises POR and takes BRK #4.
    set_por(POR_DEFAULT);
    unsafe { asm!("svc #3", clobber_abi("C")) };
    let after = por();
    let (outer, inner) = (irq_calls, irq_calls + 1);
    c.check_calls("g svc#3", irq_calls + 2);
    c.check_sync("g svc#3", outer, EC_SVC64, 3, POR_DEFAULT);
    c.check_sync("g brk#4", inner, EC_BRK64, 4, POR_PGTABLES);
    let nested = Seen::get(&LOG[outer].por_after_nested);
    c.check_por("g svc#3", "POR_EL1 after nested BRK", nested, POR_PGTABLES);
    c.check_por("g svc#3", "POR_EL1 after return", after, POR_DEFAULT);
    report("g svc#3", outer, after);
    report("g brk#4 (nested)", inner, nested);

    // h. Checksum over what the handlers saw.
    let calls = CALLS.load(Ordering::Relaxed).min(LOG_CAP);
    let sum = checksum(LOG[..calls].iter().map(Seen::word), calls as u64);
    let want = checksum(EXPECTED_WORDS.iter().copied(), EXPECTED_WORDS.len() as u64);
    c.check("h", "checksum", sum, want);
    c.check("h", "checksum constant", want, EXPECTED_CHECKSUM);
    println!("exceptions: checksum={:#018x}", sum);
    println!("exceptions: done");
    c.failed
}
