//! Stores porwatch does not emulate (SIMD&FP data, 16-byte CASP, LS64, an
//! instruction it cannot read, the stage-1 walker's own access-flag
//! updates, ...): the instruction runs natively, once, single-stepped with
//! the table page(s) writable; the pages are copied before and compared
//! after, every descriptor that changed goes to the tracker, and the pages
//! are write-protected again. Nothing goes unwatched, and the tracker sees
//! every descriptor written (`pt_stats.stepped_stores`).
//!
//! The step is one instruction with interrupts masked (SPSR_EL2.I/F/A set
//! for that instruction only: a store does not read them): no IRQ, FIQ or
//! SError can be taken inside the window, so it ends either after the
//! store or at the vector of a synchronous exception the store itself
//! took (whose SPSR_EL1 gets the guest's own mask bits back). A trap to
//! EL2 while the step is pending is either the same instruction faulting
//! on a second tracked page (added to the window, the step restarts) or
//! ends the step first. When the tap is already stepping the guest through
//! its vector page, this step is one of its steps: the assembly's step fast
//! path is paused so the step comes here, then the tap classifies it.
//!
//! Fault policy with a hazard whose written value porwatch cannot compute
//! (the data is in SIMD&FP registers, which EL2 never reads): the store runs
//! once, the value it wrote is recorded, memory and registers are put back
//! and the overlay fault is injected, as if it never ran. On one vCPU
//! nothing else can observe the page in that window.
use super::{apply, record_hazard, HazardInfo, Ram, ISS2_OVERLAY, WATCH};
use crate::arch::debug::{self, SPSR_SS};
use crate::arch::frame::GuestRegs;
use crate::arch::{at, fast_path, inject, percpu, stage2};
use crate::tap;
use crate::traps::Handled;
use aarch64_cpu::registers::*;
use porwatch_monitor::cpus::MAX_CPUS;
use porwatch_monitor::esr::{self, ExceptionClass};
use porwatch_monitor::s1::{self, Half};
use porwatch_monitor::tap::{page_of, slot, PAGE_SIZE};
use porwatch_trace::HazardAction;
use spin::Mutex;

/// Pages one step can open: a store of at most 256 bytes (an SVE vector)
/// touches two 4 KiB pages at most.
pub(super) const MAX_PAGES: usize = 2;
const PAGE: usize = PAGE_SIZE as usize;
const WORDS: usize = PAGE / 8;
/// SPSR.F, I, A (bits 6, 7, 8): masked for the stepped instruction.
const SPSR_IAF: u64 = (1 << 6) | (1 << 7) | (1 << 8);
const INSN_LEN: u64 = 4;

/// A hazard of the stepped store, reported when it has run.
#[derive(Clone, Copy)]
pub(super) struct Hazard {
    pub va: u64,
    pub ipa: u64,
    pub level: (i8, Half),
    pub verdict: Option<(s1::OverlayVerdict, u64, i8)>,
    pub unprivileged: bool,
}

/// What to step.
#[derive(Clone)]
pub(super) struct Request {
    pc: u64,
    /// Table pages (IPA) the store may write, made writable for the step.
    pages: heapless::Vec<u64, MAX_PAGES>,
    hazards: heapless::Vec<Hazard, MAX_PAGES>,
    /// Fault policy: undo the store and inject this overlay fault (FAR,
    /// DFSC) once the written value is known.
    fault: Option<(u64, u8)>,
}

impl Request {
    pub(super) const fn new(pc: u64) -> Self {
        Self { pc, pages: heapless::Vec::new(), hazards: heapless::Vec::new(), fault: None }
    }

    /// Opens `page` too (once; beyond [`MAX_PAGES`] the hardware's own
    /// stage-2 fault brings it, see [`on_trap`]).
    pub(super) fn add_page(&mut self, page: u64) {
        if !self.pages.contains(&page) {
            let _ = self.pages.push(page);
        }
    }

    pub(super) fn add_hazard(&mut self, h: Hazard) {
        let _ = self.hazards.push(h);
    }

    pub(super) fn has_hazards(&self) -> bool {
        !self.hazards.is_empty()
    }

    pub(super) fn hazards(&self) -> &[Hazard] {
        &self.hazards
    }

    /// Fault policy: after the step, undo it and inject a permission fault
    /// with DFSC `fsc` and the Overlay bit at `far`.
    pub(super) fn fault_after(&mut self, far: u64, fsc: u8) {
        self.fault = Some((far, fsc));
    }
}

/// The guest state a fault-policy step puts back.
#[derive(Clone, Copy)]
struct Saved {
    x: [u64; 31],
    elr: u64,
    spsr: u64,
    sp_el0: u64,
    sp_el1: u64,
    elr_el1: u64,
    spsr_el1: u64,
    esr_el1: u64,
    far_el1: u64,
}

