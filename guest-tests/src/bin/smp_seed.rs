//! `smp_seed`: the kpkeys crash of `seed` on two CPUs at once, for
//! porwatch's per-CPU monitoring (run with `--smp 2`).
//!
//! CPU 0 sets up the MMU, FEAT_S1POE and the GIC as `seed` does (the same
//! kpkeys model: `src/kpkeys.rs`, `src/kentry.rs`, `src/mmu.rs`), then
//! starts CPU 1 with PSCI CPU_ON (`src/smp.rs`: same tables, its own stack).
//! Then, on both CPUs at the same time:
//!
//! 1. **The batches.** Each CPU maps its own vmalloc area (16 guarded
//!    `set_pte`, area `VM_AREA + cpu * 2 MiB`, its own level-3 table), then
//!    unmaps it in a lazy-MMU batch (POR_EL1 raised once) and takes its
//!    virtual-timer IRQ after 8 PTEs. Each CPU's timer handler sends an SGI
//!    (an IPI, INTID 1) to the other CPU, and each CPU waits until it has
//!    taken the other's IPI. On CPU 1 the IRQ-exit path reschedules, drops
//!    the fake mm and frees its PGD: `pgd_free` -> `set_memory_pkey` ->
//!    `pageattr_pte_entry`'s `STR`, under the POR_EL1 the IRQ entry reset
//!    (0x17, pkey 1 read-only): **the hazard, on CPU 1**, in the same
//!    functions as `seed`. CPU 0's IRQ exit has nothing to free: no hazard.
//!    porwatch must name CPU 1 and CPU 1's own IRQ entry and POR write.
//! 2. **Exclusives.** Both CPUs add 2 to one unused entry of CPU 0's
//!    vmalloc level-3 table, `EX_ROUNDS` times each, with LDXR/STXR loops
//!    (every STXR traps to porwatch); then CPU 0 with LDXR/STXR and CPU 1
//!    with `LDADD` (an LSE atomic). No update may be lost: the entry must
//!    end at `8 * EX_ROUNDS` (it stays an invalid descriptor: bit 0 is 0),
//!    then it is cleared.
//! 3. **Let go.** CPU 0 links a page into its tables as a level-3 table
//!    and unlinks it again, `LET_GO_ROUNDS` times, while CPU 1 stores to
//!    that page without pause. Each store that faults while the page is a
//!    watched table may reach porwatch just after CPU 0 let the page go:
//!    it must then simply complete (before porwatch retried it, CPU 1 got
//!    an external abort: an unexpected exception here).
//! 4. **Power.** CPU 1 calls CPU_OFF; CPU 0 polls AFFINITY_INFO until it
//!    says OFF, starts CPU 1 again (it prints and calls CPU_OFF again) and
//!    waits for OFF once more. CPU_ON of a CPU that is on answers
//!    ALREADY_ON (or ON_PENDING), of a CPU that does not exist
//!    INVALID_PARAMETERS.
//!
//! 5. **Suspend** (only with `smp_seed.suspend=1` on the command line):
//!    before its first CPU_OFF, CPU 1 makes a PSCI_VERSION call, two POR_EL1
//!    writes (a `kpkeys::guard`), says so and calls CPU_SUSPEND (standby);
//!    CPU 0 then calls AFFINITY_INFO(1) (which must say ON) every half
//!    millisecond until [`SUSPEND_WINDOW_MS`] ms after CPU 1's PSCI_VERSION
//!    call, and wakes CPU 1 with the IPI. With `--all` CPU 1's trap and POR
//!    writes after that call are one batch (trace format 3): porwatch must
//!    send it before CPU 1 sleeps, i.e. before CPU 0's last AFFINITY_INFO
//!    records, which come within the batch's maximum age (20 ms).
//!
//! Console: `smp_seed: ...` lines, `smp_seed: summary hazards_expected=1
//! exclusives=N failures=F`, `smp_seed: done`. Exit status: failures (0 =
//! pass), 1 without a usable DT/GIC/timer or a second CPU, 100 on an
//! unexpected exception.
#![no_std]
#![no_main]

use core::arch::asm;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use porwatch_guest_tests::exceptions::VECTOR_NAMES;
use porwatch_guest_tests::kentry::{self, Frame};
use porwatch_guest_tests::kpkeys::{self, POR_DEFAULT, POR_PGTABLES};
use porwatch_guest_tests::mmu::{self, Setup, PAGE_SIZE};
use porwatch_guest_tests::smp::{self, cpu_index};
use porwatch_guest_tests::{cmdline, gicv3, println, smccc, timer, Boot};
use porwatch_monitor::fdt;

