//! The guest's SMC and HVC calls (SMCCC): PSCI for every CPU, firmware
//! services forwarded with the `smccc` crate, porwatch's test-exit call, and
//! NOT_SUPPORTED for everything else. What to do is decided by
//! porwatch_monitor::psci (host-tested) from the CPUs' power states kept
//! here; this file carries it out.
//!
//! Starting a CPU (CPU_ON): with firmware, its CPU_ON is forwarded with
//! porwatch's own entry point (boot.S `secondary_entry`, in the copy of
//! porwatch at the top of RAM) and the CPU's index as context ID; the CPU
//! sets EL2 up (boot.rs `hyp_secondary`) and enters the guest's entry point
//! with the guest's context ID, which wait in [`POWER`]. Without firmware
//! (an EL3 entry) porwatch is the only PSCI there is: the CPU waits in
//! porwatch's pen (arch/pen.rs) until released.
use crate::arch::frame::GuestRegs;
use crate::arch::percpu;
use crate::boot::config;
use crate::run_end;
use crate::trace_out;
use crate::traps::Handled;
use porwatch_monitor::cpus::MAX_CPUS;
use porwatch_monitor::psci::{self, Decision, GuestCall, Machine, Power};
use porwatch_trace::{CpuStartReason, CpuStopReason, Event, ExitReason, PsciConduit, TrapOutcome};
use smccc::psci::{PSCI_CPU_OFF, PSCI_CPU_ON_64, PSCI_CPU_SUSPEND_64};
use spin::Mutex;

#[derive(Clone, Copy)]
pub enum Conduit {
    Smc,
    Hvc,
}

/// Where a CPU enters the guest next, and why.
#[derive(Clone, Copy)]
pub struct Start {
    pub entry: u64,
    pub context: u64,
    pub reason: CpuStartReason,
}

/// The CPUs' power states, and the guest entry each CPU being started (or
/// suspended with a power-down state) will take.
struct PowerTable {
    power: [Power; MAX_CPUS],
    start: [Option<Start>; MAX_CPUS],
}

static POWER: Mutex<PowerTable> =
    Mutex::new(PowerTable { power: [Power::Off; MAX_CPUS], start: [None; MAX_CPUS] });

/// The boot CPU runs the guest (boot, before it enters it).
pub fn boot_cpu_on() {
    POWER.lock().power[0] = Power::On;
}

/// CPU `cpu` is entering the guest: it is on now; returns where to enter
/// (None: nobody asked it to start).
pub fn take_start(cpu: usize) -> Option<Start> {
    let mut t = POWER.lock();
    let s = t.start.get_mut(cpu)?.take()?;
    t.power[cpu] = Power::On;
    Some(s)
}

/// Whether a CPU other than the boot CPU was ever started (the exclusives
/// of the page-table watch need another CPU's writes to be possible).
pub fn smp_started() -> bool {
    SMP.load(core::sync::atomic::Ordering::Relaxed)
}

static SMP: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

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

/// A PSCI call of porwatch's own to firmware; returns x0.
fn firmware(function: u32, a1: u64, a2: u64, a3: u64) -> u64 {
    let mut args = [0u64; FORWARD_ARGS];
    args[..3].copy_from_slice(&[a1, a2, a3]);
    smccc::smc64(function, args)[0]
}

/// SMCCC's NOT_SUPPORTED (-1) as an x0 value.
const SMCCC_NOT_SUPPORTED: u64 = -1i64 as u64;
/// Arguments forwarded to firmware: x1..x17; results x0..x17 (SMCCC v1.2).
const FORWARD_ARGS: usize = 17;
/// PSCI's SUCCESS as an x0 value.
const PSCI_SUCCESS: u64 = 0;

unsafe extern "C" {
    /// boot.S: where started and resumed CPUs enter porwatch.
    fn secondary_entry();
}

/// porwatch's entry point for started and resumed CPUs (a physical
/// address: EL2's map is the identity).
fn secondary_entry_pa() -> u64 {
    secondary_entry as *const () as u64
}

