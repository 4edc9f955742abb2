//! `kpkeys_bench`: the kpkeys-profile benchmark guest (issue #13 item 6,
//! docs/flight.md). It reproduces the op mix of a Linux kernel that guards
//! its page tables with kernel pkeys (measured on such a kernel under
//! porwatch: 500,004 POR_EL1 writes, 96,504 exception entries, 699,613 table
//! stores in one boot, i.e. per exception entry ≈ 5 POR_EL1 writes and ≈ 7
//! table stores), and counts what it did so that porwatch's own counts can be
//! checked against it.
//!
//! # The loop
//!
//! A user task at EL0 (one page, `svc #0; b .-4`, mapped EL0 read-only and
//! executable at [`USER_CODE_VA`] under TTBR0, nG) makes `iters` system
//! calls. Each SVC enters through the kpkeys vectors of `src/kentry.rs`
//! (slot `sync_el0_64`: POR_EL1 at entry is the default, so the entry code
//! changes nothing), and the handler, with IRQs unmasked as Linux's syscall
//! path runs, does syscall *n*'s work:
//!
//! * **plain kernel work** (`kpkeys_bench.work=W`, default 0): W volatile
//!   loads folded into a checksum (≈ 6 instructions a word, no trap, no
//!   table store): how much ordinary kernel code surrounds the traps.
//!   W = 6000 gives ≈ 36,000 instructions per syscall, a Linux kernel's
//!   density (Debian's 6.1: ≈ 35,000 per exception entry);
//! * **guarded PTE updates**: 2 (n odd) or 3 (n even) of them, each
//!   `kpkeys_set_level` (MRS POR_EL1, MSR POR_EL1 0x57 + ISB), 1, 2, 1 or 1
//!   stores (a cycle of 4) to the user L3 table (map or unmap a data page at
//!   [`USER_DATA_VA`]), `kpkeys_restore` (MSR POR_EL1 0x17 + ISB): 5 POR
//!   writes and ≈ 3.1 stores per syscall on average;
//! * **a lazy-MMU batch** every [`BATCH_EVERY`] syscalls: POR_EL1 raised
//!   once, 16, 32, 48 or 64 bare stores (a cycle) to the vmalloc L3 table
//!   (TTBR1, [`VMALLOC_VA`]), POR_EL1 restored: +0.2 POR writes and +4
//!   stores per syscall;
//! * **fork-like churn** every [`CHURN_EVERY`] syscalls: a pool page gets
//!   pkey 1 (its linear-map PTE, guarded), is linked as a level-3 table under
//!   the user L2 table (a table porwatch must start tracking), filled with
//!   [`CHURN_PTES`] PTEs, cleared, unlinked (TLBI), and gets pkey 0 again and
//!   is freed: 4 + 2 × [`CHURN_PTES`] guarded stores;
//! * **a new TTBR0 root with a new ASID** every [`ROOT_EVERY`] syscalls
//!   ("exec"): a pool page gets pkey 1, the current root's valid entries are
//!   copied into it (stores to a page no root reaches yet: porwatch does not
//!   track them, counted apart as `stores_untracked`), TTBR0 := new root |
//!   ASID << 48, then the old root is emptied (guarded stores, now tracked:
//!   porwatch then releases it), TLBI ASIDE1IS, pkey 0, freed.
//!
//! The virtual timer interrupts at [`HZ`] (CONFIG_HZ=250) wherever it lands:
//! at EL0 (`irq_el0_64`) or inside the syscall's work (`irq_el1h`), in or out
//! of a guarded window or batch. The kpkeys entry code resets POR_EL1 to the
//! default when it was raised and the exit code restores it, so an IRQ in a
//! window costs 2 more POR writes. The handler re-arms the timer and makes
//! one guarded store of its own into the vmalloc L3 table's last entries
//! (interrupt context ignores lazy-MMU mode, as Linux does since the seed
//! bug's fix: it always guards).
//!
//! Every table store is made inside an open window: under porwatch this
//! kernel must produce **zero hazards**. `kpkeys_bench.bug=1` makes one
//! store, in syscall `iters / 2`, right after its first guarded update
//! closed the window (POR_EL1 0x17): exactly one hazard, whose cause chain
//! is that closing POR write.
//!
//! # Command line
//!
//! `kpkeys_bench.iters=N` (syscalls, 1..=100,000,000, default 20,000),
//! `kpkeys_bench.work=W` (0..=10,000,000, default 0),
//! `kpkeys_bench.dry=1` (skip every POR_EL1/TCR2_EL1 access even when
//! FEAT_S1POE is advertised: the reference run on bare QEMU, which has no
//! POE; without it a kernel that finds no FEAT_S1POE fails, status 1),
//! `kpkeys_bench.bug=1`. Anything else fails (status 1).
//!
//! # Console and exit status
//!
//! `kpkeys_bench: iters=N work=W dry=0|1 bug=0|1 poe=0|1 hz=250 cntfrq=F`, the
//! layout, then after the loop
//!
//! ```text
//! kpkeys_bench: loop svcs=N irqs=I irqs_in_window=W entries=E por_writes=P por_reads=R stores=S stores_untracked=U batches=B tables_linked=T roots=O ticks=K
//! kpkeys_bench: totals entries=E por_writes=P stores=S roots=O
//! kpkeys_bench: per_entry por_writes=x.xx stores=x.xx
//! kpkeys_bench: ticks syscall_work=.. plain_work=.. guarded=.. batch=.. churn=.. root=.. irq_work=.. rest=.. work_sum=..
//! kpkeys_bench: ticks_per syscall=.. work=.. guarded_update=.. batch=.. churn=.. root=.. irq=.. entry_and_el0=..
//! kpkeys_bench: done
//! ```
//!
//! `loop` counts the measured loop (`ticks`: its CNTVCT span); `totals` the
//! whole run, as porwatch counts it: `entries` = exception entries taken at
//! EL1 (`exc_entry` records), `por_writes` = POR_EL1 writes that changed the
//! value (`por_write` records; the set-up's 0 -> 0x17 included), `stores` =
//! stores to tables reachable from a TTBR (`pt_stats.stores`, each one
//! descriptor: `pt_stats.table_writes` too), `roots` = TTBR0 writes after the
//! MMU is on (`pt_root` records beyond the set-up's). With dry=1 POR counts
//! are 0. `ticks` splits the loop's CNTVCT span by kind of work (the
//! syscall handler's whole work, and within it the plain work, guarded
//! updates, batches, churn, new roots; the IRQ handler's; the rest is entry
//! and exit code and EL0) and `ticks_per` divides by the count of each: under
//! `-icount shift=0` those are instructions, EL2's included (an IRQ nested in
//! a syscall is counted in both; they are rare). Exit status: 0, 1 on a bad command line or a failed self-check
//! (`kpkeys_bench: FAIL ...`), 100 on an unexpected exception, 101 on a
//! panic. The run ends with PSCI SYSTEM_OFF over HVC where the device tree
//! says so (bare QEMU), else porwatch's test exit.
#![no_std]
#![no_main]