/// CPUs taking part.
const CPUS: usize = 2;
/// CPU 0's vmalloc area; CPU i's is `VM_AREA + i * VM_STRIDE` (its own
/// level-3 table).
const VM_AREA: u64 = 0xffff_8000_1000_0000;
const VM_STRIDE: u64 = 2 << 20;
const VM_PAGES: usize = 16;
/// PTEs cleared before the timer IRQ is let in.
const IRQ_AFTER: usize = 8;
/// The IPI: SGI 1.
const INTID_IPI: u32 = 1;
const TIMER_TVAL: u32 = 1000;
/// The unused entry of CPU 0's vmalloc level-3 table both CPUs add to.
const EX_INDEX: usize = 400;
/// Additions per CPU per round.
const EX_ROUNDS: u64 = 250;
/// Link/unlink cycles of round "let go".
const LET_GO_ROUNDS: u32 = 300;
/// The CPU that frees the PGD on its IRQ-exit path (the hazard).
const HAZARD_CPU: usize = 1;
const STATUS_UNEXPECTED: u32 = 100;
/// PSCI error codes.
const ALREADY_ON: i64 = -4;
const ON_PENDING: i64 = -5;
const INVALID_PARAMETERS: i64 = -2;

/// Backing pages of both vmalloc areas (pkey 0).
#[repr(C, align(4096))]
struct Backing(UnsafeCell<[[u64; 512]; VM_PAGES * CPUS]>);
// SAFETY: CPU i touches pages i * VM_PAGES.. only.
unsafe impl Sync for Backing {}
static VM_BACKING: Backing = Backing(UnsafeCell::new([[0; 512]; VM_PAGES * CPUS]));

fn backing_pa(cpu: usize, i: usize) -> u64 {
    VM_BACKING.0.get() as u64 + (cpu * VM_PAGES + i) as u64 * PAGE_SIZE
}

fn vm_area(cpu: usize) -> u64 {
    VM_AREA + cpu as u64 * VM_STRIDE
}

/// Per-CPU flags and counts.
struct PerCpu {
    timer_irqs: AtomicU32,
    ipis: AtomicU32,
    timer_seen: AtomicBool,
    need_resched: AtomicBool,
    /// rq->prev_mm: this CPU drops the fake mm at its next finish_task_switch.
    prev_mm: AtomicBool,
    irq_por_entry: AtomicU64,
    irq_por_handler: AtomicU64,
    free_por_store: AtomicU64,
}

static PCPU: [PerCpu; CPUS] = [const {
    PerCpu {
        timer_irqs: AtomicU32::new(0),
        ipis: AtomicU32::new(0),
        timer_seen: AtomicBool::new(false),
        need_resched: AtomicBool::new(false),
        prev_mm: AtomicBool::new(false),
        irq_por_entry: AtomicU64::new(0),
        irq_por_handler: AtomicU64::new(0),
        free_por_store: AtomicU64::new(0),
    }
}; CPUS];

fn me() -> &'static PerCpu {
    &PCPU[cpu_index() % CPUS]
}

/// Cross-CPU handshakes.
static STARTED: AtomicU32 = AtomicU32::new(0);
static BATCHES_DONE: AtomicU32 = AtomicU32::new(0);
static ROUND: AtomicU32 = AtomicU32::new(0);
static ROUND_DONE: AtomicU32 = AtomicU32::new(0);
static CPU1_FAILURES: AtomicU32 = AtomicU32::new(0);
static RESTARTED: AtomicBool = AtomicBool::new(false);
static FAKE_PGD: AtomicU64 = AtomicU64::new(0);
static TIMER_INTID: AtomicU32 = AtomicU32::new(27);
/// `smp_seed.suspend=1`: round 5 runs.
static SUSPEND: AtomicBool = AtomicBool::new(false);
/// Round 5: CPU 1 is about to call CPU_SUSPEND, and has returned from it.
static SUSPENDING: AtomicBool = AtomicBool::new(false);
static RESUMED: AtomicBool = AtomicBool::new(false);
/// Round 5: CNTVCT before CPU 1's PSCI_VERSION call; CPU 0 calls
/// AFFINITY_INFO until this many ms after it (half the batch maximum age).
static SUSPEND_T0: AtomicU64 = AtomicU64::new(0);
const SUSPEND_WINDOW_MS: u64 = 10;
/// PSCI CPU_SUSPEND (SMC64) and a standby power state (StateType 0).
const PSCI_CPU_SUSPEND_64: u64 = 0xC400_0001;
const POWER_STATE_STANDBY: u64 = 0;

/// The GIC from CPU 0's device tree, for the other CPUs' set-up.
struct GicCell(UnsafeCell<Option<fdt::platform::Gic>>);
// SAFETY: written by CPU 0 before CPU 1 starts, then only read.
unsafe impl Sync for GicCell {}
static GIC: GicCell = GicCell(UnsafeCell::new(None));

// ---------------------------------------------------------------------------
// The seed's path, per CPU (Linux's names).

#[inline(never)]
#[unsafe(no_mangle)]
fn pageattr_pte_entry(ptep: u64, set: u64, clear: u64) {
    let old = unsafe { (ptep as *const u64).read_volatile() };
    me().free_por_store.store(kpkeys::por(), Ordering::Relaxed);
    unsafe { kpkeys::set_pte(ptep, (old & !clear) | set) };
}