impl Saved {
    fn now(regs: &GuestRegs) -> Self {
        Self {
            x: regs.x,
            elr: regs.elr,
            spsr: regs.spsr,
            sp_el0: SP_EL0.get(),
            sp_el1: SP_EL1.get(),
            elr_el1: ELR_EL1.get(),
            spsr_el1: SPSR_EL1.get(),
            esr_el1: ESR_EL1.get(),
            far_el1: FAR_EL1.get(),
        }
    }

    fn restore(&self, regs: &mut GuestRegs) {
        regs.x = self.x;
        regs.elr = self.elr;
        regs.spsr = self.spsr;
        SP_EL0.set(self.sp_el0);
        SP_EL1.set(self.sp_el1);
        ELR_EL1.set(self.elr_el1);
        SPSR_EL1.set(self.spsr_el1);
        ESR_EL1.set(self.esr_el1);
        FAR_EL1.set(self.far_el1);
    }
}

/// One vCPU's step in progress.
struct Pending {
    active: bool,
    req: Request,
    /// SPSR_EL2.I/F/A as the guest had them.
    iaf: u64,
    /// porwatch turned single-stepping on for this step (the tap was not
    /// stepping); the guest's MDSCR_EL1 to put back.
    own_debug: bool,
    guest_mdscr: u64,
    saved: Option<Saved>,
    /// The pages as they were before the step.
    copies: [[u64; WORDS]; MAX_PAGES],
}

static PENDING: [Mutex<Pending>; MAX_CPUS] = [const {
    Mutex::new(Pending {
        active: false,
        req: Request::new(0),
        iaf: 0,
        own_debug: false,
        guest_mdscr: 0,
        saved: None,
        copies: [[0; WORDS]; MAX_PAGES],
    })
}; MAX_CPUS];

fn pending() -> &'static Mutex<Pending> {
    &PENDING[percpu::index()]
}

/// The word at `pa` (guest RAM, identity-mapped at EL2).
fn word(pa: u64) -> u64 {
    // SAFETY: tracked table pages are guest RAM.
    unsafe { core::ptr::read_volatile(pa as *const u64) }
}

fn set_word(pa: u64, v: u64) {
    // SAFETY: as `word`.
    unsafe { core::ptr::write_volatile(pa as *mut u64, v) };
}

fn copy_page(page: u64, out: &mut [u64; WORDS]) {
    for (k, w) in out.iter_mut().enumerate() {
        *w = word(page + 8 * k as u64);
    }
}

/// Starts the step: the guest re-executes the instruction at `req.pc`
/// with `req.pages` writable (the caller's lock on the watch is released
/// first).
pub(super) fn start(w: spin::MutexGuard<'_, super::Watch>, regs: &mut GuestRegs, req: Request) -> Handled {
    drop(w);
    if pending().lock().active {
        // Cannot happen (a pending step ends before any other trap is
        // handled); if it did, end that one first rather than loop.
        finish(regs, false);
    }
    let tap_stepping = tap::is_stepping();
    let mut p = pending().lock();
    for (i, &page) in req.pages.iter().enumerate() {
        copy_page(page, &mut p.copies[i]);
        fast_path::clear_leaf_page(page);
        super::open_leaves::forget(page);
        stage2::set_writable(page, true);
    }
    p.saved = req.fault.map(|_| Saved::now(regs));
    p.iaf = regs.spsr & SPSR_IAF;
    regs.spsr |= SPSR_IAF | SPSR_SS;
    p.own_debug = !tap_stepping;
    if p.own_debug {
        p.guest_mdscr = debug::start();
    }
    // The step must come to Rust even inside the tap's page.
    fast_path::pause_steps();
    p.req = req;
    p.active = true;
    Handled::Machinery
}

/// A software-step exception: if it ends a store step, finish it. Some:
/// handled; None: not ours, or the tap (which was stepping) decides next.
pub fn on_step(regs: &mut GuestRegs) -> Option<Handled> {
    if !pending().lock().active {
        return None;
    }
    finish(regs, true).own.then_some(Handled::Machinery)
}

