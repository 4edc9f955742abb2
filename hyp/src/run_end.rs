//! Ending the run: record why, flush the trace, then stop the machine with
//! the right status (semihosting SYS_EXIT when enabled, else PSCI).
//!
//! With several CPUs the first to end the run does it; from then on every
//! CPU that enters porwatch parks ([`stopping`]), so `guest_exit` stays the
//! last record and nothing races the stop.
use crate::arch::semihosting;
use crate::boot::config;
use crate::trace_out;
use core::sync::atomic::{AtomicBool, Ordering};
use porwatch_trace::{test_exit_status, Event, ExitReason};

/// Exit status for a hyp panic or an exception taken at EL2.
pub const STATUS_HYP_FAILURE: u32 = 70;

/// Set by the CPU that ends the run.
static STOPPING: AtomicBool = AtomicBool::new(false);

/// The run is ending (another CPU is writing the last records).
#[inline]
pub fn stopping() -> bool {
    STOPPING.load(Ordering::Relaxed)
}

/// Waits forever (a CPU with nothing left to do).
pub fn park() -> ! {
    loop {
        aarch64_cpu::asm::wfe();
    }
}

/// Ends the run after the guest asked to (power off, reset, test exit with
/// `code`). The trace gets all 64 bits of `code`; the exit status, which
/// has 8, is `test_exit_status(code)` (255 for wider codes, never 0). Only
/// the first CPU to get here does; another one parks.
pub fn guest_done(reason: ExitReason, code: u64) -> ! {
    if STOPPING.swap(true, Ordering::AcqRel) {
        park();
    }
    // What every CPU's fast paths queued comes before the last records.
    crate::tap::drain_others_at_stop();
    // Flight mode: what each CPU's ring kept and lost.
    trace_out::emit_flight_stats_all();
    // Devices' last faults, then proof that nothing wrote hyp's image.
    crate::dma::poll();
    crate::integrity::check();
    if config().opts.track {
        crate::audit::at_exit();
        crate::pt::emit_stats();
    }
    trace_out::emit_reliable(Event::GuestExit { reason: reason as u64, code });
    trace_out::flush();
    let status = if reason == ExitReason::TestExit { test_exit_status(code) } else { 0 };
    stop(u32::from(status), reason == ExitReason::SystemReset)
}

/// Stops the machine. Without semihosting the status cannot reach the host:
/// PSCI SYSTEM_OFF (or SYSTEM_RESET) is all there is — and after an EL3
/// entry not even that (no firmware): the CPU then waits forever.
pub fn stop(status: u32, reset: bool) -> ! {
    if config().opts.semihosting {
        semihosting::exit(status);
    }
    if !crate::boot::has_firmware() {
        loop {
            aarch64_cpu::asm::wfe();
        }
    }
    if reset {
        let _ = smccc::psci::system_reset::<smccc::Smc>();
    }
    let _ = smccc::psci::system_off::<smccc::Smc>();
    loop {
        aarch64_cpu::asm::wfe();
    }
}
