//! A stage-2 fault on the guest's own stage-1 walk (S1PTW = 1): a table
//! descriptor or TTBR points at an IPA with nothing behind it (outside guest
//! RAM, porwatch's memory). The guest gets what the hardware and bare QEMU
//! give: a synchronous external abort *on a translation table walk*
//! (DFSC/IFSC 0b0101LL) at the lookup level whose descriptor fetch failed.
//! ESR_EL2 describes the stage-2 fault, not that level: porwatch walks the
//! guest's stage 1 for FAR itself and stops where the read finds nothing.
use super::Ram;
use crate::arch::frame::GuestRegs;
use crate::arch::{at, inject};
use crate::traps::Handled;
use aarch64_cpu::registers::*;
use porwatch_monitor::inject::WalkAccess;
use porwatch_monitor::s1::{self, Regime, WalkError};
use porwatch_monitor::store::{self, Unsupported};
use porwatch_trace::TrapOutcome;

/// The guest's access to `far` (an instruction fetch if `fetch`) faulted at
/// stage 2 on its stage-1 walk, not for a tracked table: inject the
/// external abort on the walk.
pub fn on_stage2_walk_fault(regs: &mut GuestRegs, far: u64, fetch: bool) -> Handled {
    let access = if fetch { WalkAccess::Fetch } else { access_of(regs.elr) };
    inject_for(regs, far, access)
}

/// Injects the external abort on the stage-1 walk for `far`.
pub(super) fn inject_for(regs: &mut GuestRegs, far: u64, access: WalkAccess) -> Handled {
    let regime = Regime::from_tcr(TCR_EL1.get());
    match s1::walk_regime(&Ram, far, &regime, TTBR0_EL1.get(), TTBR1_EL1.get()) {
        Err(WalkError::Unreadable { level, .. }) => inject::walk_external_abort(regs, access, level, far),
        // porwatch's walk did not fail where the CPU's did (the tables
        // changed in between): an external abort, not on a walk.
        _ => match access {
            WalkAccess::Fetch => inject::external_instr_abort(regs, 0, far),
            a => inject::external_data_abort(regs, 0, a != WalkAccess::Read, far),
        },
    }
    Handled::Refused(TrapOutcome::AbortInjected)
}

/// What the data access of the instruction at `pc` was (the stage-2 fault
/// on the walk reports the walk's read, WnR = 0, not the access's
/// direction): a store, cache maintenance, or a read.
fn access_of(pc: u64) -> WalkAccess {
    match at::read_insn(pc).map(store::decode) {
        Some(Err(Unsupported::CacheMaintenance)) => WalkAccess::CacheMaintenance,
        Some(Err(Unsupported::NotAStore | Unsupported::Unallocated)) | None => WalkAccess::Read,
        // Every store class: plain, atomic, DC ZVA, SIMD, MOPS, tags, ...
        Some(_) => WalkAccess::Write,
    }
}
