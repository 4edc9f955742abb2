//! The exception-entry tap (mechanism; the decisions are in
//! porwatch_monitor::tap and ::vpoe, the rules in docs/tap.md).
//!
//! The guest's vector-table page is execute-never at stage 2. When the guest
//! takes an exception to EL1, the CPU writes ESR/ELR/SPSR/FAR_EL1 and then
//! faults fetching the vector slot: an instruction abort to EL2 at a slot
//! offset is an exception entry. porwatch records it, makes the page
//! executable and single-steps the guest until it leaves the page, then
//! protects the page again. Exceptions taken while stepping land on a slot
//! without a fault, so every step is checked for that too.
//!
//! Virtual POE rides on the same hook: without FEAT_S1POE an MRS/MSR of
//! POR_EL1/POR_EL0 (or TCR2_EL1 without FEAT_TCR2) UNDEFs at EL1; that
//! entry is recognised, the access is completed on the virtual registers,
//! the exception registers it overwrote are put back, and the guest resumes
//! after the instruction as if nothing had happened.
use crate::arch::debug::{self, SPSR_SS};
use crate::arch::frame::GuestRegs;
use crate::arch::regs::TCR2_EL1_REG;
use crate::arch::{at, fast_path, percpu, stage2};
use crate::boot::config;
use crate::trace_out;
use crate::traps::Handled;
use aarch64_cpu::registers::*;
use core::sync::atomic::{AtomicU64, Ordering};
use porwatch_monitor::cpus::MAX_CPUS;
use porwatch_monitor::idregs::Tcr2Path;
use porwatch_monitor::tap::{
    self as rules, classify_step, page_of, EntryRegs, EntryWindow, ShadowStack, Step,
};
use porwatch_monitor::vpoe::{self, Mode, VReg, VirtPoe};
use porwatch_trace::{Event, PorReg, TrapOutcome};
use spin::Mutex;

/// ESR_EL1.EC of an UNDEFINED instruction.
const EC_UNKNOWN: u64 = 0;
const ESR_EC_SHIFT: u32 = 26;
/// SPSR.M[3:0] = EL0t: the exception came from EL0.
const SPSR_M_MASK: u64 = 0xf;
const SPSR_M_EL0T: u64 = 0;
/// Nesting tracked for shadow registers (deeper entries are counted).
const MAX_NESTING: usize = 32;

/// Per-CPU tap state. Only its CPU uses it (the lock keeps the borrow
/// checker honest and costs nothing uncontended).
struct Tap {
    /// VBAR_EL1 as last written (0: not armed yet).
    vbar: u64,
    /// IPA of the vector table's page, when armed.
    page_ipa: Option<u64>,
    stepping: bool,
    /// The VA page being stepped through (the vector page, or an alias).
    step_page: u64,
    /// The instruction the current step executes.
    prev_pc: u64,
    /// The guest's own MDSCR_EL1 while porwatch borrows SS.
    guest_mdscr: u64,
    window: EntryWindow,
    /// seq of the most recent por_write record (0: none).
    last_por_seq: u64,
    shadow: ShadowStack<MAX_NESTING>,
    vpoe: VirtPoe,
}

/// The cause chain by dense CPU index: copies of `window.last_entry()`
/// and `last_por_seq`, written only by their CPU.
struct Chain {
    entry: AtomicU64,
    por: AtomicU64,
}

static CHAIN: [Chain; MAX_CPUS] =
    [const { Chain { entry: AtomicU64::new(0), por: AtomicU64::new(0) } }; MAX_CPUS];

/// Tap state by dense CPU index (percpu::index).
static TAPS: [Mutex<Tap>; MAX_CPUS] = [const { Mutex::new(Tap::new()) }; MAX_CPUS];

/// This vCPU's tap state, locked. Releasing it publishes what the fast
/// paths in vectors.S need (arch::fast_path): virtual POE's state, and the
/// stepping state whose `prev_pc` the assembly advances (read back here).
#[inline]
fn tap() -> TapGuard {
    let cpu = percpu::index();
    let mut t = TAPS[cpu].lock();
    if t.stepping {
        // Steps vectors.S handled itself moved the PC on.
        t.prev_pc = fast_path::prev_pc(cpu);
    }
    TapGuard(t, cpu)
}

