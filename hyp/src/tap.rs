//! The exception-entry tap (mechanism; the decisions are in
//! porwatch_monitor::tap, ::trampoline and ::vpoe, the rules in docs/tap.md).
//!
//! When the guest writes VBAR_EL1, porwatch hooks the page holding its
//! vector table: stage 2 maps, execute-only, a porwatch-owned shadow of that
//! page in which each slot's first instruction is `HVC #imm` naming the slot
//! (arch/trampoline.rs). An exception the guest takes to EL1 makes the CPU
//! write ESR/ELR/SPSR/FAR_EL1 and fetch that HVC: one trap, in which
//! porwatch records the entry and resumes the guest at the slot's displaced
//! instruction (out of line in the slot's padding, or a `B`'s target). The
//! assembly completes most entries itself (vectors.S `lower_sync_hvc`)
//! and queues the record; [`drain`] emits the queue, in order, at the next
//! Rust trap. Guest reads and writes of the page never see the shadow: a
//! single-register access is completed on the guest's page, anything else
//! runs with the page mapped as itself for one single-stepped instruction;
//! then the shadow is rebuilt.
//!
//! With several CPUs the shadow is mapped in the shared stage 2, so every
//! CPU sharing a vector table shares its hooks (refcounted per page); a
//! data access one CPU steps maps the page as itself in that CPU's private
//! root only (arch/stage2.rs), so the others keep their hooks meanwhile.
//! Everything else here is per CPU (`TAPS[percpu::index()]`, the CPU's
//! fast-path block and its queue).
//!
//! A page whose slots cannot all be hooked falls back to the older
//! mechanism: the page is execute-never at stage 2 for that CPU (its
//! private root), an entry is the instruction abort on a slot, and porwatch
//! single-steps the guest through the vector code until it leaves the
//! page. Exceptions taken while stepping land on a slot without a fault, so
//! every step is checked too.
//!
//! Virtual POE rides on the same hook: without FEAT_S1POE an MRS/MSR of
//! POR_EL1/POR_EL0 (or TCR2_EL1 without FEAT_TCR2) UNDEFs at EL1; that
//! entry is recognised, the access is completed on the virtual registers,
//! the exception registers it overwrote are put back, and the guest resumes
//! after the instruction as if nothing had happened.
use crate::arch::debug::{self, SPSR_SS};
use crate::arch::frame::GuestRegs;
use crate::arch::regs::{POR_EL1_REG, TCR2_EL1_REG};
use crate::arch::trampoline::{self as shadow, HookError, Lost};
use crate::arch::{at, fast_path, percpu, stage2};
use crate::boot::config;
use crate::guest_access::Completed;
use crate::trace_out;
use crate::traps::Handled;
use aarch64_cpu::registers::*;
use porwatch_monitor::cmdline::PorWatch;
use porwatch_monitor::cpus::MAX_CPUS;
use porwatch_monitor::esr::DataAbort;
use porwatch_monitor::flight::streams_transition;
use porwatch_monitor::idregs::Tcr2Path;
use porwatch_monitor::tap::{
    self as rules, classify_step, page_of, EntryRegs, EntryWindow, PorSamples, ShadowStack, Step,
};
use porwatch_monitor::trampoline::{self, Plan, SLOTS, SLOT_BYTES};
use porwatch_monitor::vpoe::{self, Mode, VReg, VirtPoe};
use porwatch_trace::{Event, PorReg, TapMechanism, TrapOutcome};
use spin::Mutex;

/// ESR_EL1.EC of an UNDEFINED instruction.
const EC_UNKNOWN: u64 = 0;
const ESR_EC_SHIFT: u32 = 26;
/// SPSR.M[3:0] = EL0t: the exception came from EL0.
const SPSR_M_MASK: u64 = 0xf;
const SPSR_M_EL0T: u64 = 0;
/// Nesting tracked for shadow registers (deeper entries are counted).
const MAX_NESTING: usize = 32;
/// `step_page` while stepping one data access to the hooked page: no page,
/// so the next step ends stepping (unless it lands on a slot: an entry).
const NO_PAGE: u64 = u64::MAX;

