//! A model of Linux's kpkeys page-table protection (Kevin Brodsky's RFC
//! series, `CONFIG_KPKEYS_HARDENED_PGTABLES`), shared by the `seed`,
//! `pt_stress` and `exceptions` kernels:
//!
//! * every page-table page is mapped in the linear map with pkey
//!   [`PKEY_PGTABLES`] (POIndex 1), everything else with pkey 0;
//! * POR_EL1 is [`POR_DEFAULT`] (pkey 0 RWX, pkey 1 R) outside privileged
//!   sections and [`POR_PGTABLES`] (pkey 1 RW) while page tables are
//!   written: [`set_pte`] outside a lazy-MMU batch raises the level around
//!   its one store (`kpkeys_set_level` / `kpkeys_restore`: read POR, write
//!   0x57 + ISB, store, write the old value + ISB);
//! * lazy-MMU batching (RFC v6 patch 28): [`lazy_mmu_mode_enable`] nests;
//!   the outermost level calls [`arch_enter_lazy_mmu_mode`], which raises
//!   POR_EL1 once and saves the old value, and [`arch_leave_lazy_mmu_mode`]
//!   restores it. Inside a batch [`set_pte`] stores without a guard, trusting
//!   the level raised at entry, which an exception entry may have reset
//!   (the seed bug).
//!
//! Without FEAT_S1POE (porwatch `tap=off`) every POR_EL1/TCR2_EL1 access is
//! skipped; the control flow is the same.
use crate::poe;
use core::arch::asm;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// POR_EL1 outside privileged sections: pkey 0 RWX, pkey 1 R.
pub const POR_DEFAULT: u64 = 0x17;
/// POR_EL1 at the page-table level (KPKEYS_LVL_PGTABLES): pkey 1 RW.
pub const POR_PGTABLES: u64 = 0x57;
/// KPKEYS_PKEY_DEFAULT.
pub const PKEY_DEFAULT: u64 = 0;
/// KPKEYS_PKEY_PGTABLES: the pkey of every page-table page.
pub const PKEY_PGTABLES: u64 = 1;

/// Non-zero when FEAT_S1POE is advertised (read by the vector code of
/// [`crate::kentry`], which touches POR_EL1 only then).
pub static POE: AtomicU64 = AtomicU64::new(0);

/// Page-table stores made through [`write_once`] (and counted by callers
/// that use other instructions via [`count_write`]).
static TABLE_WRITES: AtomicU64 = AtomicU64::new(0);

/// Detects FEAT_S1POE (ID_AA64MMFR3_EL1.S1POE) and records it.
pub fn init() -> bool {
    let poe = poe::s1poe_present();
    POE.store(poe as u64, Ordering::Relaxed);
    poe
}

pub fn poe_on() -> bool {
    POE.load(Ordering::Relaxed) != 0
}

/// POR_EL1, or 0 without POE.
pub fn por() -> u64 {
    if poe_on() {
        unsafe { poe::read_por_el1() }
    } else {
        0
    }
}

/// POR_EL1 := v (+ ISB), skipped without POE.
pub fn set_por(v: u64) {
    if poe_on() {
        unsafe { poe::write_por_el1(v) }
    }
}

/// TCR2_EL1.POE := 1, then POR_EL1 := POR_DEFAULT (skipped without POE).
/// Call before the MMU is turned on, so that no access is ever checked
/// against POR_EL1's reset value.
pub fn enable_poe() {
    if poe_on() {
        unsafe {
            let tcr2 = poe::read_tcr2_el1() | poe::TCR2_POE;
            poe::write_tcr2_el1(tcr2);
        }
        set_por(POR_DEFAULT);
    }
}

/// TCR2_EL1 (0 without POE).
pub fn tcr2() -> u64 {
    if poe_on() {
        unsafe { poe::read_tcr2_el1() }
    } else {
        0
    }
}

/// kpkeys_set_level(KPKEYS_LVL_PGTABLES): POR_EL1 := POR_PGTABLES; returns
/// the previous value for [`restore_level`].
#[inline(always)]
pub fn set_level_pgtables() -> u64 {
    let prev = por();
    set_por(POR_PGTABLES);
    prev
}

/// kpkeys_restore_pkey_reg(prev).
#[inline(always)]
pub fn restore_level(prev: u64) {
    set_por(prev);
}