use core::arch::{asm, global_asm};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use porwatch_guest_tests::exceptions::VECTOR_NAMES;
use porwatch_guest_tests::kentry::{self, Frame};
use porwatch_guest_tests::kpkeys::{self, POR_DEFAULT};
use porwatch_guest_tests::mmu::{self, Setup, ENTRIES, PAGE_SIZE};
use porwatch_guest_tests::{cmdline, gicv3, println, smccc, timer, Boot};
use porwatch_monitor::fdt;

const DEFAULT_ITERS: u64 = 20_000;
const MAX_ITERS: u64 = 100_000_000;
const MAX_WORK: u64 = 10_000_000;
/// Timer interrupts per second (CONFIG_HZ=250).
const HZ: u64 = 250;
/// A lazy-MMU batch every this many syscalls.
const BATCH_EVERY: u64 = 10;
/// Fork-like table churn every this many syscalls.
const CHURN_EVERY: u64 = 100;
/// A new TTBR0 root every this many syscalls.
const ROOT_EVERY: u64 = 1000;
/// PTEs the churned table is filled with.
const CHURN_PTES: usize = 16;
/// Stores per guarded update, a cycle (mean 1.25).
const GUARD_STORES: [usize; 4] = [1, 2, 1, 1];
/// Stores per lazy-MMU batch: 16 × (1 + k), k cycling 0..BATCH_SIZES.
const BATCH_UNIT: usize = 16;
const BATCH_SIZES: u64 = 4;
/// vmalloc L3 entries the IRQ handler writes (the table's last ones; the
/// batches use the first 64).
const IRQ_PTES: usize = 64;

