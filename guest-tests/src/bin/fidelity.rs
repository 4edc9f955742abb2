//! `fidelity`: where porwatch stands between the guest and the hardware,
//! the guest must see what the hardware would give it. Each check makes a
//! store (or access) whose outcome the architecture fixes, checks the
//! outcome itself (values in memory, the ESR/FAR of the fault it takes) and
//! prints what porwatch's trace must show for it.
//!
//! # Set-up
//!
//! As `pt_store` (`src/mmu.rs`, `src/kpkeys.rs`, `src/kentry.rs`): the pool
//! in a linear map at `0xffff_0000_0000_0000 + PA` (POIndex 1 on table
//! pages), TCR2_EL1.POE = 1, POR_EL1 = 0x17 (pkey 1 read-only), MMU on.
//! Then, at POR_EL1 = 0x57, three consecutive pool pages A, T, B: T becomes
//! the L3 table of a TTBR1 subtree (L0 index 0x1c0, L1 index 3, L2 index
//! 5; its linear-map alias has pkey 1, so the overlay denies writes under
//! 0x17), A and B stay ordinary pages (pkey 0) right below and above it.
//! T's descriptors start as even (invalid) values.
//!
//! # Checks (`fidelity: check NAME ok`, else `FAIL` lines)
//!
//! A *hazard* check stores into T under POR_EL1 = 0x17 and prints
//! `fidelity: expect hazard NAME va=V old=O new=N pc=P pcs=K` (the
//! descriptor at V before and after, the store at one of K instructions
//! from P). Report policy: the store happens, no fault. Fault policy
//! (`fidelity.policy=fault`, with porwatch's `policy=fault`): the guest
//! takes ESR 0x000000409600004f (overlay permission fault, level 3) with
//! FAR = the lowest address in T the store writes, nothing of it in T
//! written yet; the handler raises POR_EL1 to 0x57 and returns to the same
//! instruction, which then completes (MOPS instructions carry on from their
//! registers).
//!
//! | name | what |
//! |---|---|
//! | `mops_set` | SETP/SETM/SETE of 128 bytes from A's last 64 into T's first 64, at 0x57 (no hazard) |
//! | `mops_set_hazard` | the same at 0x17, another byte: a hazard at T's first descriptor |
//! | `mops_cpy` | CPYFP/CPYFM/CPYFE of 64 bytes into A's last 32 and T's first 32, at 0x57 |
//! | `mops_cpy_hazard` | the same at 0x17, another source: a hazard |
//! | `straddle_in` | `STR X` at T - 4: 4 bytes in A, 4 in T's descriptor 0 (hazard, FAR = T) |
//! | `straddle_out` | `STR X` at T + 4092: 4 bytes in T's descriptor 511, 4 in B (hazard) |
//! | `cas`, `swp`, `ldset` | LSE atomics on T's descriptors 8, 9, 10: the record's `new` is what each writes |
//! | `simd_then_str` | `STR Q0` into descriptors 32-33 at 0x57 (porwatch steps it), then `STR X` into descriptor 34 at 0x17: still a hazard (the table stayed watched) |
//! | `simd_hazard` | `STR Q0` into descriptors 36-37 at 0x17: a hazard whose `new` is the vector's low half |
//! | `impdef` | a table store (FAR_EL2 = its VA), then `MRS` of an IMPLEMENTATION DEFINED register: UNDEF; porwatch's `unknown_trap` must say `far=0` |
//! | `walk` | TTBR1_EL1 := 4 GiB (nothing there), TLBI, `LDR` from the linear map: ESR 0x96000014 (external abort on the walk, level 0), FAR = the VA; then an L1 table descriptor pointing at 4 GiB: `LDR` gives 0x96000016 (level 2), `STR` 0x96000056 |
//!
//! Console: `fidelity: walk esr_l0=.. esr_l2=.. esr_l2w=..` (compared with
//! bare QEMU's by the test), `fidelity: hazards=N`, `fidelity: done`. Exit
//! 0, 1 on a failed check, 100 on an unexpected exception.
//! `fidelity.only=walk` runs the walk check alone, and ends with PSCI
//! SYSTEM_OFF over HVC when the device tree says so: it runs on bare QEMU
//! (no EL2) too, the reference for the ESRs.
#![no_std]
#![no_main]

