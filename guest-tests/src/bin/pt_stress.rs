//! `pt_stress`: 100,000 page-table stores (default) through the linear map,
//! to tables at all four levels of both TTBR0 and TTBR1, with a mix of store
//! instructions (STR X, STP, STR W, CAS, LDSET, LDCLR, DC ZVA), all made
//! under the kpkeys page-table level (POR_EL1 = 0x57) except exactly H =
//! `iters` stores made deliberately under the default POR_EL1 (0x17): the
//! hazards porwatch must report, no more and no fewer.
//!
//! # Set-up
//!
//! As `seed` (`src/mmu.rs`): kpkeys vectors (`src/kentry.rs`), then with the
//! MMU off a 64-page pool gives (on QEMU virt under porwatch) pool pages 0, 1
//! = TTBR0 / TTBR1 roots, 2-4 the image's identity L1/L2/L3, 5 the DTB's L3,
//! 6-7 the UART's L2/L3, 8-10 the linear map's L1/L2/L3: 11 tables, 123
//! valid descriptors. The linear map (`0xffff_0000_0000_0000 + PA`) maps the
//! pool with POIndex 1 on table pages and 0 on free ones; free pool pages are
//! all-zero. TCR2_EL1.POE := 1, POR_EL1 := 0x17, then the MMU on. With POE
//! absent (porwatch `tap=off`) every POR_EL1/TCR2_EL1 access is skipped and
//! nothing can be a hazard; the stores are the same.
//!
//! # A round (r = 0 .. iters-1)
//!
//! Even rounds build under TTBR0, odd ones under TTBR1: L0 index i0 = 1 +
//! (r/2)%4 (TTBR0) or 0x180 + (r/2)%4 (TTBR1), i1 = (37r + 5) % 512, i2 =
//! (101r + 11) % 512. The round's L1, L2 and L3 tables are always the three
//! lowest free pool pages, 11, 12 and 13. PTE j maps backing page k = (j + r)
//! % 8 (pkey 0): `PA(k) | 0x0060_0000_0000_0783` (EL1 read-only data, AF,
//! inner shareable, PXN, UXN), `| 0x800` (nG) under TTBR0. The round runs in
//! one lazy-MMU batch (POR_EL1 0x17 -> 0x57 at its start, 0x57 -> 0x17 at its
//! end). Every store goes through the linear map, to a table reachable from
//! TTBR0/TTBR1 at that moment (tables are linked top-down before they are
//! written and written before they are unlinked bottom-up); no other store
//! touches a pool page. In order:
//!
//! | step | table written (level) | instruction (descriptors per store) | stores |
//! |---|---|---|---|
//! | allocate L1, L2, L3: POIndex 0 -> 1 | linear-map L3 (3) | STR X (1) | 3 |
//! | link root[i0] -> L1, L1[i1] -> L2, L2[i2] -> L3 | root (0), L1 (1), L2 (2) | STR X (1) | 3 |
//! | fill PTEs 0-127 | L3 (3) | STP X, X (2) | 64 |
//! | fill PTEs 128-255 | L3 | STR X (1); **PTE 255 under POR_EL1 0x17** | 128 |
//! | fill PTEs 256-383 | L3 | STR W upper half, then STR W lower half (1/2) | 256 |
//! | fill PTEs 384-511 | L3 | CAS X, expected 0 (1) | 128 |
//! | PTEs 0-29 \|= bit 55 (PTE_DIRTY) | L3 | LDSET X (1) | 30 |
//! | PTEs 0-29 &= ~AP\[2\] (made writable) | L3 | LDCLR X (1) | 30 |
//! | clear PTEs 0-255 | L3 | DC ZVA (64-byte block: 8) | 32 |
//! | clear PTEs 256-383 | L3 | STR WZR lower half, then upper half (1/2) | 256 |
//! | clear PTEs 384-511 | L3 | STP XZR, XZR (2) | 64 |
//! | unlink L2[i2]; free L3 (POIndex 1 -> 0); unlink L1[i1]; free L2; unlink root[i0]; free L1 | L2 (2), linear-map L3, L1 (1), linear-map L3, root (0), linear-map L3 | STR X (1) | 6 |
//!
//! 1000 stores per round; N = 1000 x iters (100,000 with the default iters =
//! 100). Store counts assume FEAT_LSE and a 64-byte DC ZVA block (QEMU `max`,
//! FVP): without LSE, CAS/LDSET/LDCLR become LDR + STR X (same count); with
//! another block size B the first clear takes 2048 / B stores (128 STP XZR if
//! DC ZVA is prohibited). The kernel prints `stores_per_round`.
//!
//! Per table level, per round: level 0: 2 stores (root of TTBR0 in even
//! rounds, of TTBR1 in odd ones); level 1: 2; level 2: 2; level 3: 994 (988
//! to the round's L3 table, 6 to the linear-map L3 table).
//!
//! # The hazards
//!
//! Store 198 of each round (global store index 1000r + 198, 1-based: every
//! 1000th store), H = iters in all (100 by default): `STR X1, [X0]` at the
//! symbol `pt_stress_hazard_str`, writing PTE 255 of the round's L3 table
//! (old 0 -> new `PA((255 + r) % 8) | 0x0060_0000_0000_0783`, `| 0x800` in
//! even rounds) under POR_EL1 = 0x17. VA = `0xffff_0000_0000_0000 + PA(pool
//! page 13) + 0x7f8`, the same every round (0xffff00004402b7f8 with the
//! current layout; printed as `hazard_va=`; the written table hangs under
//! TTBR0 in even rounds, TTBR1 in odd ones); level 3; the leaf mapping it is
//! pool page 13's linear-map PTE, POIndex 1: Perm<1> = 0x1 (R), no W. Its
//! POR_EL1 history: 0x57 -> 0x17 just before, 0x17 -> 0x57 just after (both
//! at `kpkeys::set_por`). No exception is involved (`por_write` records only,
//! at_entry=0).
//!
//! POR_EL1 changes (POE present): 0 -> 0x17 at set-up, then 4 per round
//! (0x17 -> 0x57 in `arch_enter_lazy_mmu_mode`, 0x57 -> 0x17 -> 0x57 around
//! the hazard, 0x57 -> 0x17 in `arch_leave_lazy_mmu_mode`): 401 by default.
//! No exception is taken at EL1 (porwatch's virtual POE emulates POR/TCR2
//! silently).
//!
//! # Fault policy
//!
//! If porwatch injects the overlay permission fault for a hazard (ESR_EL1 =
//! 0x000000409600004f, FAR_EL1 = the VA, ELR_EL1 = `pt_stress_hazard_str`),
//! the handler counts it, sets the frame's saved POR_EL1 to 0x57 and returns:
//! the exit code restores 0x57 (a `por_write` 0x17 -> 0x57, at_entry=1 by
//! porwatch's rule) and the store is retried at the page-table level, so the
//! tables end the same and `overlay_faults=H`. Any other exception (or an
//! overlay fault elsewhere): status 100.
//!
//! # Verification
//!
//! Each round, before clearing: every descriptor of its L1, L2 and L3 tables
//! and its root entry, read through the linear map, equals the value computed
//! from (r, j) alone (not from what was stored); the three tables have
//! POIndex 1; the old values returned by CAS/LDSET/LDCLR are checked; one
//! word is read through four of the new mappings; after the clear every PTE
//! is 0. At the end: a walk of both trees (every table a used pool page with
//! POIndex 1, an FNV-1a checksum over (level, index, descriptor) of every
//! valid descriptor) equals the walk made before the first round; every free
//! pool page is all-zero with POIndex 0; the store count is N; POR_EL1 is
//! 0x17; `overlay_faults` is 0 or H.
//!
//! # Command line, console, exit status
//!
//! `pt_stress.iters=N` (1..=1000000, default 100); any other `pt_stress.*`
//! word fails (status 1). Console: `pt_stress: iters=.. poe=.. lse=..
//! dc_zva_block=.. stores_per_round=..`, `pt_stress: expected_hazards=H` (0
//! without POE), the layout and `hazard_va=..`, then `pt_stress: rounds=..
//! ms=.. overlay_faults=F tables=.. checksum=..`, `pt_stress: writes=N
//! hazards_constructed=H tables_verified=ok|FAIL` and `pt_stress: done`. Up
//! to 10 `pt_stress: FAIL ...` lines on mismatches. Exit status 0, 1 on a
//! mismatch or bad command line, 100 on an unexpected exception, 101 on a
//! panic. Run time of the rounds under QEMU TCG (`ms=`): about 0.1 s when
//! no store traps; every trapped store adds the hypervisor's cost (with
//! porwatch's first tracker, ~65,000 trapped stores each traced: about 9 s).
#![no_std]
#![no_main]

