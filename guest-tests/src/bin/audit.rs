//! `audit`: a kpkeys kernel that forgets to protect a few of its page
//! tables, the way the kpkeys series (v5, Linux 6.17) did, for porwatch's
//! protection audit (docs/audit.md).
//!
//! # The bug it models
//!
//! Every page-table page should be mapped with pkey 1 (POIndex 1) in the
//! linear map, which the kernel's everyday POR_EL1 = 0x17 makes read-only.
//! Here the pass that gives pkey 1 to the tables after boot
//! (`kpkeys_protect_pgtables`) has two bugs from the real finding:
//!
//! * it walks each kernel region from the first PGD slot of the region
//!   only (a walker that, with the P4D level folded, visited one PGD entry);
//!   the vmemmap here has struct pages in two PGD slots, 504 and 505
//!   (`0xffff_fc00_0000_0000` and `0xffff_fc80_0000_0000`, as Linux's
//!   48-bit layout puts VMEMMAP_START): the PUD, PMD and PTE tables under
//!   slot 505 keep pkey 0;
//! * it only knows tables it allocated from its pool: the fixmap's PTE
//!   table comes from an early static pool (like Linux's `bm_pte`) and
//!   keeps pkey 0 (the fixmap's PUD and PMD come from the pool and are
//!   protected). FIXADDR_TOP = VMEMMAP_START - 32 MiB, PGD slot 503.
//!
//! A page-table page freed without resetting its pkey (a pool page with
//! pkey 1 that is no table) is the audit's "stale pkey" case.
//!
//! # Tables (`src/mmu.rs`), built with the MMU off
//!
//! TTBR0: the identity map of the image (the early pool is in its bss, so
//! `bm_pte` has a second, identity alias), the DTB and the UART. TTBR1: the
//! linear map (`0xffff_0000_0000_0000` + PA) of the pool and the early
//! pool, in pages, all pkey 0 until the protect pass; the vmemmap (one page
//! in each slot) and the fixmap (one page). Then TCR2_EL1.POE, POR_EL1 =
//! 0x17, MMU on.
//!
//! # What happens, and what porwatch must say
//!
//! 1. A guarded `set_pte` (POR 0x17 -> 0x57 -> 0x17) maps a second vmemmap
//!    page in slot 504: the first trap after the restrictive POR with the
//!    MMU on, where porwatch's `first-por` audit runs. It must list exactly
//!    the four forgotten tables (fixmap 1, vmemmap 3) and the stale page.
//! 2. `__set_fixmap` writes `bm_pte` through its linear alias under 0x17,
//!    without raising POR: the write succeeds (pkey 0) and is **not** a
//!    hazard; it is what the audit warned about. Likewise a store to the
//!    slot-505 PTE table.
//! 3. `kunit_run_case` runs `kunit_write_linear_map_pte` three times (one
//!    call site), a store to a protected linear-map PTE under 0x17: three
//!    hazards, one site.
//! 4. `kpkeys_set_level_and_svc` raises POR to 0x57 and calls `svc #2`;
//!    the kpkeys entry code resets POR to 0x17 (an at-entry write); the
//!    handler (`do_el1_svc` -> `vmemmap_remap_pte`) stores to the slot-504
//!    PTE table under 0x17: one hazard, a second bucket, with the SVC as
//!    its cause entry and the interrupted code's call trace.
//! 5. Exit: porwatch's `exit` audit, against the POR the entry code
//!    installed (0x17), lists the same four tables.
//!
//! `audit.spin_ms=N` (default 0): after step 1, keep making guarded table
//! writes for N ms of the guest's clock (for porwatch's `every:MS` audits,
//! which run at traps once MS have passed). Any other `audit.*` word fails
//! (status 1).
//!
//! The kernel prints its own account first: `audit: expect unprotected
//! table=0x.. level=N region=fixmap|vmemmap`, `audit: expect stale
//! ipa=0x..`, `audit: expect hazards=4 sites=2`. Exit status: the number
//! of failed self-checks; 100 on an unexpected exception.
#![no_std]
#![no_main]

use core::arch::asm;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU64, Ordering};
use porwatch_guest_tests::kentry::{self, Frame};
use porwatch_guest_tests::kpkeys::{self, POR_DEFAULT};
use porwatch_guest_tests::mmu::{self, Setup, DESC_TABLE, ENTRIES, PAGE_SIZE};
use porwatch_guest_tests::{cmdline, println, timer, Boot};
use porwatch_monitor::fdt;

