//! The trace as hyp emits it: records are encoded (porwatch-trace), queued in
//! a ring and drained to the trace sink. A record that does not fit is
//! counted, never silently lost: the count goes out as a `dropped` record as
//! soon as there is room (its sequence number follows the dropped ones, so
//! the reader sees exactly which are missing). Records that must not be lost
//! (hazards, guest exit, panic) wait for room instead.
//!
//! Every record names the CPU that made it (porwatch's dense index, from the
//! per-CPU block) and carries that CPU's own sequence number, so each CPU's
//! records and drops are accounted for separately; the ring itself is
//! shared (one lock), and a CPU's `dropped` record goes out from that CPU.
//! docs/smp.md says how per-CPU rings would fit on top.
//!
//! Two sinks:
//! * the trace UART (the normal case): the ring is drained into the PL011's
//!   FIFO at every record, a byte at a time, as far as the FIFO takes it;
//! * a host file written with Arm semihosting
//!   (`porwatch.trace=semihosting:FILE`, for QEMU `secure=on` where the
//!   second PL011 is Secure-only): each SYS_WRITE is a call into the
//!   debugger or model (in QEMU a host system call), so the ring is written
//!   in contiguous chunks: at a record when [`FILE_BATCH`] bytes are queued
//!   or the last write is 1/[`FILE_MAX_AGE_DIV`] s (20 ms) old (so a live
//!   reader is not left waiting), at every reliable record and at flush. A
//!   write is synchronous and complete: nothing is lost. The UART path pays
//!   nothing for this: one branch, after the UART's own.
use crate::arch::percpu;
use crate::arch::pl011::Pl011;
use crate::arch::semihosting::HostFile;
use crate::console::{Msg, To};
use aarch64_cpu::registers::{Readable, CNTFRQ_EL0, CNTPCT_EL0};
use porwatch_monitor::cpus::MAX_CPUS;
use porwatch_trace::ring::Ring;
use porwatch_trace::{encode_frame, Event, Record, MAX_FRAME};
use spin::Mutex;

const RING_BYTES: usize = 256 * 1024;
/// File sink: write once this much is queued.
const FILE_BATCH: usize = 4096;
/// File sink: write when the last write is older than 1/this s.
const FILE_MAX_AGE_DIV: u64 = 50;

/// Where the trace goes.
#[derive(Clone, Copy)]
pub enum Sink {
    Uart(Pl011),
    File(HostFile),
}

struct Tracer {
    ring: Ring<RING_BYTES>,
    uart: Option<Pl011>,
    /// The semihosting file sink (never together with `uart`).
    file: Option<HostFile>,
    /// File sink: counter ticks after which queued bytes are written.
    max_age: u64,
    /// File sink: CNTPCT at the last write.
    last_write: u64,
    /// Per CPU: the next sequence number, and records dropped not yet
    /// reported.
    seq: [u64; MAX_CPUS],
    dropped: [u64; MAX_CPUS],
}

static TRACER: Mutex<Tracer> = Mutex::new(Tracer {
    ring: Ring::new(),
    uart: None,
    file: None,
    max_age: 0,
    last_write: 0,
    seq: [0; MAX_CPUS],
    dropped: [0; MAX_CPUS],
});

/// Sets the trace sink (None: the trace is counted but goes nowhere).
pub fn init(sink: Option<Sink>) {
    let mut t = TRACER.lock();
    match sink {
        Some(Sink::Uart(u)) => t.uart = Some(u),
        Some(Sink::File(f)) => {
            t.file = Some(f);
            t.max_age = CNTFRQ_EL0.get() / FILE_MAX_AGE_DIV;
        }
        None => {}
    }
}

/// Records `event`; drops it (counted) if the ring is full. Returns the
/// record's sequence number in this CPU's numbering (consumed even if it
/// was dropped).
#[inline]
pub fn emit(event: Event) -> u64 {
    let cpu = percpu::index();
    let mut t = TRACER.lock();
    let seq = t.record(cpu, event, false);
    t.drain();
    seq
}

