//! `pt_store`: the page-table watch's store fast path (porwatch's
//! `hyp/src/arch/fast_path.rs`), checked and timed. Without porwatch, or
//! with `porwatch.track=off`, the same stores run natively: the baseline.
//!
//! # Set-up
//!
//! As `pt_stress` (`src/mmu.rs`): kpkeys vectors, the image and console
//! identity-mapped, the page-table pool in a linear map
//! (`0xffff_0000_0000_0000 + PA`) with POIndex 1 on table pages, TCR2_EL1.POE
//! = 1, POR_EL1 = 0x17, MMU on. Then, in one lazy-MMU batch (POR_EL1 = 0x57:
//! pkey 1 read-write), three pool pages become L1, L2 and L3 tables of a
//! subtree under TTBR1 (L0 index 0x1c0). Every store below goes through the
//! linear map into that L3 table unless said otherwise, and writes an even
//! value (never a valid descriptor).
//!
//! # Checks (`pt_store: check NAME ok`, or `FAIL ...` lines)
//!
//! | name | stores (PTE indices) |
//! |---|---|
//! | `regs` | `STR Xn, [X0, #8n]` for n = 0..30 and `STR XZR` (PTEs 0-31): each PTE holds the register's value (`pt_store_regs`) |
//! | `sizes` | STRB, STRH, STR W, STR X, STLR X, STUR X (negative offset), STLRB, STRB at byte 7 (PTEs 32-39) |
//! | `unaligned` | `STR X` at PTE 40 + 4 bytes (spans PTEs 40 and 41: porwatch's Rust path) |
//! | `atomics` | 64-bit LSE atomics (FEAT_LSE; else `skipped`), PTEs 42-47 and 58-62: LDADD, LDCLR, LDEOR, LDSET, LDSMAX, LDSMIN, LDUMAX, LDUMIN, SWP, SWPAL, CAS that swaps, CAS that does not, CASAL, STADD (LDADD to XZR): each old value returned and each PTE after it |
//! | `unpriv` | with POE: the L3 table's linear-map page made EL0-accessible (AP[1]), TCR2_EL1.E0POE = 1, POR_EL0 = 0: `UNPRIV_STORES` STR X (PTEs 32-39: the kernel's own stores, no hazard; porwatch's fast path reads each instruction to tell), then one `STTR X1, [X0]` (`pt_store_sttr`, PTE 63): an unprivileged store POR_EL0 denies, a hazard porwatch must report |
//! | `hazards` | `HAZARDS` `STR X1, [X0]` (`pt_store_hazard_str`) to PTEs 48.. under POR_EL1 = 0x17: pkey 1 read-only, each one a hazard porwatch must report (report policy: performed) |
//! | `deny_cache` | 8 STR X (PTEs 128-135) while TCR2_EL1.POE goes off and on and POR_EL1 toggles between 0x17 and 0x57 and once 0x37 (`check_deny_cache`): 3 hazards (`pt_store_hazard_str`, POR_EL1 0x17, 0x17, 0x37) porwatch must report although its fast path's mask cache held those values' masks from before the TCR2_EL1 change |
//! | `window` | only with `pt_store.window=1` and POE, after the benches (`check_window`: the windows and entry resets of a lazy-MMU batch, which a shortcut of porwatch's must not blur; it caught stores checked against a raised level's stale mask): a batch of `WINDOW_STORES` STR X (PTEs 256..) under POR_EL1 = 0x57, POR_EL1 back to 0x17 (the closing write), then one `pt_store_hazard_str` to PTE 256: a hazard. Then a batch of `HALF_BATCH` stores (PTEs 320..), an `SVC` whose kpkeys entry code resets POR_EL1 to 0x17 and whose handler makes `ENTRY_HAZARDS` `pt_store_hazard_str` (PTEs 336..): hazards; the exit code restores 0x57 and the batch goes on (`HALF_BATCH` more, PTEs 328..). Console: `pt_store: window stores=N hazards=H closing_va=V entry_va=E` |
//!
//! # Timed (`pt_store: bench NAME stores=N ticks=T milli_per_store=M`)
//!
//! N = `pt_store.iters` stores each (`pt_store.only=NAME`: that one only),
//! to PTEs 64-127 in turn, CNTVCT read around the loop (under `-icount
//! shift=0` with CNTFRQ = 1 GHz a tick is an instruction, EL2's included;
//! M = T * 1000 / N):
//!
//! | name | store | porwatch's path |
//! |---|---|---|
//! | `str_x` | STR X, POR_EL1 = 0x57 | assembly, with the stage-1 walk (some pkeys are denied) |
//! | `str_w` | STR W, POR_EL1 = 0x57 | assembly, with the walk |
//! | `str_x_nowalk` | STR X, POR_EL1 = 0x7777_7777 (every pkey RWX) | assembly, no walk (the overlay cannot deny: as in stock Linux) |
//! | `str_x_por_el0` | STR X, POR_EL1 = 0x57, TCR2_EL1.E0POE = 1 and POR_EL0 = 0 (as in a Linux 6.12 kernel thread) | assembly, with the walk (only an STTR could be denied, and the leaf gives EL0 no access: none can be one) |
//! | `stp` | STP X, X | Rust (two registers: ESR does not describe it) |
//! | `str_q` | STR Q (SIMD&FP) | stepped: run with the page writable, the page compared before and after (EL2 never reads FP/SIMD registers) |
//! | `swp` | SWP X (FEAT_LSE; else `skipped`) | assembly, with the walk |
//! | `cas` | CAS X (FEAT_LSE; else `skipped`) | assembly, with the walk |
//!
//! # End
//!
//! PTEs cleared, the subtree unlinked and its tables freed; a walk of both
//! trees equals the one made before, every free pool page is zero. Console:
//! `pt_store: writes=W fast_min=F hazards=H hazard_va=V sttr_va=S`: W
//! table stores in all (linear-map PTE updates included), of which at least
//! F can take the fast path under porwatch (every check and bench store to
//! the L3 table but the first store, the unaligned one, the hazards, the
//! STTR, STP and the `deny_cache` and `window` checks), and H
//! hazards (0 without POE; the `window` check's not included) at VA V (the
//! `hazards` check's first; the others follow 8 bytes apart, then the
//! `deny_cache` ones at PTEs 131, 133, 134)
//! and, with POE, the unprivileged one at S. Then `pt_store: done`.
//! Exit status 0, 1 on a failed check or bad command line, 100 on an
//! unexpected exception.
#![no_std]
#![no_main]

