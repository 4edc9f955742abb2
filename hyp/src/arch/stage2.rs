//! Stage 2: the guest's view of physical memory. Guest RAM is identity
//! mapped in 4 KiB pages (so single pages can later be made read-only or
//! execute-never without splitting blocks); device MMIO from the device
//! tree passes through with blocks where possible; hyp memory, the trace
//! UART and hidden DMA-capable devices (crate::dma) are left unmapped, so a
//! guest access to them faults to EL2. The tables come from the pool at the
//! end of hyp memory, sized from RAM at boot
//! (porwatch_monitor::layout::stage2_tables). The SMMU, when porwatch runs
//! one, walks the shared tables: every permission change here is
//! invalidated in its TLB too.
//!
//! One stage 2 (one VMID) for every CPU, but each CPU translates through its
//! own root (porwatch_monitor::pgtable::PrivateRoot): the same tables except
//! the path to that CPU's vector page, whose execute permission is the
//! CPU's own (the tap opens it for the CPU it steps, and only for that
//! one). VTTBR_EL2 holds the CPU's private root. TLB maintenance:
//! * a shared change (the page-table watch's read-only pages) is copied
//!   into each private leaf table that covers it, then invalidated on every
//!   CPU: `TLBI IPAS2E1IS` and `TLBI VMALLE1IS` (combined entries), inner
//!   shareable, after `DSB ISHST`;
//! * a CPU's private change (its vector page's XN) is invalidated on that
//!   CPU only (`TLBI IPAS2E1`, `TLBI VMALLE1`, non-shareable): no other CPU
//!   ever walks its private tables. TLB entries are per CPU (VTTBR_EL2.CnP
//!   = 0), so different roots under one VMID never mix.
use super::cpu::IdRegs;
use super::layout::Layout;
use super::table_pool::RegionPool;
use core::sync::atomic::{AtomicBool, Ordering};
use porwatch_monitor::cpus::MAX_CPUS;
use porwatch_monitor::fdt::dma::{self, MAX_DMA_DEVICES};
use porwatch_monitor::fdt::{Platform, Region};
use porwatch_monitor::layout::TABLE_BYTES;
use porwatch_monitor::pgtable::desc::{with_s2ap, with_s2xn, S2Ap, S2Xn, S2_XN_MASK};
use porwatch_monitor::pgtable::regs::{effective_pa_range, stage2_regime, vtcr_el2};
use porwatch_monitor::pgtable::{Granularity, MapError, PageTable, PrivateRoot, S2Attrs, Tlbi};
use spin::Mutex;

pub const PAGE: u64 = 4096;
/// VMID of the one guest (VTTBR_EL2[63:48]).
const GUEST_VMID: u64 = 1;
const VTTBR_VMID_SHIFT: u32 = 48;

/// Set by the one `build`: the pool's memory is handed out once.
static BUILT: AtomicBool = AtomicBool::new(false);

pub type Stage2Table = PageTable<RegionPool>;

/// The guest's stage-2 tables and each CPU's private root, for the trap
/// path (single pages' permissions change).
struct Tables {
    pt: Stage2Table,
    /// By CPU index; `None` beyond the machine's CPUs.
    private: [Option<PrivateRoot>; MAX_CPUS],
    /// Guest pages mapped to porwatch's shadows (the tap's trampoline,
    /// patched code pages): (IPA, the page's own descriptor).
    moved: [Option<(u64, u64)>; MAX_MOVED],
}

/// Pages the trampoline may move at once (arch/trampoline.rs's shadows).
pub const MAX_TRAMPOLINES: usize = 4;
/// Pages moved at once: the trampoline's and the patched code pages'
/// (arch/code_shadow.rs).
pub const MAX_MOVED: usize = MAX_TRAMPOLINES + super::code_shadow::MAX_CODE_SHADOWS;

static STAGE2: Mutex<Option<Tables>> = Mutex::new(None);

pub struct Stage2 {
    pub vtcr: u64,
    /// The shared root table's physical address (what the SMMU walks;
    /// the CPUs translate through their private roots, [`vttbr`]).
    pub root: u64,
}