pub fn handle(regs: &mut GuestRegs, conduit: Conduit, imm: u16) -> Handled {
    let (x0, x1, x2, x3) = (regs.x[0], regs.x[1], regs.x[2], regs.x[3]);
    let cfg = config();
    let me = percpu::index();
    let call = if imm == SMCCC_IMM { psci::classify(x0, x1, x2, x3) } else { GuestCall::Unknown(x0 as u32) };
    // Decide and claim the state change under one lock: two CPUs starting
    // the same CPU get ON_PENDING for the second.
    let decision = {
        let mut t = POWER.lock();
        let m = Machine {
            hyp: (cfg.layout.start, cfg.layout.end - cfg.layout.start),
            cpus: &cfg.cpus,
            power: &t.power[..cfg.cpus.len()],
            caller: me,
        };
        let d = if crate::boot::has_firmware() {
            psci::decide(call, &m)
        } else {
            psci::decide_without_firmware(call, &m)
        };
        match d {
            Decision::CpuOn { target, entry, context } => {
                t.power[target] = Power::OnPending;
                t.start[target] = Some(Start { entry, context, reason: CpuStartReason::CpuOn });
            }
            Decision::CpuOff => t.power[me] = Power::Off,
            Decision::SuspendForward { entry, context, .. } => {
                t.start[me] = Some(Start { entry, context, reason: CpuStartReason::Resume });
            }
            _ => {}
        }
        d
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
        Decision::LastCpuOff => {
            record(0);
            run_end::guest_done(ExitReason::CpuOff, 0)
        }
        Decision::TestExit(code) => {
            record(0);
            run_end::guest_done(ExitReason::TestExit, code)
        }
        Decision::CpuOn { target, .. } => {
            SMP.store(true, core::sync::atomic::Ordering::Relaxed);
            let ret = start_cpu(target);
            if ret != PSCI_SUCCESS {
                let mut t = POWER.lock();
                if t.power[target] == Power::OnPending {
                    t.power[target] = Power::Off;
                    t.start[target] = None;
                }
            }
            regs.x[0] = ret;
            record(ret);
            Handled::Done(if crate::boot::has_firmware() {
                TrapOutcome::Forwarded
            } else {
                TrapOutcome::Emulated
            })
        }
        Decision::CpuOff => {
            record(0);
            trace_out::emit(Event::CpuStop { reason: CpuStopReason::CpuOff as u64 });
            power_down(regs, me)
        }
        Decision::SuspendForward { power_state, .. } => {
            // A power-down state does not return here: the CPU resumes at
            // secondary_entry, then at the guest's entry (take_start).
            // What this CPU batched goes out before it sleeps.
            trace_out::before_idle();
            let ret = firmware(PSCI_CPU_SUSPEND_64, u64::from(power_state), secondary_entry_pa(), me as u64);
            POWER.lock().start[me] = None;
            regs.x[0] = ret;
            record(ret);
            Handled::Done(TrapOutcome::Forwarded)
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

/// Starts CPU `target` (its start is in [`POWER`]): firmware's CPU_ON with
/// porwatch's entry, or the pen. Returns the PSCI result.
fn start_cpu(target: usize) -> u64 {
    let cfg = config();
    let Some(mpidr) = cfg.cpus.mpidr(target) else {
        return psci::ret(smccc::psci::error::INVALID_PARAMETERS);
    };
    if crate::boot::has_firmware() {
        firmware(PSCI_CPU_ON_64, mpidr, secondary_entry_pa(), target as u64)
    } else {
        crate::arch::pen::release(target);
        PSCI_SUCCESS
    }
}

/// CPU_OFF of this CPU, others still on: with firmware, the CPU goes off
/// (the SMC does not return on success; a later CPU_ON starts it afresh at
/// secondary_entry). Without firmware it waits here until a CPU_ON, then
/// enters the guest where that says (it does not return then either).
fn power_down(regs: &mut GuestRegs, me: usize) -> Handled {
    trace_out::flush();
    if crate::boot::has_firmware() {
        let ret = firmware(PSCI_CPU_OFF, 0, 0, 0);
        // Still here: firmware refused (DENIED); the CPU stays on.
        POWER.lock().power[me] = Power::On;
        regs.x[0] = ret;
        return Handled::Done(TrapOutcome::Forwarded);
    }
    while POWER.lock().power[me] != Power::OnPending {
        aarch64_cpu::asm::wfe();
    }
    crate::boot::enter_guest_here(me)
}