use core::arch::{asm, global_asm};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use porwatch_guest_tests::exceptions::VECTOR_NAMES;
use porwatch_guest_tests::kentry::{self, Frame};
use porwatch_guest_tests::kpkeys::{self, POR_DEFAULT, POR_PGTABLES};
use porwatch_guest_tests::mmu::{self, Setup, PAGE_SIZE};
use porwatch_guest_tests::{cmdline, poe, println, smccc, timer, Boot};
use porwatch_monitor::fdt;

const DEFAULT_ITERS: u64 = 1000;
const MAX_ITERS: u64 = 10_000_000;
/// The subtree's L0 index (TTBR1).
const L0_INDEX: usize = 0x1c0;
const L1_INDEX: usize = 3;
const L2_INDEX: usize = 5;
const REGS_PTE: usize = 0;
const SIZES_PTE: usize = 32;
const UNALIGNED_PTE: usize = 40;
const HAZARD_PTE: usize = 48;
const HAZARDS: u64 = 10;
/// The `deny_cache` check's PTEs and hazards.
const CACHE_PTE: usize = 128;
const CACHE_HAZARDS: u64 = 3;
/// pkey 0 RWX, pkey 1 R+X: a third value that leaves the tables read-only.
const POR_PGTABLES_RX: u64 = 0x37;
const UNPRIV_STORES: usize = 8;
const UNPRIV_PTE: usize = 32;
const STTR_PTE: usize = 63;
const ATOMIC_PTE: usize = 42;
const ATOMIC_PTE2: usize = 58;
const BENCH_PTE: usize = 64;
const BENCH_PTES: usize = 64;
/// `regs`: register n holds REGS_BASE + 2n.
const REGS_BASE: u64 = 0x1234_5678_0000_0000;
const SIZES_VALUE: u64 = 0x8877_6655_4433_2210;
/// Every pkey read-write-execute: the overlay cannot deny a write.
const POR_ALL_RWX: u64 = 0x7777_7777;
const STATUS_UNEXPECTED: u32 = 100;
/// The `window` check: one batch, the hazard after it closed (at its first
/// PTE), then a batch cut by an exception entry.
const WINDOW_PTE: usize = 256;
const WINDOW_STORES: usize = 48;
const SPLIT_PTE: usize = 320;
const HALF_BATCH: usize = 8;
const ENTRY_PTE: usize = 336;
const ENTRY_HAZARDS: usize = 4;
/// ESR_EL1.EC of an SVC from AArch64.
const EC_SVC64: u64 = 0x15;

