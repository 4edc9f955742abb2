//! `seed`: the kpkeys crash of `../shared/seed/000_16eaa8d5c58b3fdb.txt`
//! ("[PATCH v6 07/30] arm64: Reset POR_EL1 on exception entry", Kevin
//! Brodsky, 2026-05-05) as a bare-metal kernel. A lazy-MMU batch (vunmap)
//! raises POR_EL1 to the page-table level; a timer IRQ taken in the middle
//! of it resets POR_EL1 to the default at exception entry; on the IRQ-exit
//! path the kernel reschedules, drops the last reference on an mm, frees its
//! PGD and rewrites the linear-map PTE of that page (`set_memory_pkey(addr,
//! 1, 0)`) without raising POR_EL1, because it still counts as inside the
//! batch: a store to a page-table page (pkey 1) under POR_EL1 = 0x17 (pkey 1
//! read-only). With FEAT_S1POE in hardware that store is the seed's overlay
//! permission fault (ESR 0x000000409600004f).
//!
//! The functions on the path carry Linux's names (unmangled), so a
//! symbolized trace reads like the seed's call trace: the IRQ is taken in
//! `__vunmap_range_noflush` (called from `vfree` -> `remove_vm_area`), enters
//! at `el1h_64_irq` (slot 0x280 of `kentry_vectors`, see `src/kentry.rs`),
//! then `el1h_64_irq_handler` -> `el1_interrupt` -> `handle_arch_irq`, then
//! `arm64_exit_to_kernel_mode` -> `raw_irqentry_exit_cond_resched` ->
//! `preempt_schedule_irq` -> `__schedule` -> `finish_task_switch` -> `mmdrop`
//! -> `__mmdrop` -> `pgd_free` -> `kpkeys_pgtable_free` -> `set_memory_pkey`
//! -> `update_range_prot` -> `walk_kernel_page_table_range_lockless` ->
//! `pageattr_pte_entry`, whose `STR` is the hazard.
//!
//! # Set-up (`src/mmu.rs`, `src/kpkeys.rs`, `src/kentry.rs`)
//!
//! VBAR_EL1 := `kentry_vectors` (kpkeys entry/exit: POR_EL1 saved and reset
//! to 0x17 on entry from EL1, restored before ELR/SPSR on exit); GICv3 and
//! the virtual timer (INTID 27, priority 0x80) with the MMU off; then the
//! tables, all built with the MMU off before TTBR0/TTBR1 are written, from a
//! 64-page pool in the image (allocation order, lowest free page first; the
//! page numbers are those on QEMU virt under porwatch, DTB at 0x40800000):
//!
//! | pool page | table |
//! |---|---|
//! | 0, 1 | TTBR0 root (L0), TTBR1 root (L0) |
//! | 2, 3, 4 | identity map of the image: L1, L2, L3 |
//! | 5 | identity map of the DTB: L3 |
//! | 6, 7 | identity map of the UART: L2, L3 |
//! | 8 | identity map of the GIC distributor and this CPU's redistributor: L3 |
//! | 9, 10, 11 | vmalloc area `0xffff_8000_1000_0000` (TTBR1 L0 index 0x100): L1, L2, L3 |
//! | 12, 13, 14 | linear map (TTBR1 L0 index 0): L1, L2, L3 |
//!
//! The linear map maps every pool page at `0xffff_0000_0000_0000 + PA` with
//! PTE `PA | 0x0060_0000_0000_0703` (valid page, AttrIndx 0 Normal WB, EL1
//! RW, inner shareable, AF, PXN, UXN) `| POIndex << 60`: POIndex 1 for the
//! 15 table pages (the linear map's L3 table, pool page 14, maps itself with
//! POIndex 1), 0 for free pages. The pool is not identity-mapped. Then
//! TCR2_EL1.POE := 1, POR_EL1 := 0x17, and MAIR/TCR_EL1 (T0SZ = T1SZ = 16,
//! 4 KiB granules, IPS from ID_AA64MMFR0_EL1)/TTBR0/TTBR1, SCTLR_EL1 |= M, C,
//! I. With POE absent (porwatch `tap=off`) every POR_EL1/TCR2_EL1 access is
//! skipped, here and in the vector code; nothing else changes.
//!
//! # Table writes
//!
//! Once the MMU is on, every store to a pool page is a page-table write, made
//! by one `STR Xt` through the linear map (the TTBR1 VA of the table page);
//! there are exactly 34, all to level-3 tables reachable from TTBR1:
//!
//! | # | phase | what (function) | table, entries | old -> new | POR_EL1 at the store |
//! |---|---|---|---|---|---|
//! | 1 | a | `pgd_alloc`: pool page 15 becomes the PGD of a fake mm (never installed): `set_memory_pkey(lm(pgd), 1, 1)`; `update_range_prot` runs its own (outermost) lazy-MMU batch | linear-map L3, the PGD's PTE | POIndex 0 -> 1 | 0x57 |
//! | 2-17 | a | `vmap_pte_range`: 16 `set_pte`, each in a kpkeys guard | vmalloc L3, 0..15 | 0 -> `backing(i) \| 0x0060_0000_0000_0703` | 0x57 |
//! | 18-25 | b | `__vunmap_range_noflush`: lazy-MMU batch entered once (POR 0x17 -> 0x57), PTEs cleared | vmalloc L3, 0..7 | -> 0 | 0x57 |
//! | | c | timer IRQ let in after write 25; entry resets POR 0x57 -> 0x17 | | | |
//! | 26 | c | `pgd_free` on the IRQ-exit path (as write 1, but `update_range_prot`'s batch is nested in the interrupted one: no raise) | linear-map L3, the PGD's PTE | POIndex 1 -> 0 | **0x17** (`seed.fixed=1`: 0x57) |
//! | | d | IRQ returns: exit restores POR 0x17 -> 0x57 | | | |
//! | 27-34 | d | the batch goes on | vmalloc L3, 8..15 | -> 0 | 0x57 |
//!
//! After write 34 the batch ends (POR 0x57 -> 0x17) and the vmalloc range is
//! flushed (TLBI VAAE1IS per page). Phase counts: pgd_alloc 1, vmap 16,
//! vunmap before the IRQ 8, IRQ exit 1, vunmap after the IRQ 8.
//!
//! # The hazard (`seed.fixed=0`, POE present): exactly one, write 26
//!
//! * VA = `0xffff_0000_0000_0000 + PA(pool page 14) + 8 * ((PA(pgd) >> 12) &
//!   511)`, PA(pgd) = PA(pool page 15): the linear-map L3 table's entry for
//!   the PGD page (the same entry as write 1); level 3;
//! * old `PA(pgd) | 0x1060_0000_0000_0703` -> new `PA(pgd) |
//!   0x0060_0000_0000_0703` (POIndex 1 -> 0);
//! * POR_EL1 = 0x17; the leaf mapping the written VA is the linear map's PTE
//!   for pool page 14 (the L3 table itself), POIndex 1: Perm<1> = 0x1 (R),
//!   no W;
//! * PC: the `STR` in `pageattr_pte_entry`.
//!
//! With the current layout: pool at 0x44024000, linear-map L3 0x44032000,
//! PGD 0x44033000, VA 0xffff000044032198 (index 51), old 0x1060000044033703,
//! new 0x0060000044033703. The kernel prints the values of the running build
//! before the scenario: `seed: expect hazard va=0x.. level=3 table=0x..
//! old=0x.. new=0x.. por=0x17 pkey=1 perm=R`.
//!
//! Cause chain: `exc_entry` vector=irq_el1h (ELR in `__vunmap_range_noflush`,
//! POR 0x57) -> `por_write` 0x57 -> 0x17 at_entry=1 (pc `kentry_entry_por_msr`)
//! -> the hazard -> `por_write` 0x17 -> 0x57 (pc `kentry_exit_por_msr`) ->
//! `por_write` 0x57 -> 0x17 (pc in `arch_leave_lazy_mmu_mode`).
//!
//! `seed.fixed=1`: `finish_task_switch` pauses the interrupted batch around
//! `mmdrop` (Kevin's suggestion), so `update_range_prot`'s batch is the
//! outermost and raises POR_EL1: the same 34 writes, write 26 under 0x57,
//! no hazard. With POE absent: no hazard either.
//!
//! # POR_EL1 writes and exceptions (POE present)
//!
//! In order: 0 -> 0x17 (set-up); 0x17 -> 0x57 -> 0x17 (write 1, in
//! `arch_enter_lazy_mmu_mode` / `arch_leave_lazy_mmu_mode`); 16 x (0x17 ->
//! 0x57 -> 0x17) (writes 2-17, guards); 0x17 -> 0x57 (batch); IRQ entry 0x57
//! -> 0x17 (at_entry=1); [fixed: 0x17 -> 0x57 -> 0x17 around write 26]; IRQ
//! exit 0x17 -> 0x57; batch end 0x57 -> 0x17. 39 changes (fixed: 41), one
//! TCR2_EL1 write (0 -> 0x8). Exactly one exception is taken at EL1: the
//! IRQ (slot 0x280, INTID 27, POR_EL1 0x57 at entry).
//!
//! # Fault delivery (porwatch `policy=fault`)
//!
//! Write 26 then raises an overlay permission fault instead: a data abort
//! nested in the IRQ handler (slot 0x200, POR_EL1 0x17 at entry, so the entry
//! code changes nothing), ESR_EL1 = 0x000000409600004f, FAR_EL1 = the VA
//! above. The synchronous handler (`do_mem_abort` -> `__do_kernel_fault`)
//! recognises ESR_EL1.ISS2.Overlay (bit 38) on a data abort and prints
//!
//! ```text
//! seed: Unable to handle kernel write to read-only memory at virtual address ffff000044032198
//! seed:   ESR = 0x000000409600004f
//! seed:   FSC = 0x0f: level 3 permission fault
//! seed:   Overlay = 1
//! ```
//!
//! and exits with status 0x4f (79): the guest dies, after 25 table writes.
//! Any other exception: `seed: FAIL unexpected exception ...`, status 100.
//!
//! # Command line, console, exit status
//!
//! `seed.fixed=0|1` (default 0); any other `seed.*` word fails (status 1).
//! Console lines start with `seed: ` (a..d per phase), then `seed: summary
//! table_writes=34 pgd_alloc=1 vmap=16 vunmap_before_irq=8 irq_exit=1
//! vunmap_after_irq=8 expected_hazards=1|0 failures=N` and `seed: done`.
//! Exit status: the number of failed self-checks (0 = pass; POR values are
//! checked only with POE), 1 without a usable DT/GIC/timer, 0x4f on an
//! overlay fault, 100 on another exception, 101 on a panic.
#![no_std]
#![no_main]