/// Records `event` of CPU `cpu` that happened at counter value `ts`
/// (queued by the fast paths and emitted later, in order: tap.rs `drain`;
/// another CPU's only at the end of the run).
#[inline]
pub fn emit_at(cpu: usize, ts: u64, event: Event) -> u64 {
    let mut t = TRACER.lock();
    let seq = t.record_at(cpu, ts, event, false);
    t.drain();
    seq
}

/// Records `event`, waiting for the sink to make room if needed; with the
/// file sink the record (and everything before it) is written at once.
pub fn emit_reliable(event: Event) -> u64 {
    let cpu = percpu::index();
    let mut t = TRACER.lock();
    let seq = t.record(cpu, event, true);
    t.drain();
    t.write_file();
    seq
}

/// Sends everything queued and waits until it has left the UART.
pub fn flush() {
    let mut t = TRACER.lock();
    t.flush();
}

/// Records `event` and flushes, for the panic path: does not wait for a lock
/// held by the code that panicked (it would never be released).
pub fn emit_from_panic(event: Event) {
    let cpu = percpu::index();
    if let Some(mut t) = TRACER.try_lock() {
        let _ = t.record(cpu, event, true);
        t.flush();
    }
}

impl Tracer {
    /// Records `event` for CPU `cpu` (in range: percpu::index).
    fn record(&mut self, cpu: usize, event: Event, reliable: bool) -> u64 {
        self.record_at(cpu, now(), event, reliable)
    }

    /// Records `event` for CPU `cpu` with timestamp `ts` (a queued record's
    /// own, which precedes any record the CPU makes after it).
    fn record_at(&mut self, cpu: usize, ts: u64, event: Event, reliable: bool) -> u64 {
        let cpu = cpu.min(MAX_CPUS - 1);
        let mut buf = [0u8; MAX_FRAME];
        let id = cpu as u32;
        if self.dropped[cpu] > 0 {
            let count = self.dropped[cpu];
            let rec = Record { cpu: id, seq: self.seq[cpu], ts: now(), event: Event::Dropped { count } };
            if let Some(n) = encode_frame(&rec, &mut buf) {
                if reliable {
                    self.make_room(n);
                }
                if self.ring.push(&buf[..n]) {
                    self.seq[cpu] += 1;
                    self.dropped[cpu] = 0;
                }
            }
        }
        let seq = self.seq[cpu];
        self.seq[cpu] += 1;
        let rec = Record { cpu: id, seq, ts, event };
        let Some(n) = encode_frame(&rec, &mut buf) else {
            self.dropped[cpu] += 1;
            return seq;
        };
        if reliable {
            self.make_room(n);
        }
        if self.dropped[cpu] > 0 || !self.ring.push(&buf[..n]) {
            self.dropped[cpu] += 1;
        }
        seq
    }

    fn make_room(&mut self, n: usize) {
        while self.ring.free() < n && self.uart.is_some() {
            self.drain();
        }
        if self.ring.free() < n {
            self.write_file();
        }
    }

    #[inline]
    fn drain(&mut self) {
        if let Some(u) = self.uart {
            self.ring.drain(|b| u.try_put(b));
        } else if self.file.is_some() && self.file_due() {
            self.write_file();
        }
    }

    /// File sink: whether the queued bytes should be written now.
    fn file_due(&self) -> bool {
        self.ring.len() >= FILE_BATCH || now().wrapping_sub(self.last_write) >= self.max_age
    }

    /// File sink: writes everything queued (no-op without a file). A host
    /// that stops taking bytes (disk full, file closed) ends the file sink,
    /// with a console message: the trace goes nowhere from then on, and
    /// records are counted as dropped instead of stalling the guest.
    #[inline(never)]
    fn write_file(&mut self) {
        let Some(f) = self.file else { return };
        self.last_write = now();
        while !self.ring.is_empty() {
            if self.ring.drain_slices(|s| f.write(s)) == 0 {
                self.file = None;
                Msg::new(To::Console)
                    .s("semihosting trace file: the host stopped taking data; trace lost")
                    .end();
                return;
            }
        }
    }

    fn flush(&mut self) {
        if let Some(u) = self.uart {
            while !self.ring.is_empty() {
                self.ring.drain(|b| u.try_put(b));
            }
            u.wait_idle();
        }
        self.write_file();
    }
}

#[inline]
fn now() -> u64 {
    CNTPCT_EL0.get()
}