use core::arch::{asm, global_asm};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use porwatch_guest_tests::exceptions::VECTOR_NAMES;
use porwatch_guest_tests::kentry::{self, Frame};
use porwatch_guest_tests::kpkeys::{self, POR_DEFAULT, POR_PGTABLES};
use porwatch_guest_tests::mmu::{self, Setup, PAGE_SIZE};
use porwatch_guest_tests::{cmdline, println, smccc, Boot};
use porwatch_monitor::fdt;

/// The subtree T hangs off (TTBR1).
const L0_INDEX: usize = 0x1c0;
const L1_INDEX: usize = 3;
const L2_INDEX: usize = 5;
/// An L1 entry of the subtree pointed at an unbacked "table".
const L1_UNBACKED: usize = 7;
/// An IPA/PA with nothing behind it (QEMU virt with 1 GiB: RAM ends at
/// 2 GiB; porwatch does not map it at stage 2).
const UNBACKED: u64 = 0x1_0000_0000;
/// The overlay permission fault at level 3 (the linear map uses pages).
const ESR_OVERLAY_L3: u64 = 0x0000_0040_9600_004f;
/// External abort on the stage-1 walk, at EL1 (EC 0x25, IL): read, level 0;
/// read, level 2; write, level 2.
const ESR_WALK_L0_READ: u64 = 0x9600_0014;
const ESR_WALK_L2_READ: u64 = 0x9600_0016;
const ESR_WALK_L2_WRITE: u64 = 0x9600_0056;
const EC_UNKNOWN: u64 = 0x00;
const EC_DABT_CUR: u64 = 0x25;
const ESR_EC_SHIFT: u32 = 26;
const ESR_EC_MASK: u64 = 0x3f;
const STATUS_UNEXPECTED: u32 = 100;
const MOPS_SET_BYTE: u8 = 0x5a;
const MOPS_SET_HAZARD_BYTE: u8 = 0xa4;
/// The descriptors each check uses.
const D_CAS: usize = 8;
const D_SWP: usize = 9;
const D_LDSET: usize = 10;
const D_SIMD: usize = 32;
const D_AFTER_SIMD: usize = 34;
const D_SIMD_HAZARD: usize = 36;
const D_IMPDEF: usize = 40;
const D_LAST: usize = 511;

global_asm!(
    r#"
.arch_extension mops
.arch_extension lse
.pushsection .text.fidelity, "ax"
/* x0 = address, x1 = value */
.global fid_str_x
fid_str_x:
    str     x1, [x0]
    ret
/* x0 = address, x1 = expected, x2 = new: returns the old value */
.global fid_cas
fid_cas:
    cas     x1, x2, [x0]
    mov     x0, x1
    ret
/* x0 = address, x1 = value: returns the old value */
.global fid_swp
fid_swp:
    swp     x1, x2, [x0]
    mov     x0, x2
    ret
.global fid_ldset
fid_ldset:
    ldset   x1, x2, [x0]
    mov     x0, x2
    ret
/* memset: x0 = destination, x1 = length, x2 = byte */
.global fid_set
fid_set:
    setp    [x0]!, x1!, x2
    setm    [x0]!, x1!, x2
    sete    [x0]!, x1!, x2
    ret
/* memcpy: x0 = destination, x1 = source, x2 = length */
.global fid_cpy
fid_cpy:
    cpyfp   [x0]!, [x1]!, x2!
    cpyfm   [x0]!, [x1]!, x2!
    cpyfe   [x0]!, [x1]!, x2!
    ret
/* x0 = address, x1 = 16 bytes to store with one STR Q */
.global fid_str_q
fid_str_q:
    ldr     q0, [x1]
.global fid_str_q_store
fid_str_q_store:
    str     q0, [x0]
    ret
/* x0 = address: a load (skipped by the handler if it faults) */
.global fid_load
fid_load:
    ldr     x0, [x0]
    ret
.global fid_store
fid_store:
    str     x1, [x0]
    ret
.global fid_impdef
fid_impdef:
    mrs     x0, s3_0_c15_c0_0
    ret
.popsection
"#
);