use core::arch::{asm, global_asm};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use porwatch_guest_tests::exceptions::VECTOR_NAMES;
use porwatch_guest_tests::kentry::{self, Frame};
use porwatch_guest_tests::kpkeys::{self, POR_DEFAULT, POR_PGTABLES};
use porwatch_guest_tests::mmu::{self, Setup, ENTRIES, PAGE_SIZE};
use porwatch_guest_tests::{cmdline, println, smccc, Boot};
use porwatch_monitor::fdt;

const DEFAULT_ITERS: u64 = 100;
const MAX_ITERS: u64 = 1_000_000;
/// Pages the test PTEs map (pkey 0, identity-mapped too).
const BACKING_PAGES: usize = 8;
/// The one PTE per round written under POR_DEFAULT.
const HAZARD_PTE: usize = 255;
/// PTEs 0..MODIFY_PTES get LDSET (SW_DIRTY) and LDCLR (AP[2]).
const MODIFY_PTES: usize = 30;
/// Bytes of the L3 table cleared by DC ZVA (PTEs 0..255).
const ZVA_BYTES: u64 = 2048;
/// Stores per round other than the DC ZVA ones (see the module doc).
const STORES_BUT_ZVA: u64 = 3 + 3 + 64 + 128 + 256 + 128 + 30 + 30 + 256 + 64 + 6;
/// Exit status on an unexpected exception.
const STATUS_UNEXPECTED: u32 = 100;
/// Failures printed in detail (the rest are only counted).
const MAX_REPORTS: u32 = 10;