use core::arch::asm;
use core::cell::UnsafeCell;
use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use porwatch_guest_tests::exceptions::VECTOR_NAMES;
use porwatch_guest_tests::kentry::{self, Frame};
use porwatch_guest_tests::kpkeys::{self, POR_DEFAULT, POR_PGTABLES};
use porwatch_guest_tests::mmu::{self, Setup, PAGE_SIZE};
use porwatch_guest_tests::{cmdline, gicv3, println, smccc, timer, Boot};
use porwatch_monitor::fdt;

/// The vmalloc area mapped, then unmapped in a lazy-MMU batch (TTBR1, L0
/// index 0x100, as Linux's VMALLOC_START 0xffff_8000_0000_0000).
const VM_AREA: u64 = 0xffff_8000_1000_0000;
/// Pages in the area.
const VM_PAGES: usize = 16;
/// PTEs cleared before the IRQ is let in.
const IRQ_AFTER: usize = 8;
/// The EL1 virtual timer's INTID on QEMU virt (the DT is what is used).
const INTID_CNTV: u32 = 27;
/// Ticks until the virtual timer fires (it stays pending until unmasked).
const TIMER_TVAL: u32 = 1000;
/// Exit status when the kernel "dies" of an overlay permission fault: the
/// fault's DFSC (level 3 permission fault), inside the 0-63 `porwatch run`
/// passes on as its own status.
const STATUS_OVERLAY_FAULT: u32 = 0x0f;
/// Exit status on any other unexpected exception.
const STATUS_UNEXPECTED: u32 = 100;

