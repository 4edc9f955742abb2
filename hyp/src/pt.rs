//! The page-table watch (mechanism): porwatch write-protects every stage-1
//! table page of the guest at stage 2, emulates each store that faults on
//! one, and checks it against the permission overlay. The decisions are in
//! porwatch_monitor: `s1` (regime, walk, tracker, overlay rule) and `store`
//! (decoding the faulting instruction).
use crate::arch::frame::GuestRegs;
use crate::arch::percpu;
use crate::arch::regs::{PIRE0_EL1_REG, PIR_EL1_REG, POR_EL1_REG};
use crate::arch::{at, fast_path, inject, stage2};
use crate::boot::config;
use crate::tap;
use crate::trace_out;
use crate::traps::Handled;
use aarch64_cpu::registers::*;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use porwatch_monitor::cmdline::Policy;
use porwatch_monitor::cpus::MAX_CPUS;
use porwatch_monitor::esr::{DataAbort, FaultStatus};
use porwatch_monitor::s1::{self, Action, GuestMem, Half, OverlayRegs, Privilege, Regime, Tracker};
use porwatch_monitor::store::{self, Plan, Regs};
use porwatch_monitor::tap::page_of;
use porwatch_monitor::vpoe::Mode;
use porwatch_trace::{Event, GapReason, HazardAction, PorReg, TrapOutcome};
use spin::Mutex;

mod mops;
mod open_leaves;
mod parts;
mod step;
mod walk_abort;

pub use open_leaves::on_tcr2;
pub use step::{on_step as on_step_pending, on_trap as on_trap_while_stepping};
pub use walk_abort::on_stage2_walk_fault;

/// DC ZVA blocks are zeroed and tracked in chunks of this many bytes.
const CHUNK: usize = 32;
/// DCZID_EL0.BS allows blocks up to 2 KiB.
const MAX_ZVA: usize = 2048;
/// Table pages tracked at once (24 bytes each).
pub(crate) const MAX_TABLES: usize = 4096;
/// TTBR0 address spaces kept tracked (least recently used dropped beyond;
/// never one some CPU runs on: at least one per CPU).
const MAX_ADDRESS_SPACES: usize = if MAX_CPUS > 8 { MAX_CPUS } else { 8 };
/// ISS2 bit 6 (ESR bit 38): Overlay.
const ISS2_OVERLAY: u32 = 1 << 6;
/// Permission fault, level 0 (+ level).
const FSC_PERMISSION_L0: u8 = 0x0c;
const INSN_LEN: u64 = 4;
/// SPSR.M[3:0] values: EL0t, EL1t (SP_EL0), EL1h (SP_EL1).
const SPSR_M_MASK: u64 = 0xf;
const SPSR_M_EL1H: u64 = 0b0101;
const SPSR_M_EL0T: u64 = 0b0000;
/// `hazard.poindex` when the leaf could not be found (POIndex is 0..=7).
const POINDEX_UNKNOWN: u64 = 8;
/// `hazard.pir`: S1PIE was on (the low 4 bits are the PIR entry).
const HAZARD_PIR_ON: u64 = 0x10;
/// SCTLR_EL1.WXN (bit 19).
const SCTLR_WXN: u64 = 1 << 19;
/// SCTLR_EL1.EE (bit 25): EL1 data accesses are big-endian.
const SCTLR_EE: u64 = 1 << 25;

struct Watch {
    tracker: Tracker<MAX_TABLES>,
    /// Per CPU: the location (PA, length) of its last failed STXR to a
    /// tracked table, and the write generation seen then (see
    /// [`Watch::exclusive_may_store`]).
    excl_pending: [Option<(u64, usize, u32)>; MAX_CPUS],
    /// Each CPU's translation regime (its own TCR_EL1).
    regime: [Regime; MAX_CPUS],
    table_writes: u64,
    stores: u64,
    hazards: u64,
    gaps: u64,
    mops_steps: u64,
    /// Stores completed by single-stepping them with the page writable and
    /// comparing it before and after (pt/step.rs).
    stepped_stores: u64,
}

static WATCH: Mutex<Watch> = Mutex::new(Watch {
    tracker: Tracker::new(MAX_ADDRESS_SPACES),
    excl_pending: [None; MAX_CPUS],
    regime: [Regime::from_tcr(0); MAX_CPUS],
    table_writes: 0,
    stores: 0,
    hazards: 0,
    gaps: 0,
    mops_steps: 0,
    stepped_stores: 0,
});

/// Guest RAM as the tracker reads it (None outside guest RAM).
pub(crate) struct Ram;

impl GuestMem for Ram {
    fn read_u64(&self, ipa: u64) -> Option<u64> {
        let pa = stage2::ram_pa(ipa, 8)?;
        Some(unsafe { core::ptr::read_volatile(pa as *const u64) })
    }

    /// One range check for the whole table (the tracker scans tables).
    fn read_table(&self, ipa: u64, out: &mut [u64]) -> bool {
        let Some(pa) = stage2::ram_pa(ipa, out.len() as u64 * 8) else { return false };
        if pa % 8 != 0 {
            return false;
        }
        for (i, o) in out.iter_mut().enumerate() {
            // SAFETY: guest RAM, identity-mapped at EL2, range checked above.
            *o = unsafe { core::ptr::read_volatile((pa as *const u64).add(i)) };
        }
        true
    }
}