/// Linux's 48-bit layout (arch/arm64/include/asm/memory.h).
const VMEMMAP_START: u64 = 0xffff_fc00_0000_0000;
/// One PGD slot (512 GiB) further: the slot the protect pass never visits.
const VMEMMAP_SLOT2: u64 = VMEMMAP_START + (1 << 39);
const VMEMMAP_END: u64 = 0xffff_fe00_0000_0000;
/// FIXADDR_TOP = VMEMMAP_START - 32 MiB; VMALLOC_END = VMEMMAP_START - 256 MiB.
const FIXADDR_TOP: u64 = VMEMMAP_START - (32 << 20);
const VMALLOC_END: u64 = VMEMMAP_START - (256 << 20);
/// The fixmap slots used (FIX_EARLYCON_MEM_BASE, FIX_TEXT_POKE0 style).
const FIX_CONSOLE: u64 = FIXADDR_TOP - PAGE_SIZE;
const FIX_POKE: u64 = FIXADDR_TOP - 2 * PAGE_SIZE;
const PAGE_OFFSET: u64 = mmu::LINEAR_MAP_BASE;
const PAGE_END: u64 = 0xffff_8000_0000_0000;
/// Sites of step 3 / step 4 hazards.
const LINEAR_PTE_WRITES: usize = 3;
/// Exit status on an unexpected exception.
const STATUS_UNEXPECTED: u32 = 100;
/// The SVC immediate step 4 uses.
const SVC_REMAP: u64 = 2;
/// ESR_EL1.EC of an SVC from AArch64.
const EC_SVC64: u64 = 0x15;
const ESR_EC_SHIFT: u32 = 26;
const ESR_IMM16: u64 = 0xffff;

/// The early page-table pool (Linux's static `bm_pte`): not from the pool
/// the protect pass knows.
#[repr(C, align(4096))]
struct EarlyPool(UnsafeCell<[u64; ENTRIES]>);
// SAFETY: one CPU; written with the MMU off, then through the linear map.
unsafe impl Sync for EarlyPool {}
static BM_PTE: EarlyPool = EarlyPool(UnsafeCell::new([0; ENTRIES]));

/// Pages the vmemmap and fixmap entries map (struct pages, a console page).
#[repr(C, align(4096))]
struct Backing(UnsafeCell<[[u64; ENTRIES]; 4]>);
// SAFETY: one CPU; only their addresses are used.
unsafe impl Sync for Backing {}
static BACKING: Backing = Backing(UnsafeCell::new([[0; ENTRIES]; 4]));

fn backing(i: usize) -> u64 {
    BACKING.0.get() as u64 + i as u64 * PAGE_SIZE
}

fn bm_pte() -> u64 {
    BM_PTE.0.get() as u64
}

/// The vmemmap PTE of step 4, found at set-up (through the linear map later).
static REMAP_PTEP: AtomicU64 = AtomicU64::new(0);
static REMAP_PTE: AtomicU64 = AtomicU64::new(0);
/// POR_EL1 in the SVC handler.
static SVC_POR: AtomicU64 = AtomicU64::new(0);
static SVCS: AtomicU64 = AtomicU64::new(0);

struct Checks {
    failed: u32,
}

impl Checks {
    fn check(&mut self, what: &str, got: u64, want: u64) {
        if got != want {
            println!("audit: FAIL {} = {:#x}, expected {:#x}", what, got, want);
            self.failed += 1;
        }
    }
}

// ---------------------------------------------------------------------------
// Set-up, MMU off.

/// The linear-map PTE of `pa` under `ttbr1` (before the MMU is on,
/// `mmu::lm_pte` has no roots yet: physical reads and writes).
fn lm_pte_early(ttbr1: u64, pa: u64) -> mmu::Leaf {
    match mmu::walk(ttbr1, mmu::lm_va(pa)) {
        Some(l) if l.level == 3 => l,
        _ => panic!("page {:#x} has no linear-map PTE", pa),
    }
}

/// set_memory_pkey() with the MMU off.
fn set_pkey_early(ttbr1: u64, pa: u64, pkey: u64) {
    let l = lm_pte_early(ttbr1, pa);
    let at = (l.table_pa + 8 * l.idx as u64) as *mut u64;
    unsafe { at.write_volatile((at.read_volatile() & !mmu::POINDEX_MASK) | mmu::pkey_bits(pkey)) };
}

