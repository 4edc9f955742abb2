//! The trap path: every guest exception taken to EL2 arrives here (from
//! vectors.S), is decoded into a typed exit, handled, traced, and returns to
//! the guest. Nothing here allocates or formats.
use crate::arch::frame::GuestRegs;
use crate::arch::inject;
use crate::psci;
use crate::pt;
use crate::sysreg;
use crate::tap;
use crate::trace_out;
use aarch64_cpu::registers::{Readable, ESR_EL2, FAR_EL2};
use porwatch_monitor::esr::{self, Exit};
use porwatch_trace::{Event, TrapOutcome};

/// What a handler did; becomes the trace record's outcome.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// Serviced (emulated or forwarded); the guest continues.
    Done(TrapOutcome),
    /// Not serviceable: the guest was given the exception the architecture
    /// prescribes (logged as unknown_trap with ESR/ELR/FAR).
    Refused(TrapOutcome),
    /// porwatch's own machinery: the tap's vector-page fetches and steps,
    /// emulated page-table stores. Summarised by their own records
    /// (exc_entry, exc_return, por_write, hazard, pt_stats) rather than one
    /// `trap` record each: at one record per table store the trace UART
    /// would cost more than the emulation.
    Machinery,
}

/// Vector kind from vectors.S for a synchronous exception from AArch64
/// (1..3: IRQ, FIQ, SError; 4..7: the same from AArch32).
const KIND_SYNC: u64 = 0;

#[unsafe(no_mangle)]
extern "C" fn handle_guest_exception(regs: &mut GuestRegs, kind: u64) {
    if crate::run_end::stopping() {
        crate::run_end::park(); // another CPU is ending the run
    }
    // What this CPU's fast paths queued comes first in its trace.
    tap::drain();
    // Any CPU's trap closes a batch that has waited too long (its CPU may be idle).
    trace_out::close_aged_batches();
    crate::dma::poll_if_due();
    let esr = ESR_EL2.get();
    let elr = regs.elr;
    let handled = if kind == KIND_SYNC {
        dispatch(regs, esr)
    } else {
        // IRQ/FIQ/SError are routed to EL1 (HCR_EL2.IMO/FMO/AMO = 0) and an
        // AArch32 guest cannot exist (HCR_EL2.RW = 1): log and carry on.
        Handled::Refused(TrapOutcome::Ignored)
    };
    // No lock is held here: a protection audit that is due runs now.
    crate::audit::run_pending();
    match handled {
        // The tap's own traps leave the stepping state as they want it.
        Handled::Machinery => return,
        Handled::Done(_) => tap::after_trap(regs, false),
        Handled::Refused(outcome) => {
            tap::after_trap(regs, matches!(outcome, TrapOutcome::UndefInjected | TrapOutcome::AbortInjected))
        }
    }
    match handled {
        Handled::Machinery => {}
        Handled::Done(outcome) => {
            trace_out::emit(Event::Trap { esr, elr, outcome: outcome as u64 });
        }
        Handled::Refused(action) => {
            // FAR_EL2 is UNKNOWN unless the exception is an abort (or PC
            // alignment, watchpoint): 0 then (docs/trace-format.md).
            let far = if esr::far_valid(esr) { FAR_EL2.get() } else { 0 };
            trace_out::emit(Event::UnknownTrap { esr, elr, far, action: action as u64 });
        }
    }
}