/// Carries out the tracker's decisions at stage 2.
fn apply(a: Action) {
    match a {
        Action::Protect(ipa) => {
            fast_path::clear_leaf_page(ipa);
            open_leaves::forget(ipa);
            stage2::set_writable(ipa, false);
        }
        Action::ProtectLeaf(ipa) => {
            fast_path::clear_leaf_page(ipa);
            if !open_leaves::open_new(ipa) {
                stage2::set_writable(ipa, false);
            }
        }
        Action::Unprotect(ipa) => {
            fast_path::clear_leaf_page(ipa);
            if !open_leaves::forget(ipa) {
                // A CPU's stale read-only entry: retry_if_writable.
                stage2::allow_write(ipa);
            }
        }
        Action::Overflow { table_ipa, .. } => {
            trace_out::emit(Event::CoverageGap {
                pc: 0,
                insn: 0,
                va: 0,
                ipa: table_ipa,
                reason: GapReason::Capacity as u64,
            });
        }
        Action::RootDropped { .. } => {}
    }
}

/// The tracker and the guest's regime, for the protection audit (audit.rs).
pub fn with_tracker<R>(f: impl FnOnce(&Tracker<MAX_TABLES>, &Regime) -> R) -> R {
    let w = WATCH.lock();
    f(&w.tracker, w.current_regime())
}

/// The guest wrote TTBR0_EL1 or TTBR1_EL1 (trapped): track the new tree.
pub fn on_ttbr_write(half: Half, value: u64) {
    match half {
        Half::Ttbr0 => TTBR0_EL1.set(value),
        Half::Ttbr1 => TTBR1_EL1.set(value),
    }
    let cpu = percpu::index();
    let mut w = WATCH.lock();
    let Ok(layout) = w.regime[cpu].layout(half) else {
        fast_path::set_walk(half, None);
        return;
    };
    let root = s1::Ttbr(value).table(&layout);
    // The walk reads the root: no native store may change it meanwhile.
    open_leaves::close(page_of(root));
    let change = w.tracker.set_root_on(cpu, half, root, &layout, &Ram, &mut apply);
    // A root inside a leaf table's page ends its leaf status
    // (Tracker::is_leaf_page).
    fast_path::clear_leaf_page(page_of(root));
    fast_path::set_walk(half, Some((root, &layout)));
    let tables = w.tracker.stats().tables as u64;
    drop(w);
    if change.walked {
        trace_out::emit(Event::PtRoot {
            half: trace_half(half) as u64,
            root,
            asid: value >> 48,
            tables,
            evicted: change.evicted.unwrap_or(0),
            levels: (s1::desc::LAST_LEVEL - layout.start_level + 1) as u64,
        });
    }
}

/// The guest wrote TCR_EL1 (trapped): the layout of both halves may change.
pub fn on_tcr_write(value: u64) {
    TCR_EL1.set(value);
    let cpu = percpu::index();
    let mut w = WATCH.lock();
    let r = Regime::from_tcr(value);
    w.regime[cpu] = r;
    // The rebuild may give tables other levels: none stays open.
    open_leaves::close_all();
    w.tracker.on_tcr_change_on(cpu, &r, &Ram, &mut apply);
    // The rebuild may give tables other levels.
    fast_path::clear_leaf_pages();
    for (half, ttbr) in [(Half::Ttbr0, TTBR0_EL1.get()), (Half::Ttbr1, TTBR1_EL1.get())] {
        match r.layout(half) {
            Ok(l) => fast_path::set_walk(half, Some((s1::Ttbr(ttbr).table(&l), &l))),
            Err(_) => fast_path::set_walk(half, None),
        }
    }
}

fn trace_half(h: Half) -> porwatch_trace::Half {
    match h {
        Half::Ttbr0 => porwatch_trace::Half::Ttbr0,
        Half::Ttbr1 => porwatch_trace::Half::Ttbr1,
    }
}

/// The trapped guest's registers for the store decoder.
struct TrapRegs<'a>(&'a GuestRegs);

impl Regs for TrapRegs<'_> {
    fn x(&self, n: u8) -> u64 {
        self.0.get(n)
    }
    fn sp(&self) -> u64 {
        if self.0.spsr & SPSR_M_MASK == SPSR_M_EL1H {
            SP_EL1.get()
        } else {
            SP_EL0.get()
        }
    }
    fn zva_block_bytes(&self) -> u64 {
        let dczid: u64;
        unsafe { core::arch::asm!("mrs {}, dczid_el0", out(reg) dczid, options(nomem, nostack)) };
        store::dczid_block_bytes(dczid)
    }
}

/// Where a store to a tracked table was caught.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// The stage-2 write protection (virtual POE, or no overlay fault).
    Stage2,
    /// Native POE: the CPU raised the overlay permission fault itself (seen
    /// by the tap at the guest's vector).
    HardwareOverlay,
}

/// A stage-2 data abort: if it is a write to a tracked table page, emulate
/// it (Some). Anything else is not ours (None; a stage-2 fault on the
/// guest's own stage-1 walk is answered by traps.rs with
/// [`on_stage2_walk_fault`]).
pub fn on_data_abort(regs: &mut GuestRegs, da: &DataAbort, far: u64) -> Option<Handled> {
    if da.s1ptw() {
        return matches!(da.dfsc(), FaultStatus::Permission { .. }).then(|| on_walker_write(regs))?;
    }
    if !da.wnr() || !matches!(da.dfsc(), FaultStatus::Permission { .. }) {
        return None;
    }
    // HPFAR_EL2 is not valid for a permission fault off the walk: the IPA
    // comes from the guest's stage 1 (a read translation, else a write
    // one: an overlay may grant write without read). If that no longer
    // translates, another CPU changed it since the fault: the retry takes
    // the guest's own stage-1 fault, if any (as KVM does).
    let translated = at::va_to_ipa(far)
        .or_else(|| at::va_to_ipa_write(far, false).ok())
        .or_else(|| at::va_to_ipa_write(far, true).ok());
    let Some(ipa) = translated else { return Some(Handled::Machinery) };
    store_to_table(regs, far, ipa, Origin::Stage2).or_else(|| retry_if_writable(ipa))
}