#[inline(never)]
#[unsafe(no_mangle)]
fn update_range_prot(start: u64, set: u64, clear: u64) {
    kpkeys::lazy_mmu_mode_enable();
    let (_, ttbr1) = mmu::roots();
    let leaf = mmu::walk(ttbr1, start).expect("set_memory_pkey: unmapped");
    pageattr_pte_entry(leaf.va(), set, clear);
    kpkeys::lazy_mmu_mode_disable();
    mmu::flush_tlb_page(start);
}

#[inline(never)]
#[unsafe(no_mangle)]
fn set_memory_pkey(addr: u64, pkey: u64) {
    update_range_prot(addr, mmu::pkey_bits(pkey), mmu::POINDEX_MASK);
}

#[inline(never)]
#[unsafe(no_mangle)]
fn pgd_free(pgd: u64) {
    set_memory_pkey(mmu::lm_va(pgd), kpkeys::PKEY_DEFAULT);
    mmu::pool_free(pgd);
}

#[inline(never)]
#[unsafe(no_mangle)]
fn finish_task_switch() {
    if me().prev_mm.swap(false, Ordering::Relaxed) {
        let pgd = FAKE_PGD.swap(0, Ordering::Relaxed);
        if pgd != 0 {
            pgd_free(pgd);
        }
    }
}

#[inline(never)]
#[unsafe(no_mangle)]
fn preempt_schedule_irq() {
    me().need_resched.store(false, Ordering::Relaxed);
    finish_task_switch();
}

#[inline(never)]
#[unsafe(no_mangle)]
fn arm64_exit_to_kernel_mode() {
    if me().need_resched.load(Ordering::Relaxed) {
        preempt_schedule_irq();
    }
}

/// Timer: stop it, IPI the other CPU, ask for a reschedule. IPI: count it.
#[inline(never)]
#[unsafe(no_mangle)]
fn handle_arch_irq(frame: &Frame) {
    let p = me();
    let intid = gicv3::ack();
    if intid == TIMER_INTID.load(Ordering::Relaxed) {
        timer::cntv_stop();
        gicv3::eoi(intid);
        p.timer_irqs.fetch_add(1, Ordering::Relaxed);
        p.irq_por_entry.store(frame.por, Ordering::Relaxed);
        p.irq_por_handler.store(kpkeys::por(), Ordering::Relaxed);
        gicv3::send_sgi(INTID_IPI, (cpu_index() as u32 + 1) % CPUS as u32);
        p.need_resched.store(true, Ordering::Relaxed);
        p.timer_seen.store(true, Ordering::Relaxed);
    } else if intid == INTID_IPI {
        gicv3::eoi(intid);
        p.ipis.fetch_add(1, Ordering::Relaxed);
    } else if intid != gicv3::INTID_SPURIOUS {
        gicv3::eoi(intid);
    }
}

#[inline(never)]
#[unsafe(no_mangle)]
fn el1h_64_irq_handler(frame: &mut Frame) {
    handle_arch_irq(frame);
    arm64_exit_to_kernel_mode();
}

fn unexpected(frame: &Frame, vector: u64) -> ! {
    println!(
        "smp_seed: FAIL cpu{} unexpected exception {} esr={:#x} elr={:#x} far={:#x}",
        cpu_index(),
        VECTOR_NAMES[(vector & 15) as usize],
        frame.esr,
        frame.elr,
        frame.far
    );
    smccc::test_exit(STATUS_UNEXPECTED)
}

extern "C" fn smp_exception(frame: &mut Frame, vector: u64) {
    match vector {
        kentry::VEC_IRQ_EL1H => el1h_64_irq_handler(frame),
        _ => unexpected(frame, vector),
    }
}

// ---------------------------------------------------------------------------
// The batch.

fn vm_ptep(cpu: usize, i: usize) -> u64 {
    let (_, ttbr1) = mmu::roots();
    let va = vm_area(cpu) + i as u64 * PAGE_SIZE;
    let l3 = mmu::walk_table(ttbr1, va, 3).expect("vmalloc L3 table");
    mmu::desc_va(l3, mmu::index(va, 3))
}

#[inline(never)]
#[unsafe(no_mangle)]
fn vmap_pte_range(cpu: usize) {
    for i in 0..VM_PAGES {
        unsafe { kpkeys::set_pte(vm_ptep(cpu, i), backing_pa(cpu, i) | mmu::PROT_DATA) };
    }
    unsafe { asm!("isb", options(nostack)) };
}