/// How the guest's vector page is watched.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Armed {
    Off,
    /// Stage-2 execute-never, single steps through the vector code.
    Xn {
        ipa: u64,
    },
    /// Stage 2 maps porwatch's shadow with HVC hooks.
    Trampoline {
        ipa: u64,
    },
}

/// Per-CPU tap state. Only its CPU uses it (the lock keeps the borrow
/// checker honest and costs nothing uncontended).
struct Tap {
    /// VBAR_EL1 as last written (0: not armed yet).
    vbar: u64,
    armed: Armed,
    /// With `Armed::Trampoline`: the hooks, and where each slot resumes.
    plan: Option<Plan>,
    resume: [u64; SLOTS],
    stepping: bool,
    /// The VA page being stepped through (the vector page, or an alias;
    /// `NO_PAGE` for one data access).
    step_page: u64,
    /// The instruction the current step executes.
    prev_pc: u64,
    /// The guest's own MDSCR_EL1 while porwatch borrows SS.
    guest_mdscr: u64,
    window: EntryWindow,
    shadow: ShadowStack<MAX_NESTING>,
    vpoe: VirtPoe,
    /// Native POE, `porwatch.por=sample`: the POR_EL1 samples.
    samples: PorSamples,
    /// While the audit learns: the last two POR_EL1 values it judged not
    /// restrictive (changes to them need not reach Rust; fast_path).
    por_plain: [Option<u64>; 2],
    /// The CPU this state is (set at each lock).
    index: usize,
    /// Another CPU replays this CPU's queue at the end of the run: nothing
    /// goes into this CPU's fast-path block or call-trace notes.
    at_stop: bool,
}

impl Tap {
    const fn new() -> Self {
        Tap {
            vbar: 0,
            armed: Armed::Off,
            plan: None,
            resume: [0; SLOTS],
            stepping: false,
            step_page: 0,
            prev_pc: 0,
            guest_mdscr: 0,
            window: EntryWindow::new(),
            shadow: ShadowStack::new(),
            vpoe: VirtPoe::new(),
            samples: PorSamples::new(),
            por_plain: [None; 2],
            index: 0,
            at_stop: false,
        }
    }
}

/// Tap state by dense CPU index (percpu::index).
static TAPS: [Mutex<Tap>; MAX_CPUS] = [const { Mutex::new(Tap::new()) }; MAX_CPUS];

fn cpu() -> usize {
    percpu::index()
}

/// This CPU's tap state, locked. Releasing it publishes what the fast
/// paths in vectors.S need (arch::fast_path): virtual POE's state, the
/// trampoline's resume addresses, and the stepping state whose `prev_pc`
/// the assembly advances (read back here, as is POR_EL1, which the assembly
/// writes).
#[inline]
fn tap() -> TapGuard {
    let cpu = cpu();
    let mut t = TAPS[cpu].lock();
    t.index = cpu;
    if t.stepping {
        // Steps vectors.S handled itself moved the PC on.
        t.prev_pc = fast_path::prev_pc(cpu);
    }
    if poe_mode() == Mode::Virtual {
        t.vpoe.por_el1 = fast_path::por_el1(cpu);
    }
    // Flight mode: the assembly records entries and POR_EL1 changes itself
    // (no replay): the window and the innermost entry's registers as it
    // left them.
    let (last_entry, open) = fast_path::window(cpu);
    t.window = EntryWindow::resume(last_entry, open);
    if let Some((elr, spsr, esr, far)) = fast_path::take_new_shadow(cpu) {
        t.shadow.push(EntryRegs { elr, spsr, esr, far }, false);
    }
    TapGuard(t, cpu)
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
        let armed = t.armed != Armed::Off;
        let enabled = !t.stepping && armed && poe_mode() == Mode::Virtual;
        // The assembly recognises the hooks unless porwatch steps the guest.
        let hooks = matches!(t.armed, Armed::Trampoline { .. }) && !t.stepping;
        let top = t.shadow.top();
        fast_path::publish(
            self.1,
            &fast_path::Published {
                enabled,
                por_el1: t.vpoe.por_el1,
                shadow: if enabled { top.map(|e| (e.elr, e.spsr, e.esr, e.far)) } else { None },
                stepping: t.stepping.then_some((t.step_page, t.vbar & rules::VBAR_MASK, t.prev_pc)),
                overlay: (poe_mode() == Mode::Virtual).then_some((
                    t.vpoe.por_el1,
                    t.vpoe.por_el0,
                    t.vpoe.tcr2_el1,
                )),
                hooks: hooks.then_some((t.vbar & rules::VBAR_MASK, &t.resume)),
                window: (t.window.last_entry(), t.window.is_open()),
                por_slow: crate::audit::learning().then(|| t.por_known()),
                cpacr_or: (poe_mode() == Mode::Virtual).then_some(if t.vpoe.cpacr_e0poe {
                    porwatch_monitor::vpoe::CPACR_E0POE
                } else {
                    0
                }),
            },
        );
    }
}