/// A write fault on a page that is not (any more) a tracked table: with
/// several CPUs, another one may have let the page go between the fault
/// and this CPU taking the lock. If stage 2 grants the write now, the
/// store is retried; otherwise the fault is not the watch's (None).
/// Decided under the watch's lock: the other CPU may also have made the
/// page a table again since the caller looked (then the retry traps anew
/// and the store is handled as a table store).
fn retry_if_writable(ipa: u64) -> Option<Handled> {
    let w = WATCH.lock();
    if w.tracker.is_page_protected(page_of(ipa)) {
        return Some(Handled::Machinery);
    }
    let writable = stage2::grants_write(ipa).unwrap_or(false);
    drop(w);
    if writable {
        // Made writable without invalidating the TLBs (stage2::allow_write):
        // this CPU may still hold the read-only entry.
        stage2::forget_stale_write_fault(ipa);
    }
    writable.then_some(Handled::Machinery)
}

/// The stage-1 walker itself wrote a tracked table (hardware access-flag or
/// dirty-state update, TCR_EL1.HA/HD, on a data access or an instruction
/// fetch): porwatch hides FEAT_HAFDBS while it tracks, so only a guest that
/// ignores the ID registers gets here. The walker's write cannot be
/// emulated, but it can be watched: the instruction is single-stepped with
/// the page writable and the page compared before and after (pt/step.rs),
/// so the tracker sees the update.
pub fn on_walker_write(regs: &mut GuestRegs) -> Option<Handled> {
    // HPFAR_EL2 is valid for stage-2 faults on a stage-1 walk (S1PTW = 1).
    let ipa = stage2::fault_ipa();
    let w = WATCH.lock();
    if !w.tracker.is_page_protected(ipa) {
        drop(w);
        return retry_if_writable(ipa);
    }
    let mut req = step::Request::new(regs.elr);
    req.add_page(page_of(ipa));
    Some(step::start(w, regs, req))
}

/// Native POE: the hardware faulted a write to `far` for lack of overlay
/// permission; `regs` is the faulting context (GPRs, PC, PSTATE). If the
/// write hit a tracked table it is a hazard: reported, then performed
/// (report policy: returns Some(true), resume after it) or left to the
/// guest's handler (fault policy, or not emulable: Some(false)).
pub fn on_native_overlay_fault(regs: &mut GuestRegs, far: u64) -> Option<bool> {
    let ipa = at::va_to_ipa(far)?;
    let h = store_to_table(regs, far, ipa, Origin::HardwareOverlay)?;
    Some(h == Handled::Machinery)
}

