//! When porwatch itself fails: a Rust panic, or an exception taken at EL2.
//! Both print on both UARTs, put a panic record in the trace, flush it and
//! stop the machine with a non-zero status.
use crate::arch::frame::GuestRegs;
use crate::console::{Msg, To};
use crate::run_end::{stop, STATUS_HYP_FAILURE};
use crate::trace_out;
use aarch64_cpu::registers::{Readable, ESR_EL2, FAR_EL2};
use core::sync::atomic::{AtomicBool, Ordering};
use porwatch_trace::Event;

static DYING: AtomicBool = AtomicBool::new(false);

/// Trace panic messages are cut to this (frames are bounded).
const MAX_MESSAGE: usize = 200;

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    let msg = info.message().as_str().unwrap_or("(formatted message not shown)");
    let (file, line) = info.location().map_or(("?", 0), |l| (l.file(), l.line()));
    die(&[msg.as_bytes()], Some((file, line as u64)))
}

/// vectors.S: an exception taken at EL2 (a hyp bug). `kind`: vector index 0..7.
#[unsafe(no_mangle)]
extern "C" fn hyp_fault(frame: &GuestRegs, kind: u64) -> ! {
    let esr = ESR_EL2.get();
    let far = FAR_EL2.get();
    Msg::new(To::Both)
        .s("exception at EL2: vector ")
        .dec(kind)
        .s(" ESR_EL2=")
        .hex(esr)
        .s(" ELR_EL2=")
        .hex(frame.elr)
        .s(" FAR_EL2=")
        .hex(far)
        .s(" SPSR_EL2=")
        .hex(frame.spsr)
        .end();
    die(&[b"exception at EL2"], None)
}

fn die(msg: &[&[u8]], location: Option<(&str, u64)>) -> ! {
    if DYING.swap(true, Ordering::Relaxed) {
        // Failing while failing: just stop.
        stop(STATUS_HYP_FAILURE, false);
    }
    let mut m = Msg::new(To::Both).s("PANIC: ");
    for part in msg {
        m = m.bytes(part);
    }
    if let Some((file, line)) = location {
        m = m.s(" at ").s(file).s(":").dec(line);
    }
    m.end();
    let text = msg.first().copied().unwrap_or(b"");
    trace_out::emit_from_panic(Event::Panic { message: &text[..text.len().min(MAX_MESSAGE)] });
    stop(STATUS_HYP_FAILURE, false)
}