/// Gives pkey 1 to every pool page reachable from `table` (at `level`).
fn protect_subtree(ttbr1: u64, table: u64, level: u32) {
    if mmu::in_pool(table) {
        set_pkey_early(ttbr1, table, kpkeys::PKEY_PGTABLES);
    }
    if level == 3 {
        return;
    }
    for i in 0..ENTRIES {
        let d = mmu::read_desc(table, i);
        if d & DESC_TABLE == DESC_TABLE {
            protect_subtree(ttbr1, d & mmu::OA_MASK, level + 1);
        }
    }
}

/// kpkeys_protect_pgtables(): TTBR0 whole; TTBR1 region by region, each
/// from the PGD slot of its start only (the bug).
#[inline(never)]
#[unsafe(no_mangle)]
fn kpkeys_protect_pgtables(ttbr0: u64, ttbr1: u64) {
    protect_subtree(ttbr1, ttbr0, 0);
    set_pkey_early(ttbr1, ttbr1, kpkeys::PKEY_PGTABLES);
    for (start, _end) in [(PAGE_OFFSET, PAGE_END), (VMALLOC_END, VMEMMAP_START), (VMEMMAP_START, VMEMMAP_END)]
    {
        let d = mmu::read_desc(ttbr1, mmu::index(start, 0));
        if d & DESC_TABLE == DESC_TABLE {
            protect_subtree(ttbr1, d & mmu::OA_MASK, 1);
        }
    }
}

// ---------------------------------------------------------------------------
// After the MMU is on.

/// The PTE address (through the linear map) of `va` under TTBR1.
fn ptep(va: u64) -> u64 {
    let (_, ttbr1) = mmu::roots();
    let l3 = mmu::walk_table(ttbr1, va, 3).expect("a PTE table");
    mmu::desc_va(l3, mmu::index(va, 3))
}

/// vmemmap_populate(): one more struct-page page, in a kpkeys guard.
#[inline(never)]
#[unsafe(no_mangle)]
fn vmemmap_populate(va: u64, pa: u64) {
    unsafe { kpkeys::set_pte(ptep(va), pa | mmu::PROT_DATA) };
}

/// __set_fixmap(): writes the fixmap PTE with a bare store, trusting the
/// table to be writable (it is: pkey 0, the bug the audit reports).
#[inline(never)]
#[unsafe(no_mangle)]
fn __set_fixmap(va: u64, pa: u64) {
    unsafe { kpkeys::write_once(ptep(va), pa | mmu::PROT_DATA) };
    mmu::flush_tlb_page(va);
}

/// copy_to_kernel_nofault(): one 8-byte store, then a barrier (so that no
/// caller ends in a tail call and every frame shows in a call trace).
#[inline(never)]
#[unsafe(no_mangle)]
fn copy_to_kernel_nofault(dst: u64, val: u64) {
    unsafe { kpkeys::write_once(dst, val) };
    barrier();
}

/// DSB ISHST: table writes visible to the walker.
#[inline(always)]
fn barrier() {
    unsafe { asm!("dsb ishst", options(nostack)) };
}

/// The KUnit case `write_linear_map_pte`: a store to a protected
/// linear-map PTE under the default POR_EL1 (the same value: harmless).
#[inline(never)]
#[unsafe(no_mangle)]
fn kunit_write_linear_map_pte(pa: u64) {
    let at = mmu::lm_pte(pa).va();
    let v = unsafe { (at as *const u64).read_volatile() };
    copy_to_kernel_nofault(at, v);
    barrier();
}

/// kunit_run_case(): the case `n` times, from one call site.
#[inline(never)]
#[unsafe(no_mangle)]
fn kunit_run_case(n: usize, pa: u64) {
    for _ in 0..core::hint::black_box(n) {
        kunit_write_linear_map_pte(pa);
    }
    barrier();
}

/// The SVC handler's table write: the slot-504 vmemmap PTE, rewritten.
#[inline(never)]
#[unsafe(no_mangle)]
fn vmemmap_remap_pte() {
    SVC_POR.store(kpkeys::por(), Ordering::Relaxed);
    let at = REMAP_PTEP.load(Ordering::Relaxed);
    copy_to_kernel_nofault(at, REMAP_PTE.load(Ordering::Relaxed));
    barrier();
}