/// Lets interrupts in one instruction at a time until `done`; false after
/// about two seconds.
fn wait_irqs(done: impl Fn() -> bool) -> bool {
    let start = timer::cntvct();
    let limit = 2 * timer::cntfrq().max(1_000_000);
    loop {
        unsafe { asm!("msr daifclr, #2", "isb", "msr daifset, #2", clobber_abi("C"), options(nostack)) };
        if done() {
            return true;
        }
        if timer::cntvct().wrapping_sub(start) > limit {
            return false;
        }
        unsafe { asm!("wfi", options(nomem, nostack)) };
    }
}

#[inline(never)]
#[unsafe(no_mangle)]
fn __vunmap_range_noflush(cpu: usize) -> bool {
    let mut ok = true;
    kpkeys::lazy_mmu_mode_enable();
    for i in 0..VM_PAGES {
        if i == IRQ_AFTER {
            ok = wait_irqs(|| me().timer_seen.load(Ordering::Relaxed));
        }
        unsafe { kpkeys::set_pte(vm_ptep(cpu, i), 0) };
    }
    kpkeys::lazy_mmu_mode_disable();
    ok
}

/// Phase 1 on this CPU; returns its failures.
fn batch(cpu: usize) -> u32 {
    let mut failed = 0;
    vmap_pte_range(cpu);
    timer::cntv_arm(TIMER_TVAL);
    if !__vunmap_range_noflush(cpu) {
        println!("smp_seed: FAIL cpu{} no timer IRQ", cpu);
        failed += 1;
    }
    for i in 0..VM_PAGES {
        mmu::flush_tlb_page(vm_area(cpu) + i as u64 * PAGE_SIZE);
    }
    // The other CPU's IPI.
    if !wait_irqs(|| me().ipis.load(Ordering::Relaxed) > 0) {
        println!("smp_seed: FAIL cpu{} no IPI", cpu);
        failed += 1;
    }
    let p = me();
    let poe = kpkeys::poe_on();
    let want_store = if cpu == HAZARD_CPU { POR_DEFAULT } else { 0 };
    let checks = [
        ("timer IRQs", p.timer_irqs.load(Ordering::Relaxed) as u64, 1, true),
        ("POR_EL1 at IRQ entry", p.irq_por_entry.load(Ordering::Relaxed), POR_PGTABLES, poe),
        ("POR_EL1 in the IRQ handler", p.irq_por_handler.load(Ordering::Relaxed), POR_DEFAULT, poe),
        ("POR_EL1 at the pgd_free store", p.free_por_store.load(Ordering::Relaxed), want_store, poe),
        ("POR_EL1 after the batch", kpkeys::por(), POR_DEFAULT, poe),
    ];
    for (what, got, want, on) in checks {
        if on && got != want {
            println!("smp_seed: FAIL cpu{} {} = {:#x}, expected {:#x}", cpu, what, got, want);
            failed += 1;
        }
    }
    for i in 0..VM_PAGES {
        let d = unsafe { (vm_ptep(cpu, i) as *const u64).read_volatile() };
        if d != 0 {
            println!("smp_seed: FAIL cpu{} vmalloc PTE {} = {:#x} after vunmap", cpu, i, d);
            failed += 1;
        }
    }
    println!(
        "smp_seed: cpu{} batch done: {} timer IRQ, {} IPI, POR_EL1 at IRQ entry {:#x}",
        cpu,
        p.timer_irqs.load(Ordering::Relaxed),
        p.ipis.load(Ordering::Relaxed),
        p.irq_por_entry.load(Ordering::Relaxed)
    );
    failed
}

// ---------------------------------------------------------------------------
// Exclusives.

/// The shared entry, through the linear map (a table page: pkey 1, so
/// every write is at the page-table level).
fn ex_ptr() -> u64 {
    let (_, ttbr1) = mmu::roots();
    let l3 = mmu::walk_table(ttbr1, vm_area(0), 3).expect("vmalloc L3 table");
    mmu::desc_va(l3, EX_INDEX)
}

/// `EX_ROUNDS` times: LDXR, add 2, STXR until it succeeds. The NOPs widen
/// the window in which the other CPU's write must be noticed (the pair
/// stays within the 128 bytes the architecture asks for).
#[inline(never)]
#[unsafe(no_mangle)]
fn add_exclusive(p: u64) {
    for _ in 0..EX_ROUNDS {
        unsafe {
            asm!(
                "1: ldxr {v}, [{p}]",
                "add {v}, {v}, #2",
                ".rept 16",
                "nop",
                ".endr",
                "stxr {s:w}, {v}, [{p}]",
                "cbnz {s:w}, 1b",
                p = in(reg) p, v = out(reg) _, s = out(reg) _, options(nostack)
            );
        }
    }
}

/// `EX_ROUNDS` times: LDADD 2 (FEAT_LSE).
#[inline(never)]
#[unsafe(no_mangle)]
fn add_atomic(p: u64) {
    for _ in 0..EX_ROUNDS {
        unsafe {
            asm!(".arch_extension lse", "ldadd {two}, xzr, [{p}]", two = in(reg) 2u64, p = in(reg) p, options(nostack));
        }
    }
}