unsafe extern "C" {
    fn fid_str_x(addr: u64, v: u64);
    fn fid_cas(addr: u64, expected: u64, new: u64) -> u64;
    fn fid_swp(addr: u64, v: u64) -> u64;
    fn fid_ldset(addr: u64, v: u64) -> u64;
    fn fid_set(dst: u64, len: u64, byte: u64);
    fn fid_cpy(dst: u64, src: u64, len: u64);
    fn fid_str_q(addr: u64, src: u64);
    fn fid_str_q_store();
    fn fid_load(addr: u64) -> u64;
    fn fid_store(addr: u64, v: u64);
    fn fid_impdef() -> u64;
}

/// What the exception handler does with the next synchronous exception.
const EXPECT_NOTHING: u32 = 0;
/// An overlay fault (fault policy): record it, raise POR_EL1 to 0x57 in
/// the frame (the exit code restores it), retry the instruction.
const EXPECT_OVERLAY: u32 = 1;
/// Record it and skip the instruction.
const EXPECT_SKIP: u32 = 2;

static EXPECT: AtomicU32 = AtomicU32::new(EXPECT_NOTHING);
static FAULTS: AtomicU32 = AtomicU32::new(0);
static LAST_ESR: AtomicU64 = AtomicU64::new(0);
static LAST_FAR: AtomicU64 = AtomicU64::new(0);
/// A descriptor the handler reads when the fault is taken (0: none), and
/// what it found: nothing of a faulting store may be written yet.
static WATCHED: AtomicU64 = AtomicU64::new(0);
static WATCHED_AT_FAULT: AtomicU64 = AtomicU64::new(0);
static FAILURES: AtomicU32 = AtomicU32::new(0);

#[repr(C, align(64))]
struct Bytes([u8; 64]);
static SRC: Bytes = Bytes(pattern(0x10));
static SRC_HAZARD: Bytes = Bytes(pattern(0x80));
/// STR Q data: two even (invalid) descriptors each.
static QDATA: [u64; 2] = [0x1122_3344_5566_7780, 0x99aa_bbcc_ddee_ff00];
static QDATA_HAZARD: [u64; 2] = [0x0102_0304_0506_0700, 0x0809_0a0b_0c0d_0e10];

/// Even bytes from `base` (every descriptor they form is invalid).
const fn pattern(base: u8) -> [u8; 64] {
    let mut b = [0u8; 64];
    let mut i = 0;
    while i < 64 {
        b[i] = base.wrapping_add(2 * i as u8);
        i += 1;
    }
    b
}

fn fail(args: core::fmt::Arguments) {
    if FAILURES.fetch_add(1, Ordering::Relaxed) < 20 {
        println!("fidelity: FAIL {}", args);
    }
}

fn check(name: &str, ok: bool) {
    if ok {
        println!("fidelity: check {} ok", name);
    } else {
        fail(format_args!("check {}", name));
    }
}

fn expect_eq(what: &str, got: u64, want: u64) -> bool {
    if got != want {
        fail(format_args!("{}: {:#x}, expected {:#x}", what, got, want));
    }
    got == want
}

extern "C" fn handler(frame: &mut Frame, vector: u64) {
    let ec = (frame.esr >> ESR_EC_SHIFT) & ESR_EC_MASK;
    let sync = vector == kentry::VEC_SYNC_EL1H;
    match EXPECT.load(Ordering::Relaxed) {
        EXPECT_OVERLAY if sync && ec == EC_DABT_CUR => {
            record(frame);
            frame.por = POR_PGTABLES;
        }
        EXPECT_SKIP if sync => {
            record(frame);
            frame.elr += 4;
        }
        _ => {
            println!(
                "fidelity: FAIL unexpected exception {} esr={:#x} elr={:#x} far={:#x}",
                VECTOR_NAMES[(vector & 15) as usize],
                frame.esr,
                frame.elr,
                frame.far
            );
            smccc::test_exit(STATUS_UNEXPECTED)
        }
    }
}

