//! Stage 2: the guest's view of physical memory. Guest RAM is identity
//! mapped in 4 KiB pages (so single pages can later be made read-only or
//! execute-never without splitting blocks); device MMIO from the device
//! tree passes through with blocks where possible; hyp memory, the trace
//! UART and hidden DMA-capable devices (crate::dma) are left unmapped, so a
//! guest access to them faults to EL2. The tables come from the pool at the
//! end of hyp memory, sized from RAM at boot
//! (porwatch_monitor::layout::stage2_tables). The SMMU, when porwatch runs
//! one, walks these same tables: every permission change here is
//! invalidated in its TLB too.
use super::cpu::IdRegs;
use super::table_pool::RegionPool;
use crate::boot::Layout;
use core::sync::atomic::{AtomicBool, Ordering};
use porwatch_monitor::fdt::dma::{self, MAX_DMA_DEVICES};
use porwatch_monitor::fdt::{Platform, Region};
use porwatch_monitor::layout::TABLE_BYTES;
use porwatch_monitor::pgtable::desc::{with_s2ap, with_s2xn, S2Ap, S2Xn};
use porwatch_monitor::pgtable::regs::{effective_pa_range, stage2_regime, vtcr_el2};
use porwatch_monitor::pgtable::{Granularity, MapError, PageTable, S2Attrs, Tlbi};
use spin::Mutex;

pub const PAGE: u64 = 4096;
/// VMID of the one guest (VTTBR_EL2[63:48]).
const GUEST_VMID: u64 = 1;
const VTTBR_VMID_SHIFT: u32 = 48;

/// Set by the one `build`: the pool's memory is handed out once.
static BUILT: AtomicBool = AtomicBool::new(false);

pub type Stage2Table = PageTable<RegionPool>;

/// The guest's stage-2 tables, for the trap path (later issues change
/// single pages' permissions).
pub static STAGE2: Mutex<Option<Stage2Table>> = Mutex::new(None);

pub struct Stage2 {
    pub vtcr: u64,
    pub vttbr: u64,
    /// The root table's physical address (VTTBR_EL2 without the VMID).
    pub root: u64,
}

/// Why stage 2 could not be built: what, and the range concerned.
pub struct Stage2Error {
    pub what: &'static str,
    pub range: Option<(u64, u64)>,
}

impl Stage2Error {
    const fn new(what: &'static str) -> Self {
        Self { what, range: None }
    }

    fn map(kind: &'static str, s: u64, e: u64, err: MapError) -> Self {
        let what = match (kind, err) {
            (_, MapError::OutOfTables) => "the stage-2 table pool is exhausted (a porwatch bug: layout::stage2_tables undercounts) mapping",
            (_, MapError::Overlap) => "overlapping ranges in the device tree at",
            (_, MapError::OutOfRange) => "beyond the CPU's physical address size:",
            ("ram", _) => "cannot map guest RAM",
            _ => "cannot map a device region",
        };
        Self { what, range: Some((s, e)) }
    }
}

/// Guest RAM: every memory range minus hyp's own [start, end).
pub fn guest_ram(plat: &Platform, layout: &Layout, mut f: impl FnMut(u64, u64)) {
    for m in plat.memory.iter() {
        let (base, end) = (m.base, m.base + m.size);
        for (s, e) in [(base, end.min(layout.start)), (base.max(layout.end), end)] {
            if s < e {
                f(s, e);
            }
        }
    }
}

pub fn is_guest_ram(plat: &Platform, layout: &Layout, addr: u64) -> bool {
    let mut hit = false;
    guest_ram(plat, layout, |s, e| hit |= (s..e).contains(&addr));
    hit
}

/// Holes [`passthrough`] can take (the hidden devices' regions, the
/// emulated redistributor pages, the trace UART).
pub const MAX_HOLES: usize = MAX_DMA_DEVICES * 2 + crate::gicr::MAX_REDISTRIBUTORS + 1;