#[repr(C, align(4096))]
struct Backing(UnsafeCell<[[u64; 512]; BACKING_PAGES]>);
// SAFETY: one CPU; written once before anything maps it, then only read.
unsafe impl Sync for Backing {}
static BACKING: Backing = Backing(UnsafeCell::new([[0; 512]; BACKING_PAGES]));

fn backing_pa(k: usize) -> u64 {
    BACKING.0.get() as u64 + k as u64 * PAGE_SIZE
}

/// The first word of backing page `k` ("pts" + k).
fn tag(k: usize) -> u64 {
    0x0070_7473_0000_0000 | k as u64
}

global_asm!(
    r#"
.pushsection .text.pt_stress_hazard_str, "ax"
.global pt_stress_hazard_str
.type pt_stress_hazard_str, %function
pt_stress_hazard_str:
    str     x1, [x0]
    ret
.size pt_stress_hazard_str, . - pt_stress_hazard_str
.popsection
"#
);

unsafe extern "C" {
    /// `STR X1, [X0]`: the constructed hazard's store (called with
    /// POR_EL1 = POR_DEFAULT).
    fn pt_stress_hazard_str(ptep: u64, val: u64);
}

/// The VA every constructed hazard writes (PTE HAZARD_PTE of the L3 table,
/// which is always the same pool page).
static HAZARD_VA: AtomicU64 = AtomicU64::new(0);
/// Expected FAR of the next hazard store (0 outside it).
static HAZARD_FAR: AtomicU64 = AtomicU64::new(0);
/// Overlay permission faults taken on hazard stores (fault policy).
static OVERLAY_FAULTS: AtomicU64 = AtomicU64::new(0);
static FAILURES: AtomicU32 = AtomicU32::new(0);