/// Table writes of each phase (see the module doc).
const W_PGD_ALLOC: u64 = 1;
const W_VMAP: u64 = VM_PAGES as u64;
const W_VUNMAP_BEFORE_IRQ: u64 = IRQ_AFTER as u64;
const W_IRQ_EXIT: u64 = 1;
const W_VUNMAP_AFTER_IRQ: u64 = (VM_PAGES - IRQ_AFTER) as u64;

/// The pages behind the vmalloc area (pkey 0, identity-mapped RW too).
#[repr(C, align(4096))]
struct Backing(UnsafeCell<[[u64; 512]; VM_PAGES]>);
// SAFETY: one CPU; written once before it is mapped, then only read.
unsafe impl Sync for Backing {}
static VM_BACKING: Backing = Backing(UnsafeCell::new([[0; 512]; VM_PAGES]));

fn backing_pa(i: usize) -> u64 {
    VM_BACKING.0.get() as u64 + i as u64 * PAGE_SIZE
}

/// The first word of backing page `i` ("seed" + i).
fn tag(i: usize) -> u64 {
    0x7365_6564_0000_0000 | i as u64
}

/// What the test observed (read by `test_main` after the fact).
struct Observed {
    fixed: AtomicBool,
    irqs: AtomicU32,
    intid: AtomicU64,
    /// POR_EL1 saved by the IRQ's entry code.
    irq_por_entry: AtomicU64,
    /// POR_EL1 in the IRQ handler.
    irq_por_handler: AtomicU64,
    /// POR_EL1 just before pageattr_pte_entry's store in pgd_free.
    free_por_store: AtomicU64,
    /// Table writes counted when the IRQ arrived / returned.
    writes_at_irq: AtomicU64,
    writes_after_irq: AtomicU64,
    /// POR_EL1 in the batch right after the IRQ returned.
    por_after_irq: AtomicU64,
}