/// VTTBR_EL2 of CPU `cpu`: its private root, with the guest's VMID.
pub fn vttbr(cpu: usize) -> u64 {
    let s2 = STAGE2.lock();
    let root = s2.as_ref().and_then(|t| t.private.get(cpu).copied().flatten().map(|p| p.root()));
    root.unwrap_or(0) | (GUEST_VMID << VTTBR_VMID_SHIFT)
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
    cpus: usize,
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
    let mut private = [None; MAX_CPUS];
    for p in private.iter_mut().take(cpus.min(MAX_CPUS)) {
        *p = Some(pt.new_private().map_err(|_| {
            Stage2Error::new("the stage-2 table pool is exhausted (a porwatch bug: layout::stage2_tables undercounts) giving each CPU its root")
        })?);
    }
    super::fast_path::set_ram(&ranges);
    GUEST_RAM.call_once(|| ranges);
    let root = pt.root();
    *STAGE2.lock() = Some(Tables { pt, private, moved: [None; MAX_MOVED] });
    Ok(Stage2 { vtcr, root })
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

/// Makes `ipa`'s page (None: no page) CPU `cpu`'s private page, mapped as
/// the guest's own page (even where the shared tables map the trampoline's
/// shadow) and execute-never (`exec` false: the tap's execute-never
/// trigger) or not (`exec`: one data access to a hooked page, stepped); the
/// previous one follows the shared tables again. Called on that CPU.
/// Returns false if `ipa` is not a mapped 4 KiB page (then the CPU has none).
pub fn set_vector_page(cpu: usize, ipa: Option<u64>, exec: bool) -> bool {
    let xn = if exec { S2Xn::Exec } else { S2Xn::NoExec };
    let ok = {
        let mut s2 = STAGE2.lock();
        let Some(t) = s2.as_mut() else { return false };
        let own = ipa.and_then(|i| t.moved_own(i & !(PAGE - 1)));
        let Some(p) = t.private.get_mut(cpu).and_then(|p| p.as_mut()) else { return false };
        let mut ok = t.pt.set_private_page(p, ipa).is_ok();
        if let (true, Some(own)) = (ok, own) {
            // The copied descriptor is the shadow's: the guest's page
            // instead, break-before-make on this CPU's root alone.
            ok = match t.pt.break_private_page(p) {
                Ok((_, tlbi)) => {
                    // SAFETY: TLB maintenance for the current VMID on this CPU.
                    unsafe {
                        core::arch::asm!(
                            "dsb ishst",
                            "tlbi ipas2e1, {op}",
                            "dsb nsh",
                            op = in(reg) tlbi.operand(),
                            options(nostack)
                        )
                    };
                    t.pt.make_private_page(p, own).is_ok()
                }
                Err(_) => false,
            };
        }
        if ok && ipa.is_some() {
            ok = t.pt.update_private_page(p, |d| with_s2xn(d, xn)).is_ok();
        }
        if !ok {
            let _ = t.pt.set_private_page(p, None);
        }
        ok
    };
    // The path was rebuilt: every translation this CPU cached through it
    // may have changed (the old page is executable again). Only this CPU
    // walks its root.
    // SAFETY: TLB maintenance for the current VMID on this CPU.
    unsafe { core::arch::asm!("dsb ishst", "tlbi vmalls12e1", "dsb nsh", "isb", options(nostack)) };
    ok && ipa.is_some()
}

/// Makes CPU `cpu`'s vector page executable (while the tap steps through
/// it) or execute-never again, for that CPU only. Called on that CPU.
pub fn set_vector_exec(cpu: usize, exec: bool) -> bool {
    let xn = if exec { S2Xn::Exec } else { S2Xn::NoExec };
    let u = {
        let mut s2 = STAGE2.lock();
        let Some(t) = s2.as_mut() else { return false };
        let Some(p) = t.private.get(cpu).copied().flatten() else { return false };
        match t.pt.update_private_page(&p, |d| with_s2xn(d, xn)) {
            Ok(u) => u,
            Err(_) => return false,
        }
    };
    if let Tlbi::Stage2Ipa { .. } = u.tlbi {
        // As `update`, but on this CPU only (non-shareable).
        // SAFETY: a barrier; the table write above is complete for this CPU.
        unsafe { core::arch::asm!("dsb ishst", options(nostack)) };
        invalidate_local(u.tlbi.operand());
    }
    true
}

/// This CPU's stage-2 entries for the IPA in `op` (a `TLBI IPAS2E1`
/// operand) and its combined stage 1+2 entries (only a stage-1
/// invalidation removes those).
fn invalidate_local(op: u64) {
    // SAFETY: TLB maintenance for the current VMID on this CPU.
    unsafe {
        core::arch::asm!(
            "tlbi ipas2e1, {op}",
            "dsb nsh",
            "tlbi vmalle1",
            "dsb nsh",
            "isb",
            op = in(reg) op,
            options(nostack)
        );
    }
}

/// Whether stage 2 maps `ipa` now. A translation fault on a page that is
/// mapped by the time EL2 looks was taken while another CPU replaced its
/// descriptor (break-before-make: a shadow moved in or out): the access is
/// retried, as KVM does.
pub fn maps(ipa: u64) -> bool {
    STAGE2.lock().as_ref().is_some_and(|t| t.pt.lookup(ipa).is_some())
}

/// The IPA of the current stage-2 fault from HPFAR_EL2 (valid for
/// translation and access-flag faults, and on a stage-1 walk): FIPA [47:4]
/// holds IPA [55:12].
pub fn fault_ipa() -> u64 {
    let hpfar: u64;
    // SAFETY: reads a system register.
    unsafe { core::arch::asm!("mrs {}, hpfar_el2", out(reg) hpfar, options(nomem, nostack)) };
    ((hpfar >> 4) & 0x0fff_ffff_ffff) << 12
}

/// Whether stage 2 lets the guest write `ipa` now (None: not mapped). With
/// several CPUs a write fault can reach porwatch after another CPU made the
/// page writable again (the page-table watch let it go): the store is then
/// retried, as the hardware would now allow it.
pub fn grants_write(ipa: u64) -> Option<bool> {
    let s2 = STAGE2.lock();
    let leaf = s2.as_ref()?.pt.lookup(ipa)?;
    Some(matches!(S2Attrs::from_desc(leaf.desc).s2ap, S2Ap::ReadWrite | S2Ap::WriteOnly))
}

/// Makes the guest page at `ipa` writable or read-only for every CPU (the
/// page-table watch's trigger). Returns false if `ipa` is not a mapped
/// 4 KiB page. Devices behind the SMMU see the change too: a page table the
/// watch makes read-only is read-only for DMA (a device write faults, the
/// SMMU reports it), and the SMMU's TLB forgets the old permission before
/// the guest runs again.
pub fn set_writable(ipa: u64, writable: bool) -> bool {
    let ap = if writable { S2Ap::ReadWrite } else { S2Ap::ReadOnly };
    let done = update(ipa, |d| with_s2ap(d, ap), CpuTlbi::Broadcast);
    if done {
        super::smmu::invalidate_ipa(ipa);
    }
    done
}

/// Makes the page at `ipa` writable like `set_writable(ipa, true)`, but
/// leaves the CPUs' TLBs alone (the SMMU's is still invalidated): under
/// QEMU each invalidation empties the whole TLB, and granting a permission
/// needs none architecturally. A CPU that still holds the read-only entry
/// takes a spurious permission fault; the fault path answers it with
/// [`forget_stale_write_fault`] and a retry.
pub fn allow_write(ipa: u64) -> bool {
    let done = update(ipa, |d| with_s2ap(d, S2Ap::ReadWrite), CpuTlbi::None);
    if done {
        super::smmu::invalidate_ipa(ipa);
    }
    done
}

/// A write fault on a page stage 2 already grants write (after
/// [`allow_write`]): drops this CPU's stale entries for it, so the retry
/// sees the new permission.
pub fn forget_stale_write_fault(ipa: u64) {
    invalidate_local(Tlbi::Stage2Ipa { ipa: ipa & !(PAGE - 1) }.operand());
}

/// What [`update`] invalidates in the CPUs' TLBs after the change.
#[derive(Clone, Copy, PartialEq, Eq)]
enum CpuTlbi {
    /// The IPA's stage-2 and all combined entries, on every CPU.
    Broadcast,
    /// Nothing (a permission was only granted).
    None,
}

/// The tap's trampoline (tap.rs, arch/trampoline.rs): the guest page at
/// `ipa` maps porwatch's shadow at `shadow_pa` (execute-only) for every CPU
/// and the SMMU, with break-before-make in the shared tables and every
/// private copy of its leaf table (a CPU whose private page it is keeps its
/// own descriptor: the guest's page). False: `ipa` is not a mapped 4 KiB
/// page or is moved already (nothing changed).
pub fn move_to_shadow(ipa: u64, shadow_pa: u64) -> bool {
    let page = ipa & !(PAGE - 1);
    let shadow = execute_only_desc(shadow_pa);
    let mut s2 = STAGE2.lock();
    let Some(t) = s2.as_mut() else { return false };
    if t.moved_own(page).is_some() {
        return false;
    }
    let Some(free) = t.moved.iter().position(Option::is_none) else { return false };
    let Some(own) = t.replace(page, |_| shadow) else { return false };
    t.moved[free] = Some((page, own));
    drop(s2);
    super::smmu::invalidate_ipa(page);
    true
}

/// The guest page at `ipa` maps itself again for everyone (`xn`: but
/// execute-never in the shared tables, so every CPU still using the
/// trampoline there faults on its next fetch and takes the execute-never
/// tap: tap.rs). Returns false if it was not moved.
pub fn restore_from_shadow(ipa: u64, xn: bool) -> bool {
    let page = ipa & !(PAGE - 1);
    let mut s2 = STAGE2.lock();
    let Some(t) = s2.as_mut() else { return false };
    let Some(i) = t.moved.iter().position(|m| m.is_some_and(|(p, _)| p == page)) else { return false };
    let Some((_, own)) = t.moved[i] else { return false };
    let desc = if xn { with_s2xn(own, S2Xn::NoExec) } else { own };
    if t.replace(page, |_| desc).is_none() {
        return false;
    }
    t.moved[i] = None;
    drop(s2);
    super::smmu::invalidate_ipa(page);
    true
}

/// Makes the guest page at `ipa`, which the shared tables map execute-never
/// after [`restore_from_shadow`] with `xn`, executable again.
pub fn clear_shared_xn(ipa: u64) {
    let _ = update(ipa & !(PAGE - 1), |d| with_s2xn(d, S2Xn::Exec), CpuTlbi::Broadcast);
}

/// A stage-2 page descriptor for porwatch's shadow of a guest page at `pa`:
/// normal memory the guest can execute but not read or write (S2AP = 00,
/// XN = 0), so only instruction fetches reach it.
fn execute_only_desc(pa: u64) -> u64 {
    let attrs = S2Attrs { s2ap: S2Ap::None, ..S2Attrs::NORMAL_RW };
    porwatch_monitor::pgtable::desc::leaf_desc(pa, attrs.bits(), porwatch_monitor::pgtable::LAST_LEVEL)
}

impl Tables {
    fn privates(&self) -> ([PrivateRoot; MAX_CPUS], usize) {
        let mut privates = [PrivateRoot::EMPTY; MAX_CPUS];
        let mut n = 0;
        for p in self.private.iter().flatten() {
            privates[n] = *p;
            n += 1;
        }
        (privates, n)
    }

    /// The own descriptor of a page the trampoline moved.
    fn moved_own(&self, page: u64) -> Option<u64> {
        self.moved.iter().flatten().find(|(p, _)| *p == page).map(|&(_, own)| own)
    }

    /// Break-before-make of `page` (shared and mirrored) to `f(old)`,
    /// invalidated on every CPU between the two steps; returns the old
    /// descriptor.
    fn replace(&mut self, page: u64, f: impl FnOnce(u64) -> u64) -> Option<u64> {
        let (privates, n) = self.privates();
        let (old, tlbi) = self.pt.break_page_mirrored(page, &privates[..n]).ok()?;
        // The invalid entry must be seen, and every TLB entry built from the
        // old one gone (stage-2 and combined stage-1+2), on every CPU, before
        // the new entry is written (KVM's stage2_try_break_pte /
        // __kvm_tlb_flush_vmid_ipa).
        // SAFETY: TLB maintenance for the guest's VMID.
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
        if self.pt.make_page_mirrored(page, f(old), &privates[..n]).is_err() {
            // A refused descriptor (a porwatch bug) leaves the old one.
            let _ = self.pt.make_page_mirrored(page, old, &privates[..n]);
        }
        // SAFETY: barriers only.
        unsafe { core::arch::asm!("dsb ishst", "isb", options(nostack)) };
        Some(old)
    }
}

/// Changes one page descriptor's permissions (in the shared tables and
/// every CPU's copy of its leaf table) and invalidates the TLBs of every CPU.
/// A page the trampoline moved keeps the shadow in the shared tables: the
/// change goes to its own descriptor (restored later) and to the private
/// roots that map it as itself.
fn update(ipa: u64, f: impl Fn(u64) -> u64, cpu_tlbi: CpuTlbi) -> bool {
    let update = {
        let mut s2 = STAGE2.lock();
        let Some(t) = s2.as_mut() else { return false };
        let page = ipa & !(PAGE - 1);
        if let Some(i) = t.moved.iter().position(|m| m.is_some_and(|(p, _)| p == page)) {
            let Some((_, own)) = t.moved[i] else { return false };
            t.moved[i] = Some((page, f(own)));
            for p in t.private.iter().flatten().filter(|p| p.page() == Some(page)) {
                let _ = t.pt.update_private_page(p, &f);
            }
            porwatch_monitor::pgtable::PageUpdate {
                old: own,
                new: f(own),
                tlbi: Tlbi::Stage2Ipa { ipa: page },
            }
        } else {
            let (privates, n) = t.privates();
            match t.pt.update_page_mirrored(ipa, f, &privates[..n], S2_XN_MASK) {
                Ok(u) => u,
                _ => return false,
            }
        }
    };
    if let (Tlbi::Stage2Ipa { .. }, CpuTlbi::Broadcast) = (update.tlbi, cpu_tlbi) {
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