fn poe_mode() -> Mode {
    config().poe
}

/// Native POE with `porwatch.por=sample`: POR_EL1 writes are not trapped.
fn sampling() -> bool {
    poe_mode() == Mode::Native && config().opts.por == PorWatch::Sample
}

/// What the assembly needs to know about the configuration (boot, before
/// the guest runs), and the first POR_EL1 sample.
pub fn configure() {
    let mode = poe_mode();
    let por = match mode {
        Mode::None => fast_path::POR_NONE,
        Mode::Virtual => fast_path::POR_VIRTUAL,
        Mode::Native => fast_path::POR_NATIVE,
    };
    let native_trap = mode == Mode::Native && config().opts.por == PorWatch::Trap;
    // With exception returns traced, entries go to Rust, where the shadow
    // stack is.
    let entry_slow = config().opts.exc_return;
    fast_path::configure_tap(
        por,
        native_trap,
        mode == Mode::Native && config().opts.track,
        sampling(),
        entry_slow,
    );
    // Flight mode: the assembly pushes completed entries and POR_EL1
    // changes into the CPU's ring itself, unless Rust must see each one
    // (sampling derives changes at entries; traced returns keep the shadow
    // stack in Rust).
    if !sampling() && !entry_slow {
        for c in 0..MAX_CPUS {
            if let Some(ring) = trace_out::flight_ring(c) {
                fast_path::set_ring(c, ring);
            }
        }
    }
    start_sampling();
}

/// Native POE sampling: this CPU's first POR_EL1 sample.
fn start_sampling() {
    if sampling() {
        let v = POR_EL1_REG.get();
        tap().samples.start(v);
        fast_path::set_por_sample(cpu(), v);
    }
}

/// This CPU starts (again) with a fresh tap: its VBAR_EL1 is the guest's to
/// write anew (a CPU_ON, or a resume from a power-down state). Its use of a
/// shared shadow ends.
pub fn reset_this_cpu() {
    drain();
    let mut t = tap();
    t.stepping = false;
    t.disarm();
    *t = Tap::new();
    drop(t);
    stage2::set_vector_page(cpu(), None, false);
    start_sampling();
}

/// True while the tap single-steps the guest through its vector page.
pub fn is_stepping() -> bool {
    tap().stepping
}

/// Emits, in order, this CPU's records the fast paths queued (entries, POR
/// changes). Called first at every Rust trap of the CPU, so nothing it
/// records is ahead of them.
#[inline]
pub fn drain() {
    let cpu = cpu();
    if !fast_path::has_queued(cpu) {
        return;
    }
    let mut t = tap();
    // The CPU ending the run drains the others' queues (under their tap
    // lock): once it has begun, it owns them, and this CPU records nothing
    // more (as a trap that finds the run stopping: traps.rs).
    if crate::run_end::stopping() {
        drop(t);
        crate::run_end::park();
    }
    fast_path::take_queued(cpu, |r| t.replay(r));
}