/// LDXR of `p`.
#[inline(always)]
fn ldxr(p: u64) -> u64 {
    let v: u64;
    unsafe { asm!("ldxr {v}, [{p}]", p = in(reg) p, v = out(reg) v, options(nostack)) };
    v
}

/// STXR of `v` to `p`: 0 when it stored.
#[inline(always)]
fn stxr(p: u64, v: u64) -> u32 {
    let s: u32;
    unsafe { asm!("stxr {s:w}, {v}, [{p}]", p = in(reg) p, v = in(reg) v, s = out(reg) s, options(nostack)) };
    s
}

/// Interleaving requests to CPU 1 (round 3) and its answers.
static REQ: AtomicU32 = AtomicU32::new(0);
static ACK: AtomicU32 = AtomicU32::new(0);
/// Round 3 is over (CPU 1 stops serving).
static R3_DONE: AtomicBool = AtomicBool::new(false);

/// Round 3 on CPU 0, interleaved on purpose: between CPU 0's LDXR and its
/// STXR, CPU 1 completes an addition to the same entry (on CPU 0's first
/// two attempts). Each such STXR must fail (the other CPU wrote the
/// location since the load), so CPU 0's addition lands after CPU 1's.
/// Returns (attempts, CPU 1's additions).
#[inline(never)]
#[unsafe(no_mangle)]
fn add_exclusive_interleaved(p: u64) -> (u32, u32) {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let v = ldxr(p);
        if attempts <= 2 {
            REQ.store(attempts, Ordering::Release);
            let start = timer::cntvct();
            while ACK.load(Ordering::Acquire) < attempts {
                if timer::cntvct().wrapping_sub(start) > 10 * timer::cntfrq() {
                    break;
                }
            }
        }
        if stxr(p, v + 2) == 0 {
            return (attempts, ACK.load(Ordering::Acquire));
        }
    }
}

/// Round 3 on CPU 1: one LDXR/STXR addition per request of CPU 0.
fn serve_interleaved(p: u64) {
    let mut served = 0;
    while !R3_DONE.load(Ordering::Acquire) {
        let r = REQ.load(Ordering::Acquire);
        if r > served {
            loop {
                let v = ldxr(p);
                if stxr(p, v + 2) == 0 {
                    break;
                }
            }
            served = r;
            ACK.store(r, Ordering::Release);
        }
        core::hint::spin_loop();
    }
}

/// Round `r` of phase 2 on this CPU.
fn exclusives_round(cpu: usize, r: u32) {
    let p = ex_ptr();
    kpkeys::guard(|| if r == 2 && cpu == 1 { add_atomic(p) } else { add_exclusive(p) });
}

/// Waits until `a` reaches `n`.
fn wait_for(a: &AtomicU32, n: u32) -> bool {
    let start = timer::cntvct();
    let limit = 10 * timer::cntfrq().max(1_000_000);
    while a.load(Ordering::Acquire) < n {
        if timer::cntvct().wrapping_sub(start) > limit {
            return false;
        }
        core::hint::spin_loop();
    }
    true
}

// ---------------------------------------------------------------------------
// Let go.

/// The page CPU 0 links and unlinks (0: the round is over).
static LET_GO_PAGE: AtomicU64 = AtomicU64::new(0);
/// CPU 1's stores to it, counted.
static LET_GO_STORES: AtomicU64 = AtomicU64::new(0);

/// The unused level-2 entry the page is linked at (after the CPUs' areas).
fn let_go_slot() -> u64 {
    let (_, ttbr1) = mmu::roots();
    let l2 = mmu::walk_table(ttbr1, vm_area(0), 2).expect("vmalloc L2 table");
    mmu::desc_va(l2, mmu::index(vm_area(CPUS), 2))
}

/// CPU 0: links `page` as a table and unlinks it, `LET_GO_ROUNDS` times.
#[inline(never)]
#[unsafe(no_mangle)]
fn link_and_unlink(page: u64) {
    let slot = let_go_slot();
    for _ in 0..LET_GO_ROUNDS {
        unsafe { kpkeys::set_pte(slot, page | mmu::DESC_TABLE) };
        unsafe { kpkeys::set_pte(slot, 0) };
    }
}

/// CPU 1: stores invalid descriptors (bit 0 clear) to the page until the
/// round is over.
#[inline(never)]
#[unsafe(no_mangle)]
fn store_while_linked() {
    let mut n = 0u64;
    loop {
        let page = LET_GO_PAGE.load(Ordering::Acquire);
        if page == 0 {
            break;
        }
        let p = mmu::lm_va(page) + (n % 64) * 8;
        unsafe { (p as *mut u64).write_volatile(n << 1) };
        n += 1;
    }
    LET_GO_STORES.store(n, Ordering::Release);
}

// ---------------------------------------------------------------------------
// CPU 1.