/// Runs `f` at the page-table level (a kpkeys guard).
#[inline(always)]
pub fn guard<R>(f: impl FnOnce() -> R) -> R {
    let prev = set_level_pgtables();
    let r = f();
    restore_level(prev);
    r
}

// Lazy-MMU mode: one task per CPU, so one state per CPU.
const CPUS: usize = crate::smp::MAX_CPUS;
static LAZY_DEPTH: [AtomicU32; CPUS] = [const { AtomicU32::new(0) }; CPUS];
static LAZY_SAVED_POR: [AtomicU64; CPUS] = [const { AtomicU64::new(0) }; CPUS];

fn lazy_depth() -> &'static AtomicU32 {
    &LAZY_DEPTH[crate::smp::cpu_index()]
}

fn lazy_saved_por() -> &'static AtomicU64 {
    &LAZY_SAVED_POR[crate::smp::cpu_index()]
}

/// kpkeys' arch_enter_lazy_mmu_mode (patch 28): raise POR_EL1 once for the
/// whole batch, remember the old value.
#[inline(never)]
#[unsafe(no_mangle)]
pub fn arch_enter_lazy_mmu_mode() {
    lazy_saved_por().store(set_level_pgtables(), Ordering::Relaxed);
}

/// kpkeys' arch_leave_lazy_mmu_mode: restore the value saved at entry.
#[inline(never)]
#[unsafe(no_mangle)]
pub fn arch_leave_lazy_mmu_mode() {
    restore_level(lazy_saved_por().load(Ordering::Relaxed));
}

/// lazy_mmu_mode_enable(): nests; only the outermost call enters.
pub fn lazy_mmu_mode_enable() {
    if lazy_depth().fetch_add(1, Ordering::Relaxed) == 0 {
        arch_enter_lazy_mmu_mode();
    }
}

/// lazy_mmu_mode_disable(): only the outermost call leaves.
pub fn lazy_mmu_mode_disable() {
    if lazy_depth().fetch_sub(1, Ordering::Relaxed) == 1 {
        arch_leave_lazy_mmu_mode();
    }
}

/// True inside a lazy-MMU batch: [`set_pte`] then stores without a guard.
#[inline(always)]
pub fn lazy_mmu_mode_active() -> bool {
    lazy_depth().load(Ordering::Relaxed) != 0
}

/// A paused batch, for [`lazy_mmu_mode_resume`].
pub struct LazyPaused {
    depth: u32,
    saved_por: u64,
}

/// lazy_mmu_mode_pause(): the current batch stops being active (POR_EL1 is
/// left as it is) so that [`set_pte`] guards its stores again.
pub fn lazy_mmu_mode_pause() -> LazyPaused {
    LazyPaused {
        depth: lazy_depth().swap(0, Ordering::Relaxed),
        saved_por: lazy_saved_por().load(Ordering::Relaxed),
    }
}

/// lazy_mmu_mode_resume(): the paused batch is active again.
pub fn lazy_mmu_mode_resume(p: LazyPaused) {
    lazy_saved_por().store(p.saved_por, Ordering::Relaxed);
    lazy_depth().store(p.depth, Ordering::Relaxed);
}

/// Counts one page-table store made by other instructions than
/// [`write_once`].
#[inline(always)]
pub fn count_write() {
    TABLE_WRITES.fetch_add(1, Ordering::Relaxed);
}

/// Page-table stores counted so far.
pub fn table_writes() -> u64 {
    TABLE_WRITES.load(Ordering::Relaxed)
}

/// WRITE_ONCE(*ptep, val): one `STR Xt, [Xn]` (counted).
///
/// # Safety
/// `ptep` must be a mapped, writable (at stage 1 base permissions),
/// 8-byte-aligned descriptor address.
#[inline(always)]
pub unsafe fn write_once(ptep: u64, val: u64) {
    unsafe { asm!("str {v}, [{p}]", v = in(reg) val, p = in(reg) ptep, options(nostack)) };
    count_write();
}

/// set_pte(): [`write_once`] inside a kpkeys guard, or bare inside a
/// lazy-MMU batch (whose level is assumed raised); then `DSB ISHST` so the
/// table walker sees it.
///
/// # Safety
/// As [`write_once`].
#[inline(always)]
pub unsafe fn set_pte(ptep: u64, val: u64) {
    if lazy_mmu_mode_active() {
        unsafe { write_once(ptep, val) };
    } else {
        guard(|| unsafe { write_once(ptep, val) });
    }
    unsafe { asm!("dsb ishst", options(nostack)) };
}