fn fail(args: core::fmt::Arguments) {
    if FAILURES.fetch_add(1, Ordering::Relaxed) < MAX_REPORTS {
        println!("pt_stress: FAIL {}", args);
    }
}

fn unexpected(frame: &Frame, vector: u64) -> ! {
    println!(
        "pt_stress: FAIL unexpected exception {} esr={:#x} elr={:#x} far={:#x}",
        VECTOR_NAMES[(vector & 15) as usize],
        frame.esr,
        frame.elr,
        frame.far
    );
    smccc::test_exit(STATUS_UNEXPECTED)
}

/// An overlay permission fault on the hazard store (porwatch's fault
/// policy): counted, and retried at the page-table level (the exit code
/// restores the frame's POR_EL1).
extern "C" fn pt_stress_exception(frame: &mut Frame, vector: u64) {
    let ec = (frame.esr >> 26) & 0x3f;
    let hazard = HAZARD_FAR.load(Ordering::Relaxed);
    if vector == kentry::VEC_SYNC_EL1H
        && ec == kentry::EC_DABT_CUR
        && frame.esr & kentry::ESR_OVERLAY != 0
        && frame.esr & kentry::ESR_WNR != 0
        && frame.elr == pt_stress_hazard_str as *const () as u64
        && hazard != 0
        && frame.far == hazard
    {
        OVERLAY_FAULTS.fetch_add(1, Ordering::Relaxed);
        frame.por = POR_PGTABLES;
        return;
    }
    unexpected(frame, vector)
}

// ---------------------------------------------------------------------------
// Table stores. Each is one store instruction through the linear map,
// counted once.

/// Features the store mix depends on.
struct Cpu {
    lse: bool,
    /// DC ZVA block size in bytes (0: DC ZVA prohibited).
    zva: u64,
}

impl Cpu {
    fn detect() -> Self {
        let isar0: u64;
        let dczid: u64;
        unsafe {
            asm!("mrs {}, id_aa64isar0_el1", out(reg) isar0, options(nomem, nostack));
            asm!("mrs {}, dczid_el0", out(reg) dczid, options(nomem, nostack));
        }
        let zva = if dczid & 1 << 4 != 0 { 0 } else { 4 << (dczid & 0xf) };
        Cpu { lse: (isar0 >> 20) & 0xf >= 2, zva }
    }

    /// Whether DC ZVA clears the first ZVA_BYTES of a table in whole blocks.
    fn zva_usable(&self) -> bool {
        self.zva != 0 && self.zva <= ZVA_BYTES && ZVA_BYTES.is_multiple_of(self.zva)
    }

    /// Stores per round.
    fn stores_per_round(&self) -> u64 {
        STORES_BUT_ZVA + if self.zva_usable() { ZVA_BYTES / self.zva } else { ZVA_BYTES / 16 }
    }
}

fn str_x(p: u64, v: u64) {
    unsafe { kpkeys::write_once(p, v) };
}

fn stp_x(p: u64, a: u64, b: u64) {
    unsafe { asm!("stp {a}, {b}, [{p}]", a = in(reg) a, b = in(reg) b, p = in(reg) p, options(nostack)) };
    kpkeys::count_write();
}

fn str_w(p: u64, v: u32) {
    unsafe { asm!("str {v:w}, [{p}]", v = in(reg) v, p = in(reg) p, options(nostack)) };
    kpkeys::count_write();
}

fn dc_zva(p: u64) {
    unsafe { asm!("dc zva, {p}", p = in(reg) p, options(nostack)) };
    kpkeys::count_write();
}

#[target_feature(enable = "lse")]
unsafe fn cas_lse(p: u64, expected: u64, new: u64) -> u64 {
    let mut old = expected;
    unsafe {
        asm!("cas {old}, {new}, [{p}]", old = inout(reg) old, new = in(reg) new, p = in(reg) p, options(nostack))
    };
    old
}

#[target_feature(enable = "lse")]
unsafe fn ldset_lse(p: u64, bits: u64) -> u64 {
    let old: u64;
    unsafe {
        asm!("ldset {b}, {old}, [{p}]", b = in(reg) bits, old = out(reg) old, p = in(reg) p, options(nostack))
    };
    old
}