/// A store to the table page holding `ipa` (None: not a tracked table).
fn store_to_table(regs: &mut GuestRegs, far: u64, ipa: u64, origin: Origin) -> Option<Handled> {
    crate::unwind::note_store(regs);
    let mut w = WATCH.lock();
    w.tracker.is_page_protected(page_of(ipa)).then_some(())?;
    if regs.spsr & SPSR_M_MASK == SPSR_M_EL0T && origin == Origin::Stage2 {
        // No OS maps its page tables to EL0: this page was freed and reused
        // while a TTBR0 root kept in the LRU still reached it. Release the
        // idle roots; unless a live tree still reaches the page, the guest
        // retries its store natively.
        w.tracker.release_idle_roots(&Ram, &mut apply);
        if !w.tracker.is_page_protected(page_of(ipa)) {
            return Some(Handled::Machinery);
        }
    }
    let pc = regs.elr;
    if SCTLR_EL1.get() & SCTLR_EE != 0 {
        // Big-endian data (and table walks): the tracker reads descriptors
        // little-endian, so neither emulating nor stepping can keep it
        // right. The page leaves the tracker, with a record.
        return Some(w.release(pc, 0, far, ipa, GapReason::Regime));
    }
    let Some(insn) = at::read_insn(pc) else {
        // Not readable at EL2 (not in guest RAM): step it, assumed privileged.
        return Some(unemulated(w, regs, Unemulated::at(far, ipa), origin));
    };
    let st = match store::decode(insn) {
        Ok(st) => st,
        Err(store::Unsupported::Mops) => match store::decode_mops(insn) {
            Some(m) => return Some(mops::store(w, regs, &m, far, ipa, origin)),
            None => return Some(unemulated(w, regs, Unemulated::at(far, ipa), origin)),
        },
        // LS64, tag stores, LSE128, SVE/SME, cache maintenance, ...: stepped.
        Err(_) => return Some(unemulated(w, regs, Unemulated::at(far, ipa), origin)),
    };
    let unprivileged = matches!(st.kind, store::Kind::Unprivileged);
    let plan = store::plan(&st, &TrapRegs(regs));
    let span = Unemulated { far, ipa, span: Some((plan.addr(), plan.len())), unprivileged };
    let Some((addr, len)) = plan_span(&plan) else {
        // SIMD&FP stores (EL2 never touches FP/SIMD registers): stepped.
        return Some(unemulated(w, regs, span, origin));
    };
    // The written range must contain FAR (else, e.g. tag bits FAR does not
    // report: stepped).
    if far < addr || far >= addr + len as u64 {
        return Some(unemulated(w, regs, span, origin));
    }
    if page_of(addr) != page_of(addr + len as u64 - 1) {
        // Crosses into another page: a plain store is translated, checked
        // and written page by page (pt/parts.rs); anything else (an
        // exclusive or atomic would have had an alignment fault first) is
        // stepped.
        return Some(match plan {
            Plan::Write { .. } => parts::store(w, regs, &plan, span, origin),
            _ => unemulated(w, regs, span, origin),
        });
    }
    let pa_start = ipa - (far - addr);
    if let Plan::Exclusive { status_reg, .. } = plan {
        if !w.exclusive_may_store(pa_start, len) {
            // As the hardware when the monitor was lost: nothing stored,
            // status 1; the guest's loop loads again and retries.
            regs.set(status_reg, 1);
            regs.elr += INSN_LEN;
            return Some(Handled::Machinery);
        }
    }

    // The overlay rule, on the state before the write (as the hardware checks).
    let verdict = overlay_verdict(w.current_regime(), far, unprivileged, origin == Origin::HardwareOverlay);
    let hazard = origin == Origin::HardwareOverlay || matches!(verdict, Some((v, _, _)) if !v.grants_write);
    // Only hazard records need the written table's level and root.
    let level = if hazard { w.table_level(ipa) } else { (0, Half::Ttbr1) };
    let performed =
        if origin == Origin::HardwareOverlay { HazardAction::HardwareFault } else { HazardAction::Performed };
    if hazard && config().opts.policy == Policy::Fault {
        let old = read_u64_at(ipa & !7);
        let Some(new) = would_write(&plan, far, pa_start) else {
            // The value is not known without running it (CASP's 16 bytes
            // are, a SIMD store's are not): step, undo, inject.
            return Some(unemulated(w, regs, span, origin));
        };
        w.hazards += 1;
        drop(w);
        let h = HazardInfo { va: far, ipa, level, old, new, pc, verdict, unprivileged };
        if origin == Origin::HardwareOverlay {
            // The CPU already raised the fault: report it, let the guest's
            // handler run.
            record_hazard(&h, HazardAction::HardwareFault);
            return Some(Handled::Done(TrapOutcome::Forwarded));
        }
        record_hazard(&h, HazardAction::FaultInjected);
        let leaf_level = verdict.map_or(3, |v| v.2);
        let fsc = FSC_PERMISSION_L0 + leaf_level.clamp(0, 3) as u8;
        inject::data_abort(regs, fsc, true, ISS2_OVERLAY, far);
        return Some(Handled::Done(TrapOutcome::AbortInjected));
    }

    if let Plan::ZeroBlock { .. } = plan {
        w.stores += 1;
        // DC ZVA: up to 2 KiB, in chunks (the tracker sees every descriptor).
        let (mut old_d, mut new_d) = (0, 0);
        for off in (0..len).step_by(CHUNK) {
            let (mut old, new) = ([0u8; CHUNK], [0u8; CHUNK]);
            let pa = pa_start + off as u64;
            fill_after(pa, &mut old);
            write_bytes(pa, &new);
            if (pa..pa + CHUNK as u64).contains(&(ipa & !7)) {
                (old_d, new_d) = (desc_at(&old, (ipa & !7 & (CHUNK as u64 - 1)) as usize), 0);
            }
            let effect = w.tracker.on_store(pa, &old, &new, &Ram, &mut apply);
            w.table_writes += effect.descriptors as u64;
        }
        if hazard {
            w.hazards += 1;
            drop(w);
            let h = HazardInfo { va: far, ipa, level, old: old_d, new: new_d, pc, verdict, unprivileged };
            record_hazard(&h, performed);
        }
        regs.elr += INSN_LEN;
        return Some(Handled::Machinery);
    }
    let mut old = [0u8; store::MAX_WRITE_BYTES];
    let mut new = [0u8; store::MAX_WRITE_BYTES];
    if len > store::MAX_WRITE_BYTES || !perform(regs, &plan, pa_start, &mut old[..len], &mut new[..len]) {
        // 16-byte CASP: nothing was written; stepped.
        return Some(unemulated(w, regs, span, origin));
    }
    w.stores += 1;
    let effect = w.tracker.on_store(pa_start, &old[..len], &new[..len], &Ram, &mut apply);
    w.table_writes += effect.descriptors as u64;
    if hazard {
        w.hazards += 1;
    }
    // Later plain stores to a last-level table's page can skip all this
    // (arch/fast_path.rs).
    w.refresh_leaf(page_of(ipa));
    drop(w);
    if hazard {
        // The descriptor containing FAR, before and after.
        let at = ((far & !7) - addr.min(far & !7)) as usize;
        let desc_pa = ipa & !7;
        let (o, n) = if desc_pa >= pa_start {
            (desc_at(&old[..len], at), desc_at(&new[..len], at))
        } else {
            // The store starts inside the descriptor (unaligned): the bytes
            // before it are memory's.
            let cur = read_u64_at(desc_pa);
            (
                store::descriptor_after(desc_pa, cur, pa_start, &old[..len]),
                store::descriptor_after(desc_pa, cur, pa_start, &new[..len]),
            )
        };
        let h = HazardInfo { va: far, ipa, level, old: o, new: n, pc, verdict, unprivileged };
        record_hazard(&h, performed);
    }
    regs.elr += INSN_LEN;
    Some(Handled::Machinery)
}

/// A store porwatch does not emulate: what is known about it.
#[derive(Clone, Copy)]
struct Unemulated {
    far: u64,
    ipa: u64,
    /// The bytes it writes (VA, length), when decoded.
    span: Option<(u64, usize)>,
    unprivileged: bool,
}

impl Unemulated {
    fn at(far: u64, ipa: u64) -> Self {
        Self { far, ipa, span: None, unprivileged: false }
    }
}