static OBS: Observed = Observed {
    fixed: AtomicBool::new(false),
    irqs: AtomicU32::new(0),
    intid: AtomicU64::new(0),
    irq_por_entry: AtomicU64::new(0),
    irq_por_handler: AtomicU64::new(0),
    free_por_store: AtomicU64::new(0),
    writes_at_irq: AtomicU64::new(0),
    writes_after_irq: AtomicU64::new(0),
    por_after_irq: AtomicU64::new(0),
};

fn get(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

/// A POR_EL1 value for printing: `-` without POE.
struct Por(u64);
impl fmt::Display for Por {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if kpkeys::poe_on() {
            write!(f, "{:#x}", self.0)
        } else {
            f.write_str("-")
        }
    }
}

// ---------------------------------------------------------------------------
// A fake mm whose PGD is freed from the IRQ-exit path.

struct MmStruct {
    pgd: AtomicU64,
    mm_count: AtomicU32,
}

static FAKE_MM: MmStruct = MmStruct { pgd: AtomicU64::new(0), mm_count: AtomicU32::new(0) };

/// rq->prev_mm: set when the scheduler switched away from a task that was
/// running on a lazy-TLB mm; finish_task_switch() drops it.
static PREV_MM: AtomicBool = AtomicBool::new(false);
/// TIF_NEED_RESCHED, set by the timer tick.
static NEED_RESCHED: AtomicBool = AtomicBool::new(false);
static IRQ_SEEN: AtomicBool = AtomicBool::new(false);

/// pageattr.c: rewrites one linear-map PTE: `(old & !clear) | set`. The
/// store is [`kpkeys::set_pte`]: bare, since update_range_prot() runs in
/// lazy-MMU mode.
#[inline(never)]
#[unsafe(no_mangle)]
fn pageattr_pte_entry(ptep: u64, set: u64, clear: u64) {
    let old = unsafe { (ptep as *const u64).read_volatile() };
    let new = (old & !clear) | set;
    OBS.free_por_store.store(kpkeys::por(), Ordering::Relaxed);
    // SAFETY: a linear-map PTE of a pool page.
    unsafe { kpkeys::set_pte(ptep, new) };
}

#[inline(never)]
#[unsafe(no_mangle)]
fn walk_kernel_page_table_range_lockless(start: u64, end: u64, set: u64, clear: u64) {
    let (_, ttbr1) = mmu::roots();
    let mut va = start;
    while va < end {
        let leaf = mmu::walk(ttbr1, va).expect("set_memory_pkey: unmapped");
        assert!(leaf.level == 3, "set_memory_pkey: not a page mapping");
        pageattr_pte_entry(leaf.va(), set, clear);
        va += PAGE_SIZE;
    }
}

/// arm64 update_range_prot(): the walk runs in (nested) lazy-MMU mode; then
/// flush_tlb_kernel_range().
#[inline(never)]
#[unsafe(no_mangle)]
fn update_range_prot(start: u64, size: u64, set: u64, clear: u64) {
    kpkeys::lazy_mmu_mode_enable();
    walk_kernel_page_table_range_lockless(start, start + size, set, clear);
    kpkeys::lazy_mmu_mode_disable();
    let mut va = start;
    while va < start + size {
        mmu::flush_tlb_page(va);
        va += PAGE_SIZE;
    }
}

/// set_memory_pkey(addr, numpages, pkey): sets POIndex of `numpages`
/// linear-map pages.
#[inline(never)]
#[unsafe(no_mangle)]
fn set_memory_pkey(addr: u64, numpages: u64, pkey: u64) {
    update_range_prot(addr, numpages * PAGE_SIZE, mmu::pkey_bits(pkey), mmu::POINDEX_MASK);
}

#[inline(never)]
#[unsafe(no_mangle)]
fn kpkeys_pgtable_alloc(pa: u64) {
    set_memory_pkey(mmu::lm_va(pa), 1, kpkeys::PKEY_PGTABLES);
}

#[inline(never)]
#[unsafe(no_mangle)]
fn kpkeys_pgtable_free(pa: u64) {
    set_memory_pkey(mmu::lm_va(pa), 1, kpkeys::PKEY_DEFAULT);
}

#[inline(never)]
#[unsafe(no_mangle)]
fn pgd_alloc() -> u64 {
    let pgd = mmu::pool_alloc().expect("page-table pool exhausted");
    kpkeys_pgtable_alloc(pgd);
    pgd
}