#[target_feature(enable = "lse")]
unsafe fn ldclr_lse(p: u64, bits: u64) -> u64 {
    let old: u64;
    unsafe {
        asm!("ldclr {b}, {old}, [{p}]", b = in(reg) bits, old = out(reg) old, p = in(reg) p, options(nostack))
    };
    old
}

fn read(p: u64) -> u64 {
    unsafe { (p as *const u64).read_volatile() }
}

/// CAS (or, without LSE, a load and STR) of a descriptor; returns the old
/// value.
fn cas_x(cpu: &Cpu, p: u64, expected: u64, new: u64) -> u64 {
    let old = if cpu.lse {
        unsafe { cas_lse(p, expected, new) }
    } else {
        let old = read(p);
        if old == expected {
            unsafe { asm!("str {v}, [{p}]", v = in(reg) new, p = in(reg) p, options(nostack)) };
        }
        old
    };
    kpkeys::count_write();
    old
}

/// LDSET (or load + STR); returns the old value.
fn ldset_x(cpu: &Cpu, p: u64, bits: u64) -> u64 {
    let old = if cpu.lse {
        unsafe { ldset_lse(p, bits) }
    } else {
        let old = read(p);
        unsafe { asm!("str {v}, [{p}]", v = in(reg) old | bits, p = in(reg) p, options(nostack)) };
        old
    };
    kpkeys::count_write();
    old
}

/// LDCLR (or load + STR); returns the old value.
fn ldclr_x(cpu: &Cpu, p: u64, bits: u64) -> u64 {
    let old = if cpu.lse {
        unsafe { ldclr_lse(p, bits) }
    } else {
        let old = read(p);
        unsafe { asm!("str {v}, [{p}]", v = in(reg) old & !bits, p = in(reg) p, options(nostack)) };
        old
    };
    kpkeys::count_write();
    old
}

/// The constructed hazard: one STR X under POR_DEFAULT inside the batch.
fn hazard_store(p: u64, v: u64) {
    let prev = kpkeys::por();
    kpkeys::set_por(POR_DEFAULT);
    HAZARD_FAR.store(p, Ordering::Relaxed);
    unsafe { pt_stress_hazard_str(p, v) };
    HAZARD_FAR.store(0, Ordering::Relaxed);
    kpkeys::set_por(prev);
    kpkeys::count_write();
}

/// Sets the linear-map POIndex of pool page `pa` (one STR X) and flushes
/// that page's TLB entry.
fn set_page_pkey(pa: u64, pkey: u64) {
    let pte = mmu::lm_pte(pa);
    str_x(pte.va(), (pte.desc & !mmu::POINDEX_MASK) | mmu::pkey_bits(pkey));
    mmu::flush_tlb_page(mmu::lm_va(pa));
}

fn alloc_table() -> u64 {
    let pa = mmu::pool_alloc().expect("page-table pool exhausted");
    set_page_pkey(pa, kpkeys::PKEY_PGTABLES);
    pa
}

fn free_table(pa: u64) {
    set_page_pkey(pa, kpkeys::PKEY_DEFAULT);
    mmu::pool_free(pa);
}

// ---------------------------------------------------------------------------
// Rounds.

/// Where round `r` builds its subtree.
struct Round {
    r: u64,
    /// 0: TTBR0, 1: TTBR1.
    half: u64,
    i0: usize,
    i1: usize,
    i2: usize,
}

impl Round {
    fn new(r: u64) -> Self {
        let half = r % 2;
        let slot = ((r / 2) % 4) as usize;
        Round {
            r,
            half,
            i0: if half == 0 { 1 + slot } else { 0x180 + slot },
            i1: ((r * 37 + 5) % 512) as usize,
            i2: ((r * 101 + 11) % 512) as usize,
        }
    }