#[inline]
fn dispatch(regs: &mut GuestRegs, esr: u64) -> Handled {
    let exit = esr::decode(esr);
    // A store the page-table watch is single-stepping ends first (or this
    // is the same store faulting on its second table page).
    if !matches!(exit, Exit::SoftwareStepLower { .. }) {
        if let Some(h) = pt::on_trap_while_stepping(regs, esr, FAR_EL2.get()) {
            return h;
        }
    }
    match exit {
        Exit::Hvc { imm } => match tap::on_hvc(regs, imm) {
            Some(h) => h,
            None => psci::handle(regs, psci::Conduit::Hvc, imm),
        },
        Exit::Smc { imm } => {
            // A trapped SMC's preferred return address is the SMC itself.
            regs.elr += 4;
            psci::handle(regs, psci::Conduit::Smc, imm)
        }
        Exit::DataAbortLower(da) => {
            tap::sample_por(regs.elr);
            if let Some(h) = pt::on_data_abort(regs, &da, FAR_EL2.get()) {
                return h;
            }
            if da.s1ptw() {
                // The guest's own walk read an IPA with nothing behind it.
                return pt::on_stage2_walk_fault(regs, FAR_EL2.get(), false);
            }
            if let Some(h) = crate::gicr::on_data_abort(regs, &da, esr) {
                return h;
            }
            // The guest's own vector page, while the tap's shadow replaces
            // it at stage 2.
            if let Some(h) = tap::on_data_abort(regs, &da, FAR_EL2.get()) {
                return h;
            }
            // A code page with patched POR_EL1 sites (por_sites.rs).
            if let Some(h) = crate::por_sites::on_data_abort(regs, &da, FAR_EL2.get()) {
                return h;
            }
            if remapped_meanwhile(da.dfsc()) {
                return Handled::Machinery;
            }
            // Nothing is emulated at stage 2 yet: an abort means the guest
            // touched memory it does not own (hyp memory, the trace UART, a
            // hole). Real hardware would answer with an external abort.
            inject::external_data_abort(regs, esr, da.wnr(), FAR_EL2.get());
            Handled::Refused(TrapOutcome::AbortInjected)
        }
        Exit::InstrAbortLower(ia) => {
            let far = FAR_EL2.get();
            if ia.s1ptw() {
                // The walk for an instruction fetch: the walker updating a
                // tracked table, or a table with nothing behind it.
                if matches!(ia.ifsc(), esr::FaultStatus::Permission { .. }) {
                    if let Some(h) = pt::on_walker_write(regs) {
                        return h;
                    }
                }
                return pt::on_stage2_walk_fault(regs, far, true);
            }
            if let Some(h) = tap::on_instr_abort(regs, far) {
                return h;
            }
            if remapped_meanwhile(ia.ifsc()) {
                return Handled::Machinery;
            }
            inject::external_instr_abort(regs, esr, far);
            Handled::Refused(TrapOutcome::AbortInjected)
        }
        Exit::SoftwareStepLower { .. } => pt::on_step_pending(regs).unwrap_or_else(|| tap::on_step(regs)),
        Exit::Eret { .. } => tap::on_eret(regs),
        Exit::SysReg(acc) => sysreg::handle(regs, esr, acc),
        // BRK (and other debug exceptions) reach EL2 only while porwatch
        // steps the guest (MDCR_EL2.TDE): they are the guest's, hand them on.
        Exit::Brk { .. } => {
            inject::reflect(regs, esr);
            Handled::Done(TrapOutcome::Forwarded)
        }
        Exit::Unknown { .. } | Exit::Wfx(_) => {
            inject::undef(regs, esr);
            Handled::Refused(TrapOutcome::UndefInjected)
        }
        Exit::SError(_) => Handled::Refused(TrapOutcome::Ignored),
        // The first SVE use on this CPU (CPTR_EL2.TZ, arch/el2.rs): enabled,
        // the guest retries it. Otherwise SVE is not the guest's: UNDEF.
        Exit::SveAccess if crate::arch::el2::on_sve_trap() => Handled::Machinery,
        Exit::SveAccess => {
            inject::undef(regs, esr);
            Handled::Refused(TrapOutcome::UndefInjected)
        }
    }
}

/// A translation or access-flag fault at stage 2 on a page stage 2 maps by
/// now: another CPU replaced its descriptor meanwhile (break-before-make,
/// when a patched code page or the tap's vector page moves to or from its
/// shadow). The access is retried rather than answered with an abort.
fn remapped_meanwhile(fsc: esr::FaultStatus) -> bool {
    matches!(fsc, esr::FaultStatus::Translation { .. } | esr::FaultStatus::AccessFlag { .. })
        && crate::arch::stage2::maps(crate::arch::stage2::fault_ipa())
}