/// Device MMIO passed through: the device tree's regions minus the page of
/// `hidden_uart` (the trace UART) and the pages of `hidden` devices.
pub fn passthrough(plat: &Platform, hidden_uart: Option<u64>, hidden: &[Region], f: impl FnMut(u64, u64)) {
    let mut holes: heapless::Vec<Region, MAX_HOLES> = heapless::Vec::new();
    for r in hidden.iter().copied().chain(hidden_uart.map(|b| Region::new(b & !(PAGE - 1), PAGE))) {
        // More holes than fit: none are dropped, all is hidden instead.
        if holes.push(r).is_err() {
            return;
        }
    }
    dma::subtract(&plat.mmio, &holes, PAGE, f);
}

/// VTCR_EL2 for this CPU (the SMMU's configuration derives from it).
pub fn vtcr(ids: &IdRegs) -> Option<u64> {
    let pa_range = ids.pa_range() as u8;
    let (_, ipa_bits) = effective_pa_range(pa_range);
    vtcr_el2(ipa_bits, pa_range).map(|(v, _, _)| v)
}

pub fn build(
    ids: &IdRegs,
    plat: &Platform,
    layout: &Layout,
    hidden_uart: Option<u64>,
    hidden: &[Region],
) -> Result<Stage2, Stage2Error> {
    let no_geometry = || Stage2Error::new("no stage-2 geometry for this PA range");
    let pa_range = ids.pa_range() as u8;
    let (_, ipa_bits) = effective_pa_range(pa_range);
    let (vtcr, _, _) = vtcr_el2(ipa_bits, pa_range).ok_or_else(no_geometry)?;
    let regime = stage2_regime(ipa_bits, pa_range).ok_or_else(no_geometry)?;
    if BUILT.swap(true, Ordering::AcqRel) {
        return Err(Stage2Error::new("stage 2 built twice"));
    }
    let tables = (layout.pool_end - layout.pool_start) / TABLE_BYTES;
    // SAFETY: the pool is hyp memory (never guest RAM), mapped RW at EL2
    // (mmu.rs), 2 MiB aligned, and used by nothing else (BUILT).
    let pool = unsafe { RegionPool::new(layout.pool_start, tables as usize) };
    let mut pt =
        PageTable::new(pool, regime).map_err(|_| Stage2Error::new("no room for the stage-2 root"))?;

    let mut err = None;
    let mut ranges = heapless::Vec::new();
    guest_ram(plat, layout, |s, e| {
        if ranges.push((s, e)).is_err() {
            err = Some(Stage2Error { what: "too many guest RAM ranges at", range: Some((s, e)) });
        }
        if let Err(m) = pt.map(s, s, e - s, S2Attrs::NORMAL_RW, Granularity::PagesOnly) {
            err = Some(Stage2Error::map("ram", s, e, m));
        }
    });
    passthrough(plat, hidden_uart, hidden, |s, e| {
        if let Err(m) = pt.map(s, s, e - s, S2Attrs::DEVICE_RW, Granularity::AllowBlocks) {
            err = Some(Stage2Error::map("device", s, e, m));
        }
    });
    if let Some(e) = err {
        return Err(e);
    }
    super::fast_path::set_ram(&ranges);
    GUEST_RAM.call_once(|| ranges);
    let root = pt.root();
    let vttbr = root | (GUEST_VMID << VTTBR_VMID_SHIFT);
    *STAGE2.lock() = Some(pt);
    Ok(Stage2 { vtcr, vttbr, root })
}

/// Guest RAM ranges [start, end), recorded by `build` for the trap path
/// (a range check is cheaper than a stage-2 walk under the lock).
static GUEST_RAM: spin::Once<heapless::Vec<(u64, u64), GUEST_RAM_RANGES>> = spin::Once::new();
const GUEST_RAM_RANGES: usize = 32;

/// The PA behind `ipa` if `[ipa, ipa + len)` is guest RAM (identity mapped).
#[inline]
pub fn ram_pa(ipa: u64, len: u64) -> Option<u64> {
    let end = ipa.checked_add(len)?;
    GUEST_RAM.get()?.iter().any(|&(s, e)| ipa >= s && end <= e).then_some(ipa)
}