/// A store to a tracked table porwatch does not emulate (SIMD&FP, 16-byte
/// CASP, LS64, an unreadable instruction, ...): single-step it with the
/// page(s) writable and compare them before and after (pt/step.rs), so
/// every descriptor it writes still reaches the tracker and the page is
/// protected again. The overlay is checked first, as for an emulated store.
/// Native POE's overlay faults arrive at the guest's vector, where the
/// instruction cannot be stepped: reported, and the guest's handler runs.
fn unemulated(
    w: spin::MutexGuard<'_, Watch>,
    regs: &mut GuestRegs,
    u: Unemulated,
    origin: Origin,
) -> Handled {
    let pc = regs.elr;
    let mut req = step::Request::new(pc);
    // Every tracked page the instruction writes: FAR's first (a part of the
    // span outside guest RAM or not mapped is the hardware's to fault on).
    req.add_page(page_of(u.ipa));
    let mut first_denied: Option<(u64, i8)> = None;
    let mut add_part = |w: &Watch, req: &mut step::Request, va: u64, ipa: Option<u64>| {
        let tracked = ipa.is_some_and(|i| w.tracker.is_page_protected(i));
        let v = overlay_verdict(
            w.current_regime(),
            va,
            u.unprivileged,
            origin == Origin::HardwareOverlay && va == u.far,
        );
        let denied = (origin == Origin::HardwareOverlay && va == u.far)
            || matches!(v, Some((v, _, _)) if !v.grants_write);
        if denied && first_denied.is_none() {
            first_denied = Some((va, v.map_or(3, |v| v.2)));
        }
        if let (true, Some(ipa)) = (tracked, ipa) {
            req.add_page(page_of(ipa));
            if denied {
                let level = w.table_level(ipa);
                req.add_hazard(step::Hazard { va, ipa, level, verdict: v, unprivileged: u.unprivileged });
            }
        }
    };
    match u.span {
        Some((addr, len)) if (addr..addr.wrapping_add(len as u64)).contains(&u.far) => {
            for part in store::page_parts(addr, len) {
                let va = if page_of(part.va) == page_of(u.far) { u.far } else { part.va };
                let ipa = if va == u.far { Some(u.ipa) } else { at::va_to_ipa(va) };
                add_part(&w, &mut req, va, ipa);
            }
        }
        _ => add_part(&w, &mut req, u.far, Some(u.ipa)),
    }
    if origin == Origin::HardwareOverlay {
        // Report what the hardware faulted on; the guest's handler runs.
        report_unperformed(w, &req, pc, HazardAction::HardwareFault);
        return Handled::Done(TrapOutcome::Forwarded);
    }
    if req.has_hazards() && config().opts.policy == Policy::Fault {
        // Fault policy: the value the store would have written is recorded
        // (run it once, put memory and registers back), then the overlay
        // fault is injected at the lowest address that faults.
        let (va, leaf_level) = first_denied.unwrap_or((u.far, 3));
        req.fault_after(va, FSC_PERMISSION_L0 + leaf_level.clamp(0, 3) as u8);
    }
    step::start(w, regs, req)
}

/// Hazard records for the hazards of `req`, a store porwatch did not
/// perform (the descriptors as they are).
fn report_unperformed(
    mut w: spin::MutexGuard<'_, Watch>,
    req: &step::Request,
    pc: u64,
    action: HazardAction,
) {
    let hs = req.hazards();
    w.hazards += hs.len() as u64;
    drop(w);
    for h in hs {
        let d = read_u64_at(h.ipa & !7);
        let info = HazardInfo {
            va: h.va,
            ipa: h.ipa,
            level: h.level,
            old: d,
            new: d,
            pc,
            verdict: h.verdict,
            unprivileged: h.unprivileged,
        };
        record_hazard(&info, action);
    }
}

/// Totals for the trace, when the guest stops.
pub fn emit_stats() {
    let w = WATCH.lock();
    let s = w.tracker.stats();
    // Each fast store is one aligned store of at most 8 bytes: one
    // descriptor.
    let fast = fast_path::fast_stores();
    trace_out::emit_reliable(Event::PtStats {
        tables: s.tables as u64,
        max_tables: s.max_tables as u64,
        table_writes: w.table_writes + fast,
        stores: w.stores + fast,
        hazards: w.hazards,
        coverage_gaps: w.gaps,
        roots_dropped: s.dropped_roots,
        roots_released: s.released_roots,
        overflows: s.overflows,
        fast_stores: fast,
        mops_steps: w.mops_steps,
        stepped_stores: w.stepped_stores,
        released_pages: s.released_pages,
        leaves_opened: open_leaves::opened(),
    });
}

/// Store-exclusives with several CPUs (docs/smp.md, "Exclusives").
///
/// The guest's LDXR reads natively; its STXR to a tracked table always
/// traps, and the trap may have cleared the CPU's exclusive monitor, which
/// porwatch cannot see anyway. With one CPU nothing else can have written
/// the location between the LDXR and the trap (porwatch makes every write
/// to a tracked table itself), so the STXR is performed and succeeds. With
/// several, another CPU may have, and succeeding would lose its update. So
/// every write porwatch makes to a tracked table bumps a generation
/// ([`EXCL_GEN`], per 8-byte location hash); a trapped STXR succeeds only
/// if this CPU's previous trapped STXR, to the same location, failed and no
/// write there happened since: the generation seen then is still current.
/// Otherwise it fails (status 1, nothing stored) and remembers location and
/// generation. That failure returned to the guest before its retry's LDXR,
/// so a write between that LDXR and the retry's STXR changes the
/// generation and fails the STXR, as the hardware monitor would; and while
/// the CPU's STXR is pending its page takes no assembly fast path (which
/// bumps no generation): every write to it is porwatch's Rust path, under
/// the WATCH lock, as is this check. A failure needs a write elsewhere to
/// complete (progress) or is the first attempt; the guest's next attempt
/// then succeeds unless another write intervenes: no livelock.
const EXCL_SLOTS: usize = 1024;
static EXCL_GEN: [AtomicU32; EXCL_SLOTS] = [const { AtomicU32::new(0) }; EXCL_SLOTS];