/// Any other synchronous trap while a step is pending. The same
/// instruction faulting on another tracked page: that page joins the
/// window and the instruction runs again (Some). Otherwise the step ends
/// unfinished, and the trap is handled as usual (None).
pub fn on_trap(regs: &mut GuestRegs, esr: u64, far: u64) -> Option<Handled> {
    let mut p = pending().lock();
    if !p.active {
        return None;
    }
    let same_insn = regs.elr == p.req.pc && esr::ec_bits(esr) == ExceptionClass::DataAbortLower as u8;
    if same_insn && !p.req.pages.is_full() && esr::iss(esr) & esr::ISS_S1PTW == 0 {
        let page = at::va_to_ipa(far).map(page_of).filter(|&pg| !p.req.pages.contains(&pg));
        if let Some(page) = page.filter(|&pg| WATCH.lock().tracker.is_page_protected(pg)) {
            let i = p.req.pages.len();
            copy_page(page, &mut p.copies[i]);
            fast_path::clear_leaf_page(page);
            super::open_leaves::forget(page);
            stage2::set_writable(page, true);
            p.req.add_page(page);
            // Still masked and stepping (SPSR_EL2 as the fault left it).
            return Some(Handled::Machinery);
        }
    }
    drop(p);
    let end = finish(regs, false);
    if end.injected {
        // The guest now enters its fault handler: the trap that ended the
        // step belongs to a state that no longer exists.
        if !end.own {
            tap::after_trap(regs, true);
        }
        return Some(Handled::Machinery);
    }
    None
}

/// How a step ended.
struct End {
    /// porwatch had turned stepping on for it (else the tap is stepping and
    /// decides what comes next).
    own: bool,
    /// Fault policy: the overlay fault was injected instead.
    injected: bool,
}

/// Ends the pending step (`stepped`: a step exception, else another trap
/// came first).
fn finish(regs: &mut GuestRegs, stepped: bool) -> End {
    let mut p = pending().lock();
    p.active = false;
    let pc = p.req.pc;
    let executed = stepped && regs.elr == pc + INSN_LEN;
    regs.spsr = (regs.spsr & !SPSR_IAF) | p.iaf;
    if stepped && !executed && slot(VBAR_EL1.get(), regs.elr).is_some() {
        // The store took an exception to EL1 (it does not branch): the
        // PSTATE it saved is the guest's, not porwatch's mask.
        let mut s = (SPSR_EL1.get() & !SPSR_IAF) | p.iaf;
        if p.own_debug {
            s &= !SPSR_SS;
        }
        SPSR_EL1.set(s);
    }
    if p.own_debug {
        debug::stop(p.guest_mdscr);
        regs.spsr &= !SPSR_SS;
    }
    let own = p.own_debug;
    let mut w = WATCH.lock();
    for &page in p.req.pages.iter() {
        if w.tracker.is_page_protected(page) {
            // Protected again; an open_leaves::open of it meanwhile (another
            // CPU's store) is undone with it.
            super::open_leaves::forget(page);
            stage2::set_writable(page, false);
        }
    }
    // Each hazard's descriptor before (the copy) and after the step.
    let before_after = |p: &Pending, ipa: u64| {
        let d = ipa & !7;
        let i = p.req.pages.iter().position(|&pg| pg == page_of(d));
        let old = i.map_or_else(|| word(d), |i| p.copies[i][((d - page_of(d)) / 8) as usize]);
        (old, word(d))
    };
    let mut hz: heapless::Vec<HazardInfo, MAX_PAGES> = heapless::Vec::new();
    for h in p.req.hazards.iter() {
        let (old, new) = before_after(&p, h.ipa);
        let info = HazardInfo {
            va: h.va,
            ipa: h.ipa,
            level: h.level,
            old,
            new,
            pc,
            verdict: h.verdict,
            unprivileged: h.unprivileged,
        };
        let _ = hz.push(info);
    }

    if let Some((far, fsc)) = p.req.fault {
        // Fault policy: the value is known now; put everything back as it
        // was and raise the overlay fault instead.
        for (i, &page) in p.req.pages.iter().enumerate() {
            for k in 0..WORDS {
                let pa = page + 8 * k as u64;
                if word(pa) != p.copies[i][k] {
                    set_word(pa, p.copies[i][k]);
                }
            }
        }
        if let Some(s) = p.saved.take() {
            s.restore(regs);
        }
        w.hazards += hz.len() as u64;
        drop(w);
        drop(p);
        for h in hz.iter() {
            record_hazard(h, HazardAction::FaultInjected);
        }
        inject::data_abort(regs, fsc, true, ISS2_OVERLAY, far);
        return End { own, injected: true };
    }

    let mut changed = false;
    for (i, &page) in p.req.pages.iter().enumerate() {
        for k in 0..WORDS {
            let pa = page + 8 * k as u64;
            let (old, new) = (p.copies[i][k], word(pa));
            if old != new {
                changed = true;
                let e = w.tracker.on_store(pa, &old.to_le_bytes(), &new.to_le_bytes(), &Ram, &mut apply);
                w.table_writes += e.descriptors as u64;
            }
        }
    }
    if executed {
        w.stores += 1;
        w.stepped_stores += 1;
    }
    // A hazard is reported once the store has run (an exception it took
    // first means it runs again later, and is checked again then).
    let report = executed || changed;
    if report {
        w.hazards += hz.len() as u64;
    }
    drop(w);
    drop(p);
    if report {
        for h in hz.iter() {
            record_hazard(h, HazardAction::Performed);
        }
    }
    End { own, injected: false }
}