/// The user task's code page (TTBR0, L0 index 1) and the data pages the
/// guarded updates map after it (same L3 table, entries DATA_FIRST..).
const USER_CODE_VA: u64 = 0x0000_0080_0000_0000;
const USER_DATA_VA: u64 = USER_CODE_VA + DATA_FIRST as u64 * PAGE_SIZE;
const DATA_FIRST: usize = 64;
/// The L2 entry (under the user L2 table) the churned table is linked at:
/// the 2 MiB after the user L3 table's.
const CHURN_VA: u64 = USER_CODE_VA + (1 << 21);
/// The vmalloc area (TTBR1, L0 index 0x100) the batches write.
const VMALLOC_VA: u64 = 0xffff_8000_1000_0000;
/// Pages the test PTEs point at (pkey 0).
const BACKING_PAGES: usize = 8;

/// EL0 user data: read-only at EL0 and EL1, never executable, nG.
const PROT_USER_RO: u64 = mmu::PROT_RODATA | mmu::AP_EL0 | mmu::NG;
/// The user code page: EL0 read-only and executable, EL1 execute-never, nG.
const PROT_USER_EXEC: u64 = mmu::DESC_PAGE
    | mmu::ATTR_NORMAL
    | mmu::SH_INNER
    | mmu::AF
    | mmu::AP_EL0
    | mmu::AP_RO
    | mmu::NG
    | mmu::PXN;

/// ESR_EL1.EC of an SVC from AArch64.
const EC_SVC64: u64 = 0x15;
/// kentry slot numbers used here.
const SLOT_IRQ_EL1H: u64 = kentry::VEC_IRQ_EL1H;
const SLOT_SYNC_EL0_64: u64 = 8;
const SLOT_IRQ_EL0_64: u64 = 9;
/// SPSR_EL1 to enter the user task: EL0t, nothing masked.
const SPSR_EL0T: u64 = 0;
/// SPSR_EL1 to resume the kernel after the last syscall: EL1h, DAIF masked.
const SPSR_EL1H_MASKED: u64 = 0x3c5;
/// TTBR0_EL1.ASID, bits [63:48] (8-bit ASIDs: TCR_EL1.AS = 0).
const TTBR_ASID_SHIFT: u32 = 48;
const ASID_COUNT: u64 = 255;

const STATUS_UNEXPECTED: u32 = 100;

#[repr(C, align(4096))]
struct Backing(UnsafeCell<[[u64; 512]; BACKING_PAGES]>);
// SAFETY: never written after boot; only mapped.
unsafe impl Sync for Backing {}
static BACKING: Backing = Backing(UnsafeCell::new([[0; 512]; BACKING_PAGES]));

fn backing_pa(k: usize) -> u64 {
    BACKING.0.get() as u64 + (k % BACKING_PAGES) as u64 * PAGE_SIZE
}

global_asm!(
    r#"
.pushsection .text.kpkeys_bench_user, "ax"
.balign 4096
.global kpkeys_bench_user
kpkeys_bench_user:
1:  svc     #0
    b       1b
.balign 4096
.popsection
"#
);

unsafe extern "C" {
    /// The user task: `svc #0` forever (its own page).
    static kpkeys_bench_user: u8;
}

/// Counters (one CPU; the handlers and the main flow share them).
struct Counts {
    svcs: AtomicU64,
    irqs: AtomicU64,
    /// IRQs whose entry found POR_EL1 raised (entry reset + exit restore).
    irqs_in_window: AtomicU64,
    /// POR_EL1 writes that changed the value.
    por_writes: AtomicU64,
    por_reads: AtomicU64,
    /// Stores to tables a TTBR reaches (porwatch tracks them).
    stores: AtomicU64,
    /// Stores to a root no TTBR reaches yet.
    stores_untracked: AtomicU64,
    batches: AtomicU64,
    tables_linked: AtomicU64,
    roots: AtomicU64,
    /// CNTVCT ticks spent in each kind of work (instructions under
    /// `-icount shift=0`, EL2's included): the per-op breakdown.
    t_guarded: AtomicU64,
    t_batch: AtomicU64,
    t_churn: AtomicU64,
    t_root: AtomicU64,
    t_irq: AtomicU64,
    t_syscall: AtomicU64,
    t_work: AtomicU64,
    /// The checksum of the plain work (printed, so it cannot be elided).
    work_sum: AtomicU64,
}

static C: Counts = Counts {
    svcs: AtomicU64::new(0),
    irqs: AtomicU64::new(0),
    irqs_in_window: AtomicU64::new(0),
    por_writes: AtomicU64::new(0),
    por_reads: AtomicU64::new(0),
    stores: AtomicU64::new(0),
    stores_untracked: AtomicU64::new(0),
    batches: AtomicU64::new(0),
    tables_linked: AtomicU64::new(0),
    roots: AtomicU64::new(0),
    t_guarded: AtomicU64::new(0),
    t_batch: AtomicU64::new(0),
    t_churn: AtomicU64::new(0),
    t_root: AtomicU64::new(0),
    t_irq: AtomicU64::new(0),
    t_syscall: AtomicU64::new(0),
    t_work: AtomicU64::new(0),
    work_sum: AtomicU64::new(0),
};