fn excl_slot(pa: u64) -> usize {
    ((pa >> 3) as usize) % EXCL_SLOTS
}

/// porwatch wrote `[pa, pa + len)` of a tracked table (under the WATCH lock).
fn note_write(pa: u64, len: usize) {
    let mut w = pa & !7;
    while w < pa + len as u64 {
        EXCL_GEN[excl_slot(w)].fetch_add(1, Ordering::Relaxed);
        w += 8;
    }
}

/// The generation of `[pa, pa + len)`: changes with any write there.
fn excl_gen(pa: u64, len: usize) -> u32 {
    let mut g = 0u32;
    let mut w = pa & !7;
    while w < pa + len as u64 {
        g = g.wrapping_add(EXCL_GEN[excl_slot(w)].load(Ordering::Relaxed));
        w += 8;
    }
    g
}

impl Watch {
    /// A trapped STXR of `len` bytes at `pa`: whether it may store (see
    /// [`EXCL_GEN`]). With one CPU ever started, always.
    fn exclusive_may_store(&mut self, pa: u64, len: usize) -> bool {
        if !crate::psci::smp_started() {
            return true;
        }
        let me = percpu::index();
        // No assembly or native store to this page while the STXR is
        // pending.
        fast_path::clear_leaf_page(page_of(pa));
        open_leaves::close(page_of(pa));
        let gen = excl_gen(pa, len);
        if self.excl_pending[me] == Some((pa, len, gen)) {
            self.excl_pending[me] = None;
            return true;
        }
        self.excl_pending[me] = Some((pa, len, gen));
        false
    }

    /// After a store to `page`: stores there may take the assembly fast
    /// path if it holds one last-level table, and no CPU has an STXR
    /// pending on it. Under the WATCH lock, so the tracker cannot change
    /// the page's state before the bit is set.
    pub(super) fn refresh_leaf(&self, page: u64) {
        let pending = self.excl_pending.iter().flatten().any(|&(pa, _, _)| page_of(pa) == page);
        if !pending && self.tracker.is_leaf_page(page) {
            fast_path::set_leaf_page(page);
            open_leaves::open(page);
        }
    }

    /// The translation regime of the CPU this runs on.
    fn current_regime(&self) -> &Regime {
        &self.regime[percpu::index()]
    }

    /// A store porwatch can neither emulate nor single-step (big-endian
    /// data): the page leaves the tracker (`Tracker::release_page`: no
    /// longer counted as tracked, writable again, so the guest's store runs
    /// natively), with a `coverage_gap` record; `pt_stats.released_pages`
    /// counts such pages.
    fn release(&mut self, pc: u64, insn: u32, va: u64, ipa: u64, reason: GapReason) -> Handled {
        self.gaps += 1;
        fast_path::clear_leaf_page(page_of(ipa));
        self.tracker.release_page(page_of(ipa), &mut apply);
        trace_out::emit(Event::CoverageGap { pc, insn: insn as u64, va, ipa, reason: reason as u64 });
        Handled::Done(TrapOutcome::Ignored)
    }

    fn table_level(&self, ipa: u64) -> (i8, Half) {
        self.tracker
            .is_tracked(ipa)
            .map_or((3, Half::Ttbr1), |t| (t.level, if t.roots.kernel() { Half::Ttbr1 } else { Half::Ttbr0 }))
    }
}

/// What the overlay says about a write to `va` now (None: POE not provided,
/// or the VA is not mapped by a readable stage-1 walk).
/// `denied`: the CPU already raised an overlay fault (native POE): always
/// walk, the hazard record needs the leaf.
fn overlay_verdict(
    regime: &Regime,
    va: u64,
    unprivileged: bool,
    denied: bool,
) -> Option<(s1::OverlayVerdict, u64, i8)> {
    let (por_el1, por_el0, tcr2) = match config().poe {
        Mode::Virtual => tap::vpoe_overlay_regs(),
        Mode::Native => native_overlay_regs(),
        Mode::None => return None,
    };
    // With S1PIE on, the overlay applies only where the selected PIR entry
    // allows it: PIR_EL1/PIRE0_EL1 are the guest's own (never trapped),
    // read here. TCR2_EL1.PIE is set only where the CPU has S1PIE and
    // porwatch passes it (cpu_view), so the registers exist.
    let (pir_el1, pire0_el1) =
        if tcr2 & s1::overlay::TCR2_PIE != 0 { (PIR_EL1_REG.get(), PIRE0_EL1_REG.get()) } else { (0, 0) };
    let regs = OverlayRegs {
        por_el1,
        por_el0,
        tcr2_el1: tcr2,
        pir_el1,
        pire0_el1,
        wxn: SCTLR_EL1.get() & SCTLR_WXN != 0,
    };
    let privilege = if unprivileged { Privilege::Unprivileged } else { Privilege::Privileged };
    // Overlays off (stock Linux: TCR2_EL1.POE = 0), or every pkey writable:
    // no page can be denied, so skip the stage-1 walk (~500 instructions).
    if !denied && !s1::may_deny_write(&regs, privilege) {
        return None;
    }
    let leaf = s1::walk_regime(&Ram, va, regime, TTBR0_EL1.get(), TTBR1_EL1.get()).ok()?;
    let por = if unprivileged { por_el0 } else { por_el1 };
    Some((s1::verdict(&regs, leaf.desc, privilege), por, leaf.level))
}