#[inline(never)]
#[unsafe(no_mangle)]
fn do_el1_svc(imm: u64) {
    if imm == SVC_REMAP {
        vmemmap_remap_pte();
    }
    barrier();
}

/// Raises POR_EL1 to the page-table level and makes a system call from
/// inside the window: the entry code resets POR_EL1 first.
#[inline(never)]
#[unsafe(no_mangle)]
fn kpkeys_set_level_and_svc() {
    kpkeys::guard(|| unsafe { asm!("svc #2", options(nostack)) });
}

extern "C" fn audit_exception(frame: &mut Frame, vector: u64) {
    let ec = frame.esr >> ESR_EC_SHIFT;
    if vector == kentry::VEC_SYNC_EL1H && ec == EC_SVC64 {
        SVCS.fetch_add(1, Ordering::Relaxed);
        do_el1_svc(frame.esr & ESR_IMM16);
        barrier();
        return;
    }
    println!(
        "audit: FAIL unexpected exception {} esr={:#x} elr={:#x} far={:#x}",
        porwatch_guest_tests::exceptions::VECTOR_NAMES[(vector & 15) as usize],
        frame.esr,
        frame.elr,
        frame.far
    );
    porwatch_guest_tests::smccc::test_exit(STATUS_UNEXPECTED)
}