/// The run ends (this CPU ends it, `run_end::STOPPING` set): every other
/// CPU's queued records go out too, as that CPU's, before the last records.
/// A CPU's queue is read under its tap lock, which its own `drain` holds
/// (it drains nothing once the run is stopping), so no record goes out
/// twice; the assembly publishes a record only once it is whole
/// (vectors.S QUEUE_COMMIT). A record queued after this read is an entry
/// taken after the end began, as a trap then would be (it parks).
pub fn drain_others_at_stop() {
    let me = cpu();
    for c in (0..MAX_CPUS).filter(|&c| c != me) {
        if !fast_path::has_queued_at_stop(c) {
            continue;
        }
        // Not a TapGuard: nothing is published into CPU c's block, which
        // its assembly may be using.
        let mut t = TAPS[c].lock();
        t.index = c;
        t.at_stop = true;
        fast_path::take_queued_at_stop(c, |r| t.replay(r));
    }
}

/// The guest wrote VBAR_EL1 (trapped by HFGWTR_EL2.VBAR_EL1).
pub fn on_vbar_write(regs: &mut GuestRegs, value: u64) -> Handled {
    VBAR_EL1.set(value);
    let mut t = tap();
    if t.stepping {
        t.stop_stepping(regs);
    }
    t.disarm();
    t.vbar = value;
    let table = value & rules::VBAR_MASK;
    let ipa = at::va_to_ipa(table).map(page_of);
    let mut mechanism = TapMechanism::XnStep;
    if let Some(ipa) = ipa {
        crate::por_sites::release_for_tap(ipa, regs.elr);
        let hooked = if config().opts.tap_step {
            Err(HookError::Asked)
        } else {
            shadow::hook(ipa, (table - page_of(table)) as usize)
        };
        match hooked {
            Ok(plan) => {
                t.set_plan(ipa, plan);
                mechanism = TapMechanism::Trampoline;
            }
            Err(why) => {
                report_fallback(value, why);
                t.arm_xn(ipa);
            }
        }
    }
    drop(t);
    trace_out::emit(Event::TapArm {
        vbar: value,
        page: ipa.unwrap_or(u64::MAX),
        mechanism: mechanism as u64,
    });
    Handled::Done(TrapOutcome::Emulated)
}

/// Says on the console why a vector page is watched the slow way.
fn report_fallback(vbar: u64, why: HookError) {
    use crate::console::{Msg, To};
    use porwatch_monitor::trampoline::Refusal;
    let m = Msg::new(To::Console).s("tap: vector table ").hex(vbar).s(" single-stepped: ");
    match why {
        HookError::Plan(Refusal::NoRoom { slot }) => {
            m.s("no free words at the end of slot ").dec(slot as u64)
        }
        HookError::Plan(Refusal::NotRelocatable { slot, insn }) => {
            m.s("cannot move the first instruction of slot ").dec(slot as u64).s(" (").hex(insn as u64).s(")")
        }
        HookError::Plan(Refusal::FallsThrough { slot }) => m.s("slot ").dec(slot as u64).s(" runs on"),
        HookError::Plan(Refusal::Misaligned) => m.s("not 2 KiB aligned"),
        HookError::NotRam => m.s("not in guest RAM"),
        HookError::NoShadow => m.s("no shadow page free"),
        HookError::OtherTable => m.s("another CPU's hooked table shares its page"),
        HookError::Withdrawn => m.s("its page changed under other CPUs' hooks"),
        HookError::Asked => return, // porwatch.tap=step: nothing to explain
    }
    .end();
}