#[inline(never)]
#[unsafe(no_mangle)]
fn pgd_free(pgd: u64) {
    println!(
        "seed: c pgd_free: set_memory_pkey({:#x}, 1, 0) (pgd {:#x}) at POR_EL1={} lazy_mmu_active={}",
        mmu::lm_va(pgd),
        pgd,
        Por(kpkeys::por()),
        kpkeys::lazy_mmu_mode_active() as u8
    );
    kpkeys_pgtable_free(pgd);
    let pte = mmu::lm_pte(pgd);
    println!(
        "seed: c pgd_free: PTE at {:#x} is now {:#018x} (POIndex {}), written at POR_EL1={}",
        pte.va(),
        pte.desc,
        mmu::poindex(pte.desc),
        Por(get(&OBS.free_por_store))
    );
    mmu::pool_free(pgd);
}

#[inline(never)]
#[unsafe(no_mangle)]
fn __mmdrop(mm: &MmStruct) {
    pgd_free(mm.pgd.swap(0, Ordering::Relaxed));
}

#[inline(never)]
#[unsafe(no_mangle)]
fn mmdrop(mm: &MmStruct) {
    if mm.mm_count.fetch_sub(1, Ordering::Relaxed) == 1 {
        __mmdrop(mm);
    }
}

/// finish_task_switch(): drops the previous task's lazy-TLB mm. The fixed
/// variant pauses the interrupted lazy-MMU batch around it.
#[inline(never)]
#[unsafe(no_mangle)]
fn finish_task_switch() {
    if !PREV_MM.swap(false, Ordering::Relaxed) {
        return;
    }
    if OBS.fixed.load(Ordering::Relaxed) {
        let paused = kpkeys::lazy_mmu_mode_pause();
        mmdrop(&FAKE_MM);
        kpkeys::lazy_mmu_mode_resume(paused);
    } else {
        mmdrop(&FAKE_MM);
    }
}

/// __schedule(): another task runs, then this one is switched back in
/// (context_switch() is a no-op here) and finish_task_switch() runs.
#[inline(never)]
#[unsafe(no_mangle)]
fn __schedule() {
    finish_task_switch();
}

#[inline(never)]
#[unsafe(no_mangle)]
fn preempt_schedule_irq() {
    NEED_RESCHED.store(false, Ordering::Relaxed);
    __schedule();
}

#[inline(never)]
#[unsafe(no_mangle)]
fn raw_irqentry_exit_cond_resched() {
    if NEED_RESCHED.load(Ordering::Relaxed) {
        preempt_schedule_irq();
    }
}

#[inline(never)]
#[unsafe(no_mangle)]
fn arm64_exit_to_kernel_mode() {
    raw_irqentry_exit_cond_resched();
}

/// The timer interrupt: ack, stop the timer, EOI; the tick asks for a
/// reschedule.
#[inline(never)]
#[unsafe(no_mangle)]
fn handle_arch_irq() {
    let intid = gicv3::ack();
    timer::cntv_stop();
    if intid != gicv3::INTID_SPURIOUS {
        gicv3::eoi(intid);
    }
    OBS.intid.store(intid as u64, Ordering::Relaxed);
    NEED_RESCHED.store(true, Ordering::Relaxed);
}

#[inline(never)]
#[unsafe(no_mangle)]
fn el1_interrupt(frame: &mut Frame) {
    OBS.irqs.fetch_add(1, Ordering::Relaxed);
    OBS.irq_por_entry.store(frame.por, Ordering::Relaxed);
    OBS.irq_por_handler.store(kpkeys::por(), Ordering::Relaxed);
    OBS.writes_at_irq.store(kpkeys::table_writes(), Ordering::Relaxed);
    handle_arch_irq();
    println!(
        "seed: c irq intid={} POR_EL1 at entry={} in handler={}",
        get(&OBS.intid),
        Por(frame.por),
        Por(kpkeys::por())
    );
    arm64_exit_to_kernel_mode();
    IRQ_SEEN.store(true, Ordering::Relaxed);
}

#[inline(never)]
#[unsafe(no_mangle)]
fn el1h_64_irq_handler(frame: &mut Frame) {
    el1_interrupt(frame);
}

/// Linux's `__do_kernel_fault` for a permission fault: print and die.
#[inline(never)]
#[unsafe(no_mangle)]
fn __do_kernel_fault(far: u64, esr: u64) -> ! {
    let dfsc = esr & 0x3f;
    let what =
        if esr & kentry::ESR_WNR != 0 { "write to read-only memory" } else { "read from unreadable memory" };
    println!("seed: Unable to handle kernel {} at virtual address {:016x}", what, far);
    println!("seed:   ESR = 0x{:016x}", esr);
    if (0x0c..=0x0f).contains(&dfsc) {
        println!("seed:   FSC = 0x{:02x}: level {} permission fault", dfsc, dfsc & 3);
    } else {
        println!("seed:   FSC = 0x{:02x}", dfsc);
    }
    println!("seed:   Overlay = {}", (esr & kentry::ESR_OVERLAY != 0) as u8);
    smccc::test_exit(STATUS_OVERLAY_FAULT)
}