    /// VA mapped by PTE `j`.
    fn va(&self, j: usize) -> u64 {
        let top = if self.half == 1 { 0xffff << 48 } else { 0 };
        top | (self.i0 as u64) << 39 | (self.i1 as u64) << 30 | (self.i2 as u64) << 21 | (j as u64) << 12
    }

    fn root(&self) -> u64 {
        let (r0, r1) = mmu::roots();
        if self.half == 0 {
            r0
        } else {
            r1
        }
    }

    fn backing(&self, j: usize) -> usize {
        (j + self.r as usize) % BACKING_PAGES
    }

    /// PTE `j` as first written: EL1 read-only data, nG under TTBR0.
    fn pte(&self, j: usize) -> u64 {
        let ng = if self.half == 0 { mmu::NG } else { 0 };
        backing_pa(self.backing(j)) | mmu::PROT_RODATA | ng
    }

    /// PTE `j` after the LDSET/LDCLR step, computed independently of the
    /// stores.
    fn pte_final(&self, j: usize) -> u64 {
        let v = self.pte(j);
        if j < MODIFY_PTES {
            (v | mmu::SW_DIRTY) & !mmu::AP_RO
        } else {
            v
        }
    }
}

fn check(what: &str, r: u64, idx: usize, got: u64, want: u64) {
    if got != want {
        fail(format_args!("round {}: {}[{}] = {:#x}, expected {:#x}", r, what, idx, got, want));
    }
}

/// Verifies the subtree of round `rd` (all four levels) by reading every
/// descriptor through the linear map.
fn verify_round(rd: &Round, l1: u64, l2: u64, l3: u64) {
    let r = rd.r;
    check("L0", r, rd.i0, mmu::read_desc(rd.root(), rd.i0), l1 | mmu::DESC_TABLE);
    for i in 0..ENTRIES {
        let want = if i == rd.i1 { l2 | mmu::DESC_TABLE } else { 0 };
        check("L1", r, i, mmu::read_desc(l1, i), want);
        let want = if i == rd.i2 { l3 | mmu::DESC_TABLE } else { 0 };
        check("L2", r, i, mmu::read_desc(l2, i), want);
        check("L3", r, i, mmu::read_desc(l3, i), rd.pte_final(i));
    }
    for (lvl, t) in [(1, l1), (2, l2), (3, l3)] {
        check(
            "linear-map POIndex of table level",
            r,
            lvl,
            mmu::poindex(mmu::lm_pte(t).desc),
            kpkeys::PKEY_PGTABLES,
        );
    }
}