/// POR_EL1, POR_EL0 and TCR2_EL1 as the CPU has them (native POE).
fn native_overlay_regs() -> (u64, u64, u64) {
    let (por0, tcr2): (u64, u64);
    unsafe {
        core::arch::asm!("mrs {}, s3_3_c10_c2_4", out(reg) por0, options(nomem, nostack));
        core::arch::asm!("mrs {}, s3_0_c2_c0_3", out(reg) tcr2, options(nomem, nostack));
        // TCR2_EL1
    }
    (POR_EL1_REG.get(), por0, tcr2)
}

/// The range a plan writes, if porwatch can emulate it.
fn plan_span(p: &Plan) -> Option<(u64, usize)> {
    match *p {
        Plan::Write { addr, len, .. }
        | Plan::Exclusive { addr, len, .. }
        | Plan::Cas { addr, len, .. }
        | Plan::Swp { addr, len, .. }
        | Plan::LdOp { addr, len, .. } => (len > 0 && len <= store::MAX_WRITE_BYTES).then_some((addr, len)),
        // DC ZVA blocks are at most 2 KiB and naturally aligned.
        Plan::ZeroBlock { addr, len } => {
            (len > 0 && len <= MAX_ZVA && len % CHUNK == 0).then_some((addr, len))
        }
        // SIMD&FP stores: hyp never touches FP/SIMD registers.
        Plan::StepAndDiff { .. } => None,
    }
}

/// Carries out `plan` on guest memory at `pa` (identity-mapped guest RAM),
/// filling `old`/`new` with the bytes before and after. Atomics use the
/// CPU's exclusive load/store on the same location, so they stay atomic
/// for other agents. Returns false if porwatch cannot (e.g. 16-byte CASP).
fn perform(regs: &mut GuestRegs, plan: &Plan, pa: u64, old: &mut [u8], new: &mut [u8]) -> bool {
    let len = old.len();
    read_bytes(pa, old);
    match *plan {
        Plan::Write { data, writeback, .. } => {
            new.copy_from_slice(&data[..len]);
            write_bytes(pa, new);
            if let Some((rn, v)) = writeback {
                set_reg_or_sp(regs, rn, v);
            }
        }
        // Allowed by `exclusive_may_store`: nothing else wrote the location
        // since the guest's load-exclusive (the hardware walker's AF/DB
        // updates do not run on tracked tables); the store succeeds.
        Plan::Exclusive { data, status_reg, .. } => {
            new.copy_from_slice(&data[..len]);
            write_bytes(pa, new);
            regs.set(status_reg, 0);
        }
        Plan::ZeroBlock { .. } => {
            new.fill(0);
            write_bytes(pa, new);
        }
        Plan::Cas { expected, new: value, result_reg, result_reg2, .. } => {
            if len > 8 || result_reg2.is_some() {
                return false;
            }
            let prev = atomic_rmw(pa, len, |cur| (cur == expected as u64).then_some(value as u64));
            regs.set(result_reg, prev);
            fill_after(pa, new);
        }
        Plan::Swp { new: value, result_reg, .. } => {
            let prev = atomic_rmw(pa, len, |_| Some(value));
            regs.set(result_reg, prev);
            fill_after(pa, new);
        }
        Plan::LdOp { op, operand, result_reg, .. } => {
            let prev = atomic_rmw(pa, len, |cur| Some(store::ldop_apply(op, cur, operand, len)));
            regs.set(result_reg, prev);
            fill_after(pa, new);
        }
        Plan::StepAndDiff { .. } => return false,
    }
    true
}

/// The descriptor containing `far` as `plan` would leave it, for reporting
/// a write that fault policy does not perform: the bytes the store writes
/// (atomics computed from the value in memory now) over the descriptor's
/// current bytes. `pa_start` is the PA of the plan's first byte. None when
/// the value is not known without running the instruction.
fn would_write(plan: &Plan, far: u64, pa_start: u64) -> Option<u64> {
    let desc_pa = (pa_start + (far - plan.addr())) & !7;
    let old = read_u64_at(desc_pa);
    if let Plan::ZeroBlock { .. } = plan {
        return Some(0);
    }
    let len = plan.len().min(store::MAX_WRITE_BYTES);
    let mut cur = [0u8; store::MAX_WRITE_BYTES];
    read_bytes(pa_start, &mut cur[..len]);
    let bytes = plan.written_bytes(&cur[..len])?;
    Some(store::descriptor_after(desc_pa, old, pa_start, &bytes[..len]))
}

fn fill_after(pa: u64, new: &mut [u8]) {
    read_bytes(pa, new);
}

/// The access size for bytes `i..` of an `n`-byte access at `pa`: the
/// largest of 8, 4, 2, 1 that is naturally aligned there and fits.
fn chunk(pa: u64, i: usize, n: usize) -> usize {
    let a = pa + i as u64;
    [8, 4, 2].into_iter().find(|&s| a.is_multiple_of(s as u64) && n - i >= s).unwrap_or(1)
}

/// Reads `out.len()` bytes at `pa` in naturally aligned pieces of up to 8
/// bytes, each one single-copy atomic (a descriptor is read whole).
fn read_bytes(pa: u64, out: &mut [u8]) {
    let mut i = 0;
    while i < out.len() {
        let a = pa + i as u64;
        let n = chunk(pa, i, out.len());
        // SAFETY: guest RAM, identity mapped at EL2 (callers checked),
        // naturally aligned for each size.
        unsafe {
            match n {
                8 => out[i..i + 8].copy_from_slice(&core::ptr::read_volatile(a as *const u64).to_le_bytes()),
                4 => out[i..i + 4].copy_from_slice(&core::ptr::read_volatile(a as *const u32).to_le_bytes()),
                2 => out[i..i + 2].copy_from_slice(&core::ptr::read_volatile(a as *const u16).to_le_bytes()),
                _ => out[i] = core::ptr::read_volatile(a as *const u8),
            }
        }
        i += n;
    }
}