fn record(frame: &Frame) {
    FAULTS.fetch_add(1, Ordering::Relaxed);
    LAST_ESR.store(frame.esr, Ordering::Relaxed);
    LAST_FAR.store(frame.far, Ordering::Relaxed);
    let w = WATCHED.load(Ordering::Relaxed);
    if w != 0 {
        WATCHED_AT_FAULT.store(read(w), Ordering::Relaxed);
    }
}

fn read(p: u64) -> u64 {
    unsafe { (p as *const u64).read_volatile() }
}

fn str_x(p: u64, v: u64) {
    unsafe { fid_str_x(p, v) };
}

struct Args {
    fault: bool,
    walk_only: bool,
}

fn parse_args(plat: &fdt::Platform) -> Result<Args, ()> {
    let mut a = Args { fault: false, walk_only: false };
    for (k, v) in cmdline::words(plat.chosen.bootargs.unwrap_or(""), "fidelity.") {
        match (k, v) {
            ("fidelity.policy", Some("fault")) => a.fault = true,
            ("fidelity.policy", Some("report")) => a.fault = false,
            ("fidelity.only", Some("walk")) => a.walk_only = true,
            _ => {
                println!(
                    "fidelity: FAIL unknown option {} (fidelity.policy=report|fault, fidelity.only=walk)",
                    k
                );
                return Err(());
            }
        }
    }
    Ok(a)
}

/// The pages the checks use (physical addresses; `va` gives the linear map).
struct Pages {
    a: u64,
    t: u64,
    b: u64,
    l1: u64,
}

impl Pages {
    /// Descriptor `i` of T, through the linear map.
    fn d(&self, i: usize) -> u64 {
        mmu::desc_va(self.t, i)
    }
    fn t_va(&self) -> u64 {
        mmu::lm_va(self.t)
    }
}

/// One hazard check: `op` stores into T under POR_EL1 = 0x17. `va`: the
/// address the hazard record names (the lowest byte written in T), whose
/// descriptor goes from its current value to `new`; `pc`, `pcs`: the
/// instructions that may make the store.
struct Hazard<'a> {
    name: &'a str,
    va: u64,
    new: u64,
    pc: u64,
    pcs: u32,
}

fn hazard(args: &Args, count: &mut u32, h: Hazard<'_>, op: impl FnOnce()) -> bool {
    let desc = h.va & !7;
    let old = read(desc);
    println!(
        "fidelity: expect hazard {} va={:#x} old={:#x} new={:#x} pc={:#x} pcs={}",
        h.name, h.va, old, h.new, h.pc, h.pcs
    );
    *count += 1;
    FAULTS.store(0, Ordering::Relaxed);
    WATCHED.store(desc, Ordering::Relaxed);
    EXPECT.store(if args.fault { EXPECT_OVERLAY } else { EXPECT_NOTHING }, Ordering::Relaxed);
    kpkeys::set_por(POR_DEFAULT);
    op();
    kpkeys::set_por(POR_PGTABLES);
    EXPECT.store(EXPECT_NOTHING, Ordering::Relaxed);
    WATCHED.store(0, Ordering::Relaxed);
    let faults = FAULTS.load(Ordering::Relaxed);
    let mut ok = true;
    if args.fault {
        let (esr, far) = (LAST_ESR.load(Ordering::Relaxed), LAST_FAR.load(Ordering::Relaxed));
        println!("fidelity: fault {} esr={:#x} far={:#x}", h.name, esr, far);
        ok &= expect_eq("faults taken", faults as u64, 1);
        ok &= expect_eq("fault ESR", esr, ESR_OVERLAY_L3);
        ok &= expect_eq("fault FAR", far, h.va);
        ok &= expect_eq("descriptor at the fault", WATCHED_AT_FAULT.load(Ordering::Relaxed), old);
    } else {
        ok &= expect_eq("faults taken", faults as u64, 0);
    }
    ok & expect_eq("descriptor after", read(desc), h.new)
}