#[inline(never)]
#[unsafe(no_mangle)]
fn do_mem_abort(far: u64, esr: u64) -> ! {
    __do_kernel_fault(far, esr)
}

fn unexpected(frame: &Frame, vector: u64) -> ! {
    println!(
        "seed: FAIL unexpected exception {} esr={:#x} elr={:#x} far={:#x}",
        VECTOR_NAMES[(vector & 15) as usize],
        frame.esr,
        frame.elr,
        frame.far
    );
    smccc::test_exit(STATUS_UNEXPECTED)
}

#[inline(never)]
#[unsafe(no_mangle)]
fn el1h_64_sync_handler(frame: &mut Frame) {
    let ec = (frame.esr >> 26) & 0x3f;
    if ec == kentry::EC_DABT_CUR && frame.esr & kentry::ESR_OVERLAY != 0 {
        do_mem_abort(frame.far, frame.esr);
    }
    unexpected(frame, kentry::VEC_SYNC_EL1H)
}

/// The handler kentry's vector code calls.
extern "C" fn seed_exception(frame: &mut Frame, vector: u64) {
    match vector {
        kentry::VEC_SYNC_EL1H => el1h_64_sync_handler(frame),
        kentry::VEC_IRQ_EL1H => el1h_64_irq_handler(frame),
        _ => unexpected(frame, vector),
    }
}

// ---------------------------------------------------------------------------
// vmalloc

/// The vmalloc PTE of page `i` of the area, through the linear map.
fn vm_ptep(i: usize) -> u64 {
    let (_, ttbr1) = mmu::roots();
    let va = VM_AREA + i as u64 * PAGE_SIZE;
    let l2 = mmu::walk_table(ttbr1, va, 3).expect("vmalloc L3 table");
    mmu::desc_va(l2, mmu::index(va, 3))
}

/// vmap(): one guarded set_pte per page.
#[inline(never)]
#[unsafe(no_mangle)]
fn vmap_pte_range() {
    for i in 0..VM_PAGES {
        let pte = backing_pa(i) | mmu::PROT_DATA;
        unsafe { kpkeys::set_pte(vm_ptep(i), pte) };
    }
    unsafe { asm!("isb", options(nostack)) };
}

/// Lets the pending timer IRQ in (IRQs unmasked for one instruction at a
/// time) and waits until its handler has run; false after about a second.
#[inline(always)]
fn wait_for_timer_irq() -> bool {
    let start = timer::cntvct();
    let limit = timer::cntfrq().max(1_000_000);
    loop {
        unsafe {
            asm!("msr daifclr, #2", "isb", "msr daifset, #2", clobber_abi("C"), options(nostack));
        }
        if IRQ_SEEN.load(Ordering::Relaxed) {
            return true;
        }
        if timer::cntvct().wrapping_sub(start) > limit {
            return false;
        }
        unsafe { asm!("wfi", options(nomem, nostack)) };
    }
}

/// The batch: lazy-MMU mode entered once, every PTE of the area cleared
/// (`STR XZR`), the timer IRQ taken after IRQ_AFTER of them.
#[inline(never)]
#[unsafe(no_mangle)]
fn __vunmap_range_noflush() -> bool {
    let mut irq_ok = true;
    kpkeys::lazy_mmu_mode_enable();
    for i in 0..VM_PAGES {
        if i == IRQ_AFTER {
            irq_ok = wait_for_timer_irq();
            OBS.writes_after_irq.store(kpkeys::table_writes(), Ordering::Relaxed);
            OBS.por_after_irq.store(kpkeys::por(), Ordering::Relaxed);
        }
        // pte_clear(): a bare store, the batch raised the level.
        unsafe { kpkeys::set_pte(vm_ptep(i), 0) };
    }
    kpkeys::lazy_mmu_mode_disable();
    irq_ok
}

#[inline(never)]
#[unsafe(no_mangle)]
fn remove_vm_area() -> bool {
    let ok = __vunmap_range_noflush();
    let mut i = 0;
    while i < VM_PAGES {
        mmu::flush_tlb_page(VM_AREA + i as u64 * PAGE_SIZE);
        i += 1;
    }
    ok
}

#[inline(never)]
#[unsafe(no_mangle)]
fn vfree() -> bool {
    timer::cntv_arm(TIMER_TVAL);
    remove_vm_area()
}

// ---------------------------------------------------------------------------

struct Checks {
    failed: u32,
}

