//! Delivering an exception to the guest's EL1: the values come from
//! porwatch_monitor::inject (host-tested), this writes them to the CPU.
use super::frame::GuestRegs;
use aarch64_cpu::registers::*;
use core::sync::atomic::{AtomicBool, Ordering};
use porwatch_monitor::inject::{self, GuestState, Injection, WalkAccess};

/// ESR_ELx.IL: the trapped instruction was 32 bits.
const ESR_IL: u64 = 1 << 25;

/// FEAT_MTE: PSTATE.TCO is set on exception entry (boot says, [`set_mte`]).
static MTE: AtomicBool = AtomicBool::new(false);

/// Tells injection whether the CPU has FEAT_MTE (boot, before the guest runs).
pub fn set_mte(mte: bool) {
    MTE.store(mte, Ordering::Relaxed);
}

fn state(regs: &GuestRegs, esr_el2: u64) -> GuestState {
    GuestState {
        spsr_el2: regs.spsr,
        elr_el2: regs.elr,
        vbar_el1: VBAR_EL1.get(),
        sctlr_el1: SCTLR_EL1.get(),
        il32: esr_el2 & ESR_IL != 0,
        mte: MTE.load(Ordering::Relaxed),
    }
}

fn apply(regs: &mut GuestRegs, inj: Injection) {
    ESR_EL1.set(inj.esr_el1);
    ELR_EL1.set(inj.elr_el1);
    SPSR_EL1.set(inj.spsr_el1);
    if let Some(far) = inj.far_el1 {
        FAR_EL1.set(far);
    }
    regs.elr = inj.elr_el2;
    regs.spsr = inj.spsr_el2;
}

/// Hands a synchronous exception the guest itself should have taken at EL1
/// (a BRK routed to EL2 while porwatch steps it) back to the guest, with
/// the same syndrome. BRK's EC (0x3C) does not depend on the source EL.
pub fn reflect(regs: &mut GuestRegs, esr_el2: u64) {
    let inj = inject::sync_exception(&state(regs, esr_el2), esr_el2, None);
    apply(regs, inj);
}

/// A data abort at EL1 with the given fault status, WnR, ISS2 (e.g. the
/// Overlay bit) and FAR: what the hardware raises for a stage-1 fault.
pub fn data_abort(regs: &mut GuestRegs, fsc: u8, wnr: bool, iss2: u32, far: u64) {
    let inj = inject::data_abort(&state(regs, 0), fsc, wnr, iss2, far);
    apply(regs, inj);
}

/// UNDEFINED instruction at the trapping PC.
pub fn undef(regs: &mut GuestRegs, esr_el2: u64) {
    let inj = inject::undef(&state(regs, esr_el2));
    apply(regs, inj);
}

/// Synchronous external abort on a data access to `far`.
pub fn external_data_abort(regs: &mut GuestRegs, esr_el2: u64, wnr: bool, far: u64) {
    let inj = inject::external_data_abort(&state(regs, esr_el2), far, wnr);
    apply(regs, inj);
}

/// Synchronous external abort on an instruction fetch from `far`.
pub fn external_instr_abort(regs: &mut GuestRegs, esr_el2: u64, far: u64) {
    let inj = inject::external_instr_abort(&state(regs, esr_el2), far);
    apply(regs, inj);
}

/// Synchronous external abort on the guest's stage-1 walk for `far`, at
/// lookup level `level` (the descriptor fetch found nothing there).
pub fn walk_external_abort(regs: &mut GuestRegs, access: WalkAccess, level: i8, far: u64) {
    let inj = inject::walk_external_abort(&state(regs, 0), access, level, far);
    apply(regs, inj);
}