/// The byte `b` in every byte of a u64.
fn splat(b: u8) -> u64 {
    u64::from_le_bytes([b; 8])
}

fn check_mops(args: &Args, p: &Pages, n: &mut u32) {
    if !mops() {
        println!("fidelity: FAIL no FEAT_MOPS");
        fail(format_args!("mops"));
        return;
    }
    let set = fid_set as *const () as u64;
    let cpy = fid_cpy as *const () as u64;
    // 128 bytes from A's last 64 into T's first 64, no hazard.
    unsafe { fid_set(p.t_va() - 64, 128, MOPS_SET_BYTE as u64) };
    let ok = (0..16).all(|k| expect_eq("mops_set", read(p.t_va() - 64 + 8 * k), splat(MOPS_SET_BYTE)));
    check("mops_set", ok);
    let h =
        Hazard { name: "mops_set_hazard", va: p.t_va(), new: splat(MOPS_SET_HAZARD_BYTE), pc: set, pcs: 3 };
    let mut ok = hazard(args, n, h, || unsafe { fid_set(p.t_va() - 64, 128, MOPS_SET_HAZARD_BYTE as u64) });
    ok &= (0..16)
        .all(|k| expect_eq("mops_set_hazard", read(p.t_va() - 64 + 8 * k), splat(MOPS_SET_HAZARD_BYTE)));
    check("mops_set_hazard", ok);
    // 64 bytes: 32 into A, 32 into T.
    let word = |src: &Bytes, k: usize| u64::from_le_bytes(src.0[8 * k..8 * k + 8].try_into().unwrap());
    unsafe { fid_cpy(p.t_va() - 32, SRC.0.as_ptr() as u64, 64) };
    let ok = (0..8).all(|k| expect_eq("mops_cpy", read(p.t_va() - 32 + 8 * k as u64), word(&SRC, k)));
    check("mops_cpy", ok);
    let h = Hazard { name: "mops_cpy_hazard", va: p.t_va(), new: word(&SRC_HAZARD, 4), pc: cpy, pcs: 3 };
    let mut ok = hazard(args, n, h, || unsafe { fid_cpy(p.t_va() - 32, SRC_HAZARD.0.as_ptr() as u64, 64) });
    ok &= (0..8)
        .all(|k| expect_eq("mops_cpy_hazard", read(p.t_va() - 32 + 8 * k as u64), word(&SRC_HAZARD, k)));
    check("mops_cpy_hazard", ok);
}

fn check_straddle(args: &Args, p: &Pages, n: &mut u32) {
    let pc = fid_str_x as *const () as u64;
    // T - 4: A's last 4 bytes, then T's descriptor 0's low half.
    let v: u64 = 0x2468_ace0_1357_9bd0;
    let a_tail = mmu::lm_va(p.a) + PAGE_SIZE - 8;
    let (a_old, d0) = (read(a_tail), read(p.d(0)));
    let new = (d0 & !0xffff_ffff) | (v >> 32);
    let mut ok = hazard(args, n, Hazard { name: "straddle_in", va: p.t_va(), new, pc, pcs: 1 }, || {
        str_x(p.t_va() - 4, v)
    });
    ok &= expect_eq("straddle_in A", read(a_tail), (a_old & 0xffff_ffff) | (v << 32));
    check("straddle_in", ok);
    // T + 4092: descriptor 511's high half, then B's first 4 bytes.
    let v: u64 = 0x0fed_cba8_8765_4320;
    let b_head = mmu::lm_va(p.b);
    let (b_old, dl) = (read(b_head), read(p.d(D_LAST)));
    let va = p.d(D_LAST) + 4;
    let new = (dl & 0xffff_ffff) | (v << 32);
    let mut ok = hazard(args, n, Hazard { name: "straddle_out", va, new, pc, pcs: 1 }, || str_x(va, v));
    ok &= expect_eq("straddle_out B", read(b_head), (b_old & !0xffff_ffff) | (v >> 32));
    check("straddle_out", ok);
}

