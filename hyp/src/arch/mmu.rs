//! hyp's own EL2 stage-1 MMU: an identity map of RAM and the UARTs, with
//! hyp's image mapped W^X (text RX, rodata RO, data/bss/stack RW NX), an
//! unmapped guard page below the stack, and the stage-2 table pool RW NX.
use super::cpu::{dsb_ish, isb, IdRegs};
use super::layout::Layout;
use super::regs::{CTR_EL0, CTR_EL0_REG};
use super::table_pool::TablePool;
use aarch64_cpu::registers::*;
use porwatch_monitor::fdt::Platform;
use porwatch_monitor::pgtable::regs::{stage1_el2_regime, tcr_el2, MAIR_EL2_VALUE};
use porwatch_monitor::pgtable::{Granularity, PageTable, S1Attrs};

const PAGE: u64 = 4096;
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
        (layout.rodata_end, layout.stack_guard, S1Attrs::NORMAL_RW),
        (layout.stack_bottom, layout.pool_start, S1Attrs::NORMAL_RW),
    ];
    for (s, e, a) in pieces {
        if s < e {
            ok &= pt.map(s, s, e - s, a, Granularity::PagesOnly).is_ok();
        }
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
    Ok(())
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