global_asm!(
    r#"
.pushsection .text.pt_store_regs, "ax"
/* x0 = 32 descriptors, x1 = base: STR Xn, [x0, #8n] with Xn = base + 2n
 * (x0: its own value), then STR XZR into the last. */
.global pt_store_regs
.type pt_store_regs, %function
pt_store_regs:
    stp     x18, x19, [sp, #-96]!
    stp     x20, x21, [sp, #16]
    stp     x22, x23, [sp, #32]
    stp     x24, x25, [sp, #48]
    stp     x26, x27, [sp, #64]
    stp     x28, x29, [sp, #80]
    str     x30, [sp, #-16]!
    .irp n, 2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30
    add     x\n, x1, #(2 * \n)
    .endr
    add     x1, x1, #2
    str     x0, [x0]
    .irp n, 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30
    str     x\n, [x0, #(8 * \n)]
    .endr
    str     xzr, [x0, #(8 * 31)]
    ldr     x30, [sp], #16
    ldp     x20, x21, [sp, #16]
    ldp     x22, x23, [sp, #32]
    ldp     x24, x25, [sp, #48]
    ldp     x26, x27, [sp, #64]
    ldp     x28, x29, [sp, #80]
    ldp     x18, x19, [sp], #96
    ret
.size pt_store_regs, . - pt_store_regs

/* x0 = 8 descriptors, x1 = value: one store of each single-register
 * form porwatch's fast path takes (see the table in pt_store.rs). */
.global pt_store_sizes
.type pt_store_sizes, %function
pt_store_sizes:
    strb    w1, [x0]
    strh    w1, [x0, #8]
    str     w1, [x0, #16]
    str     x1, [x0, #24]
    add     x2, x0, #32
    stlr    x1, [x2]
    add     x2, x0, #48
    stur    x1, [x2, #-8]
    stlrb   w1, [x2]
    strb    w1, [x0, #63]
    ret
.size pt_store_sizes, . - pt_store_sizes

.global pt_store_sttr
.type pt_store_sttr, %function
pt_store_sttr:
    sttr    x1, [x0]
    ret
.size pt_store_sttr, . - pt_store_sttr

.global pt_store_hazard_str
.type pt_store_hazard_str, %function
pt_store_hazard_str:
    str     x1, [x0]
    ret
.size pt_store_hazard_str, . - pt_store_hazard_str
.popsection
"#
);

unsafe extern "C" {
    fn pt_store_regs(ptes: u64, base: u64);
    fn pt_store_sizes(ptes: u64, value: u64);
    fn pt_store_hazard_str(ptep: u64, value: u64);
    fn pt_store_sttr(ptep: u64, value: u64);
}

/// Stores per check, as pt_store_regs / pt_store_sizes make them.
const REGS_STORES: u64 = 32;
const SIZES_STORES: u64 = 8;

static FAILURES: AtomicU32 = AtomicU32::new(0);
/// The `window` check's SVC handler writes here: the L3 table, 0 while no
/// SVC is expected.
static SVC_L3: AtomicU64 = AtomicU64::new(0);

fn fail(args: core::fmt::Arguments) {
    if FAILURES.fetch_add(1, Ordering::Relaxed) < 10 {
        println!("pt_store: FAIL {}", args);
    }
}

extern "C" fn pt_store_exception(frame: &mut Frame, vector: u64) {
    let l3 = SVC_L3.load(Ordering::Relaxed);
    if vector == kentry::VEC_SYNC_EL1H && (frame.esr >> 26) & 0x3f == EC_SVC64 && l3 != 0 {
        // The `window` check: the entry code reset POR_EL1 to the default
        // (pkey 1 read-only), so each store is a hazard.
        for k in 0..ENTRY_HAZARDS {
            unsafe { pt_store_hazard_str(mmu::desc_va(l3, ENTRY_PTE + k), window_value(ENTRY_PTE + k)) };
        }
        return;
    }
    println!(
        "pt_store: FAIL unexpected exception {} esr={:#x} elr={:#x} far={:#x}",
        VECTOR_NAMES[(vector & 15) as usize],
        frame.esr,
        frame.elr,
        frame.far
    );
    smccc::test_exit(STATUS_UNEXPECTED)
}

/// Table stores made, and how many of them can take the fast path.
#[derive(Default)]
struct Count {
    writes: u64,
    fast: u64,
}

fn set_page_pkey(n: &mut Count, pa: u64, pkey: u64) {
    let pte = mmu::lm_pte(pa);
    str_x(pte.va(), (pte.desc & !mmu::POINDEX_MASK) | mmu::pkey_bits(pkey));
    mmu::flush_tlb_page(mmu::lm_va(pa));
    n.writes += 1;
}

fn str_x(p: u64, v: u64) {
    unsafe { (p as *mut u64).write_volatile(v) };
}

fn read(p: u64) -> u64 {
    unsafe { (p as *const u64).read_volatile() }
}

fn expect(what: &str, idx: usize, got: u64, want: u64) -> bool {
    if got != want {
        fail(format_args!("{}: PTE {} = {:#x}, expected {:#x}", what, idx, got, want));
        return false;
    }
    true
}

fn report(name: &str, ok: bool) {
    if ok {
        println!("pt_store: check {} ok", name);
    }
}

/// The benches, in order.
const BENCHES: [&str; 8] = ["str_x", "str_w", "str_x_nowalk", "str_x_por_el0", "stp", "str_q", "swp", "cas"];

struct Args {
    iters: u64,
    /// Index into BENCHES (None: all).
    only: Option<usize>,
    /// Run the `window` check.
    window: bool,
}

fn bench(name: &str, iters: u64, mut store: impl FnMut(u64, u64)) {
    let t0 = timer::cntvct();
    for i in 0..iters {
        let j = BENCH_PTE + (i as usize % BENCH_PTES);
        store(j as u64, (i & 0xff) << 1);
    }
    let ticks = timer::cntvct().wrapping_sub(t0);
    println!(
        "pt_store: bench {} stores={} ticks={} milli_per_store={}",
        name,
        iters,
        ticks,
        ticks * 1000 / iters
    );
}

fn lse() -> bool {
    let isar0: u64;
    unsafe { asm!("mrs {}, id_aa64isar0_el1", out(reg) isar0, options(nomem, nostack)) };
    (isar0 >> 20) & 0xf >= 2
}

#[target_feature(enable = "lse")]
unsafe fn cas_lse(p: u64, expected: u64, new: u64) -> u64 {
    let mut old = expected;
    unsafe {
        asm!("cas {old}, {new}, [{p}]", old = inout(reg) old, new = in(reg) new, p = in(reg) p, options(nostack))
    };
    old
}

/// The LSE atomics the `atomics` check uses.
#[derive(Clone, Copy)]
enum Op {
    Add,
    Clr,
    Eor,
    Set,
    Smax,
    Smin,
    Umax,
    Umin,
    Swp,
    SwpAl,
}

/// `op` on the u64 at `p` with operand `v`; returns the old value.
#[target_feature(enable = "lse")]
unsafe fn atomic(op: Op, p: u64, v: u64) -> u64 {
    let old: u64;
    macro_rules! rmw {
        ($i:literal) => {
            unsafe {
                asm!(concat!($i, " {v}, {old}, [{p}]"), v = in(reg) v, old = out(reg) old, p = in(reg) p,
                    options(nostack))
            }
        };
    }
    match op {
        Op::Add => rmw!("ldadd"),
        Op::Clr => rmw!("ldclr"),
        Op::Eor => rmw!("ldeor"),
        Op::Set => rmw!("ldset"),
        Op::Smax => rmw!("ldsmax"),
        Op::Smin => rmw!("ldsmin"),
        Op::Umax => rmw!("ldumax"),
        Op::Umin => rmw!("ldumin"),
        Op::Swp => rmw!("swp"),
        Op::SwpAl => rmw!("swpal"),
    }
    old
}

/// What `op` leaves in memory.
fn apply(op: Op, old: u64, v: u64) -> u64 {
    match op {
        Op::Add => old.wrapping_add(v),
        Op::Clr => old & !v,
        Op::Eor => old ^ v,
        Op::Set => old | v,
        Op::Smax => (old as i64).max(v as i64) as u64,
        Op::Smin => (old as i64).min(v as i64) as u64,
        Op::Umax => old.max(v),
        Op::Umin => old.min(v),
        Op::Swp | Op::SwpAl => v,
    }
}

#[target_feature(enable = "lse")]
unsafe fn casal_lse(p: u64, expected: u64, new: u64) -> u64 {
    let mut old = expected;
    unsafe {
        asm!("casal {old}, {new}, [{p}]", old = inout(reg) old, new = in(reg) new, p = in(reg) p, options(nostack))
    };
    old
}

#[target_feature(enable = "lse")]
unsafe fn stadd_lse(p: u64, v: u64) {
    unsafe { asm!("stadd {v}, [{p}]", v = in(reg) v, p = in(reg) p, options(nostack)) };
}

/// The `atomics` check (FEAT_LSE).
fn check_atomics(n: &mut Count, p: &dyn Fn(usize) -> u64) {
    if !lse() {
        println!("pt_store: check atomics skipped (no FEAT_LSE)");
        return;
    }
    // Initial values: even; operands with the sign bit either way.
    const INIT: u64 = 0x8000_0000_0000_1230;
    const OPERAND: u64 = 0x0000_0000_0000_0ff2;
    let ops =
        [Op::Add, Op::Clr, Op::Eor, Op::Set, Op::Smax, Op::Smin, Op::Umax, Op::Umin, Op::Swp, Op::SwpAl];
    let mut ok = true;
    for (i, op) in ops.iter().enumerate() {
        let j = if i < 6 { ATOMIC_PTE + i } else { ATOMIC_PTE2 + i - 6 };
        str_x(p(j), INIT);
        let old = unsafe { atomic(*op, p(j), OPERAND) };
        ok &= expect("atomics old", j, old, INIT);
        ok &= expect("atomics", j, read(p(j)), apply(*op, INIT, OPERAND));
        n.writes += 2;
        n.fast += 2;
    }
    // CAS: one that swaps, one that does not (CASAL), then STADD.
    let j = ATOMIC_PTE2 + 4;
    str_x(p(j), INIT);
    ok &= expect("cas old", j, unsafe { cas_lse(p(j), INIT, OPERAND) }, INIT);
    ok &= expect("cas", j, read(p(j)), OPERAND);
    ok &= expect("casal old", j, unsafe { casal_lse(p(j), INIT, 2) }, OPERAND);
    ok &= expect("casal (no swap)", j, read(p(j)), OPERAND);
    unsafe { stadd_lse(p(j), 4) };
    ok &= expect("stadd", j, read(p(j)), OPERAND + 4);
    n.writes += 4;
    n.fast += 4;
    report("atomics", ok);
}

fn parse_args(plat: &fdt::Platform) -> Result<Args, ()> {
    let mut iters = DEFAULT_ITERS;
    let mut only = None;
    let mut window = false;
    for (k, v) in cmdline::words(plat.chosen.bootargs.unwrap_or(""), "pt_store.") {
        match (k, v) {
            ("pt_store.iters", Some(v)) => match cmdline::parse_u64(v) {
                Some(n) if (1..=MAX_ITERS).contains(&n) => iters = n,
                _ => {
                    println!("pt_store: FAIL bad pt_store.iters={:?} (want 1..={})", v, MAX_ITERS);
                    return Err(());
                }
            },
            ("pt_store.window", Some("0")) => window = false,
            ("pt_store.window", Some("1")) => window = true,
            ("pt_store.only", Some(v)) => match BENCHES.iter().position(|b| *b == v) {
                Some(i) => only = Some(i),
                None => {
                    println!("pt_store: FAIL bad pt_store.only={:?} (want one of {:?})", v, BENCHES);
                    return Err(());
                }
            },
            _ => {
                println!(
                    "pt_store: FAIL unknown option {} (pt_store.iters=N, pt_store.only=NAME, pt_store.window=0|1)",
                    k
                );
                return Err(());
            }
        }
    }
    Ok(Args { iters, only, window })
}

/// The checks; returns the number of hazards made.
fn checks(n: &mut Count, l3: u64, poe: bool) -> u64 {
    let p = |j: usize| mmu::desc_va(l3, j);

    unsafe { pt_store_regs(p(REGS_PTE), REGS_BASE) };
    n.writes += REGS_STORES;
    n.fast += REGS_STORES - 1; // the first store to the page goes to Rust
    let mut ok = expect("regs x0", REGS_PTE, read(p(REGS_PTE)), p(REGS_PTE));
    for r in 1..31 {
        ok &= expect("regs", REGS_PTE + r, read(p(REGS_PTE + r)), REGS_BASE + 2 * r as u64);
    }
    ok &= expect("regs xzr", REGS_PTE + 31, read(p(REGS_PTE + 31)), 0);
    report("regs", ok);

    unsafe { pt_store_sizes(p(SIZES_PTE), SIZES_VALUE) };
    n.writes += SIZES_STORES;
    n.fast += SIZES_STORES;
    let v = SIZES_VALUE;
    let want = [v & 0xff, v & 0xffff, v & 0xffff_ffff, v, v, v, v & 0xff, (v & 0xff) << 56];
    let mut ok = true;
    for (i, w) in want.iter().enumerate() {
        ok &= expect("sizes", SIZES_PTE + i, read(p(SIZES_PTE + i)), *w);
    }
    report("sizes", ok);

    unsafe { asm!("str {v}, [{p}, #4]", v = in(reg) v, p = in(reg) p(UNALIGNED_PTE), options(nostack)) };
    n.writes += 1;
    let ok = expect("unaligned", UNALIGNED_PTE, read(p(UNALIGNED_PTE)), v << 32)
        & expect("unaligned", UNALIGNED_PTE + 1, read(p(UNALIGNED_PTE + 1)), v >> 32);
    report("unaligned", ok);

    check_atomics(n, &p);
    let unpriv_hazards = if poe { check_unpriv(n, l3, &p) } else { 0 };

    // Hazards: the default level leaves pkey 1 (the tables) read-only.
    kpkeys::set_por(POR_DEFAULT);
    for h in 0..HAZARDS as usize {
        unsafe { pt_store_hazard_str(p(HAZARD_PTE + h), 2 * h as u64 + 2) };
    }
    kpkeys::set_por(POR_PGTABLES);
    n.writes += HAZARDS;
    let mut ok = true;
    for h in 0..HAZARDS as usize {
        ok &= expect("hazards", HAZARD_PTE + h, read(p(HAZARD_PTE + h)), 2 * h as u64 + 2);
    }
    report("hazards", ok);
    let cache_hazards = check_deny_cache(n, &p, poe);
    if poe {
        HAZARDS + unpriv_hazards + cache_hazards
    } else {
        0
    }
}

/// The `deny_cache` check: porwatch's fast path keeps the overlay mask of
/// recent POR_EL1 values (monitor s1::deny_cache) for the TCR2_EL1 they
/// were computed under. Fill it with overlays off (masks that deny
/// nothing), turn them on, and go back to the cached values: each store
/// marked H is a hazard porwatch must report, and one it would miss if a
/// mask outlived the TCR2_EL1 change, or the cache mixed up values. One
/// STR X per step, to PTEs 128..; TCR2_EL1 is written before POR_EL1:
///
/// | # | TCR2.POE | POR_EL1 | |
/// |---|---|---|---|
/// | 0, 1, 2 | 0 | 0x17, 0x57, 0x17 | no overlay: no hazard (both values cached) |
/// | 3 | 1 | 0x17 | H: the TCR2_EL1 write made under 0x17 |
/// | 4, 5 | 1 | 0x57, 0x17 | 5 H: 0x57 was cached under POE = 0 |
/// | 6 | 1 | 0x37 | H: a third value (pkey 1 R+X) |
/// | 7 | 1 | 0x57 | |
///
/// Returns the hazards made (`CACHE_HAZARDS`).
fn check_deny_cache(n: &mut Count, p: &dyn Fn(usize) -> u64, poe: bool) -> u64 {
    const STEPS: [(bool, u64, bool); 8] = [
        (false, POR_DEFAULT, false),
        (false, POR_PGTABLES, false),
        (false, POR_DEFAULT, false),
        (true, POR_DEFAULT, true),
        (true, POR_PGTABLES, false),
        (true, POR_DEFAULT, true),
        (true, POR_PGTABLES_RX, true),
        (true, POR_PGTABLES, false),
    ];
    let tcr2 = if poe { unsafe { poe::read_tcr2_el1() } } else { 0 };
    let mut hazards = 0;
    for (i, &(on, por, hazard)) in STEPS.iter().enumerate() {
        if poe {
            let want = if on { tcr2 | poe::TCR2_POE } else { tcr2 & !poe::TCR2_POE };
            if unsafe { poe::read_tcr2_el1() } != want {
                unsafe { poe::write_tcr2_el1(want) };
            }
        }
        kpkeys::set_por(por);
        let v = 0x100 + 2 * i as u64;
        if hazard {
            unsafe { pt_store_hazard_str(p(CACHE_PTE + i), v) };
            hazards += 1;
        } else {
            str_x(p(CACHE_PTE + i), v);
        }
    }
    n.writes += STEPS.len() as u64;
    let mut ok = true;
    for i in 0..STEPS.len() {
        ok &= expect("deny_cache", CACHE_PTE + i, read(p(CACHE_PTE + i)), 0x100 + 2 * i as u64);
    }
    report("deny_cache", ok);
    assert_eq!(hazards, CACHE_HAZARDS);
    hazards
}

/// The value the `window` check writes to PTE `j` (even: never valid).
fn window_value(j: usize) -> u64 {
    0x4000 + 2 * j as u64
}

/// What the `window` check made.
struct Window {
    stores: u64,
    hazards: u64,
}

/// The `window` check (POE only; see the table at the top): each hazard
/// here is one porwatch sees only if its store check follows every
/// POR_EL1 change, including an entry's reset that Rust makes after the
/// assembly raised the level.
fn check_window(n: &mut Count, l3: u64) -> Window {
    let p = |j: usize| mmu::desc_va(l3, j);
    let mut w = Window { stores: 0, hazards: 0 };
    // A window of its own: POR_EL1 changes to the raised level here.
    kpkeys::set_por(POR_DEFAULT);
    kpkeys::set_por(POR_PGTABLES);
    for j in WINDOW_PTE..WINDOW_PTE + WINDOW_STORES {
        str_x(p(j), window_value(j));
    }
    kpkeys::set_por(POR_DEFAULT); // the closing write
    let closing = window_value(WINDOW_PTE) + 0x1000;
    unsafe { pt_store_hazard_str(p(WINDOW_PTE), closing) };
    w.stores += WINDOW_STORES as u64 + 1;
    w.hazards += 1;
    // A batch cut in two by an exception whose entry code resets POR_EL1.
    kpkeys::set_por(POR_PGTABLES);
    for j in SPLIT_PTE..SPLIT_PTE + HALF_BATCH {
        str_x(p(j), window_value(j));
    }
    SVC_L3.store(l3, Ordering::Relaxed);
    unsafe { asm!("svc #0", options(nostack)) };
    SVC_L3.store(0, Ordering::Relaxed);
    if kpkeys::por() != POR_PGTABLES {
        fail(format_args!("window: POR_EL1 = {:#x} after the SVC", kpkeys::por()));
    }
    for j in SPLIT_PTE + HALF_BATCH..SPLIT_PTE + 2 * HALF_BATCH {
        str_x(p(j), window_value(j));
    }
    kpkeys::set_por(POR_DEFAULT);
    w.stores += (2 * HALF_BATCH + ENTRY_HAZARDS) as u64;
    w.hazards += ENTRY_HAZARDS as u64;
    n.writes += w.stores;
    let mut ok = expect("window closing", WINDOW_PTE, read(p(WINDOW_PTE)), closing);
    let written = (WINDOW_PTE + 1..WINDOW_PTE + WINDOW_STORES)
        .chain(SPLIT_PTE..SPLIT_PTE + 2 * HALF_BATCH)
        .chain(ENTRY_PTE..ENTRY_PTE + ENTRY_HAZARDS);
    for j in written {
        ok &= expect("window", j, read(p(j)), window_value(j));
    }
    report("window", ok);
    kpkeys::set_por(POR_PGTABLES);
    w
}

/// The `unpriv` check (POE only); returns the hazards made (1).
fn check_unpriv(n: &mut Count, l3: u64, p: &dyn Fn(usize) -> u64) -> u64 {
    let lm = mmu::lm_pte(l3);
    str_x(lm.va(), lm.desc | mmu::AP_EL0);
    mmu::flush_tlb_page(mmu::lm_va(l3));
    n.writes += 1;
    let tcr2 = unsafe { poe::read_tcr2_el1() };
    unsafe {
        poe::write_por_el0(0);
        poe::write_tcr2_el1(tcr2 | poe::TCR2_E0POE);
    }
    for j in 0..UNPRIV_STORES {
        str_x(p(UNPRIV_PTE + j), 0x40 + 2 * j as u64);
    }
    unsafe { pt_store_sttr(p(STTR_PTE), 0x80) };
    unsafe { poe::write_tcr2_el1(tcr2) };
    str_x(lm.va(), lm.desc);
    mmu::flush_tlb_page(mmu::lm_va(l3));
    n.writes += UNPRIV_STORES as u64 + 2;
    n.fast += UNPRIV_STORES as u64;
    let mut ok = true;
    for j in 0..UNPRIV_STORES {
        ok &= expect("unpriv", UNPRIV_PTE + j, read(p(UNPRIV_PTE + j)), 0x40 + 2 * j as u64);
    }
    ok &= expect("unpriv sttr", STTR_PTE, read(p(STTR_PTE)), 0x80);
    report("unpriv", ok);
    1
}

fn benches(n: &mut Count, l3: u64, a: &Args) {
    let p = |j: u64| mmu::desc_va(l3, j as usize);
    let iters = a.iters;
    let run = |name: &str| a.only.is_none_or(|i| BENCHES[i] == name);
    // The three the assembly completes.
    let mut fast = |name: &str, store: &dyn Fn(u64, u64)| {
        if run(name) {
            bench(name, iters, store);
            n.writes += iters;
            n.fast += iters;
        }
    };
    fast("str_x", &|j, v| str_x(p(j), v));
    fast("str_w", &|j, v| unsafe { (p(j) as *mut u32).write_volatile(v as u32) });
    kpkeys::set_por(POR_ALL_RWX);
    fast("str_x_nowalk", &|j, v| str_x(p(j), v));
    kpkeys::set_por(POR_PGTABLES);
    // Overlays for EL0 too, denying every pkey: the kernel's own stores
    // are not affected (only STTR would be).
    let poe = kpkeys::poe_on();
    let tcr2 = if poe { unsafe { poe::read_tcr2_el1() } } else { 0 };
    if poe {
        unsafe {
            poe::write_por_el0(0);
            poe::write_tcr2_el1(tcr2 | poe::TCR2_E0POE);
        }
    }
    fast("str_x_por_el0", &|j, v| str_x(p(j), v));
    if poe {
        unsafe { poe::write_tcr2_el1(tcr2) };
    }
    if run("stp") {
        bench("stp", iters, |j, v| unsafe {
            asm!("stp {v}, {v}, [{p}]", v = in(reg) v, p = in(reg) p(j & !1), options(nostack))
        });
        n.writes += iters;
    }
    if run("str_q") {
        // Two even (invalid) descriptors from one SIMD&FP register.
        bench("str_q", iters, |j, v| unsafe {
            asm!("dup v0.2d, {v}", "str q0, [{p}]", v = in(reg) v, p = in(reg) p(j & !1), out("v0") _,
                options(nostack))
        });
        n.writes += iters;
    }
    for name in ["swp", "cas"] {
        if !run(name) {
            continue;
        }
        if !lse() {
            println!("pt_store: bench {} skipped (no FEAT_LSE)", name);
            continue;
        }
        if name == "swp" {
            bench(name, iters, |j, v| {
                unsafe { atomic(Op::Swp, p(j), v) };
            });
        } else {
            bench(name, iters, |j, v| {
                unsafe { cas_lse(p(j), read(p(j)), v) };
            });
        }
        n.writes += iters;
        n.fast += iters;
    }
}

#[unsafe(no_mangle)]
fn test_main(boot: &Boot) -> u32 {
    let mut plat = fdt::Platform::new();
    if fdt::discover(boot.dtb, &mut plat).is_err() {
        println!("pt_store: FAIL cannot parse the device tree");
        return 1;
    }
    let Ok(args) = parse_args(&plat) else {
        return 1;
    };
    kentry::install(pt_store_exception);
    let poe = kpkeys::init();
    println!("pt_store: iters={} poe={} lse={}", args.iters, poe as u8, lse() as u8);

    let mut s = Setup::new();
    s.identity_image();
    s.identity(boot.dtb_addr as u64, boot.dtb.len() as u64, mmu::PROT_RODATA);
    if let Some(u) = plat.console() {
        s.identity(u.regs.base, PAGE_SIZE, mmu::PROT_DEVICE);
    }
    s.linear_map();
    kpkeys::enable_poe();
    s.enable();
    let mut before = mmu::Snapshot::default();
    let (_, root) = mmu::roots();
    mmu::snapshot(root, &mut before);

    let mut n = Count::default();
    kpkeys::lazy_mmu_mode_enable();
    let mut tables = [0u64; 3];
    for t in tables.iter_mut() {
        *t = mmu::pool_alloc().expect("page-table pool exhausted");
        set_page_pkey(&mut n, *t, kpkeys::PKEY_PGTABLES);
    }
    let [l1, l2, l3] = tables;
    str_x(mmu::desc_va(root, L0_INDEX), l1 | mmu::DESC_TABLE);
    str_x(mmu::desc_va(l1, L1_INDEX), l2 | mmu::DESC_TABLE);
    str_x(mmu::desc_va(l2, L2_INDEX), l3 | mmu::DESC_TABLE);
    n.writes += 3;
    unsafe { asm!("dsb ishst", "isb", options(nostack)) };

    let hazards = checks(&mut n, l3, poe);
    benches(&mut n, l3, &args);
    if args.window && poe {
        let w = check_window(&mut n, l3);
        println!(
            "pt_store: window stores={} hazards={} closing_va={:#x} entry_va={:#x}",
            w.stores,
            w.hazards,
            mmu::desc_va(l3, WINDOW_PTE),
            mmu::desc_va(l3, ENTRY_PTE)
        );
    } else if args.window {
        println!("pt_store: check window skipped (no POE)");
    }

    // Clear the L3 table (STP XZR: Rust path), unlink, free.
    for j in (0..mmu::ENTRIES).step_by(2) {
        unsafe { asm!("stp xzr, xzr, [{p}]", p = in(reg) mmu::desc_va(l3, j), options(nostack)) };
    }
    n.writes += mmu::ENTRIES as u64 / 2;
    str_x(mmu::desc_va(l2, L2_INDEX), 0);
    str_x(mmu::desc_va(l1, L1_INDEX), 0);
    str_x(mmu::desc_va(root, L0_INDEX), 0);
    n.writes += 3;
    mmu::flush_tlb_all();
    for t in tables {
        set_page_pkey(&mut n, t, kpkeys::PKEY_DEFAULT);
        mmu::pool_free(t);
    }
    kpkeys::lazy_mmu_mode_disable();

    let mut after = mmu::Snapshot::default();
    mmu::snapshot(root, &mut after);
    if after != before || after.bad != 0 {
        fail(format_args!("tables changed: before {:?}, after {:?}", before, after));
    }
    let free_bad = mmu::check_free_pages();
    if free_bad != 0 {
        fail(format_args!("{} free pool pages not clean", free_bad));
    }
    println!(
        "pt_store: writes={} fast_min={} hazards={} hazard_va={:#x} sttr_va={:#x}",
        n.writes,
        n.fast,
        hazards,
        mmu::desc_va(l3, HAZARD_PTE),
        mmu::desc_va(l3, STTR_PTE)
    );
    let failures = FAILURES.load(Ordering::Relaxed);
    println!("pt_store: {}", if failures == 0 { "done" } else { "FAILED" });
    (failures != 0) as u32
}