fn check_atomics(args: &Args, p: &Pages, n: &mut u32) {
    let d = p.d(D_CAS);
    let old = read(d);
    let got = AtomicU64::new(0);
    let h = Hazard { name: "cas", va: d, new: 0x5550, pc: fid_cas as *const () as u64, pcs: 1 };
    let mut ok = hazard(args, n, h, || got.store(unsafe { fid_cas(d, old, 0x5550) }, Ordering::Relaxed));
    ok &= expect_eq("cas result", got.load(Ordering::Relaxed), old);
    check("cas", ok);
    let d = p.d(D_SWP);
    let old = read(d);
    let h = Hazard { name: "swp", va: d, new: 0x6660, pc: fid_swp as *const () as u64, pcs: 1 };
    let mut ok = hazard(args, n, h, || got.store(unsafe { fid_swp(d, 0x6660) }, Ordering::Relaxed));
    ok &= expect_eq("swp result", got.load(Ordering::Relaxed), old);
    check("swp", ok);
    let d = p.d(D_LDSET);
    let old = read(d);
    let h = Hazard { name: "ldset", va: d, new: old | 0x0f00, pc: fid_ldset as *const () as u64, pcs: 1 };
    let mut ok = hazard(args, n, h, || got.store(unsafe { fid_ldset(d, 0x0f00) }, Ordering::Relaxed));
    ok &= expect_eq("ldset result", got.load(Ordering::Relaxed), old);
    check("ldset", ok);
}

fn check_simd(args: &Args, p: &Pages, n: &mut u32) {
    let pc = fid_str_q_store as *const () as u64;
    // No hazard: porwatch cannot emulate a SIMD&FP store (EL2 never reads
    // those registers) and steps it instead; the table stays watched, so
    // the next store to it under 0x17 is still a hazard.
    unsafe { fid_str_q(p.d(D_SIMD), QDATA.as_ptr() as u64) };
    let mut ok = expect_eq("simd lo", read(p.d(D_SIMD)), QDATA[0])
        & expect_eq("simd hi", read(p.d(D_SIMD + 1)), QDATA[1]);
    let d = p.d(D_AFTER_SIMD);
    let h = Hazard { name: "simd_then_str", va: d, new: 0x7770, pc: fid_str_x as *const () as u64, pcs: 1 };
    ok &= hazard(args, n, h, || str_x(d, 0x7770));
    check("simd_then_str", ok);
    let d = p.d(D_SIMD_HAZARD);
    let h = Hazard { name: "simd_hazard", va: d, new: QDATA_HAZARD[0], pc, pcs: 1 };
    let mut ok = hazard(args, n, h, || unsafe { fid_str_q(d, QDATA_HAZARD.as_ptr() as u64) });
    ok &= expect_eq("simd_hazard hi", read(d + 8), QDATA_HAZARD[1]);
    check("simd_hazard", ok);
}

fn check_impdef(p: &Pages) {
    // A table store leaves its VA in FAR_EL2; the trapped MRS that follows
    // must not be logged with it.
    str_x(p.d(D_IMPDEF), 0x8880);
    FAULTS.store(0, Ordering::Relaxed);
    EXPECT.store(EXPECT_SKIP, Ordering::Relaxed);
    unsafe { fid_impdef() };
    EXPECT.store(EXPECT_NOTHING, Ordering::Relaxed);
    let esr = LAST_ESR.load(Ordering::Relaxed);
    let ok = expect_eq("impdef faults", FAULTS.load(Ordering::Relaxed) as u64, 1)
        & expect_eq("impdef EC", (esr >> ESR_EC_SHIFT) & ESR_EC_MASK, EC_UNKNOWN);
    println!("fidelity: impdef store_va={:#x}", p.d(D_IMPDEF));
    check("impdef", ok);
}