/// One round: 1000 stores with a 64-byte DC ZVA block (module doc).
fn run_round(cpu: &Cpu, rd: &Round) {
    let r = rd.r;
    kpkeys::lazy_mmu_mode_enable();

    // Allocate (3 linear-map stores), link top-down (3).
    let l1 = alloc_table();
    let l2 = alloc_table();
    let l3 = alloc_table();
    str_x(mmu::desc_va(rd.root(), rd.i0), l1 | mmu::DESC_TABLE);
    str_x(mmu::desc_va(l1, rd.i1), l2 | mmu::DESC_TABLE);
    str_x(mmu::desc_va(l2, rd.i2), l3 | mmu::DESC_TABLE);

    // Fill the L3 table: STP, STR X (+ the hazard), STR W pairs, CAS.
    let p = |j: usize| mmu::desc_va(l3, j);
    for j in (0..128).step_by(2) {
        stp_x(p(j), rd.pte(j), rd.pte(j + 1));
    }
    for j in 128..256 {
        if j == HAZARD_PTE {
            check("hazard VA", r, j, p(j), HAZARD_VA.load(Ordering::Relaxed));
            hazard_store(p(j), rd.pte(j));
        } else {
            str_x(p(j), rd.pte(j));
        }
    }
    for j in 256..384 {
        let v = rd.pte(j);
        str_w(p(j) + 4, (v >> 32) as u32);
        str_w(p(j), v as u32);
    }
    for j in 384..512 {
        let old = cas_x(cpu, p(j), 0, rd.pte(j));
        check("CAS old", r, j, old, 0);
    }
    unsafe { asm!("dsb ishst", "isb", options(nostack)) };

    // Read through the new mappings.
    for j in [0, HAZARD_PTE, 300, 511] {
        let got = read(rd.va(j));
        check("word read through PTE", r, j, got, tag(rd.backing(j)));
    }

    // Modify: LDSET SW_DIRTY, LDCLR AP[2].
    for j in 0..MODIFY_PTES {
        let old = ldset_x(cpu, p(j), mmu::SW_DIRTY);
        check("LDSET old", r, j, old, rd.pte(j));
    }
    for j in 0..MODIFY_PTES {
        let old = ldclr_x(cpu, p(j), mmu::AP_RO);
        check("LDCLR old", r, j, old, rd.pte(j) | mmu::SW_DIRTY);
    }
    mmu::flush_tlb_all();
    verify_round(rd, l1, l2, l3);

    // Clear the L3 table: DC ZVA, STR W pairs, STP XZR.
    if cpu.zva_usable() {
        let mut off = 0;
        while off < ZVA_BYTES {
            dc_zva(mmu::lm_va(l3) + off);
            off += cpu.zva;
        }
    } else {
        for j in (0..256).step_by(2) {
            stp_x(p(j), 0, 0);
        }
    }
    for j in 256..384 {
        str_w(p(j), 0);
        str_w(p(j) + 4, 0);
    }
    for j in (384..512).step_by(2) {
        stp_x(p(j), 0, 0);
    }
    mmu::flush_tlb_all();
    for j in 0..ENTRIES {
        check("L3 after clear", r, j, mmu::read_desc(l3, j), 0);
    }

    // Unlink bottom-up, free (3 + 3 stores).
    str_x(mmu::desc_va(l2, rd.i2), 0);
    mmu::flush_tlb_all();
    free_table(l3);
    str_x(mmu::desc_va(l1, rd.i1), 0);
    mmu::flush_tlb_all();
    free_table(l2);
    str_x(mmu::desc_va(rd.root(), rd.i0), 0);
    mmu::flush_tlb_all();
    free_table(l1);

    kpkeys::lazy_mmu_mode_disable();
}

fn snapshot() -> mmu::Snapshot {
    let (r0, r1) = mmu::roots();
    let mut s = mmu::Snapshot::default();
    mmu::snapshot(r0, &mut s);
    mmu::snapshot(r1, &mut s);
    s
}

fn parse_args(plat: &fdt::Platform) -> Result<u64, ()> {
    let mut iters = DEFAULT_ITERS;
    for (k, v) in cmdline::words(plat.chosen.bootargs.unwrap_or(""), "pt_stress.") {
        match (k, v) {
            ("pt_stress.iters", Some(v)) => match cmdline::parse_u64(v) {
                Some(n) if (1..=MAX_ITERS).contains(&n) => iters = n,
                _ => {
                    println!("pt_stress: FAIL bad pt_stress.iters={:?} (want 1..={})", v, MAX_ITERS);
                    return Err(());
                }
            },
            _ => {
                println!(
                    "pt_stress: FAIL unknown option {}{}{} (pt_stress.iters=N)",
                    k,
                    if v.is_some() { "=" } else { "" },
                    v.unwrap_or("")
                );
                return Err(());
            }
        }
    }
    Ok(iters)
}