#[unsafe(no_mangle)]
fn test_main(boot: &Boot) -> u32 {
    let mut c = Checks { failed: 0 };
    let mut plat = fdt::Platform::new();
    if fdt::discover(boot.dtb, &mut plat).is_err() {
        println!("audit: FAIL cannot parse the device tree");
        return 1;
    }
    let mut spin_ms = 0;
    for (k, v) in cmdline::words(plat.chosen.bootargs.unwrap_or(""), "audit.") {
        match (k, v.and_then(cmdline::parse_u64)) {
            ("audit.spin_ms", Some(n)) => spin_ms = n,
            _ => {
                println!("audit: FAIL unknown option {}", k);
                return 1;
            }
        }
    }
    kentry::install(audit_exception);
    let poe = kpkeys::init();
    println!("audit: kpkeys kernel with forgotten page tables; poe={}", poe as u8);

    // Tables, MMU off.
    let mut s = Setup::new();
    s.identity_image();
    s.identity(boot.dtb_addr as u64, boot.dtb.len() as u64, mmu::PROT_RODATA);
    if let Some(u) = plat.console() {
        s.identity(u.regs.base, PAGE_SIZE, mmu::PROT_DEVICE);
    }
    // vmemmap: a struct-page page in each of two PGD slots.
    s.map_page(VMEMMAP_START, backing(0), mmu::PROT_DATA);
    s.map_page(VMEMMAP_SLOT2, backing(1), mmu::PROT_DATA);
    // fixmap: PUD and PMD from the pool, the PTE table from the early pool.
    let fix_pmd = s.table_for(FIX_CONSOLE, 2);
    unsafe {
        ((fix_pmd + 8 * mmu::index(FIX_CONSOLE, 2) as u64) as *mut u64).write_volatile(bm_pte() | DESC_TABLE)
    };
    s.map_page(FIX_CONSOLE, backing(2), mmu::PROT_DATA);
    // A table page freed with its pkey left at 1.
    let stale = mmu::pool_alloc().expect("pool");
    // Linear map of the pool and the early pool, all pkey 0 for now.
    let lm_pages = || (mmu::pool_base()..mmu::pool_end()).step_by(PAGE_SIZE as usize).chain([bm_pte()]);
    for pa in lm_pages() {
        s.table_for(mmu::lm_va(pa), 3);
    }
    for pa in lm_pages() {
        s.map_page(mmu::lm_va(pa), pa, mmu::PROT_DATA);
    }
    let (ttbr0, ttbr1) = (s.ttbr0, s.ttbr1);
    kpkeys_protect_pgtables(ttbr0, ttbr1);
    set_pkey_early(ttbr1, stale, kpkeys::PKEY_PGTABLES);
    mmu::pool_free(stale);

    // The tables the protect pass forgot, by construction.
    let slot2 = [1, 2, 3].map(|l| mmu::walk_table(ttbr1, VMEMMAP_SLOT2, l).expect("slot-505 table"));
    let forgotten = [
        (bm_pte(), 3, "fixmap"),
        (slot2[0], 1, "vmemmap"),
        (slot2[1], 2, "vmemmap"),
        (slot2[2], 3, "vmemmap"),
    ];
    // Self-check: every table has pkey 1 but those.
    let mut tables = 0;
    check_tables(ttbr1, ttbr0, 0, &forgotten, &mut c, &mut tables);
    check_tables(ttbr1, ttbr1, 0, &forgotten, &mut c, &mut tables);
    c.check("stale page's pkey", mmu::poindex(lm_pte_early(ttbr1, stale).desc), 1);
    println!("audit: {} tables, {} forgotten; stale-pkey page {:#x}", tables, forgotten.len(), stale);
    if poe {
        for (pa, level, region) in forgotten {
            println!("audit: expect unprotected table={:#x} level={} region={}", pa, level, region);
        }
        println!("audit: expect stale ipa={:#x}", stale);
        println!("audit: expect hazards={} sites=2", LINEAR_PTE_WRITES + 1);
    }

    kpkeys::enable_poe();
    let tcr = s.enable();
    println!(
        "audit: mmu on: ttbr0={:#x} ttbr1={:#x} tcr={:#x} POR_EL1={:#x}",
        ttbr0,
        ttbr1,
        tcr,
        kpkeys::por()
    );

    // 1. Normal operation: a guarded table write (for spin_ms, many).
    vmemmap_populate(VMEMMAP_START + PAGE_SIZE, backing(3));
    let until = timer::cntvct() + timer::cntfrq() / 1000 * spin_ms;
    while timer::cntvct() < until {
        vmemmap_populate(VMEMMAP_START + PAGE_SIZE, backing(3));
    }
    // 2. The forgotten tables are writable under the default POR: no hazard.
    __set_fixmap(FIX_POKE, backing(3));
    let got = unsafe { (ptep(FIX_POKE) as *const u64).read_volatile() };
    c.check("fixmap PTE written under POR 0x17", got, backing(3) | mmu::PROT_DATA);
    let slot2_pte = ptep(VMEMMAP_SLOT2);
    let v = unsafe { (slot2_pte as *const u64).read_volatile() };
    copy_to_kernel_nofault(slot2_pte, v);
    println!(
        "audit: __set_fixmap wrote bm_pte at {:#x} under POR_EL1={:#x}: no fault (pkey {})",
        ptep(FIX_POKE),
        kpkeys::por(),
        mmu::poindex(mmu::lm_pte(bm_pte()).desc)
    );
    // 3. Stores to a protected table under the default POR: hazards.
    kunit_run_case(LINEAR_PTE_WRITES, mmu::pool_base());
    // 4. The same from an SVC taken inside a raised window.
    REMAP_PTEP.store(ptep(VMEMMAP_START), Ordering::Relaxed);
    REMAP_PTE.store(backing(0) | mmu::PROT_DATA, Ordering::Relaxed);
    kpkeys_set_level_and_svc();
    c.check("SVCs taken", SVCS.load(Ordering::Relaxed), 1);
    if poe {
        c.check("POR_EL1 in the SVC handler", SVC_POR.load(Ordering::Relaxed), POR_DEFAULT);
        c.check("POR_EL1 after the window", kpkeys::por(), POR_DEFAULT);
    }
    println!("audit: summary failures={}", c.failed);
    println!("audit: done");
    c.failed
}

/// Checks the linear-map pkey of every table under `table`: 0 for the
/// forgotten ones, 1 for the rest; counts them.
fn check_tables(
    ttbr1: u64,
    table: u64,
    level: u32,
    forgotten: &[(u64, u32, &str)],
    c: &mut Checks,
    n: &mut u32,
) {
    *n += 1;
    let want = if forgotten.iter().any(|f| f.0 == table) { 0 } else { 1 };
    c.check("a table's linear-map pkey", mmu::poindex(lm_pte_early(ttbr1, table).desc), want);
    if level == 3 {
        return;
    }
    for i in 0..ENTRIES {
        let d = mmu::read_desc(table, i);
        if d & DESC_TABLE == DESC_TABLE {
            check_tables(ttbr1, d & mmu::OA_MASK, level + 1, forgotten, c, n);
        }
    }
}