/// Makes the guest page at `ipa` executable or not (the tap's trigger).
/// Returns false if `ipa` is not a mapped 4 KiB page.
pub fn set_exec(ipa: u64, exec: bool) -> bool {
    let xn = if exec { S2Xn::Exec } else { S2Xn::NoExec };
    update(ipa, |d| with_s2xn(d, xn))
}

/// Makes the guest page at `ipa` writable or read-only (the page-table
/// watch's trigger). Returns false if `ipa` is not a mapped 4 KiB page.
/// Devices behind the SMMU see the change too: a page table the watch
/// makes read-only is read-only for DMA (a device write faults, the SMMU
/// reports it), and the SMMU's TLB forgets the old permission before the
/// guest runs again.
pub fn set_writable(ipa: u64, writable: bool) -> bool {
    let ap = if writable { S2Ap::ReadWrite } else { S2Ap::ReadOnly };
    let done = update(ipa, |d| with_s2ap(d, ap));
    if done {
        super::smmu::invalidate_ipa(ipa);
    }
    done
}

/// The tap's trampoline (tap.rs): the guest page at `ipa` now maps the
/// page descriptor `desc` (another output address: porwatch's shadow of
/// the guest's vector page, or the page's own descriptor back), with
/// break-before-make. Returns the descriptor it replaced (None: `ipa` is
/// not a mapped 4 KiB page, nothing changed). Devices behind the SMMU see
/// the change too.
pub fn move_page(ipa: u64, desc: u64) -> Option<u64> {
    let mut s2 = STAGE2.lock();
    let pt = s2.as_mut()?;
    let (old, tlbi) = pt.break_page(ipa).ok()?;
    // The invalid entry must be seen, and every TLB entry built from the
    // old one gone (stage-2 and combined stage-1+2), before the new entry
    // is written (KVM's stage2_try_break_pte / __kvm_tlb_flush_vmid_ipa).
    unsafe {
        core::arch::asm!(
            "dsb ishst",
            "tlbi ipas2e1is, {op}",
            "dsb ish",
            "tlbi vmalle1is",
            "dsb ish",
            "isb",
            op = in(reg) tlbi.operand(),
            options(nostack)
        );
    }
    let made = pt.make_page(ipa, desc);
    // A refused descriptor (a porwatch bug) leaves the old one in place.
    let _ = made.or_else(|_| pt.make_page(ipa, old));
    unsafe { core::arch::asm!("dsb ishst", "isb", options(nostack)) };
    drop(s2);
    super::smmu::invalidate_ipa(ipa);
    Some(old)
}

/// A stage-2 page descriptor for porwatch's shadow of a guest page at `pa`:
/// normal memory the guest can execute but not read or write (S2AP = 00,
/// XN = 0), so only instruction fetches reach it.
pub fn execute_only_desc(pa: u64) -> u64 {
    let attrs = S2Attrs { s2ap: S2Ap::None, ..S2Attrs::NORMAL_RW };
    porwatch_monitor::pgtable::desc::leaf_desc(pa, attrs.bits(), porwatch_monitor::pgtable::LAST_LEVEL)
}

/// Changes one page descriptor's permissions and invalidates the TLBs.
fn update(ipa: u64, f: impl FnOnce(u64) -> u64) -> bool {
    let update = {
        let mut s2 = STAGE2.lock();
        match s2.as_mut().map(|pt| pt.update_page(ipa, f)) {
            Some(Ok(u)) => u,
            _ => return false,
        }
    };
    if let Tlbi::Stage2Ipa { .. } = update.tlbi {
        let op = update.tlbi.operand();
        // KVM __kvm_tlb_flush_vmid_ipa: the IPA's stage-2 entries, then the
        // combined stage-1+2 entries (only a stage-1 invalidation removes them).
        unsafe {
            core::arch::asm!(
                "dsb ishst",
                "tlbi ipas2e1is, {op}",
                "dsb ish",
                "tlbi vmalle1is",
                "dsb ish",
                "isb",
                op = in(reg) op,
                options(nostack)
            );
        }
    }
    true
}