/// Writes `bytes` at `pa` in naturally aligned pieces of up to 8 bytes,
/// each one single store: the guest's store is single-copy atomic for
/// other CPUs' lockless reads as it would have been natively (a descriptor
/// is never seen half-written). Every write porwatch makes to a tracked
/// table comes here or to `atomic_rmw` (both bump the exclusives'
/// generation, [`EXCL_GEN`]).
fn write_bytes(pa: u64, bytes: &[u8]) {
    note_write(pa, bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let a = pa + i as u64;
        let n = chunk(pa, i, bytes.len());
        let mut w = [0u8; 8];
        w[..n].copy_from_slice(&bytes[i..i + n]);
        // SAFETY: as read_bytes.
        unsafe {
            match n {
                8 => core::ptr::write_volatile(a as *mut u64, u64::from_le_bytes(w)),
                4 => core::ptr::write_volatile(a as *mut u32, u32::from_le_bytes([w[0], w[1], w[2], w[3]])),
                2 => core::ptr::write_volatile(a as *mut u16, u16::from_le_bytes([w[0], w[1]])),
                _ => core::ptr::write_volatile(a as *mut u8, w[0]),
            }
        }
        i += n;
    }
}

/// Atomically replaces the naturally aligned `len`-byte value at `pa` by
/// `f(old)` (when Some); returns the old value (zero-extended).
fn atomic_rmw(pa: u64, len: usize, f: impl Fn(u64) -> Option<u64>) -> u64 {
    note_write(pa, len);
    match len {
        8 => {
            let a = unsafe { AtomicU64::from_ptr(pa as *mut u64) };
            match a.fetch_update(Ordering::SeqCst, Ordering::SeqCst, &f) {
                Ok(v) | Err(v) => v,
            }
        }
        _ => {
            // 1, 2 or 4 bytes: operate on the aligned 32-bit word holding them.
            let word = pa & !3;
            let shift = ((pa & 3) * 8) as u32;
            let mask: u32 = if len >= 4 { u32::MAX } else { ((1u32 << (len * 8)) - 1) << shift };
            let a = unsafe { AtomicU32::from_ptr(word as *mut u32) };
            let mut prev = 0u64;
            let _ = a.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |w| {
                let cur = ((w & mask) >> shift) as u64;
                prev = cur;
                f(cur).map(|n| (w & !mask) | (((n as u32) << shift) & mask))
            });
            prev
        }
    }
}

fn set_reg_or_sp(regs: &mut GuestRegs, n: u8, v: u64) {
    if n == 31 {
        if regs.spsr & SPSR_M_MASK == SPSR_M_EL1H {
            SP_EL1.set(v);
        } else {
            SP_EL0.set(v);
        }
    } else {
        regs.set(n, v);
    }
}

fn read_u64_at(pa: u64) -> u64 {
    stage2::ram_pa(pa, 8).map_or(0, |p| unsafe { core::ptr::read_volatile(p as *const u64) })
}

/// The 8-byte descriptor at byte offset `at` of `bytes` (zero-padded).
fn desc_at(bytes: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    for (i, b) in w.iter_mut().enumerate() {
        *b = bytes.get(at + i).copied().unwrap_or(0);
    }
    u64::from_le_bytes(w)
}

struct HazardInfo {
    va: u64,
    ipa: u64,
    level: (i8, Half),
    old: u64,
    new: u64,
    pc: u64,
    verdict: Option<(s1::OverlayVerdict, u64, i8)>,
    unprivileged: bool,
}

fn record_hazard(h: &HazardInfo, action: HazardAction) {
    let (entry_seq, por_seq) = tap::cause_chain();
    // Never dropped: without a verdict (native POE, the CPU faulted but the
    // software walk of FAR failed) the overlay fields say "unknown".
    let (poindex, perm, por, leaf_level, pir) = match h.verdict {
        Some((v, por, leaf_level)) => (
            v.poindex as u64,
            v.perm as u64,
            por,
            leaf_level as i64,
            v.pie_entry.map_or(0, |e| HAZARD_PIR_ON | e as u64),
        ),
        None => {
            let (por1, por0, _) = match config().poe {
                Mode::Native => native_overlay_regs(),
                _ => tap::vpoe_overlay_regs(),
            };
            (POINDEX_UNKNOWN, 0, if h.unprivileged { por0 } else { por1 }, -1, 0)
        }
    };
    // Flight mode: the chain from the CPU's ring goes first (docs/flight.md).
    let reg = if h.unprivileged { PorReg::PorEl0 } else { PorReg::PorEl1 };
    let pkey = (poindex != POINDEX_UNKNOWN).then_some(poindex as u8);
    trace_out::emit_cause_chain(reg as u64, pkey);
    let (trace_seq, entry_trace_seq) = crate::unwind::emit_for_hazard(h.pc, entry_seq);
    trace_out::emit_reliable(Event::Hazard {
        va: h.va,
        ipa: h.ipa,
        level: h.level.0 as i64,
        half: trace_half(h.level.1) as u64,
        old: h.old,
        new: h.new,
        pc: h.pc,
        por,
        poindex,
        perm,
        unprivileged: h.unprivileged as u64,
        entry_seq,
        por_seq,
        action: action as u64,
        leaf_level,
        pir,
        trace_seq,
        entry_trace_seq,
    });
}