/// `f` is expected to take one synchronous exception, skipped: its (ESR, FAR).
fn skipped(f: impl FnOnce()) -> (u64, u64) {
    FAULTS.store(0, Ordering::Relaxed);
    LAST_ESR.store(0, Ordering::Relaxed);
    LAST_FAR.store(0, Ordering::Relaxed);
    EXPECT.store(EXPECT_SKIP, Ordering::Relaxed);
    f();
    EXPECT.store(EXPECT_NOTHING, Ordering::Relaxed);
    if FAULTS.load(Ordering::Relaxed) != 1 {
        fail(format_args!("{} exceptions taken, expected 1", FAULTS.load(Ordering::Relaxed)));
    }
    (LAST_ESR.load(Ordering::Relaxed), LAST_FAR.load(Ordering::Relaxed))
}

fn check_walk(p: &Pages) {
    // TTBR1 at a PA with nothing behind it: the level-0 descriptor fetch of
    // any TTBR1 VA aborts.
    let (_, ttbr1) = mmu::roots();
    let va = p.t_va();
    let (esr0, far0) = skipped(|| unsafe {
        asm!(
            "msr ttbr1_el1, {bad}",
            "isb",
            "tlbi vmalle1",
            "dsb nsh",
            "isb",
            "bl {load}",
            "msr ttbr1_el1, {good}",
            "isb",
            "tlbi vmalle1",
            "dsb nsh",
            "isb",
            bad = in(reg) UNBACKED,
            good = in(reg) ttbr1,
            load = sym fid_load,
            inout("x0") va => _,
            out("x30") _,
            options(nostack)
        )
    });
    // An L1 table descriptor pointing there: the level-2 fetch aborts.
    let l1e = mmu::desc_va(p.l1, L1_UNBACKED);
    str_x(l1e, UNBACKED | mmu::DESC_TABLE);
    mmu::flush_tlb_all();
    let va2 = mmu::LINEAR_MAP_BASE | (L0_INDEX as u64) << 39 | (L1_UNBACKED as u64) << 30 | 0x1238;
    let (esr2, far2) = skipped(|| unsafe {
        fid_load(va2);
    });
    let (esr2w, far2w) = skipped(|| unsafe { fid_store(va2, 0x10) });
    str_x(l1e, 0);
    mmu::flush_tlb_all();
    println!("fidelity: walk esr_l0={:#x} esr_l2={:#x} esr_l2w={:#x}", esr0, esr2, esr2w);
    let ok = expect_eq("walk l0 ESR", esr0, ESR_WALK_L0_READ)
        & expect_eq("walk l0 FAR", far0, va)
        & expect_eq("walk l2 ESR", esr2, ESR_WALK_L2_READ)
        & expect_eq("walk l2 FAR", far2, va2)
        & expect_eq("walk l2 store ESR", esr2w, ESR_WALK_L2_WRITE)
        & expect_eq("walk l2 store FAR", far2w, va2);
    check("walk", ok);
}

/// FEAT_MOPS (ID_AA64ISAR2_EL1.MOPS, bits [19:16]).
fn mops() -> bool {
    let isar2: u64;
    unsafe { asm!("mrs {}, id_aa64isar2_el1", out(reg) isar2, options(nomem, nostack)) };
    (isar2 >> 16) & 0xf != 0
}

/// Three consecutive pool pages, or None.
fn consecutive() -> Option<(u64, u64, u64)> {
    let a = mmu::pool_alloc()?;
    let t = mmu::pool_alloc()?;
    let b = mmu::pool_alloc()?;
    (t == a + PAGE_SIZE && b == t + PAGE_SIZE).then_some((a, t, b))
}

fn set_page_pkey(pa: u64, pkey: u64) {
    let pte = mmu::lm_pte(pa);
    str_x(pte.va(), (pte.desc & !mmu::POINDEX_MASK) | mmu::pkey_bits(pkey));
    mmu::flush_tlb_page(mmu::lm_va(pa));
}

/// Ends the run: porwatch's test exit, or PSCI SYSTEM_OFF over HVC where
/// the device tree says so (bare QEMU: no EL2 to take an SMC).
fn finish(plat: &fdt::Platform, status: u32) -> ! {
    println!("fidelity: exit status {}", status);
    if plat.psci.is_some_and(|p| p.method == fdt::platform::PsciMethod::Hvc) {
        smccc::hvc(smccc::PSCI_SYSTEM_OFF, 0, 0, 0);
    }
    smccc::test_exit(status)
}