/// Runs `f`, adding the CNTVCT ticks it took to `acc`.
fn timed<R>(acc: &AtomicU64, f: impl FnOnce() -> R) -> R {
    let t0 = timer::cntvct();
    let r = f();
    add(acc, timer::cntvct().wrapping_sub(t0));
    r
}

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// The run's parameters and the tables the loop writes.
struct State {
    iters: AtomicU64,
    bug: AtomicBool,
    /// Words of plain kernel work (a checksum) per syscall.
    work: AtomicU64,
    /// Where the user task returns to the kernel after the last syscall.
    resume: AtomicU64,
    /// The user L2 and L3 tables, the vmalloc L3 table.
    user_l2: AtomicU64,
    user_l3: AtomicU64,
    vm_l3: AtomicU64,
    /// The TTBR0 root in use and its ASID.
    root: AtomicU64,
    asid: AtomicU64,
    /// Next data PTE a guarded update writes (rolls over the user L3).
    next_pte: AtomicU64,
    failures: AtomicU32,
    timer_ticks: AtomicU64,
}

static S: State = State {
    iters: AtomicU64::new(DEFAULT_ITERS),
    bug: AtomicBool::new(false),
    work: AtomicU64::new(0),
    resume: AtomicU64::new(0),
    user_l2: AtomicU64::new(0),
    user_l3: AtomicU64::new(0),
    vm_l3: AtomicU64::new(0),
    root: AtomicU64::new(0),
    asid: AtomicU64::new(0),
    next_pte: AtomicU64::new(0),
    failures: AtomicU32::new(0),
    timer_ticks: AtomicU64::new(0),
};

fn fail(args: core::fmt::Arguments) {
    if S.failures.fetch_add(1, Ordering::Relaxed) < 10 {
        println!("kpkeys_bench: FAIL {}", args);
    }
}

// ---------------------------------------------------------------------------
// kpkeys primitives, counted.

/// kpkeys_set_level(KPKEYS_LVL_PGTABLES): returns the level to restore.
fn open() -> u64 {
    if kpkeys::poe_on() {
        add(&C.por_reads, 1);
        add(&C.por_writes, 1);
    }
    kpkeys::set_level_pgtables()
}

/// kpkeys_restore_pkey_reg(prev).
fn close(prev: u64) {
    if kpkeys::poe_on() {
        add(&C.por_writes, 1);
    }
    kpkeys::restore_level(prev);
}

/// One descriptor store to a tracked table (`STR Xt`).
fn store(ptep: u64, v: u64) {
    unsafe { kpkeys::write_once(ptep, v) };
    add(&C.stores, 1);
}

/// A guarded update of `n` PTEs of `table` starting at `first` (wrapping
/// inside `range`): each is mapped to a backing page if empty, else cleared.
fn guarded_update(table: u64, range: core::ops::Range<usize>, first: usize, n: usize, prot: u64) {
    let prev = open();
    for i in 0..n {
        let idx = range.start + (first + i) % range.len();
        let ptep = mmu::desc_va(table, idx);
        let old = mmu::read_desc(table, idx);
        store(ptep, if old == 0 { backing_pa(idx) | prot } else { 0 });
    }
    close(prev);
    unsafe { asm!("dsb ishst", options(nostack)) };
}

