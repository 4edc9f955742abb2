//! The guest's SMC and HVC calls (SMCCC): PSCI for its one vCPU, firmware
//! services forwarded with the `smccc` crate, porwatch's test-exit call, and
//! NOT_SUPPORTED for everything else. What to do is decided by
//! porwatch_monitor::psci (host-tested); this file only carries it out.
use crate::arch::frame::GuestRegs;
use crate::boot::config;
use crate::run_end;
use crate::trace_out;
use crate::traps::Handled;
use porwatch_monitor::psci::{self, Decision, GuestCall};
use porwatch_trace::{Event, ExitReason, PsciConduit, TrapOutcome};

#[derive(Clone, Copy)]
pub enum Conduit {
    Smc,
    Hvc,
}

/// SMCCC: the immediate of an SMC/HVC call must be 0; anything else is not
/// an SMCCC call and gets NOT_SUPPORTED.
const SMCCC_IMM: u16 = 0;
/// Passes the guest's call to firmware (SMC from EL2) and returns its
/// x0..x17 to the guest (SMCCC v1.2 results; earlier versions leave x4..x17
/// unpredictable, so this suits every version the guest may be told);
/// returns x0. Without firmware (porwatch entered at EL3)
/// decide_without_firmware never forwards; NOT_SUPPORTED is a safety net.
fn forward(regs: &mut GuestRegs, x0: u64) -> u64 {
    if !crate::boot::has_firmware() {
        regs.x[0] = SMCCC_NOT_SUPPORTED;
        return SMCCC_NOT_SUPPORTED;
    }
    let mut args = [0u64; FORWARD_ARGS];
    args.copy_from_slice(&regs.x[1..=FORWARD_ARGS]);
    let ret = smccc::smc64(psci::function_id(x0), args);
    regs.x[..=FORWARD_ARGS].copy_from_slice(&ret);
    ret[0]
}

/// SMCCC's NOT_SUPPORTED (-1) as an x0 value.
const SMCCC_NOT_SUPPORTED: u64 = -1i64 as u64;
/// Arguments forwarded to firmware: x1..x17; results x0..x17 (SMCCC v1.2).
const FORWARD_ARGS: usize = 17;

pub fn handle(regs: &mut GuestRegs, conduit: Conduit, imm: u16) -> Handled {
    let (x0, x1, x2, x3) = (regs.x[0], regs.x[1], regs.x[2], regs.x[3]);
    let cfg = config();
    let hyp = (cfg.layout.start, cfg.layout.end - cfg.layout.start);
    let call = if imm == SMCCC_IMM { psci::classify(x0, x1, x2, x3) } else { GuestCall::Unknown(x0 as u32) };
    let decision = if crate::boot::has_firmware() {
        psci::decide(call, hyp, cfg.ids.mpidr)
    } else {
        psci::decide_without_firmware(call, hyp, cfg.ids.mpidr)
    };

    let conduit_code = match conduit {
        Conduit::Smc => PsciConduit::Smc,
        Conduit::Hvc => PsciConduit::Hvc,
    } as u64;
    let record = |result: u64| {
        trace_out::emit(Event::Psci {
            function: x0,
            arg0: x1,
            arg1: x2,
            arg2: x3,
            result: result as i64,
            conduit: conduit_code,
        })
    };

    match decision {
        Decision::Forward => {
            let ret = forward(regs, x0);
            record(ret);
            Handled::Done(TrapOutcome::Forwarded)
        }
        Decision::ForwardVersion => {
            regs.x[0] = psci::clamp_version(forward(regs, x0));
            record(regs.x[0]);
            Handled::Done(TrapOutcome::Forwarded)
        }
        Decision::PowerOff => {
            record(0);
            run_end::guest_done(ExitReason::SystemOff, 0)
        }
        Decision::Reset => {
            record(0);
            run_end::guest_done(ExitReason::SystemReset, 0)
        }
        Decision::CpuOff => {
            record(0);
            run_end::guest_done(ExitReason::CpuOff, 0)
        }
        Decision::TestExit(code) => {
            record(0);
            run_end::guest_done(ExitReason::TestExit, code)
        }
        // Suspend: a standby CPU_SUSPEND may return at once (PSCI 1.1,
        // 5.4.2); the guest re-checks its wake-up condition itself.
        Decision::Suspend | Decision::Answer(_) | Decision::Deny(_) => {
            let v = decision.x0().unwrap_or(SMCCC_NOT_SUPPORTED);
            regs.x[0] = v;
            record(v);
            Handled::Done(TrapOutcome::Emulated)
        }
    }
}