/// This vCPU's tap state, locked, for reading only (no publishing).
fn tap_ro() -> spin::MutexGuard<'static, Tap> {
    TAPS[percpu::index()].lock()
}

struct TapGuard(spin::MutexGuard<'static, Tap>, usize);

impl core::ops::Deref for TapGuard {
    type Target = Tap;
    fn deref(&self) -> &Tap {
        &self.0
    }
}

impl core::ops::DerefMut for TapGuard {
    fn deref_mut(&mut self) -> &mut Tap {
        &mut self.0
    }
}

impl Drop for TapGuard {
    fn drop(&mut self) {
        let t = &*self.0;
        let enabled = !t.stepping && t.page_ipa.is_some() && poe_mode() == Mode::Virtual;
        fast_path::publish(
            self.1,
            &fast_path::Published {
                enabled,
                por_el1: t.vpoe.por_el1,
                shadow: if enabled { t.shadow.top().map(|e| (e.elr, e.spsr, e.esr, e.far)) } else { None },
                stepping: t.stepping.then_some((t.step_page, t.vbar & rules::VBAR_MASK, t.prev_pc)),
                overlay: (poe_mode() == Mode::Virtual).then_some((
                    t.vpoe.por_el1,
                    t.vpoe.por_el0,
                    t.vpoe.tcr2_el1,
                )),
            },
        );
    }
}

fn poe_mode() -> Mode {
    config().poe
}

/// This CPU starts (again) with a fresh tap: its VBAR_EL1 is the guest's to
/// write anew (a CPU_ON, or a resume from a power-down state).
pub fn reset_this_cpu() {
    let mut t = tap();
    *t = Tap::new();
    stage2::set_vector_page(percpu::index(), None);
}

/// The guest wrote VBAR_EL1 (trapped by HFGWTR_EL2.VBAR_EL1).
pub fn on_vbar_write(regs: &mut GuestRegs, value: u64) -> Handled {
    VBAR_EL1.set(value);
    let mut t = tap();
    if t.stepping {
        t.stop_stepping(regs);
    }
    t.page_ipa = None;
    t.vbar = value;
    // This CPU's vector page, execute-never for this CPU only (its own
    // stage-2 root, arch/stage2.rs): the others' taps are their own.
    let ipa = at::va_to_ipa(value & rules::VBAR_MASK).map(page_of);
    if stage2::set_vector_page(percpu::index(), ipa) {
        t.page_ipa = ipa;
    }
    drop(t);
    trace_out::emit(Event::TapArm { vbar: value, page: ipa.unwrap_or(u64::MAX) });
    Handled::Done(TrapOutcome::Emulated)
}

/// An instruction abort from the guest: ours if it hit the vector page.
pub fn on_instr_abort(regs: &mut GuestRegs, far: u64) -> Option<Handled> {
    let mut t = tap();
    let ipa = t.page_ipa?;
    if page_of(far) != page_of(t.vbar) && at::va_to_ipa(far).map(page_of) != Some(ipa) {
        return None;
    }
    let slot = rules::slot(t.vbar, far);
    if let Some(slot) = slot {
        // A POR access completed here never runs the vector code: no need
        // to open the page and step.
        if let Some(h) = t.try_virtual_poe(regs, slot) {
            return Some(h);
        }
    }
    if let Some(slot) = slot {
        if let Some(h) = t.try_native_overlay_fault(regs, slot) {
            return Some(h);
        }
    }
    t.start_stepping(regs, page_of(far));
    t.prev_pc = regs.elr;
    if let Some(slot) = slot {
        t.record_entry(slot, regs);
    }
    // Otherwise not a slot: the guest returned (ERET) or branched back into
    // the page; it is stepped through without an entry.
    Some(Handled::Machinery)
}

/// A software-step exception (only porwatch steps the guest).
pub fn on_step(regs: &mut GuestRegs) -> Handled {
    let mut t = tap();
    if !t.stepping {
        // A stale step (e.g. the guest set PSTATE.SS itself): drop it.
        regs.spsr &= !SPSR_SS;
        return Handled::Refused(TrapOutcome::Ignored);
    }
    let pc = regs.elr;
    match classify_step(t.vbar, t.step_page, t.prev_pc, pc) {
        Step::Continue => {
            t.prev_pc = pc;
            regs.spsr |= SPSR_SS;
            Handled::Machinery
        }
        Step::Entry(slot) => {
            t.prev_pc = pc;
            if t.try_virtual_poe(regs, slot).is_none() && t.try_native_overlay_fault(regs, slot).is_none() {
                t.record_entry(slot, regs);
            }
            t.continue_or_stop(regs);
            Handled::Machinery
        }
        Step::Leave => {
            t.stop_stepping(regs);
            Handled::Machinery
        }
    }
}

/// A trapped ERET (HFGITR_EL2.ERET, with porwatch.eret=on): emulate it and
/// record the return.
pub fn on_eret(regs: &mut GuestRegs) -> Handled {
    let elr = ELR_EL1.get();
    let spsr = SPSR_EL1.get() & !SPSR_SS;
    let mut t = tap();
    t.shadow.pop();
    t.window.on_return();
    let por = t.por_el1();
    let depth = t.shadow.depth();
    regs.elr = elr;
    regs.spsr = spsr;
    if t.stepping {
        // An ERET in the vector page: stop stepping as soon as it leaves.
        t.prev_pc = elr;
        t.continue_or_stop(regs);
    }
    drop(t);
    trace_out::emit(Event::ExcReturn { elr, spsr, por, depth });
    Handled::Machinery
}

/// After any trap: keeps stepping consistent (a trapped instruction inside
/// the page must be stepped on from; an exception porwatch injected while
/// stepping is an entry the CPU will not fault on).
pub fn after_trap(regs: &mut GuestRegs, injected: bool) {
    let mut t = tap();
    if !t.stepping {
        return;
    }
    if injected {
        if let Some(slot) = rules::slot(t.vbar, regs.elr) {
            t.record_entry(slot, regs);
        }
    }
    t.prev_pc = regs.elr;
    t.continue_or_stop(regs);
}

/// The guest's MDSCR_EL1, for accesses trapped while porwatch steps it.
pub fn guest_mdscr(write: Option<u64>) -> u64 {
    let mut t = tap();
    if let Some(v) = write {
        t.guest_mdscr = v;
    }
    t.guest_mdscr
}

/// True while the tap single-steps the guest through its vector page.
pub fn is_stepping() -> bool {
    tap_ro().stepping
}

/// (POR_EL1, POR_EL0, TCR2_EL1) of virtual POE, for the overlay rule.
pub fn vpoe_overlay_regs() -> (u64, u64, u64) {
    let t = tap_ro();
    (t.vpoe.por_el1, t.vpoe.por_el0, t.vpoe.tcr2_el1)
}

/// Virtual TCR2_EL1/CPACR_EL1.E0POE state for sysreg traps.
pub fn with_vpoe<R>(f: impl FnOnce(&mut VirtPoe) -> R) -> R {
    f(&mut tap().vpoe)
}

/// Virtual POE: the guest wrote `v` to TCR2_EL1 at `pc` (a trapped MSR, or
/// an UNDEF completed here). porwatch keeps the guest's view (POE and E0POE,
/// which the CPU does not have, and the bits it passes); the bits the
/// hardware implements and the guest may use (PIE, ...) go to the
/// hardware register when it is in use (cpu_view's controls).
pub fn write_virtual_tcr2(pc: u64, v: u64) {
    let mut t = tap();
    t.write_tcr2(pc, v);
}

/// The cause chain of a hazard now: the seq of the most recent exception
/// entry and of the most recent POR_EL1/POR_EL0 change (0: none yet).
/// Lock-free: the page-table watch asks for it while this CPU's tap may
/// be locked (a native overlay fault found by the tap is handled inside
/// it).
pub fn cause_chain() -> (u64, u64) {
    let c = &CHAIN[percpu::index()];
    (c.entry.load(Ordering::Relaxed), c.por.load(Ordering::Relaxed))
}

/// Records a POR_EL1/POR_EL0 change made at `pc` (virtual or native).
pub fn record_por_change(reg: VReg, pc: u64, old: u64, new: u64) {
    let mut t = tap();
    t.por_change(reg, pc, old, new);
}

/// The exception registers as the CPU wrote them on entry, with PSTATE.SS
/// scrubbed from SPSR_EL1 (stepping leaks it there) before the guest sees it.
fn entry_regs() -> EntryRegs {
    let spsr = SPSR_EL1.get();
    if spsr & SPSR_SS != 0 {
        SPSR_EL1.set(spsr & !SPSR_SS);
    }
    EntryRegs { elr: ELR_EL1.get(), spsr: spsr & !SPSR_SS, esr: ESR_EL1.get(), far: FAR_EL1.get() }
}

impl Tap {
    const fn new() -> Self {
        Tap {
            vbar: 0,
            page_ipa: None,
            stepping: false,
            step_page: 0,
            prev_pc: 0,
            guest_mdscr: 0,
            window: EntryWindow::new(),
            last_por_seq: 0,
            shadow: ShadowStack::new(),
            vpoe: VirtPoe::new(),
        }
    }

    fn por_el1(&self) -> u64 {
        match poe_mode() {
            Mode::Virtual => self.vpoe.por_el1,
            Mode::Native => crate::arch::regs::POR_EL1_REG.get(),
            Mode::None => 0,
        }
    }

    fn write_tcr2(&mut self, pc: u64, v: u64) {
        let c = &crate::cpu_view::get().controls;
        let new = v & c.tcr2_guest;
        let old = self.vpoe.set(VReg::Tcr2El1, new);
        if c.tcr2 == Tcr2Path::Hardware {
            TCR2_EL1_REG.set(new & c.tcr2_hw);
        }
        crate::audit::note_overlay(self.vpoe.por_el1, new, false);
        if old != new {
            trace_out::emit(Event::Tcr2Write { pc, old, new });
        }
    }

    fn por_change(&mut self, reg: VReg, pc: u64, old: u64, new: u64) {
        if old == new {
            return;
        }
        let (at_entry, entry_seq) =
            if reg == VReg::PorEl1 { self.window.on_por_change() } else { (false, 0) };
        let reg = if reg == VReg::PorEl1 { PorReg::PorEl1 } else { PorReg::PorEl0 };
        self.last_por_seq = trace_out::emit(Event::PorWrite {
            pc,
            reg: reg as u64,
            old,
            new,
            at_entry: at_entry as u64,
            entry_seq,
        });
        CHAIN[percpu::index()].por.store(self.last_por_seq, Ordering::Relaxed);
        if reg == PorReg::PorEl1 {
            crate::audit::note_overlay(new, self.vpoe.tcr2_el1, at_entry);
        }
    }

    /// Virtual POE: the guest is at sync slot `slot` because an access to a
    /// register porwatch provides UNDEFed: complete it (Some), or not ours.
    fn try_virtual_poe(&mut self, regs: &mut GuestRegs, slot: u8) -> Option<Handled> {
        if poe_mode() != Mode::Virtual || !rules::is_sync_slot(slot) {
            return None;
        }
        if ESR_EL1.get() >> ESR_EC_SHIFT != EC_UNKNOWN {
            return None;
        }
        self.emulate_undef(regs, &entry_regs())
    }

    /// Native POE: the guest is at sync slot `slot` because the CPU raised
    /// an overlay permission fault on a write. If it hit a tracked page
    /// table it is a hazard (the page-table watch reports it); in report
    /// policy the write is completed and the guest resumes after it
    /// (Some), otherwise the guest's handler runs (None; the entry is then
    /// recorded as usual).
    fn try_native_overlay_fault(&mut self, regs: &mut GuestRegs, slot: u8) -> Option<Handled> {
        if poe_mode() != Mode::Native || !rules::is_sync_slot(slot) || !config().opts.track {
            return None;
        }
        let e = entry_regs();
        if !vpoe::is_overlay_write_fault(e.esr) {
            return None;
        }
        // The faulting context: same GPRs, its PC and PSTATE.
        let mut ctx = GuestRegs::default();
        ctx.x = regs.x;
        ctx.elr = e.elr;
        ctx.spsr = e.spsr;
        if crate::pt::on_native_overlay_fault(&mut ctx, e.far) != Some(true) {
            return None;
        }
        regs.x = ctx.x;
        if let Some(s) = self.shadow.top() {
            ELR_EL1.set(s.elr);
            SPSR_EL1.set(s.spsr);
            ESR_EL1.set(s.esr);
            FAR_EL1.set(s.far);
        }
        regs.elr = ctx.elr;
        regs.spsr = e.spsr;
        if self.stepping {
            self.prev_pc = regs.elr;
        }
        Some(Handled::Machinery)
    }

    /// The guest is at vector slot `slot` with the CPU's entry registers
    /// (and the interrupted code's x29/x30 in `regs`).
    fn record_entry(&mut self, slot: u8, regs: &GuestRegs) {
        let e = entry_regs();
        let por = self.por_el1();
        self.shadow.push(e, config().opts.exc_return);
        let depth = if config().opts.exc_return { self.shadow.depth() } else { 0 };
        let seq = trace_out::emit(Event::ExcEntry {
            vector: slot as u64,
            esr: e.esr,
            elr: e.elr,
            spsr: e.spsr,
            far: e.far,
            por,
            depth,
        });
        self.window.on_entry(seq);
        CHAIN[percpu::index()].entry.store(seq, Ordering::Relaxed);
        crate::unwind::note_entry(seq, e.elr, regs);
    }

    /// Virtual POE: the UNDEF described by `e` may be an access to a
    /// register porwatch provides. If so, complete it and resume after it.
    fn emulate_undef(&mut self, regs: &mut GuestRegs, e: &EntryRegs) -> Option<Handled> {
        let insn = at::read_insn(e.elr)?;
        let acc = vpoe::decode_access(insn, config().ids.has_tcr2())?;
        let from_el0 = e.spsr & SPSR_M_MASK == SPSR_M_EL0T;
        if !vpoe::permitted(acc.reg, from_el0, self.vpoe.cpacr_e0poe) {
            return None; // the guest gets its UNDEF, as the architecture says
        }
        if acc.is_read {
            regs.set(acc.rt, self.vpoe.get(acc.reg));
        } else {
            let new = regs.get(acc.rt);
            let old = self.vpoe.set(acc.reg, new);
            match acc.reg {
                VReg::Tcr2El1 => {
                    // Undo the plain set: TCR2 keeps only what the guest
                    // may set (and says so in the trace).
                    self.vpoe.set(acc.reg, old);
                    self.write_tcr2(e.elr, new);
                }
                r => self.por_change(r, e.elr, old, new),
            }
        }
        // Put back what the UNDEF overwrote: the innermost exception's
        // registers, as far as porwatch has seen them (docs/tap.md).
        if let Some(s) = self.shadow.top() {
            ELR_EL1.set(s.elr);
            SPSR_EL1.set(s.spsr);
            ESR_EL1.set(s.esr);
            FAR_EL1.set(s.far);
        }
        regs.elr = e.elr.wrapping_add(4);
        regs.spsr = e.spsr;
        if self.stepping {
            self.prev_pc = regs.elr;
        }
        // Recorded as por_write/tcr2_write (changes) only: virtual POE's
        // accesses are not traps the guest made.
        Some(Handled::Machinery)
    }

    fn start_stepping(&mut self, regs: &mut GuestRegs, page: u64) {
        self.step_page = page;
        if !self.stepping {
            if self.page_ipa.is_some() {
                stage2::set_vector_exec(percpu::index(), true);
            }
            self.guest_mdscr = debug::start();
            self.stepping = true;
        }
        regs.spsr |= SPSR_SS;
    }

    fn stop_stepping(&mut self, regs: &mut GuestRegs) {
        if self.stepping {
            debug::stop(self.guest_mdscr);
            if self.page_ipa.is_some() {
                stage2::set_vector_exec(percpu::index(), false);
            }
            self.stepping = false;
        }
        regs.spsr &= !SPSR_SS;
    }

    fn continue_or_stop(&mut self, regs: &mut GuestRegs) {
        if page_of(regs.elr) == self.step_page {
            regs.spsr |= SPSR_SS;
        } else {
            self.stop_stepping(regs);
        }
    }
}