fn cpu_setup(cpu: usize) {
    kentry::install(smp_exception);
    kpkeys::enable_poe();
    // SAFETY: see GicCell.
    let Some(gic) = (unsafe { &*GIC.0.get() }) else { return };
    match gicv3::GicV3::init(gic) {
        Ok(g) => {
            g.enable_ppi(TIMER_INTID.load(Ordering::Relaxed), 0x80);
            g.enable_ppi(INTID_IPI, 0x80);
        }
        Err(e) => println!("smp_seed: FAIL cpu{} GICv3 init: {}", cpu, e),
    }
}

fn cpu1_main(cpu: usize) -> ! {
    cpu_setup(cpu);
    STARTED.fetch_add(1, Ordering::Release);
    let mut failed = batch(cpu);
    BATCHES_DONE.fetch_add(1, Ordering::Release);
    for r in 1..=2 {
        if !wait_for(&ROUND, r) {
            failed += 1;
        }
        exclusives_round(cpu, r);
        ROUND_DONE.fetch_add(1, Ordering::Release);
    }
    if !wait_for(&ROUND, 3) {
        failed += 1;
    }
    let p = ex_ptr();
    kpkeys::guard(|| serve_interleaved(p));
    ROUND_DONE.fetch_add(1, Ordering::Release);
    if !wait_for(&ROUND, 4) {
        failed += 1;
    }
    store_while_linked();
    ROUND_DONE.fetch_add(1, Ordering::Release);
    if SUSPEND.load(Ordering::Acquire) {
        failed += suspend_round(cpu);
    }
    CPU1_FAILURES.store(failed, Ordering::Release);
    println!("smp_seed: cpu{} off", cpu);
    let r = smp::cpu_off();
    println!("smp_seed: FAIL cpu{} CPU_OFF returned {}", cpu, r);
    loop {
        unsafe { asm!("wfe", options(nomem, nostack)) };
    }
}

/// Round 5 on CPU 1: hot records (a PSCI call first, so that they open a
/// fresh batch), then CPU_SUSPEND until CPU 0's IPI.
fn suspend_round(cpu: usize) -> u32 {
    let mut failed = 0;
    SUSPEND_T0.store(timer::cntvct(), Ordering::Relaxed);
    smccc::smc(smccc::PSCI_VERSION, 0, 0, 0);
    kpkeys::guard(|| ());
    let ipis = me().ipis.load(Ordering::Relaxed);
    SUSPENDING.store(true, Ordering::Release);
    let r = smccc::smc(PSCI_CPU_SUSPEND_64, POWER_STATE_STANDBY, cpu1_again as *const () as u64, 0);
    RESUMED.store(true, Ordering::Release);
    if r != 0 {
        println!("smp_seed: FAIL cpu{} CPU_SUSPEND = {}", cpu, r);
        failed += 1;
    }
    // Take the IPI that woke this CPU.
    if !wait_irqs(|| me().ipis.load(Ordering::Relaxed) > ipis) {
        println!("smp_seed: FAIL cpu{} took no IPI after CPU_SUSPEND", cpu);
        failed += 1;
    }
    println!("smp_seed: cpu{} suspended and woken", cpu);
    failed
}

/// Round 5 on CPU 0: AFFINITY_INFO(1) while CPU 1 sleeps, then the IPI.
fn wake_suspended() -> u32 {
    let mut failed = 0;
    let start = timer::cntvct();
    let ms = timer::cntfrq().max(1_000_000) / 1000;
    while !SUSPENDING.load(Ordering::Acquire) {
        if timer::cntvct().wrapping_sub(start) > 10_000 * ms {
            println!("smp_seed: FAIL cpu1 never got to CPU_SUSPEND");
            return 1;
        }
        core::hint::spin_loop();
    }
    let t0 = SUSPEND_T0.load(Ordering::Relaxed);
    let mut calls = 0u32;
    while timer::cntvct().wrapping_sub(t0) < SUSPEND_WINDOW_MS * ms {
        let t = timer::cntvct();
        while timer::cntvct().wrapping_sub(t) < ms / 2 {
            core::hint::spin_loop();
        }
        let a = smp::affinity_info(1);
        calls += 1;
        if a != smp::AFFINITY_ON {
            println!("smp_seed: FAIL AFFINITY_INFO(1) of a suspended CPU = {}", a);
            failed += 1;
        }
    }
    let start = timer::cntvct();
    while !RESUMED.load(Ordering::Acquire) {
        gicv3::send_sgi(INTID_IPI, 1);
        let t = timer::cntvct();
        while timer::cntvct().wrapping_sub(t) < ms {
            core::hint::spin_loop();
        }
        if timer::cntvct().wrapping_sub(start) > 10_000 * ms {
            println!("smp_seed: FAIL cpu1 did not wake from CPU_SUSPEND");
            return failed + 1;
        }
    }
    println!("smp_seed: suspend: {} AFFINITY_INFO(1) calls while cpu1 slept", calls);
    failed
}