/// A guest HVC: the trampoline's hook if it is the first instruction of a
/// hooked slot (None: the guest's own HVC).
pub fn on_hvc(regs: &mut GuestRegs, imm: u16) -> Option<Handled> {
    let slot = trampoline::hvc_slot(imm)?;
    let hvc_at = regs.elr.wrapping_sub(4);
    let mut t = tap();
    let start = (t.vbar & rules::VBAR_MASK) + slot as u64 * SLOT_BYTES as u64;
    if !matches!(t.armed, Armed::Trampoline { .. }) || hvc_at != start {
        drop(t);
        // A hooked page, but not this CPU's exception entry: a branch to a
        // slot's first word (through another VA, or another CPU's table).
        // Run the displaced instruction.
        let ipa = at::va_to_ipa(hvc_at).map(page_of)?;
        let plan = shadow::plan_of(ipa)?;
        let off = plan.slot_offset(slot);
        if hvc_at & (rules::PAGE_SIZE - 1) != off as u64 {
            return None;
        }
        regs.elr = (hvc_at as i64).wrapping_add(plan.hooks[slot as usize].resume_offset(off)) as u64;
        return Some(Handled::Machinery);
    }
    if let Some(h) = t.try_virtual_poe(regs, slot) {
        return Some(h);
    }
    if let Some(h) = t.try_native_overlay_fault(regs, slot) {
        return Some(h);
    }
    t.record_entry(slot, regs);
    regs.elr = t.resume[slot as usize];
    Some(Handled::Machinery)
}

/// A stage-2 data abort: ours if the guest read or wrote its hooked vector
/// page (through any VA). It sees and changes its own page, never the
/// shadow.
pub fn on_data_abort(regs: &mut GuestRegs, da: &DataAbort, far: u64) -> Option<Handled> {
    let mut t = tap();
    let Armed::Trampoline { ipa } = t.armed else { return None };
    if t.stepping || da.fnv() || at::va_to_ipa(far).map(page_of) != Some(ipa) {
        return None;
    }
    let pa = ipa | (far & (rules::PAGE_SIZE - 1));
    match crate::guest_access::complete(regs, da, pa) {
        Some(Completed::Wrote) => t.refresh(ipa),
        Some(Completed::Read | Completed::CacheMaintenance) => {}
        None => t.open_for_access(regs, ipa),
    }
    Some(Handled::Machinery)
}

