//! hyp's own EL2 stage-1 MMU: an identity map of RAM and the UARTs, with
//! hyp's image mapped W^X (text RX, rodata RO, data/bss/stacks RW NX), an
//! unmapped guard page below each CPU's stack, and the stage-2 table pool
//! RW NX. Secondary CPUs turn on the same map ([`SECONDARY_REGS`]).
use super::cpu::{dsb_ish, isb, IdRegs};
use super::layout::{Layout, STACK_GUARD, STACK_SIZE, STACK_STRIDE};
use super::regs::{CTR_EL0, CTR_EL0_REG};
use super::table_pool::TablePool;
use aarch64_cpu::registers::*;
use porwatch_monitor::fdt::Platform;
use porwatch_monitor::pgtable::regs::{stage1_el2_regime, tcr_el2, MAIR_EL2_VALUE};
use porwatch_monitor::pgtable::{Granularity, PageTable, S1Attrs};

use core::sync::atomic::{AtomicU64, Ordering};

const PAGE: u64 = 4096;

/// The EL2 MMU registers a secondary CPU programs before turning its MMU on
/// (boot.S `secondary_entry`, with its MMU still off: [`enable`] cleans
/// this to the point of coherency). Layout shared with boot.S: MAIR, TCR,
/// TTBR0, SCTLR.
#[repr(C, align(64))]
pub struct SecondaryRegs {
    mair: AtomicU64,
    tcr: AtomicU64,
    ttbr0: AtomicU64,
    sctlr: AtomicU64,
}

#[unsafe(no_mangle)]
pub static SECONDARY_REGS: SecondaryRegs = SecondaryRegs {
    mair: AtomicU64::new(0),
    tcr: AtomicU64::new(0),
    ttbr0: AtomicU64::new(0),
    sctlr: AtomicU64::new(0),
};
/// Enough for RAM in 1 GiB/2 MiB blocks, hyp's image in pages, and the UARTs.
pub const EL2_TABLES: usize = 64;

/// Builds the map in `pool` and turns the MMU and caches on. Runs once, at
/// boot, with the MMU off; on failure the MMU stays off and the caller
/// reports why.
pub fn enable(
    pool: &'static mut TablePool<EL2_TABLES>,
    ids: &IdRegs,
    layout: &Layout,
    plat: &Platform,
    devices: &[Option<u64>],
) -> Result<(), &'static str> {
    let pa_range = ids.pa_range() as u8;
    let Ok(mut pt) = PageTable::new(pool, stage1_el2_regime(pa_range)) else {
        return Err("no root table");
    };
    let mut ok = true;
    for m in plat.memory.iter() {
        let (base, end) = (m.base, m.base + m.size);
        // RAM outside hyp: blocks where possible.
        for (s, e) in [(base, end.min(layout.start)), (base.max(layout.end), end)] {
            if s < e {
                ok &= pt.map(s, s, e - s, S1Attrs::NORMAL_RW, Granularity::AllowBlocks).is_ok();
            }
        }
    }
    let pieces = [
        (layout.start, layout.text_end, S1Attrs::NORMAL_RX),
        (layout.text_end, layout.rodata_end, S1Attrs::NORMAL_RO),
        (layout.rodata_end, layout.stacks, S1Attrs::NORMAL_RW),
        (layout.stacks_end, layout.pool_start, S1Attrs::NORMAL_RW),
    ];
    for (s, e, a) in pieces {
        if s < e {
            ok &= pt.map(s, s, e - s, a, Granularity::PagesOnly).is_ok();
        }
    }
    // Each CPU's stack, its guard page left unmapped: an overflow faults.
    let mut guard = layout.stacks;
    while guard < layout.stacks_end {
        let s = guard + STACK_GUARD;
        ok &= pt.map(s, s, STACK_SIZE, S1Attrs::NORMAL_RW, Granularity::PagesOnly).is_ok();
        guard += STACK_STRIDE;
    }
    // The pool: 2 MiB aligned and sized, so blocks (it grows with RAM).
    if layout.pool_start < layout.end {
        let (s, e) = (layout.pool_start, layout.end);
        ok &= pt.map(s, s, e - s, S1Attrs::NORMAL_RW, Granularity::AllowBlocks).is_ok();
    }
    for &d in devices.iter().flatten() {
        let base = d & !(PAGE - 1);
        ok &= pt.map(base, base, PAGE, S1Attrs::DEVICE_RW, Granularity::PagesOnly).is_ok();
    }
    if !ok {
        return Err("RAM, porwatch or a UART does not fit its tables or the PA size");
    }
    let root = pt.root();

    // Tables and data were written with the MMU (so the caches) off: drop any
    // stale clean lines the loader may have left before the caches come on.
    // (The stage-2 pool is first written with the caches on.)
    invalidate_dcache_range(layout.start, layout.pool_start);

    MAIR_EL2.set(MAIR_EL2_VALUE);
    TCR_EL2.set(tcr_el2(pa_range));
    TTBR0_EL2.set(root);
    isb();
    unsafe { core::arch::asm!("tlbi alle2", options(nostack)) };
    dsb_ish();
    isb();
    SCTLR_EL2.modify(
        SCTLR_EL2::M::Enable + SCTLR_EL2::C::Cacheable + SCTLR_EL2::I::Cacheable + SCTLR_EL2::SA::Enable,
    );
    isb();
    let r = &SECONDARY_REGS;
    r.mair.store(MAIR_EL2.get(), Ordering::Relaxed);
    r.tcr.store(TCR_EL2.get(), Ordering::Relaxed);
    r.ttbr0.store(root, Ordering::Relaxed);
    r.sctlr.store(SCTLR_EL2.get(), Ordering::Relaxed);
    clean_to_poc(r as *const SecondaryRegs as u64, core::mem::size_of::<SecondaryRegs>() as u64);
    Ok(())
}

/// Writes the cache lines of `[start, start + len)` back to the point of
/// coherency, for a CPU that reads them with its MMU (and caches) off.
pub fn clean_to_poc(start: u64, len: u64) {
    let line = 4u64 << CTR_EL0_REG.read(CTR_EL0::DminLine);
    let mut a = start & !(line - 1);
    while a < start + len {
        // SAFETY: cache maintenance of mapped memory; no data changes.
        unsafe { core::arch::asm!("dc civac, {}", in(reg) a, options(nostack)) };
        a += line;
    }
    // SAFETY: a barrier.
    unsafe { core::arch::asm!("dsb sy", options(nostack)) };
}

fn invalidate_dcache_range(start: u64, end: u64) {
    // CTR_EL0.DminLine [19:16]: log2 of the smallest D-cache line in words.
    let line = 4u64 << CTR_EL0_REG.read(CTR_EL0::DminLine);
    let mut a = start & !(line - 1);
    while a < end {
        unsafe { core::arch::asm!("dc ivac, {}", in(reg) a, options(nostack)) };
        a += line;
    }
    dsb_ish();
}