#[unsafe(no_mangle)]
fn test_main(boot: &Boot) -> u32 {
    let mut plat = fdt::Platform::new();
    if fdt::discover(boot.dtb, &mut plat).is_err() {
        println!("fidelity: FAIL cannot parse the device tree");
        return 1;
    }
    let Ok(args) = parse_args(&plat) else {
        finish(&plat, 1);
    };
    kentry::install(handler);
    let poe = kpkeys::init();
    println!("fidelity: poe={} policy={}", poe as u8, if args.fault { "fault" } else { "report" });
    if !poe && !args.walk_only {
        println!("fidelity: FAIL FEAT_S1POE not advertised (run under porwatch)");
        finish(&plat, 1);
    }

    let mut s = Setup::new();
    s.identity_image();
    s.identity(boot.dtb_addr as u64, boot.dtb.len() as u64, mmu::PROT_RODATA);
    if let Some(u) = plat.console() {
        s.identity(u.regs.base, PAGE_SIZE, mmu::PROT_DEVICE);
    }
    s.linear_map();
    kpkeys::enable_poe();
    s.enable();

    kpkeys::lazy_mmu_mode_enable();
    let (l1, l2) = (mmu::pool_alloc(), mmu::pool_alloc());
    let (Some(l1), Some(l2), Some((a, t, b))) = (l1, l2, consecutive()) else {
        println!("fidelity: FAIL pool: no three consecutive pages");
        finish(&plat, 1);
    };
    for table in [l1, l2, t] {
        set_page_pkey(table, kpkeys::PKEY_PGTABLES);
    }
    let (_, root) = mmu::roots();
    str_x(mmu::desc_va(root, L0_INDEX), l1 | mmu::DESC_TABLE);
    str_x(mmu::desc_va(l1, L1_INDEX), l2 | mmu::DESC_TABLE);
    str_x(mmu::desc_va(l2, L2_INDEX), t | mmu::DESC_TABLE);
    let p = Pages { a, t, b, l1 };
    // T's descriptors: distinct even (invalid) values.
    for i in 0..mmu::ENTRIES {
        str_x(p.d(i), 0x10_0000 * i as u64 + 0x2468_0000_0000_0000);
    }
    unsafe { asm!("dsb ishst", "isb", options(nostack)) };

    let mut hazards = 0u32;
    if !args.walk_only {
        check_mops(&args, &p, &mut hazards);
        check_straddle(&args, &p, &mut hazards);
        check_atomics(&args, &p, &mut hazards);
        check_simd(&args, &p, &mut hazards);
        check_impdef(&p);
    }
    check_walk(&p);

    // Clean up: T empty, unlinked, every page back to the pool as it was.
    for i in 0..mmu::ENTRIES {
        str_x(p.d(i), 0);
    }
    for k in 0..PAGE_SIZE / 8 {
        str_x(mmu::lm_va(a) + 8 * k, 0);
        str_x(mmu::lm_va(b) + 8 * k, 0);
    }
    str_x(mmu::desc_va(l2, L2_INDEX), 0);
    str_x(mmu::desc_va(l1, L1_INDEX), 0);
    str_x(mmu::desc_va(root, L0_INDEX), 0);
    mmu::flush_tlb_all();
    for table in [l1, l2, t] {
        set_page_pkey(table, kpkeys::PKEY_DEFAULT);
    }
    for page in [l1, l2, a, t, b] {
        mmu::pool_free(page);
    }
    kpkeys::lazy_mmu_mode_disable();
    if mmu::check_free_pages() != 0 {
        fail(format_args!("free pool pages not clean"));
    }
    println!("fidelity: hazards={}", hazards);
    let failures = FAILURES.load(Ordering::Relaxed);
    println!("fidelity: {}", if failures == 0 { "done" } else { "FAILED" });
    finish(&plat, (failures != 0) as u32)
}