/// Sets the linear-map POIndex of pool page `pa` (a guarded store) and
/// flushes its TLB entry.
fn set_page_pkey(pa: u64, pkey: u64) {
    let pte = mmu::lm_pte(pa);
    let prev = open();
    store(pte.va(), (pte.desc & !mmu::POINDEX_MASK) | mmu::pkey_bits(pkey));
    close(prev);
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
// A syscall's work.

fn user_pte_update(n: usize) {
    let l3 = S.user_l3.load(Ordering::Relaxed);
    let first = S.next_pte.fetch_add(n as u64, Ordering::Relaxed) as usize;
    guarded_update(l3, DATA_FIRST..ENTRIES, first, n, PROT_USER_RO);
}

/// A lazy-MMU batch of `n` bare stores to the vmalloc L3 table.
fn lazy_batch(n: usize) {
    let l3 = S.vm_l3.load(Ordering::Relaxed);
    kpkeys::lazy_mmu_mode_enable();
    if kpkeys::poe_on() {
        add(&C.por_reads, 1);
        add(&C.por_writes, 2);
    }
    for idx in 0..n {
        let old = mmu::read_desc(l3, idx);
        let v = if old == 0 { backing_pa(idx) | mmu::PROT_RODATA } else { 0 };
        // set_pte() inside a batch: a bare store.
        unsafe { kpkeys::set_pte(mmu::desc_va(l3, idx), v) };
        add(&C.stores, 1);
    }
    kpkeys::lazy_mmu_mode_disable();
    add(&C.batches, 1);
}

/// fork()/exit()-like churn: a table page allocated, linked, filled,
/// cleared, unlinked, freed.
fn churn() {
    let l2 = S.user_l2.load(Ordering::Relaxed);
    let t = alloc_table();
    let link = mmu::desc_va(l2, mmu::index(CHURN_VA, 2));
    let prev = open();
    store(link, t | mmu::DESC_TABLE);
    close(prev);
    add(&C.tables_linked, 1);
    guarded_update(t, 0..ENTRIES, 0, CHURN_PTES, PROT_USER_RO);
    guarded_update(t, 0..ENTRIES, 0, CHURN_PTES, PROT_USER_RO);
    let prev = open();
    store(link, 0);
    close(prev);
    mmu::flush_tlb_all();
    free_table(t);
}

/// exec()-like: a new TTBR0 root with the next ASID; the old one emptied
/// and freed.
fn new_root() {
    let old = S.root.load(Ordering::Relaxed);
    let new = alloc_table();
    // The copy: `new` is no table any TTBR reaches yet.
    let prev = open();
    for idx in 0..ENTRIES {
        let d = mmu::read_desc(old, idx);
        if d != 0 {
            unsafe { kpkeys::write_once(mmu::desc_va(new, idx), d) };
            add(&C.stores_untracked, 1);
        }
    }
    close(prev);
    let old_asid = S.asid.load(Ordering::Relaxed);
    let asid = old_asid % ASID_COUNT + 1;
    unsafe {
        asm!("dsb ishst", "msr ttbr0_el1, {}", "isb",
             in(reg) new | asid << TTBR_ASID_SHIFT, options(nostack));
    }
    S.root.store(new, Ordering::Relaxed);
    S.asid.store(asid, Ordering::Relaxed);
    add(&C.roots, 1);
    // Tear the old root down (tracked until emptied).
    let prev = open();
    for idx in 0..ENTRIES {
        if mmu::read_desc(old, idx) != 0 {
            store(mmu::desc_va(old, idx), 0);
        }
    }
    close(prev);
    unsafe {
        asm!("dsb ishst", "tlbi aside1is, {}", "dsb ish", "isb",
             in(reg) old_asid << TTBR_ASID_SHIFT, options(nostack));
    }
    free_table(old);
}

/// The hazard kpkeys_bench.bug=1 asks for: one store right after a window
/// closed.
fn bug_store() {
    let l3 = S.user_l3.load(Ordering::Relaxed);
    let idx = DATA_FIRST + (S.next_pte.load(Ordering::Relaxed) as usize) % (ENTRIES - DATA_FIRST);
    let old = mmu::read_desc(l3, idx);
    println!("kpkeys_bench: bug: one store outside a window at va={:#x}", mmu::desc_va(l3, idx));
    store(mmu::desc_va(l3, idx), if old == 0 { backing_pa(idx) | PROT_USER_RO } else { 0 });
}

/// What the plain kernel work reads: the backing pages (32 KiB).
const WORK_WORDS: usize = BACKING_PAGES * 512;

/// The syscall's plain kernel work (no trap, no table store): `words`
/// volatile loads folded into a checksum, like copy_to_user or a page of
/// checksumming. It sets how much non-trapping work each entry does.
fn plain_work(words: u64, salt: u64) {
    let base = BACKING.0.get() as *const u64;
    let mut h = salt;
    for i in 0..words as usize {
        let w = unsafe { base.add(i % WORK_WORDS).read_volatile() };
        h = h.rotate_left(5) ^ w;
    }
    add(&C.work_sum, h);
}

fn syscall(n: u64) {
    unsafe { asm!("msr daifclr, #2", options(nostack)) };
    let words = S.work.load(Ordering::Relaxed);
    if words != 0 {
        timed(&C.t_work, || plain_work(words, n));
    }
    let windows = if n.is_multiple_of(2) { 3 } else { 2 };
    for j in 0..windows {
        let k = GUARD_STORES[((n + j) % GUARD_STORES.len() as u64) as usize];
        timed(&C.t_guarded, || user_pte_update(k));
        if j == 0 && S.bug.load(Ordering::Relaxed) && n == S.iters.load(Ordering::Relaxed) / 2 {
            bug_store();
        }
    }
    if n % BATCH_EVERY == BATCH_EVERY - 1 {
        let k = BATCH_UNIT * (1 + (n / BATCH_EVERY % BATCH_SIZES) as usize);
        timed(&C.t_batch, || lazy_batch(k));
    }
    if n % CHURN_EVERY == CHURN_EVERY / 2 {
        timed(&C.t_churn, churn);
    }
    if n % ROOT_EVERY == ROOT_EVERY - 1 {
        timed(&C.t_root, new_root);
    }
    unsafe { asm!("msr daifset, #2", options(nostack)) };
}

// ---------------------------------------------------------------------------
// Exceptions.

fn timer_irq(frame: &Frame) {
    let intid = gicv3::ack();
    add(&C.irqs, 1);
    if kpkeys::poe_on() && frame.por != POR_DEFAULT {
        // The entry code reset POR_EL1; the exit code restores it.
        add(&C.irqs_in_window, 1);
        add(&C.por_writes, 2);
    }
    if intid != gicv3::INTID_SPURIOUS {
        timer::cntv_arm(S.timer_ticks.load(Ordering::Relaxed) as u32);
        // The tick's own page-table work: always guarded (interrupt context
        // ignores lazy-MMU mode).
        let n = get(&C.irqs) as usize;
        let vm = S.vm_l3.load(Ordering::Relaxed);
        guarded_update(vm, ENTRIES - IRQ_PTES..ENTRIES, n, 1, mmu::PROT_RODATA);
        gicv3::eoi(intid);
    }
}

fn unexpected(frame: &Frame, slot: u64) -> ! {
    println!(
        "kpkeys_bench: FAIL unexpected exception {} esr={:#x} elr={:#x} far={:#x}",
        VECTOR_NAMES[(slot & 15) as usize],
        frame.esr,
        frame.elr,
        frame.far
    );
    smccc::test_exit(STATUS_UNEXPECTED)
}

extern "C" fn handler(frame: &mut Frame, slot: u64) {
    match slot {
        SLOT_SYNC_EL0_64 if (frame.esr >> 26) & 0x3f == EC_SVC64 => {
            let n = C.svcs.fetch_add(1, Ordering::Relaxed);
            timed(&C.t_syscall, || syscall(n));
            if n + 1 == S.iters.load(Ordering::Relaxed) {
                // The task is done: back to the kernel's main flow.
                timer::cntv_stop();
                frame.elr = S.resume.load(Ordering::Relaxed);
                frame.spsr = SPSR_EL1H_MASKED;
            }
        }
        SLOT_IRQ_EL0_64 | SLOT_IRQ_EL1H => timed(&C.t_irq, || timer_irq(frame)),
        _ => unexpected(frame, slot),
    }
}

/// Runs the user task until its last syscall sends it back here.
fn run_user() {
    // Fixed registers: x9 is the scratch, so no input may be given it.
    unsafe {
        asm!(
            "adr x9, 1f",
            "str x9, [x10]",
            "msr elr_el1, x11",
            "msr spsr_el1, x12",
            "isb",
            "eret",
            "1:",
            in("x10") S.resume.as_ptr(),
            in("x11") USER_CODE_VA,
            in("x12") SPSR_EL0T,
            clobber_abi("C"),
        )
    }
}

// ---------------------------------------------------------------------------

struct Args {
    iters: u64,
    work: u64,
    dry: bool,
    bug: bool,
}

fn parse_args(plat: &fdt::Platform) -> Result<Args, ()> {
    let mut a = Args { iters: DEFAULT_ITERS, work: 0, dry: false, bug: false };
    for (k, v) in cmdline::words(plat.chosen.bootargs.unwrap_or(""), "kpkeys_bench.") {
        match (k, v) {
            ("kpkeys_bench.iters", Some(v)) => match cmdline::parse_u64(v) {
                Some(n) if (1..=MAX_ITERS).contains(&n) => a.iters = n,
                _ => {
                    println!("kpkeys_bench: FAIL bad kpkeys_bench.iters={} (want 1..={})", v, MAX_ITERS);
                    return Err(());
                }
            },
            ("kpkeys_bench.work", Some(v)) => match cmdline::parse_u64(v) {
                Some(n) if n <= MAX_WORK => a.work = n,
                _ => {
                    println!("kpkeys_bench: FAIL bad kpkeys_bench.work={} (want 0..={})", v, MAX_WORK);
                    return Err(());
                }
            },
            ("kpkeys_bench.dry", Some("0")) => a.dry = false,
            ("kpkeys_bench.dry", Some("1")) => a.dry = true,
            ("kpkeys_bench.bug", Some("0")) => a.bug = false,
            ("kpkeys_bench.bug", Some("1")) => a.bug = true,
            _ => {
                println!(
                    "kpkeys_bench: FAIL unknown option {}{}{} (kpkeys_bench.iters=N, .work=W, .dry=0|1, .bug=0|1)",
                    k,
                    if v.is_some() { "=" } else { "" },
                    v.unwrap_or("")
                );
                return Err(());
            }
        }
    }
    Ok(a)
}

/// Ends the run: PSCI SYSTEM_OFF over HVC where the device tree says so
/// (bare QEMU: no EL2 to take an SMC), else porwatch's test exit.
fn finish(plat: &fdt::Platform, status: u32) -> ! {
    println!("kpkeys_bench: exit status {}", status);
    if plat.psci.is_some_and(|p| p.method == fdt::platform::PsciMethod::Hvc) {
        smccc::hvc(smccc::PSCI_SYSTEM_OFF, 0, 0, 0);
    }
    smccc::test_exit(status)
}

/// Hundredths of `a / b`, for printing ratios without FP.
fn ratio(a: u64, b: u64) -> (u64, u64) {
    let h = a * 100 / b.max(1);
    (h / 100, h % 100)
}

#[unsafe(no_mangle)]
fn test_main(boot: &Boot) -> u32 {
    let mut plat = fdt::Platform::new();
    if fdt::discover(boot.dtb, &mut plat).is_err() {
        println!("kpkeys_bench: FAIL cannot parse the device tree");
        return 1;
    }
    let Ok(args) = parse_args(&plat) else {
        finish(&plat, 1);
    };
    S.iters.store(args.iters, Ordering::Relaxed);
    S.bug.store(args.bug, Ordering::Relaxed);
    S.work.store(args.work, Ordering::Relaxed);
    kentry::install(handler);
    let mut poe = kpkeys::init();
    if args.dry {
        // The reference run: no POR_EL1/TCR2_EL1 access anywhere.
        kpkeys::POE.store(0, Ordering::Relaxed);
        poe = false;
    } else if !poe {
        println!(
            "kpkeys_bench: FAIL FEAT_S1POE not advertised (run under porwatch, or pass kpkeys_bench.dry=1)"
        );
        finish(&plat, 1);
    }
    let cntfrq = timer::cntfrq();
    S.timer_ticks.store(cntfrq / HZ, Ordering::Relaxed);
    println!(
        "kpkeys_bench: iters={} work={} dry={} bug={} poe={} hz={} cntfrq={}",
        args.iters, args.work, args.dry as u8, args.bug as u8, poe as u8, HZ, cntfrq
    );

    let (Some(gic), Some(t)) = (plat.gic.as_ref(), plat.timer.as_ref()) else {
        println!("kpkeys_bench: FAIL no GIC or timer in the device tree");
        finish(&plat, 1);
    };
    let gic = match gicv3::GicV3::init(gic) {
        Ok(g) => g,
        Err(e) => {
            println!("kpkeys_bench: FAIL GICv3 init: {}", e);
            finish(&plat, 1);
        }
    };
    if t.virt >= 32 {
        println!("kpkeys_bench: FAIL timer INTID {} is not a PPI", t.virt);
        finish(&plat, 1);
    }
    gic.enable_ppi(t.virt, 0x80);

    // Tables, with the MMU off.
    let mut s = Setup::new();
    s.identity_image();
    s.identity(boot.dtb_addr as u64, boot.dtb.len() as u64, mmu::PROT_RODATA);
    if let Some(u) = plat.console() {
        s.identity(u.regs.base, PAGE_SIZE, mmu::PROT_DEVICE);
    }
    s.identity(gic.dist as u64, 0x1_0000, mmu::PROT_DEVICE);
    s.identity(gic.redist as u64, 0x2_0000, mmu::PROT_DEVICE);
    s.map_page(USER_CODE_VA, &raw const kpkeys_bench_user as u64, PROT_USER_EXEC);
    let user_l3 = s.table_for(USER_CODE_VA, 3);
    let user_l2 = s.table_for(USER_CODE_VA, 2);
    let vm_l3 = s.table_for(VMALLOC_VA, 3);
    s.linear_map();
    kpkeys::enable_poe();
    let ttbr0 = s.ttbr0;
    s.enable();
    if poe {
        // The set-up's POR_EL1 0 -> POR_DEFAULT.
        add(&C.por_writes, 1);
    }
    S.user_l2.store(user_l2, Ordering::Relaxed);
    S.user_l3.store(user_l3, Ordering::Relaxed);
    S.vm_l3.store(vm_l3, Ordering::Relaxed);
    S.root.store(ttbr0, Ordering::Relaxed);
    let pool_used = mmu::pool_used_count();
    println!(
        "kpkeys_bench: mmu on: ttbr0={:#x} user L3 {:#x} (data at {:#x}) vmalloc L3 {:#x}; {} tables; POR_EL1={:#x}",
        ttbr0,
        user_l3,
        USER_DATA_VA,
        vm_l3,
        pool_used,
        kpkeys::por()
    );

    // The loop.
    let t0 = timer::cntvct();
    timer::cntv_arm(S.timer_ticks.load(Ordering::Relaxed) as u32);
    run_user();
    let ticks = timer::cntvct().wrapping_sub(t0);

    // Self-checks.
    if get(&C.svcs) != args.iters {
        fail(format_args!("{} syscalls, expected {}", get(&C.svcs), args.iters));
    }
    if mmu::pool_used_count() != pool_used {
        fail(format_args!("pool pages in use: {} before, {} after", pool_used, mmu::pool_used_count()));
    }
    if kpkeys::por() != if poe { POR_DEFAULT } else { 0 } {
        fail(format_args!("POR_EL1 = {:#x} at the end", kpkeys::por()));
    }
    if kpkeys::lazy_mmu_mode_active() {
        fail(format_args!("still in a lazy-MMU batch"));
    }
    // Every table store went through kpkeys::write_once, which counts.
    let written = get(&C.stores) + get(&C.stores_untracked);
    if kpkeys::table_writes() != written {
        fail(format_args!("write_once counted {}, the bench {}", kpkeys::table_writes(), written));
    }

    let svcs = get(&C.svcs);
    let irqs = get(&C.irqs);
    let entries = svcs + irqs;
    let por_loop = get(&C.por_writes) - poe as u64;
    println!(
        "kpkeys_bench: loop svcs={} irqs={} irqs_in_window={} entries={} por_writes={} por_reads={} stores={} stores_untracked={} batches={} tables_linked={} roots={} ticks={}",
        svcs,
        irqs,
        get(&C.irqs_in_window),
        entries,
        por_loop,
        get(&C.por_reads),
        get(&C.stores),
        get(&C.stores_untracked),
        get(&C.batches),
        get(&C.tables_linked),
        get(&C.roots),
        ticks
    );
    println!(
        "kpkeys_bench: totals entries={} por_writes={} stores={} roots={}",
        entries,
        get(&C.por_writes),
        get(&C.stores),
        get(&C.roots)
    );
    let (pi, pf) = ratio(por_loop, entries);
    let (si, sf) = ratio(get(&C.stores), entries);
    println!("kpkeys_bench: per_entry por_writes={}.{:02} stores={}.{:02}", pi, pf, si, sf);
    let per = |t: &AtomicU64, n: u64| get(t) / n.max(1);
    println!(
        "kpkeys_bench: ticks syscall_work={} plain_work={} guarded={} batch={} churn={} root={} irq_work={} rest={} work_sum={:#x}",
        get(&C.t_syscall),
        get(&C.t_work),
        get(&C.t_guarded),
        get(&C.t_batch),
        get(&C.t_churn),
        get(&C.t_root),
        get(&C.t_irq),
        ticks.saturating_sub(get(&C.t_syscall) + get(&C.t_irq)),
        get(&C.work_sum)
    );
    let guarded_n = svcs / 2 * 5 + svcs % 2 * 3;
    println!(
        "kpkeys_bench: ticks_per syscall={} work={} guarded_update={} batch={} churn={} root={} irq={} entry_and_el0={}",
        ticks / svcs.max(1),
        per(&C.t_work, svcs),
        per(&C.t_guarded, guarded_n),
        per(&C.t_batch, get(&C.batches)),
        per(&C.t_churn, get(&C.tables_linked)),
        per(&C.t_root, get(&C.roots)),
        per(&C.t_irq, irqs),
        ticks.saturating_sub(get(&C.t_syscall) + get(&C.t_irq)) / entries.max(1)
    );
    let failures = S.failures.load(Ordering::Relaxed);
    println!("kpkeys_bench: done");
    finish(&plat, (failures != 0) as u32)
}