/// An instruction abort from the guest: ours if it hit the vector page
/// (the execute-never fallback).
pub fn on_instr_abort(regs: &mut GuestRegs, far: u64) -> Option<Handled> {
    let mut t = tap();
    if let Armed::Trampoline { ipa } = t.armed {
        // The page was withdrawn from the trampoline (another CPU's
        // refresh): this CPU moves to the execute-never tap.
        if at::va_to_ipa(far).map(page_of) != Some(ipa) || !shadow::is_withdrawn(ipa) {
            return None;
        }
        let out_of_line = t.leave_withdrawn(regs, ipa);
        if out_of_line {
            // Its entry was recorded at the hook; the displaced instruction
            // runs in place, stepped, as the rest of the vector code.
            t.start_stepping(regs, page_of(regs.elr));
            t.prev_pc = regs.elr;
            return Some(Handled::Machinery);
        }
    }
    let Armed::Xn { ipa } = t.armed else { return None };
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

/// (POR_EL1, POR_EL0, TCR2_EL1) of virtual POE, for the overlay rule.
pub fn vpoe_overlay_regs() -> (u64, u64, u64) {
    let t = tap();
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
pub fn cause_chain() -> (u64, u64) {
    fast_path::chain(cpu())
}

/// Records a POR_EL1/POR_EL0 change made at `pc` (virtual or native).
pub fn record_por_change(reg: VReg, pc: u64, old: u64, new: u64) {
    let mut t = tap();
    t.por_change(reg, pc, old, new, now());
}

/// Native POE sampling: a table-store trap at `pc` samples POR_EL1 (a
/// change since the last sample is recorded, derived).
pub fn sample_por(pc: u64) {
    if sampling() {
        let por = POR_EL1_REG.get();
        tap().sample(por, pc, now());
    }
}

fn now() -> u64 {
    CNTPCT_EL0.get()
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
    /// The IPA of the page this CPU's tap watches (hooked or execute-never).
    fn vector_page(&self) -> Option<u64> {
        match self.armed {
            Armed::Xn { ipa } | Armed::Trampoline { ipa } => Some(ipa),
            Armed::Off => None,
        }
    }

    fn por_el1(&self) -> u64 {
        match poe_mode() {
            Mode::Virtual => self.vpoe.por_el1,
            Mode::Native => POR_EL1_REG.get(),
            Mode::None => 0,
        }
    }

    /// The trampoline for the page at `ipa` is in place with `plan`.
    fn set_plan(&mut self, ipa: u64, plan: Plan) {
        let vbar = self.vbar & rules::VBAR_MASK;
        for (s, r) in self.resume.iter_mut().enumerate() {
            *r = plan.resume(vbar, s as u8);
        }
        self.plan = Some(plan);
        self.armed = Armed::Trampoline { ipa };
    }

    /// The execute-never tap on the page at `ipa`, for this CPU (its
    /// private root).
    fn arm_xn(&mut self, ipa: u64) {
        self.plan = None;
        self.armed =
            if stage2::set_vector_page(cpu(), Some(ipa), false) { Armed::Xn { ipa } } else { Armed::Off };
    }

    /// Stops watching the current vector page.
    fn disarm(&mut self) {
        match core::mem::replace(&mut self.armed, Armed::Off) {
            Armed::Xn { .. } => {
                stage2::set_vector_page(cpu(), None, false);
            }
            Armed::Trampoline { ipa } => shadow::unhook(ipa),
            Armed::Off => {}
        }
        self.plan = None;
    }

    /// The trampoline on `ipa` no longer serves this CPU (`why`): the
    /// execute-never tap instead, and the trace says so.
    fn fall_back(&mut self, ipa: u64, why: HookError) {
        report_fallback(self.vbar, why);
        self.arm_xn(ipa);
        trace_out::emit(Event::TapArm { vbar: self.vbar, page: ipa, mechanism: TapMechanism::XnStep as u64 });
    }

    /// The guest changed its hooked page: rebuild the shadow (or fall back
    /// to execute-never if the page can no longer be hooked).
    fn refresh(&mut self, ipa: u64) {
        match shadow::refresh(ipa) {
            Ok(plan) => self.set_plan(ipa, plan),
            Err(Lost::Unhooked(why)) => self.fall_back(ipa, why),
            Err(Lost::Withdrawn(why)) => {
                shadow::unhook(ipa);
                self.fall_back(ipa, why);
            }
        }
    }

    /// The trampoline's page `ipa` was withdrawn for every CPU (another
    /// CPU's refresh) and this CPU fetched from it: leave it for the
    /// execute-never tap. A fetch of a displaced instruction out of line
    /// resumes at the slot's first word, where it is in the guest's page
    /// (true: the caller steps on from there, the entry already recorded).
    fn leave_withdrawn(&mut self, regs: &mut GuestRegs, ipa: u64) -> bool {
        let mut out_of_line = false;
        if let Some(plan) = self.plan {
            let va = regs.elr;
            if page_of(va) == page_of(self.vbar) {
                if let Some(slot) = plan.out_of_line_slot((va & (rules::PAGE_SIZE - 1)) as usize) {
                    regs.elr = (self.vbar & rules::VBAR_MASK) + slot as u64 * SLOT_BYTES as u64;
                    out_of_line = true;
                }
            }
        }
        self.armed = Armed::Off;
        shadow::unhook(ipa);
        self.fall_back(ipa, HookError::Withdrawn);
        out_of_line
    }

    /// A data access to the hooked page porwatch does not complete itself:
    /// the page is mapped as itself for this CPU alone (its private root)
    /// and the access single-stepped; the next step (or an entry taken
    /// meanwhile) ends it (`stop_stepping`). The other CPUs keep fetching
    /// the shadow.
    fn open_for_access(&mut self, regs: &mut GuestRegs, ipa: u64) {
        if let Some(plan) = self.plan {
            // The displaced instruction itself, out of line: it runs at its
            // own place (the same instruction there, unrelocated).
            let va = regs.elr;
            if page_of(va) == page_of(self.vbar) {
                if let Some(slot) = plan.out_of_line_slot((va & (rules::PAGE_SIZE - 1)) as usize) {
                    regs.elr = (self.vbar & rules::VBAR_MASK) + slot as u64 * SLOT_BYTES as u64;
                }
            }
        }
        stage2::set_vector_page(cpu(), Some(ipa), true);
        self.start_stepping(regs, NO_PAGE);
        self.prev_pc = regs.elr;
    }

    fn write_tcr2(&mut self, pc: u64, v: u64) {
        let c = &crate::cpu_view::get().controls;
        let new = v & c.tcr2_guest;
        let old = self.vpoe.set(VReg::Tcr2El1, new);
        if c.tcr2 == Tcr2Path::Hardware {
            TCR2_EL1_REG.set(new & c.tcr2_hw);
        }
        crate::audit::note_overlay(self.vpoe.por_el1, new, false);
        // Before the guest runs with POE on, no leaf table stays open.
        // (WATCH after this CPU's tap lock: pt.rs takes only its own CPU's
        // tap lock under WATCH, never another's.)
        crate::pt::on_tcr2(self.index, new);
        if old != new {
            trace_out::emit(Event::Tcr2Write { pc, old, new });
        }
    }

    fn por_change(&mut self, reg: VReg, pc: u64, old: u64, new: u64, ts: u64) {
        if old == new {
            return;
        }
        let (at_entry, entry_seq) =
            if reg == VReg::PorEl1 { self.window.on_por_change() } else { (false, 0) };
        let reg = if reg == VReg::PorEl1 { PorReg::PorEl1 } else { PorReg::PorEl0 };
        let seq = trace_out::emit_at(
            self.index,
            ts,
            Event::PorWrite {
                pc,
                reg: reg as u64,
                old,
                new,
                at_entry: at_entry as u64,
                entry_seq,
                sampled: 0,
            },
        );
        fast_path::set_chain_por(self.index, seq);
        if reg == PorReg::PorEl1 {
            // The audit learns the entry code's value from resets only (a
            // syscall's entry finds POR_EL1 at its default, so the first
            // change after it is the handler's raise).
            crate::audit::note_overlay(new, self.vpoe.tcr2_el1, streams_transition(at_entry, old, new));
            if crate::audit::learning() && !self.por_plain.contains(&Some(new)) {
                self.por_plain = [self.por_plain[1], Some(new)];
            }
        }
    }

    /// The values in `por_plain` the audit still has no use for (TCR2_EL1
    /// or SCTLR_EL1.WXN may have changed since they were judged).
    fn por_known(&self) -> [Option<u64>; 2] {
        self.por_plain.map(|v| v.filter(|&v| !crate::audit::restrictive(v, self.vpoe.tcr2_el1)))
    }

    /// Native POE sampling: POR_EL1 is `por` at `pc`.
    fn sample(&mut self, por: u64, pc: u64, ts: u64) {
        if let Some(d) = self.samples.sample(&mut self.window, por) {
            let seq = trace_out::emit_at(
                self.index,
                ts,
                Event::PorWrite {
                    pc,
                    reg: PorReg::PorEl1 as u64,
                    old: d.old,
                    new: d.new,
                    at_entry: d.at_entry as u64,
                    entry_seq: d.entry_seq,
                    sampled: 1,
                },
            );
            fast_path::set_chain_por(self.index, seq);
            crate::audit::note_overlay(
                d.new,
                self.vpoe.tcr2_el1,
                streams_transition(d.at_entry, d.old, d.new),
            );
        }
        if !self.at_stop {
            fast_path::set_por_sample(self.index, por);
        }
    }

    /// Emits one record the assembly queued.
    fn replay(&mut self, r: &[u64; fast_path::QUEUE_WORDS]) {
        let arg = r[0] >> fast_path::Q_ARG_SHIFT;
        match r[0] & ((1 << fast_path::Q_ARG_SHIFT) - 1) {
            fast_path::Q_ENTRY => {
                let e = EntryRegs { elr: r[2], spsr: r[3], esr: r[4], far: r[5] };
                let seq = self.emit_entry(arg as u8, e, r[6], r[1]);
                if !self.at_stop {
                    crate::unwind::note_entry(seq, e.elr, r[7], r[8]);
                }
            }
            fast_path::Q_POR => {
                let reg = if arg == PorReg::PorEl0 as u64 { VReg::PorEl0 } else { VReg::PorEl1 };
                self.por_change(reg, r[2], r[3], r[4], r[1]);
            }
            _ => {}
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

    /// The guest is at vector slot `slot` with the CPU's entry registers.
    /// (and the interrupted code's x29/x30 in `regs`).
    fn record_entry(&mut self, slot: u8, regs: &GuestRegs) {
        let e = entry_regs();
        let por = self.por_el1();
        let seq = self.emit_entry(slot, e, por, now());
        crate::unwind::note_entry(seq, e.elr, regs.get(crate::unwind::FP), regs.get(crate::unwind::LR));
    }

    /// An exception entry at `ts`: slot, the CPU's registers, the POR_EL1
    /// in force. Returns its seq.
    fn emit_entry(&mut self, slot: u8, e: EntryRegs, por: u64, ts: u64) -> u64 {
        if sampling() {
            // A change since the last sample happened before this entry.
            self.sample(por, e.elr, ts);
        }
        self.shadow.push(e, config().opts.exc_return);
        let depth = if config().opts.exc_return { self.shadow.depth() } else { 0 };
        let seq = trace_out::emit_at(
            self.index,
            ts,
            Event::ExcEntry {
                vector: slot as u64,
                esr: e.esr,
                elr: e.elr,
                spsr: e.spsr,
                far: e.far,
                por,
                depth,
            },
        );
        self.window.on_entry(seq);
        // The cause chain's latest entry at once (a hazard found before the
        // lock is released reads it): the window's, published again later.
        fast_path::set_window(self.index, seq, true);
        seq
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
        if matches!(acc.reg, VReg::PorEl1 | VReg::PorEl0) && !from_el0 {
            crate::por_sites::after_undef(e.elr, self.vector_page());
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
                r => self.por_change(r, e.elr, old, new, now()),
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
            if let Armed::Xn { .. } = self.armed {
                stage2::set_vector_exec(cpu(), true);
            }
            self.guest_mdscr = debug::start();
            self.stepping = true;
        }
        regs.spsr |= SPSR_SS;
    }

    fn stop_stepping(&mut self, regs: &mut GuestRegs) {
        if self.stepping {
            debug::stop(self.guest_mdscr);
            match self.armed {
                Armed::Xn { .. } => {
                    stage2::set_vector_exec(cpu(), false);
                }
                Armed::Trampoline { ipa } => {
                    // A data access was stepped: the shadow again (this
                    // CPU's private page dropped), from the page as the
                    // guest left it.
                    stage2::set_vector_page(cpu(), None, false);
                    self.refresh(ipa);
                    // Stepping stopped on an entry porwatch recorded (the
                    // access raised an exception, or one was pending): the
                    // hook must not record it again.
                    if let Some(slot) = rules::slot(self.vbar, regs.elr) {
                        if self.armed == (Armed::Trampoline { ipa }) {
                            regs.elr = self.resume[slot as usize];
                        }
                    }
                }
                Armed::Off => {}
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