#[unsafe(no_mangle)]
fn test_main(boot: &Boot) -> u32 {
    let mut plat = fdt::Platform::new();
    if fdt::discover(boot.dtb, &mut plat).is_err() {
        println!("pt_stress: FAIL cannot parse the device tree");
        return 1;
    }
    let Ok(iters) = parse_args(&plat) else {
        return 1;
    };
    kentry::install(pt_stress_exception);
    let poe = kpkeys::init();
    let cpu = Cpu::detect();
    let per_round = cpu.stores_per_round();
    println!(
        "pt_stress: iters={} poe={} lse={} dc_zva_block={} stores_per_round={}",
        iters, poe as u8, cpu.lse as u8, cpu.zva, per_round
    );
    let expected_hazards = if poe { iters } else { 0 };
    println!("pt_stress: expected_hazards={}", expected_hazards);

    for (k, page) in unsafe { &mut *BACKING.0.get() }.iter_mut().enumerate() {
        page[0] = tag(k);
    }
    let mut s = Setup::new();
    s.identity_image();
    s.identity(boot.dtb_addr as u64, boot.dtb.len() as u64, mmu::PROT_RODATA);
    if let Some(u) = plat.console() {
        s.identity(u.regs.base, PAGE_SIZE, mmu::PROT_DEVICE);
    }
    s.linear_map();
    kpkeys::enable_poe();
    let (ttbr0, ttbr1) = (s.ttbr0, s.ttbr1);
    let tcr = s.enable();
    let before = snapshot();
    let used_before = mmu::pool_used_count();
    // Rounds allocate L1, L2, L3 as the three lowest free pool pages.
    let l3_first = mmu::pool_base() + (used_before as u64 + 2) * PAGE_SIZE;
    let hazard_va = mmu::desc_va(l3_first, HAZARD_PTE);
    HAZARD_VA.store(hazard_va, Ordering::Relaxed);
    println!(
        "pt_stress: mmu on: ttbr0={:#x} ttbr1={:#x} tcr={:#x} POR_EL1={:#x}; {} tables, {} valid descriptors",
        ttbr0,
        ttbr1,
        tcr,
        kpkeys::por(),
        before.tables,
        before.valid_descs
    );
    println!(
        "pt_stress: pool {:#x}..{:#x}; linear-map L3 table {:#x}; round tables L1 {:#x} L2 {:#x} L3 {:#x}",
        mmu::pool_base(),
        mmu::pool_end(),
        mmu::lm_pte(mmu::pool_base()).table_pa,
        l3_first - 2 * PAGE_SIZE,
        l3_first - PAGE_SIZE,
        l3_first
    );
    println!(
        "pt_stress: hazard_va={:#x} level=3 por={} pkey=1 perm=R (PTE {} of each round's L3 table, STR X at pt_stress_hazard_str)",
        hazard_va,
        if poe { "0x17" } else { "-" },
        HAZARD_PTE
    );

    let w0 = kpkeys::table_writes();
    let t0 = porwatch_guest_tests::timer::cntvct();
    for r in 0..iters {
        run_round(&cpu, &Round::new(r));
    }
    let ticks = porwatch_guest_tests::timer::cntvct().wrapping_sub(t0);
    let writes = kpkeys::table_writes() - w0;
    let ms = ticks * 1000 / porwatch_guest_tests::timer::cntfrq().max(1);

    let after = snapshot();
    let free_bad = mmu::check_free_pages();
    if after != before || after.bad != 0 {
        fail(format_args!("tables changed: before {:?}, after {:?}", before, after));
    }
    if free_bad != 0 {
        fail(format_args!("{} free pool pages not clean", free_bad));
    }
    if mmu::pool_used_count() != used_before {
        fail(format_args!("pool pages in use: {} before, {} after", used_before, mmu::pool_used_count()));
    }
    if writes != iters * per_round {
        fail(format_args!("writes {}, expected {}", writes, iters * per_round));
    }
    let faults = OVERLAY_FAULTS.load(Ordering::Relaxed);
    if faults != 0 && faults != expected_hazards {
        fail(format_args!("{} overlay faults, expected 0 (report) or {} (fault)", faults, expected_hazards));
    }
    if kpkeys::por() != if poe { POR_DEFAULT } else { 0 } {
        fail(format_args!("POR_EL1 = {:#x} at the end", kpkeys::por()));
    }
    let failures = FAILURES.load(Ordering::Relaxed);
    println!(
        "pt_stress: rounds={} ms={} overlay_faults={} tables={} checksum={:#018x}",
        iters, ms, faults, after.tables, after.checksum
    );
    println!(
        "pt_stress: writes={} hazards_constructed={} tables_verified={}",
        writes,
        expected_hazards,
        if failures == 0 { "ok" } else { "FAIL" }
    );
    println!("pt_stress: done");
    (failures != 0) as u32
}