impl Checks {
    fn check(&mut self, what: &str, got: u64, want: u64) {
        if got != want {
            println!("seed: FAIL {} = {:#x}, expected {:#x}", what, got, want);
            self.failed += 1;
        }
    }
    fn check_por(&mut self, what: &str, got: u64, want: u64) {
        if kpkeys::poe_on() {
            self.check(what, got, want);
        }
    }
}

fn parse_args(plat: &fdt::Platform) -> Result<bool, ()> {
    let mut fixed = false;
    for (k, v) in cmdline::words(plat.chosen.bootargs.unwrap_or(""), "seed.") {
        match (k, v) {
            ("seed.fixed", Some("0")) => fixed = false,
            ("seed.fixed", Some("1")) => fixed = true,
            _ => {
                println!(
                    "seed: FAIL unknown option {}{}{} (seed.fixed=0|1)",
                    k,
                    if v.is_some() { "=" } else { "" },
                    v.unwrap_or("")
                );
                return Err(());
            }
        }
    }
    Ok(fixed)
}

#[unsafe(no_mangle)]
fn test_main(boot: &Boot) -> u32 {
    let mut c = Checks { failed: 0 };
    let mut plat = fdt::Platform::new();
    if fdt::discover(boot.dtb, &mut plat).is_err() {
        println!("seed: FAIL cannot parse the device tree");
        return 1;
    }
    let Ok(fixed) = parse_args(&plat) else {
        return 1;
    };
    OBS.fixed.store(fixed, Ordering::Relaxed);
    kentry::install(seed_exception);
    let poe = kpkeys::init();
    println!("seed: kpkeys lazy-MMU batch interrupted by an IRQ; fixed={} poe={}", fixed as u8, poe as u8);

    // GIC and timer, with the MMU still off.
    let (Some(gic), Some(t)) = (plat.gic.as_ref(), plat.timer.as_ref()) else {
        println!("seed: FAIL no GIC or timer in the device tree");
        return 1;
    };
    let gic = match gicv3::GicV3::init(gic) {
        Ok(g) => g,
        Err(e) => {
            println!("seed: FAIL GICv3 init: {}", e);
            return 1;
        }
    };
    c.check("DT virtual timer INTID", t.virt as u64, INTID_CNTV as u64);
    if t.virt >= 32 {
        println!("seed: FAIL timer INTID {} is not a PPI", t.virt);
        return 1;
    }
    gic.enable_ppi(t.virt, 0x80);

    // a. Tables (MMU off), POE, MMU on.
    for (i, page) in unsafe { &mut *VM_BACKING.0.get() }.iter_mut().enumerate() {
        page[0] = tag(i);
    }
    let mut s = Setup::new();
    s.identity_image();
    s.identity(boot.dtb_addr as u64, boot.dtb.len() as u64, mmu::PROT_RODATA);
    if let Some(u) = plat.console() {
        s.identity(u.regs.base, PAGE_SIZE, mmu::PROT_DEVICE);
    }
    s.identity(gic.dist as u64, 0x1_0000, mmu::PROT_DEVICE);
    s.identity(gic.redist as u64, 0x2_0000, mmu::PROT_DEVICE);
    let vm_l3 = s.table_for(VM_AREA, 3);
    s.linear_map();
    kpkeys::enable_poe();
    let (ttbr0, ttbr1) = (s.ttbr0, s.ttbr1);
    let tcr = s.enable();
    let lm_l3 = mmu::lm_pte(mmu::pool_base()).table_pa;
    println!(
        "seed: a mmu on: ttbr0={:#x} ttbr1={:#x} tcr={:#x} tcr2={:#x} POR_EL1={}",
        ttbr0,
        ttbr1,
        tcr,
        kpkeys::tcr2(),
        Por(kpkeys::por())
    );
    println!(
        "seed: a pool {:#x}..{:#x} ({} pages, {} tables); linear map L3 table {:#x} (va {:#x}); vmalloc L3 table {:#x}",
        mmu::pool_base(),
        mmu::pool_end(),
        mmu::POOL_PAGES,
        mmu::pool_used_count(),
        lm_l3,
        mmu::lm_va(lm_l3),
        vm_l3
    );
    let lm_self = mmu::lm_pte(lm_l3);
    c.check("linear-map L3 table's own POIndex", mmu::poindex(lm_self.desc), 1);

    // a. A process's mm: its PGD comes from the pool and gets pkey 1.
    let w0 = kpkeys::table_writes();
    let pgd = pgd_alloc();
    FAKE_MM.pgd.store(pgd, Ordering::Relaxed);
    FAKE_MM.mm_count.store(1, Ordering::Relaxed);
    let w_pgd = kpkeys::table_writes() - w0;
    let pte = mmu::lm_pte(pgd);
    let (old, new) = (pte.desc, pte.desc & !mmu::POINDEX_MASK);
    println!(
        "seed: a pgd_alloc: pgd {:#x}, its linear-map PTE at {:#x} (L3 table {:#x} index {}) = {:#018x} (POIndex {})",
        pgd,
        pte.va(),
        pte.table_pa,
        pte.idx,
        pte.desc,
        mmu::poindex(pte.desc)
    );
    c.check("pgd linear-map POIndex after pgd_alloc", mmu::poindex(old), 1);
    if poe && !fixed {
        println!(
            "seed: expect hazard va={:#x} level=3 table={:#x} old={:#018x} new={:#018x} por={:#x} pkey=1 perm=R",
            pte.va(),
            pte.table_pa,
            old,
            new,
            POR_DEFAULT
        );
    } else {
        println!(
            "seed: expect no hazard (the same write: va={:#x} old={:#018x} new={:#018x} por={})",
            pte.va(),
            old,
            new,
            Por(POR_PGTABLES)
        );
    }

    // a. vmap.
    let w1 = kpkeys::table_writes();
    vmap_pte_range();
    let w_vmap = kpkeys::table_writes() - w1;
    for i in 0..VM_PAGES {
        let got = unsafe { ((VM_AREA + i as u64 * PAGE_SIZE) as *const u64).read_volatile() };
        c.check("word read through the vmalloc area", got, tag(i));
    }
    println!("seed: a vmap: {} pages at {:#x}, each set_pte in a kpkeys guard", VM_PAGES, VM_AREA);
    // The process exits; the scheduler keeps its mm as the lazy-TLB mm of
    // the task switched away from: the next finish_task_switch() drops it.
    PREV_MM.store(true, Ordering::Relaxed);

    // b-d. vfree: the batch, interrupted.
    println!("seed: b vunmap: lazy MMU batch of {} PTE clears, timer IRQ after {}", VM_PAGES, IRQ_AFTER);
    let w2 = kpkeys::table_writes();
    let irq_ok = vfree();
    let w_end = kpkeys::table_writes();
    let por_end = kpkeys::por();
    if !irq_ok {
        timer::cntv_stop();
        println!("seed: FAIL no IRQ within a second (CNTV_CTL_EL0={:#x})", timer::cntv_ctl());
        c.failed += 1;
    }
    let at_irq = get(&OBS.writes_at_irq);
    let after_irq = get(&OBS.writes_after_irq);
    let w_before = at_irq.wrapping_sub(w2);
    let w_irq = after_irq.wrapping_sub(at_irq);
    let w_after = w_end.wrapping_sub(after_irq);
    println!(
        "seed: d irq returned: POR_EL1={} in the batch; batch done: POR_EL1={}",
        Por(get(&OBS.por_after_irq)),
        Por(por_end)
    );

    // Checks.
    c.check("IRQs taken", OBS.irqs.load(Ordering::Relaxed) as u64, 1);
    c.check("INTID", get(&OBS.intid), t.virt as u64);
    c.check_por("POR_EL1 at IRQ entry", get(&OBS.irq_por_entry), POR_PGTABLES);
    c.check_por("POR_EL1 in the IRQ handler", get(&OBS.irq_por_handler), POR_DEFAULT);
    let want_store = if fixed { POR_PGTABLES } else { POR_DEFAULT };
    c.check_por("POR_EL1 at the pgd_free store", get(&OBS.free_por_store), want_store);
    c.check_por("POR_EL1 after the IRQ returned", get(&OBS.por_after_irq), POR_PGTABLES);
    c.check_por("POR_EL1 after the batch", por_end, POR_DEFAULT);
    c.check("pgd linear-map PTE after pgd_free", mmu::read_desc(pte.table_pa, pte.idx), new);
    for i in 0..VM_PAGES {
        let d = unsafe { (vm_ptep(i) as *const u64).read_volatile() };
        c.check("vmalloc PTE after vunmap", d, 0);
    }
    c.check("table writes: pgd_alloc", w_pgd, W_PGD_ALLOC);
    c.check("table writes: vmap", w_vmap, W_VMAP);
    c.check("table writes: vunmap before the IRQ", w_before, W_VUNMAP_BEFORE_IRQ);
    c.check("table writes: IRQ exit", w_irq, W_IRQ_EXIT);
    c.check("table writes: vunmap after the IRQ", w_after, W_VUNMAP_AFTER_IRQ);
    let hazards = (poe && !fixed) as u32;
    println!(
        "seed: summary table_writes={} pgd_alloc={} vmap={} vunmap_before_irq={} irq_exit={} vunmap_after_irq={} expected_hazards={} failures={}",
        kpkeys::table_writes(),
        w_pgd,
        w_vmap,
        w_before,
        w_irq,
        w_after,
        hazards,
        c.failed
    );
    println!("seed: done");
    c.failed
}