fn cpu1_again(cpu: usize) -> ! {
    kentry::install(smp_exception);
    RESTARTED.store(true, Ordering::Release);
    println!("smp_seed: cpu{} started again, off again", cpu);
    smp::cpu_off();
    loop {
        unsafe { asm!("wfe", options(nomem, nostack)) };
    }
}

/// Polls AFFINITY_INFO (every millisecond) until CPU `cpu` is off.
fn wait_off(cpu: usize) -> bool {
    let start = timer::cntvct();
    let hz = timer::cntfrq().max(1_000_000);
    while smp::affinity_info(cpu) != smp::AFFINITY_OFF {
        if timer::cntvct().wrapping_sub(start) > 10 * hz {
            return false;
        }
        let t = timer::cntvct();
        while timer::cntvct().wrapping_sub(t) < hz / 1000 {
            core::hint::spin_loop();
        }
    }
    true
}

// ---------------------------------------------------------------------------

#[unsafe(no_mangle)]
fn test_main(boot: &Boot) -> u32 {
    let mut failed = 0u32;
    let mut plat = fdt::Platform::new();
    if fdt::discover(boot.dtb, &mut plat).is_err() {
        println!("smp_seed: FAIL cannot parse the device tree");
        return 1;
    }
    if plat.cpus.len() < CPUS {
        println!("smp_seed: FAIL needs {} CPUs (-smp {}), the machine has {}", CPUS, CPUS, plat.cpus.len());
        return 1;
    }
    let (Some(gic_dt), Some(t)) = (plat.gic.as_ref(), plat.timer.as_ref()) else {
        println!("smp_seed: FAIL no GIC or timer in the device tree");
        return 1;
    };
    TIMER_INTID.store(t.virt, Ordering::Relaxed);
    for (k, v) in cmdline::words(plat.chosen.bootargs.unwrap_or(""), "smp_seed.") {
        match (k, v) {
            ("smp_seed.suspend", Some("1")) => SUSPEND.store(true, Ordering::Release),
            _ => {
                println!("smp_seed: FAIL unknown option {} (smp_seed.suspend=1)", k);
                return 1;
            }
        }
    }
    // SAFETY: CPU 1 does not run yet.
    unsafe { *GIC.0.get() = Some(gic_dt.clone()) };
    let poe = kpkeys::init();
    println!("smp_seed: {} CPUs, kpkeys lazy-MMU batches with IRQs and IPIs; poe={}", CPUS, poe as u8);
    let gic = match gicv3::GicV3::init(gic_dt) {
        Ok(g) => g,
        Err(e) => {
            println!("smp_seed: FAIL GICv3 init: {}", e);
            return 1;
        }
    };
    kentry::install(smp_exception);
    gic.enable_ppi(t.virt, 0x80);
    gic.enable_ppi(INTID_IPI, 0x80);

    // Tables (MMU off), POE, MMU on.
    let mut s = Setup::new();
    s.identity_image();
    s.identity(boot.dtb_addr as u64, boot.dtb.len() as u64, mmu::PROT_RODATA);
    if let Some(u) = plat.console() {
        s.identity(u.regs.base, PAGE_SIZE, mmu::PROT_DEVICE);
    }
    s.identity(gic.dist as u64, 0x1_0000, mmu::PROT_DEVICE);
    // Every CPU's redistributor (RD and SGI frames, 128 KiB each).
    s.identity(gic.redist as u64 & !0x1_ffff, 0x2_0000 * smp::MAX_CPUS as u64, mmu::PROT_DEVICE);
    for cpu in 0..CPUS {
        s.table_for(vm_area(cpu), 3);
    }
    s.linear_map();
    kpkeys::enable_poe();
    s.enable();

    // The fake mm CPU 1 frees from its IRQ-exit path.
    let pgd = mmu::pool_alloc().expect("pool");
    set_memory_pkey(mmu::lm_va(pgd), kpkeys::PKEY_PGTABLES);
    FAKE_PGD.store(pgd, Ordering::Relaxed);
    PCPU[HAZARD_CPU].prev_mm.store(true, Ordering::Relaxed);
    PCPU[0].free_por_store.store(0, Ordering::Relaxed); // the batch's check starts here
    let pte = mmu::lm_pte(pgd);
    if poe {
        println!(
            "smp_seed: expect hazard cpu={} va={:#x} old={:#018x} new={:#018x} por={:#x}",
            HAZARD_CPU,
            pte.va(),
            pte.desc,
            pte.desc & !mmu::POINDEX_MASK,
            POR_DEFAULT
        );
    }

    // CPU 1.
    let r = smp::start(1, cpu1_main);
    if r != 0 {
        println!("smp_seed: FAIL CPU_ON(1) = {}", r);
        return 1;
    }
    if !wait_for(&STARTED, 1) {
        println!("smp_seed: FAIL cpu1 did not start");
        return 1;
    }
    let again = smp::start(1, cpu1_main);
    if again != ALREADY_ON && again != ON_PENDING {
        println!(
            "smp_seed: FAIL CPU_ON of a running CPU = {}, expected {} or {}",
            again, ALREADY_ON, ON_PENDING
        );
        failed += 1;
    }
    let none = smp::start(9, cpu1_main);
    if none != INVALID_PARAMETERS {
        println!("smp_seed: FAIL CPU_ON(9) = {}, expected {}", none, INVALID_PARAMETERS);
        failed += 1;
    }

    // 1. The batches, both CPUs at once.
    failed += batch(0);
    if !wait_for(&BATCHES_DONE, 1) {
        println!("smp_seed: FAIL cpu1's batch did not finish");
        failed += 1;
    }
    let pte_after = mmu::read_desc(pte.table_pa, pte.idx);
    if mmu::poindex(pte_after) != 0 {
        println!("smp_seed: FAIL the PGD's linear-map PTE = {:#x} after pgd_free", pte_after);
        failed += 1;
    }

    // 2. Exclusives.
    let p = ex_ptr();
    for r in 1..=2u32 {
        ROUND.store(r, Ordering::Release);
        exclusives_round(0, r);
        if !wait_for(&ROUND_DONE, r) {
            println!("smp_seed: FAIL cpu1 did not finish exclusives round {}", r);
            failed += 1;
        }
    }
    let got = unsafe { (p as *const u64).read_volatile() };
    let want = 8 * EX_ROUNDS;
    println!("smp_seed: exclusives: entry = {} (expected {})", got, want);
    if got != want {
        println!("smp_seed: FAIL exclusives: {} updates lost", (want - got.min(want)) / 2);
        failed += 1;
    }
    // Round 3: the other CPU writes between this CPU's LDXR and STXR.
    ROUND.store(3, Ordering::Release);
    let (attempts, other) = kpkeys::guard(|| add_exclusive_interleaved(p));
    R3_DONE.store(true, Ordering::Release);
    if !wait_for(&ROUND_DONE, 3) {
        println!("smp_seed: FAIL cpu1 did not finish exclusives round 3");
        failed += 1;
    }
    let got3 = unsafe { (p as *const u64).read_volatile() };
    let want3 = got + 2 + 2 * other as u64;
    println!(
        "smp_seed: exclusives interleaved: {} attempts, {} additions by cpu1 in between; entry = {} (expected {})",
        attempts, other, got3, want3
    );
    if got3 != want3 || other != 2 || attempts < 3 {
        println!(
            "smp_seed: FAIL exclusives interleaved: a store-exclusive succeeded after another CPU's write"
        );
        failed += 1;
    }
    unsafe { kpkeys::set_pte(p, 0) };

    // 3. Let go: a table page unlinked while the other CPU stores to it.
    let page = mmu::pool_alloc().expect("pool");
    LET_GO_PAGE.store(page, Ordering::Release);
    ROUND.store(4, Ordering::Release);
    link_and_unlink(page);
    LET_GO_PAGE.store(0, Ordering::Release);
    if !wait_for(&ROUND_DONE, 4) {
        println!("smp_seed: FAIL cpu1 did not finish round let-go");
        failed += 1;
    }
    let stores = LET_GO_STORES.load(Ordering::Acquire);
    println!("smp_seed: let go: {} link/unlink cycles, {} stores by cpu1", LET_GO_ROUNDS, stores);
    if stores == 0 {
        println!("smp_seed: FAIL let go: cpu1 made no stores");
        failed += 1;
    }
    // The page is ordinary memory again: zero it for the pool.
    for i in 0..64 {
        unsafe { ((mmu::lm_va(page) + i * 8) as *mut u64).write_volatile(0) };
    }
    mmu::pool_free(page);

    // 5. Suspend (before 4: CPU 1 suspends before its CPU_OFF).
    if SUSPEND.load(Ordering::Acquire) {
        failed += wake_suspended();
    }

    // 4. Power.
    if !wait_off(1) {
        println!("smp_seed: FAIL AFFINITY_INFO(1) never said OFF");
        failed += 1;
    }
    failed += CPU1_FAILURES.load(Ordering::Acquire);
    let r = smp::start(1, cpu1_again);
    if r != 0 {
        println!("smp_seed: FAIL CPU_ON(1) after CPU_OFF = {}", r);
        failed += 1;
    } else if !wait_off(1) || !RESTARTED.load(Ordering::Acquire) {
        println!("smp_seed: FAIL cpu1 did not run and go off again");
        failed += 1;
    }
    if smp::affinity_info(0) != smp::AFFINITY_ON {
        println!("smp_seed: FAIL AFFINITY_INFO(0) is not ON");
        failed += 1;
    }
    println!("smp_seed: summary hazards_expected={} exclusives={} failures={}", poe as u8, got, failed);
    println!("smp_seed: done");
    failed
}
